"""Emulated GamryCOM data acquisitions (Ciiv, Cpiv, Chrono, Ocv) and single-frequency impedance (ReadZ).

``Cook(n)`` returns ``(count, columns)`` with one tuple per column until it returns 0 points; the column
lists follow jdhuang-csm/pygamry, pygamry/dtaq/config.py. Stop criteria (``SetStopVMin/VMax`` on
Vf, ``SetStopIMin/IMax`` on Im) end the acquisition at the first point beyond them (StopTest set) and the
output then holds its last value; thresholds (``SetThresh*``) are recorded only. ``emu.stops_disabled``
makes stop criteria never fire (a fault to show that the driver's own check still ends the step). ReadZ
takes an RMS amplitude and records the peak excitation it applied in ``emu.excitations``. A curve of
total time T at sample period s has T / s points (rounded down), each at the end of its period: the
first one period after Run, the last at T (Gamry Framework help, "Sample Period"; docs/drivers.md).
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from simulators.gamrycom_hardware import E_FAIL, GC, COMError, EmulatedInstrument
from simulators.gamrycom_objects import ComObject, Pstat, com_method

if TYPE_CHECKING:
    from simulators.gamrycom import GamryComEmulator


class Dtaq(ComObject):
    COLUMNS: tuple[str, ...] = ()
    EVENTS = "_IGamryDtaqEvents"

    def __init__(self, emulator: GamryComEmulator):
        super().__init__(emulator)
        self.pstat: Pstat | None = None
        self.running = False
        self.done = False
        self.k = 0
        self.t0 = 0.0
        self.buffer: deque = deque()
        self.stops: dict[str, float] = {}  # armed stop criteria: "VMin", "VMax", "IMin", "IMax" -> level
        self.thresholds: dict[str, float] = {}  # armed thresholds (recorded; their effect is not modelled)
        self.stopped_at: float | None = None
        self.charge = 0.0

    @com_method
    def Init(self, pstat: Pstat, *args: Any) -> None:
        self.pstat = pstat

    @com_method
    def SetStopVMin(self, enable: bool, value: float) -> None:
        self._arm(self.stops, "VMin", enable, value)

    @com_method
    def SetThreshVMin(self, enable: bool, value: float) -> None:
        self._arm(self.thresholds, "VMin", enable, value)

    @com_method
    def SetStopVMax(self, enable: bool, value: float) -> None:
        self._arm(self.stops, "VMax", enable, value)

    @com_method
    def SetThreshVMax(self, enable: bool, value: float) -> None:
        self._arm(self.thresholds, "VMax", enable, value)

    @com_method
    def SetStopIMin(self, enable: bool, value: float) -> None:
        self._arm(self.stops, "IMin", enable, value)

    @com_method
    def SetThreshIMin(self, enable: bool, value: float) -> None:
        self._arm(self.thresholds, "IMin", enable, value)

    @com_method
    def SetStopIMax(self, enable: bool, value: float) -> None:
        self._arm(self.stops, "IMax", enable, value)

    @com_method
    def SetThreshIMax(self, enable: bool, value: float) -> None:
        self._arm(self.thresholds, "IMax", enable, value)

    @staticmethod
    def _arm(table: dict[str, float], key: str, enable: bool, value: float) -> None:
        if enable:
            table[key] = float(value)
        else:
            table.pop(key, None)

    @com_method
    def Run(self, start: bool) -> None:
        pstat = self.pstat
        if pstat is None:
            raise COMError(E_FAIL, "Dtaq not initialised")
        inst = pstat.hardware()
        inst.advance()
        if not start:
            self.halt(inst)
            return
        if pstat.signal is None or inst.signal is not pstat.signal:
            raise COMError(E_FAIL, "No signal initialised")
        if inst.dtaq is not None and inst.dtaq is not self and inst.dtaq.running:
            inst.dtaq.halt(inst)
        inst.dtaq, self.running, self.done, self.k = self, True, False, 0
        self.t0 = self.emu.clock.now()
        inst.signal.active, inst.signal.t0 = True, self.t0

    @com_method
    def Stop(self) -> None:
        if self.pstat is not None and self.pstat.inst is not None:
            inst = self.pstat.inst
            inst.advance()
            self.halt(inst)

    def halt(self, inst: EmulatedInstrument) -> None:
        if self.running:
            self.running = False
            self.done = True
            if inst.signal is not None and inst.signal.active:
                # The generator halts: the output holds the last applied value.
                inst.v_dc = inst.signal.value * inst.rm() if inst.ctrl_mode == GC.GstatMode else inst.signal.value
                inst.signal.active = False
            if inst.dtaq is self:
                inst.dtaq = None

    @com_method
    def Cook(self, n: int) -> tuple[int, tuple]:
        if self.pstat is not None and self.pstat.inst is not None:
            self.pstat.inst.advance()
        rows = [self.buffer.popleft() for _ in range(min(int(n), len(self.buffer)))]
        if not rows:
            return 0, tuple(() for _ in self.COLUMNS)
        columns = list(zip(*rows))
        kind = self.emu.take_garbage()
        if kind == "columns":
            columns = columns[:-2]
        elif kind == "nan":
            columns[1] = tuple(math.nan for _ in columns[1])
        elif kind == "time":
            columns[0] = tuple(t - 1e3 for t in columns[0])
        return len(rows), tuple(tuple(c) for c in columns)

    def acquire(self, now: float) -> None:
        """Points due up to ``now``: the cell advanced sample by sample with the applied current."""
        inst = self.pstat.inst
        signal = inst.signal
        # Point k (1 ... n_points) is taken at the end of its sample period, t0 + k * sample: the curve's
        # first point comes one period after Run, its last at t0 + total time (none at Run itself).
        t_end = self.t0 + signal.n_points * signal.sample
        k_hi = min(int(math.floor((min(now, t_end) - self.t0) / signal.sample + 1e-9)), signal.n_points)
        if k_hi > self.k:
            ks = np.arange(self.k + 1, k_hi + 1)
            t = self.t0 + ks * signal.sample
            current = np.full(len(t), inst.applied_current())
            if not inst.cell_on:
                current[:] = 0.0
            before = inst.cell.snapshot()
            resp = inst.cell.advance(current, np.diff(t, prepend=inst.t_cell))
            trip = self._trip(inst.measured_vf(resp.E_we), current * inst.sign())
            if trip is not None:
                inst.cell.restore(before)
                t, current = t[: trip + 1], current[: trip + 1]
                resp = inst.cell.advance(current, np.diff(t, prepend=inst.t_cell))
            inst.t_cell = float(t[-1])
            inst.last_we, inst.last_cell = float(resp.E_we[-1]), float(resp.E_cell[-1])
            self._emit(inst, t, inst.measured_vf(resp.E_we), resp.E_cell, current, trip)
            self.k = int(ks[len(t) - 1])
            self.emu.post(self, f"{self.EVENTS}_OnDataAvailable", float(t[-1]))
            if trip is not None:
                self._finish(inst, float(t[-1]))
                return
        if self.k >= signal.n_points:
            self._finish(inst, t_end)

    def _trip(self, vf: np.ndarray, im: np.ndarray) -> int | None:
        """Index of the first point a stop criterion acts on (the measured Vf and Im), or None."""
        if self.emu.stops_disabled:
            return None
        hit = np.zeros(len(vf), dtype=bool)
        for key, value in self.stops.items():
            x = vf if key[0] == "V" else im
            hit |= x < value if key.endswith("Min") else x > value
        idx = np.flatnonzero(hit)
        return int(idx[0]) if idx.size else None

    def _finish(self, inst: EmulatedInstrument, t: float) -> None:
        inst.run_to(t)
        self.halt(inst)
        self.emu.post(self, f"{self.EVENTS}_OnDataDone", t)

    def _overload(self, inst: EmulatedInstrument, t: np.ndarray, current: np.ndarray) -> np.ndarray:
        bits = np.where(np.abs(current) >= inst.full_scale(inst.ie_range) * 0.999, 0x2, 0)
        if inst.overload_from is not None:
            bits = np.where(t >= inst.overload_from, bits | 0x4, bits)
        return bits

    def _emit(self, inst, t, e_we, e_cell, current, trip) -> None:
        raise NotImplementedError


class DtaqCiiv(Dtaq):
    """Constant current (galvanostatic) acquisition with voltage stop criteria."""

    COLUMNS = ("Time", "Vf", "Vu", "Im", "Vsig", "Ach", "IERange", "Overload", "StopTest")

    def _emit(self, inst, t, e_we, e_cell, current, trip) -> None:
        im = current * inst.sign()  # reported in the selected convention
        stop = np.zeros(len(t), dtype=int)
        if trip is not None:
            stop[-1] = 1
        over = self._overload(inst, t, current)
        for j in range(len(t)):
            self.buffer.append(
                (
                    float(t[j] - self.t0),
                    float(e_we[j]),
                    float(e_we[j]),
                    float(im[j]),
                    float(im[j] * inst.rm()),
                    float(e_cell[j]),
                    inst.ie_range,
                    int(over[j]),
                    int(stop[j]),
                )
            )


class DtaqCpiv(DtaqCiiv):
    """Constant potential (potentiostatic) acquisition with current stop criteria; same columns as Ciiv."""


class DtaqChrono(Dtaq):
    """Chronoamperometry / chronopotentiometry acquisition (Init(pstat, ChronoAmp|ChronoPot))."""

    COLUMNS = ("Time", "Vf", "Vu", "Im", "Q", "Vsig", "Ach", "IERange", "Overload", "StopTest")

    def _emit(self, inst, t, e_we, e_cell, current, trip) -> None:
        im = current * inst.sign()
        over = self._overload(inst, t, current)
        for j in range(len(t)):
            dt = float(t[j] - (t[j - 1] if j else t[j]))
            self.charge += float(im[j]) * dt
            self.buffer.append(
                (
                    float(t[j] - self.t0),
                    float(e_we[j]),
                    float(e_we[j]),
                    float(im[j]),
                    self.charge,
                    float(im[j] * inst.rm()),
                    float(e_cell[j]),
                    inst.ie_range,
                    int(over[j]),
                    0,
                )
            )


class DtaqOcv(Dtaq):
    """Open-circuit potential with the cell off."""

    COLUMNS = ("Time", "Vf", "Vm", "Vsig", "Ach", "Overload", "StopTest", "Ignore1", "Ignore2", "Ignore3")

    def _emit(self, inst, t, e_we, e_cell, current, trip) -> None:
        for j in range(len(t)):
            self.buffer.append(
                (float(t[j] - self.t0), float(e_we[j]), float(e_we[j]), 0.0, float(e_cell[j]), 0, 0, 0, 0, 0)
            )


class ReadZ(ComObject):
    """Single-frequency impedance: Measure(f, amplitude) then OnDataDone(status) while events are pumped."""

    EVENTS = "_IGamryReadZEvents"

    def __init__(self, emulator: GamryComEmulator):
        super().__init__(emulator)
        self.pstat: Pstat | None = None
        self.idc_hint = 0.0
        self.result: dict[str, float] = {}
        self.status = GC.ReadZStatusOk
        self.message = ""
        self.pending: tuple[float, float, float] | None = None  # (freq, amplitude, due time)
        self.cycle_lim = (2, 10)

    @com_method
    def Init(self, pstat: Pstat) -> None:
        self.pstat = pstat

    @com_method
    def SetIdc(self, idc: float) -> None:
        self.idc_hint = float(idc)

    @com_method
    def SetCycleLim(self, lo: int, hi: int) -> None:
        self.cycle_lim = (int(lo), int(hi))

    @com_method
    def SetSpeed(self, speed: int) -> None:
        pass

    @com_method
    def SetGain(self, gain: float) -> None:
        pass

    @com_method
    def SetINoise(self, value: float) -> None:
        pass

    @com_method
    def SetVNoise(self, value: float) -> None:
        pass

    @com_method
    def SetIENoise(self, value: float) -> None:
        pass

    @com_method
    def SetZmod(self, value: float) -> None:
        pass

    @com_method
    def Measure(self, freq: float, amplitude: float) -> None:
        if self.pstat is None:
            raise COMError(E_FAIL, "ReadZ not initialised")
        inst = self.pstat.hardware()
        inst.advance()
        if inst.dtaq is not None and inst.dtaq.running:
            raise COMError(E_FAIL, "Another data acquisition is running")
        duration = max(self.cycle_lim[0] / freq + 1.0 / freq, 0.25)
        self.pending = (float(freq), float(amplitude), self.emu.clock.now() + duration)
        self.result = {}
        inst.readz = self

    def poll(self) -> None:
        if self.pending is None or self.pstat is None or self.pstat.inst is None:
            return
        inst = self.pstat.inst
        freq, amplitude, due = self.pending
        if self.emu.clock.now() < due:
            return
        inst.run_to(due)
        self.pending = None
        inst.readz = None
        status = self.emu.readz_statuses.popleft() if self.emu.readz_statuses else GC.ReadZStatusOk
        if not inst.cell_on:
            status = GC.ReadZStatusError
        i_dc = inst.applied_current()
        z = complex(inst.cell.impedance(np.array([freq]), i_dc)[0])
        rng = inst.cell.rng
        z *= 1 + rng.normal(0, 0.002) + 1j * rng.normal(0, 0.002)
        galvano = inst.ctrl_mode == GC.GstatMode
        v_ac = abs(z) * amplitude if galvano else amplitude
        # Measure() takes an RMS amplitude (A in galvanostat mode, V in potentiostat mode)
        self.emu.excitations.append(("galvanostatic" if galvano else "potentiostatic", math.sqrt(2) * amplitude))
        self.status = status
        self.message = {
            GC.ReadZStatusOk: "",
            GC.ReadZStatusRetry: "Cycle Limit.",
            GC.ReadZStatusError: "Measurement error.",
        }[status]
        self.result = {
            "Zfreq": freq,
            "Zreal": z.real,
            "Zimag": z.imag,
            "Zsig": 1.0,
            "Zmod": abs(z),
            "Zphz": math.degrees(math.atan2(z.imag, z.real)),
            "Idc": i_dc * inst.sign(),
            "Vdc": inst.last_we if inst.cell_on else 0.0,
            "IERange": inst.ie_range,
            "Vac": v_ac,
        }
        self.emu.post(self, f"{self.EVENTS}_OnDataDone", due, status)

    def _value(self, key: str) -> float:
        if key not in self.result:
            return 0.0
        return self.result[key]

    @com_method
    def Zfreq(self) -> float:
        return self._value("Zfreq")

    @com_method
    def Zreal(self) -> float:
        return self._value("Zreal")

    @com_method
    def Zimag(self) -> float:
        return self._value("Zimag")

    @com_method
    def Zsig(self) -> float:
        return self._value("Zsig")

    @com_method
    def Zmod(self) -> float:
        return self._value("Zmod")

    @com_method
    def Zphz(self) -> float:
        return self._value("Zphz")

    @com_method
    def Idc(self) -> float:
        return self._value("Idc")

    @com_method
    def Vdc(self) -> float:
        return self._value("Vdc")

    @com_method
    def IERange(self) -> int:
        return int(self._value("IERange"))

    @com_method
    def StatusMessage(self) -> str:
        return self.message

    @com_method
    def Cook(self, n: int) -> tuple[int, tuple]:
        return 0, ((), ())
