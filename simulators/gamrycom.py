"""An emulated GamryCOM (Gamry Electrochemistry Toolkit) object model driving a SimulatedCell on a Clock.

``GamryComEmulator`` stands in for what a driver reaches through comtypes: ``GetModule`` (the type library
namespace with the enum constants), ``CreateObject`` by ProgID (GamryCOM.GamryDeviceList,
GamryCOM.GamryPC6Pstat / GamryPC5Pstat, GamrySignalConst, GamryDtaqChrono, GamryDtaqCiiv, GamryDtaqOcv,
GamryReadZ), ``GetEvents`` (event sinks with ``_IGamryDtaqEvents_OnDataAvailable/OnDataDone`` and
``_IGamryReadZEvents_OnDataAvailable/OnDataDone(status)``), ``PumpEvents(timeout)`` and ``COMError``
(raised with a signed HRESULT first, as comtypes does).

Behaviour follows the toolkit: ``Cook(n)`` returns ``(count, columns)`` with one tuple per column (Ciiv:
Time, Vf, Vu, Im, Vsig, Ach, IERange, Overload, StopTest; Chrono adds Q), until it returns 0 points; a
curve has at most 262143 points; stop criteria (SetStopVMin/VMax) end acquisition at the tripping point
(StopTest set) but, as with the Framework's "output state when finished" left on, the instrument keeps the
cell on at the last applied value until the software switches it off; the galvanostat current is
Vsig / Rm of the fixed I/E range (SetVoltage sets the DC level when no signal runs); the current sign
follows SetIConvention; events are delivered only while events are pumped; ReadZ measures one frequency
per Measure() and reports Ok / Retry / Error through OnDataDone. The rig's auxiliary input (Ach) is wired
across working and counter electrode, so Ach is the cell voltage.

Pumping events lets clock time pass (a VirtualClock jumps), which is how waiting for a ReadZ point costs
instrument time. Faults for tests: HRESULT errors from chosen methods, calls that hang (real time), a
GamryCOM server crash (old objects dead, new ones work), garbage from Cook, ReadZ statuses, events that
never come, overloads.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from types import SimpleNamespace
from typing import Any

import numpy as np

from daq.core.clock import Clock
from simulators.cell import SimulatedCell

TYPELIB_GUID = "{BD962F0D-A990-4823-9CF5-284D1CDD9C6D}"
MAX_CURVE_POINTS = 262143

# HRESULTs the emulator raises (unsigned); comtypes reports them signed.
E_FAIL, E_INVALIDARG = 0x80004005, 0x80070057
RPC_S_SERVER_UNAVAILABLE, RPC_E_TIMEOUT = 0x800706BA, 0x8001011F
GAMRY_DEVICE_NOT_OPEN, GAMRY_DEVICE_IN_USE, GAMRY_INVALID_DEVICE_TYPE = 0xE000000F, 0xE0000027, 0xE0000028
GAMRY_DEVICE_NOT_FOUND, GAMRY_INVALID_SIGNAL = 0xE0000025, 0xE00200A4
CO_E_CLASSSTRING = 0x800401F3

_HANG_CAP = 60.0  # s of real time


class COMError(Exception):
    """Like comtypes.COMError: args are (hresult as signed 32-bit int, text, details)."""

    def __init__(self, hresult: int, text: str, details: tuple = (None, None, None, 0, None)):
        signed = hresult - (1 << 32) if hresult & 0x80000000 else hresult
        super().__init__(signed, text, details)
        self.hresult, self.text, self.details = signed, text, details


def _constants() -> SimpleNamespace:
    """The enum constants of the GamryCOM type library used by drivers."""
    return SimpleNamespace(
        GstatMode=0,
        PstatMode=1,
        ZRAMode=2,
        FRAMode=3,  # gcCTRLMODE
        CellOff=0,
        CellOn=1,  # gcCELLSTATE
        StabilityFast=0,
        StabilityNorm=1,
        StabilityMed=2,
        StabilitySlow=3,  # gcIESTABILITY
        Cathodic=0,
        Anodic=1,  # gcICONVENTION
        Float=0,
        Earth=1,  # gcGROUND
        GND=0,
        ACH=1,  # gcACHSELECT
        ChronoAmp=0,
        ChronoPot=1,  # gcCHRONOTYPE
        ReadZSpeedFast=0,
        ReadZSpeedNorm=1,
        ReadZSpeedLow=2,  # gcREADZSPEED
        ReadZStatusOk=0,
        ReadZStatusRetry=1,
        ReadZStatusError=2,  # gcREADZSTATUS
        IruptOff=0,
    )


GC = _constants()


class _Instrument:
    """The hardware behind one section: cell, output, I/E range, running curve, ReadZ in flight."""

    def __init__(self, section: str, cell: SimulatedCell, clock: Clock, serial: str):
        self.section, self.cell, self.clock, self.serial = section, cell, clock, serial
        self.family = "Interface" if section.upper().startswith("IFC") else "Reference"
        self.model = "Interface 1010E" if self.family == "Interface" else "Reference 600+"
        self.owner: Any = None  # pstat object holding it open
        self.cell_on = False
        self.ctrl_mode = GC.PstatMode
        self.convention = GC.Cathodic
        self.ie_range = 8
        self.ie_auto = True
        self.v_dc = 0.0  # V: potentiostat set point, or galvanostat Vsig when no signal runs
        self.signal: Any = None  # signal applied by the running curve
        self.dtaq: Any = None  # running data acquisition
        self.readz: Any = None  # ReadZ measuring
        self.t_cell = clock.now()
        self.last_we = 0.0
        self.last_cell = 0.0
        self.last_i = 0.0
        self.overload_from: float | None = None

    # I/E ranges: index k has full scale 10**(k - 12) A (10 pA ... 1 A) across Rm = 3 V / full scale.
    RANGES = range(1, 13)

    @staticmethod
    def full_scale(k: int) -> float:
        return 10.0 ** (k - 12)

    def rm(self, k: int | None = None) -> float:
        return 3.0 / self.full_scale(self.ie_range if k is None else k)

    def sign(self) -> float:
        """Anodic (oxidation at WE) current per unit of set/reported current."""
        return 1.0 if self.convention == GC.Anodic else -1.0

    def applied_current(self) -> float:
        """Anodic current (A) the output drives now, None-equivalent 0 when off."""
        if not self.cell_on:
            return 0.0
        if self.ctrl_mode == GC.GstatMode:
            value = self.signal.value if self.signal is not None and self.signal.active else self.v_dc / self.rm()
            fs = self.full_scale(self.ie_range)
            return self.sign() * float(np.clip(value, -fs, fs))
        i = self.cell.current_for_potential(self.v_dc)
        fs = self.full_scale(self.ie_range)
        return float(np.clip(i, -fs, fs))

    def run_to(self, t: float, record: bool = False) -> None:
        """Let the output act on the cell up to clock time t (one step, no acquisition)."""
        dt = t - self.t_cell
        if dt <= 0:
            return
        if self.cell_on:
            resp = self.cell.advance(np.array([self.applied_current()]), np.array([dt]))
            self.last_we, self.last_cell = float(resp.E_we[-1]), float(resp.E_cell[-1])
            self.last_i = self.applied_current()
        else:
            self.cell.rest(dt)
            self.last_i = 0.0
        self.t_cell = t

    def advance(self) -> None:
        """Acquire whatever the running curve produced up to now, then let the output act up to now."""
        now = self.clock.now()
        if self.dtaq is not None and self.dtaq.running:
            self.dtaq._acquire(now)
        self.run_to(now)


class _Server:
    """One GamryCOM.exe process: objects created through it die with it."""

    def __init__(self) -> None:
        self.alive = True


class GamryComEmulator:
    """What a driver gets from comtypes, for a set of emulated instruments (section -> cell)."""

    COMError = COMError

    def __init__(self, clock: Clock, cells: dict[str, SimulatedCell]):
        self.clock = clock
        self.instruments = {
            section: _Instrument(section, cell, clock, serial=f"{21185 + i}")
            for i, (section, cell) in enumerate(cells.items())
        }
        self.lock = threading.RLock()
        self.server = _Server()
        self.sinks: list[tuple[Any, Any]] = []  # (source object, sink)
        self.events: list[tuple[float, Any, str, tuple]] = []  # (due time, source, event, args)
        self.calls: list[str] = []
        self._hresults: dict[str, deque] = {}
        self._hangs: dict[str, float | None] = {}
        self._release = threading.Event()
        self._garbage: str | None = None
        self.readz_statuses: deque = deque()
        self.suppress_events = False
        self.registered = True

    # --- comtypes.client stand-ins -------------------------------------------------------------------------
    def GetModule(self, spec: Any) -> SimpleNamespace:
        if not self.registered:
            raise OSError("type library not registered")
        return GC

    def CreateObject(self, progid: str) -> Any:
        if not self.registered:
            raise COMError(CO_E_CLASSSTRING, "Invalid class string")
        if not self.server.alive:  # COM starts a fresh server for new objects
            self.server = _Server()
        name = progid.split(".", 1)[-1]
        classes = {
            "GamryDeviceList": DeviceList,
            "GamryPC6Pstat": Pstat,
            "GamryPC5Pstat": Pstat,
            "GamrySignalConst": SignalConst,
            "GamryDtaqCiiv": DtaqCiiv,
            "GamryDtaqChrono": DtaqChrono,
            "GamryDtaqOcv": DtaqOcv,
            "GamryReadZ": ReadZ,
        }
        if not progid.startswith("GamryCOM.") or name not in classes:
            raise COMError(CO_E_CLASSSTRING, f"Invalid class string {progid}")
        obj = classes[name](self)
        if isinstance(obj, Pstat):
            obj.family = "Interface" if name == "GamryPC6Pstat" else "Reference"
        return obj

    def GetEvents(self, source: Any, sink: Any) -> Any:
        entry = (source, sink)
        self.sinks.append(entry)
        emulator = self

        class Connection:
            def disconnect(self) -> None:
                if entry in emulator.sinks:
                    emulator.sinks.remove(entry)

            def __del__(self) -> None:
                self.disconnect()

        return Connection()

    def PumpEvents(self, timeout: float) -> None:
        """Dispatch events while ``timeout`` seconds of clock time pass."""
        if timeout > 0:
            self.clock.sleep(timeout)
        with self.lock:
            for inst in self.instruments.values():
                inst.advance()
                if inst.readz is not None:
                    inst.readz._poll()
            if self.suppress_events:
                self.events.clear()
                return
            now = self.clock.now()
            due = sorted((e for e in self.events if e[0] <= now + 1e-12), key=lambda e: e[0])
            self.events = [e for e in self.events if e[0] > now + 1e-12]
        for _, source, event, args in due:
            for src, sink in list(self.sinks):
                if src is source:
                    handler = getattr(sink, event, None)
                    if handler is not None:
                        handler(None, *args)

    def post(self, source: Any, event: str, t: float, *args: Any) -> None:
        self.events.append((t, source, event, args))

    # --- fault injection ----------------------------------------------------------------------------------
    def fail(self, method: str, hresult: int, count: int = 1) -> None:
        """The next ``count`` calls of ``method`` (e.g. "Pstat.Open", "Cook") raise COMError(hresult)."""
        self._hresults.setdefault(method, deque()).extend([hresult] * count)

    def hang(self, method: str, seconds: float | None = None) -> None:
        """The next call of ``method`` blocks for ``seconds`` of real time (None: until release()), then
        fails with RPC_E_TIMEOUT."""
        self._hangs[method] = seconds

    def release(self) -> None:
        self._release.set()

    def crash_server(self) -> None:
        """GamryCOM.exe dies: existing objects fail with RPC_S_SERVER_UNAVAILABLE, the instrument keeps its
        output as it was (cell state is in the hardware), the device is no longer held open."""
        with self.lock:
            self.server.alive = False
            for inst in self.instruments.values():
                inst.advance()
                inst.owner = None
                if inst.dtaq is not None:
                    inst.dtaq.running = False
                    inst.dtaq = None
                inst.readz = None
            self.events.clear()

    def garbage(self, kind: str = "columns") -> None:
        """The next Cook with data returns "columns" (wrong column count), "nan" or "time" (time going back)."""
        self._garbage = kind

    def overload(self, section: str) -> None:
        inst = self.instruments[section]
        inst.overload_from = self.clock.now()

    def check(self, obj: Any, method: str) -> None:
        """Called on every emulated method: server alive, injected hangs and HRESULTs."""
        self.calls.append(f"{type(obj).__name__}.{method}")
        for key in (f"{type(obj).__name__}.{method}", method):
            if key in self._hangs:
                seconds = self._hangs.pop(key)
                self._release.wait(_HANG_CAP if seconds is None else seconds)
                raise COMError(RPC_E_TIMEOUT, "This operation returned because the timeout period expired.")
            queue = self._hresults.get(key)
            if queue:
                raise COMError(queue.popleft(), "")
        if obj._server is not self.server or not self.server.alive:
            raise COMError(RPC_S_SERVER_UNAVAILABLE, "The RPC server is unavailable.")

    # --- inspection (tests) ---------------------------------------------------------------------------------
    def settle(self) -> None:
        with self.lock:
            for inst in self.instruments.values():
                inst.advance()

    def cell_on(self, section: str) -> bool:
        self.settle()
        return self.instruments[section].cell_on


def _com(method):
    """Wrap an emulated COM method: fault checks and the emulator lock."""

    def wrapper(self, *args):
        self._emu.check(self, method.__name__)
        with self._emu.lock:
            return method(self, *args)

    wrapper.__name__ = method.__name__
    return wrapper


class _Object:
    def __init__(self, emulator: GamryComEmulator):
        self._emu = emulator
        self._server = emulator.server


class DeviceList(_Object):
    @_com
    def Count(self) -> int:
        return len(self._emu.instruments)

    @_com
    def EnumSections(self) -> tuple[str, ...]:
        return tuple(self._emu.instruments)

    @_com
    def EnumLabels(self) -> tuple[str, ...]:
        return tuple(f"{s} ({i.model})" for s, i in self._emu.instruments.items())


class Pstat(_Object):
    family = "Interface"

    def __init__(self, emulator: GamryComEmulator):
        super().__init__(emulator)
        self.inst: _Instrument | None = None
        self.is_open = False
        self.signal: SignalConst | None = None

    def _hw(self, need_open: bool = True) -> _Instrument:
        if self.inst is None or (need_open and not self.is_open):
            raise COMError(GAMRY_DEVICE_NOT_OPEN, "Device Not Open")
        return self.inst

    @_com
    def Init(self, section: str) -> None:
        inst = self._emu.instruments.get(section)
        if inst is None:
            raise COMError(GAMRY_DEVICE_NOT_FOUND, "Device Not Found")
        if inst.family != self.family:
            raise COMError(GAMRY_INVALID_DEVICE_TYPE, "Invalid Device Type")
        self.inst = inst

    @_com
    def Open(self) -> None:
        inst = self._hw(need_open=False)
        if inst.owner is not None and inst.owner is not self:
            raise COMError(GAMRY_DEVICE_IN_USE, "Device In Use")
        inst.owner, self.is_open = self, True

    @_com
    def Close(self) -> None:
        if self.inst is not None and self.inst.owner is self:
            self.inst.advance()
            self.inst.owner = None
        self.is_open = False

    @_com
    def Section(self) -> str:
        return self._hw(False).section

    @_com
    def Label(self) -> str:
        return self._hw(False).section

    @_com
    def SerialNo(self) -> str:
        return self._hw(False).serial

    @_com
    def ModelNo(self) -> str:
        return self._hw(False).model

    @_com
    def CalDate(self, which: int) -> str:
        return "11/7/2023" if which == 0 else "6/11/2018"

    @_com
    def FreqLimitUpper(self) -> float:
        return 2e6 if self._hw(False).family == "Interface" else 5e6

    @_com
    def FreqLimitLower(self) -> float:
        return 1e-5

    @_com
    def SetCell(self, state: int) -> None:
        inst = self._hw()
        inst.advance()
        inst.cell_on = state == GC.CellOn

    @_com
    def Cell(self) -> int:
        inst = self._hw()
        inst.advance()
        return GC.CellOn if inst.cell_on else GC.CellOff

    @_com
    def SetCtrlMode(self, mode: int) -> None:
        inst = self._hw()
        inst.advance()
        inst.ctrl_mode = mode

    @_com
    def CtrlMode(self) -> int:
        return self._hw().ctrl_mode

    @_com
    def SetIConvention(self, convention: int) -> None:
        self._hw().convention = convention

    @_com
    def SetIERangeMode(self, auto: bool) -> None:
        self._hw().ie_auto = bool(auto)

    @_com
    def SetIERange(self, k: int) -> None:
        inst = self._hw()
        if int(k) not in inst.RANGES:
            raise COMError(E_INVALIDARG, "The parameter is incorrect.")
        inst.advance()
        inst.ie_range = int(k)

    @_com
    def IERange(self) -> int:
        return self._hw().ie_range

    @_com
    def TestIERange(self, current: float) -> int:
        inst = self._hw()
        for k in inst.RANGES:
            if inst.full_scale(k) >= abs(current):
                return k
        return max(inst.RANGES)

    @_com
    def IEResistor(self, k: int) -> float:
        return self._hw().rm(int(k))

    @_com
    def SetVoltage(self, v: float) -> None:
        inst = self._hw()
        inst.advance()
        inst.v_dc = float(v)

    @_com
    def MeasureV(self) -> float:
        inst = self._hw()
        inst.advance()
        noise = inst.cell.spec.simulation.noise_voltage
        return inst.last_we if inst.cell_on else float(inst.cell.rng.normal(0, noise) if noise else 0.0)

    @_com
    def MeasureI(self) -> float:
        inst = self._hw()
        inst.advance()
        return inst.applied_current() * inst.sign()

    @_com
    def SetSignal(self, signal: SignalConst) -> None:
        self._hw()
        if signal._pstat is not self:
            raise COMError(E_INVALIDARG, "The parameter is incorrect.")
        self.signal = signal

    @_com
    def InitSignal(self) -> None:
        inst = self._hw()
        if self.signal is None:
            raise COMError(E_FAIL, "No signal")
        inst.advance()
        inst.signal = self.signal
        self.signal.active, self.signal.t0 = False, None
        inst.ctrl_mode = self.signal.mode

    def __getattr__(self, name: str) -> Any:
        """Hardware settings the emulator accepts and ignores (filters, ranges of other channels...)."""
        if name.startswith("Set") and name[3:4].isupper():

            def setter(*args: Any) -> None:
                self._emu.check(self, name)

            return setter
        if name in ("FindVchRange", "FindIERange"):
            return lambda *args: self._emu.check(self, name)
        raise AttributeError(name)


class SignalConst(_Object):
    def __init__(self, emulator: GamryComEmulator):
        super().__init__(emulator)
        self._pstat: Pstat | None = None
        self.value = 0.0
        self.total = 0.0
        self.sample = 1.0
        self.mode = GC.PstatMode
        self.active = False
        self.t0: float | None = None

    @_com
    def Init(self, pstat: Pstat, value: float, total_time: float, sample_time: float, mode: int) -> None:
        if sample_time <= 0 or total_time <= 0 or total_time / sample_time + 1 > MAX_CURVE_POINTS:
            raise COMError(GAMRY_INVALID_SIGNAL, "Invalid Signal Generation Parameters")
        self._pstat, self.value, self.total, self.sample, self.mode = (
            pstat,
            float(value),
            float(total_time),
            float(sample_time),
            mode,
        )

    @property
    def n_points(self) -> int:
        return int(math.floor(self.total / self.sample + 1e-9)) + 1


class _Dtaq(_Object):
    COLUMNS: tuple[str, ...] = ()
    EVENTS = "_IGamryDtaqEvents"

    def __init__(self, emulator: GamryComEmulator):
        super().__init__(emulator)
        self._pstat: Pstat | None = None
        self.running = False
        self.done = False
        self.k = 0
        self.t0 = 0.0
        self.buffer: deque = deque()
        self.stop_vmin: float | None = None
        self.stop_vmax: float | None = None
        self.stopped_at: float | None = None
        self.charge = 0.0

    @_com
    def Init(self, pstat: Pstat, *args: Any) -> None:
        self._pstat = pstat

    @_com
    def SetStopVMin(self, enable: bool, value: float) -> None:
        self.stop_vmin = float(value) if enable else None

    @_com
    def SetStopVMax(self, enable: bool, value: float) -> None:
        self.stop_vmax = float(value) if enable else None

    @_com
    def SetThreshVMin(self, enable: bool, value: float) -> None:
        pass

    @_com
    def SetThreshVMax(self, enable: bool, value: float) -> None:
        pass

    @_com
    def Run(self, start: bool) -> None:
        pstat = self._pstat
        if pstat is None:
            raise COMError(E_FAIL, "Dtaq not initialised")
        inst = pstat._hw()
        inst.advance()
        if not start:
            self._stop(inst)
            return
        if pstat.signal is None or inst.signal is not pstat.signal:
            raise COMError(E_FAIL, "No signal initialised")
        if inst.dtaq is not None and inst.dtaq is not self and inst.dtaq.running:
            inst.dtaq._stop(inst)
        inst.dtaq, self.running, self.done, self.k = self, True, False, 0
        self.t0 = self._emu.clock.now()
        inst.signal.active, inst.signal.t0 = True, self.t0

    @_com
    def Stop(self) -> None:
        if self._pstat is not None and self._pstat.inst is not None:
            inst = self._pstat.inst
            inst.advance()
            self._stop(inst)

    def _stop(self, inst: _Instrument) -> None:
        if self.running:
            self.running = False
            self.done = True
            if inst.signal is not None and inst.signal.active:
                # The generator halts: the output holds the last applied value.
                inst.v_dc = inst.signal.value * inst.rm() if inst.ctrl_mode == GC.GstatMode else inst.signal.value
                inst.signal.active = False
            if inst.dtaq is self:
                inst.dtaq = None

    @_com
    def Cook(self, n: int) -> tuple[int, tuple]:
        if self._pstat is not None and self._pstat.inst is not None:
            self._pstat.inst.advance()
        rows = [self.buffer.popleft() for _ in range(min(int(n), len(self.buffer)))]
        if not rows:
            return 0, tuple(() for _ in self.COLUMNS)
        columns = list(zip(*rows))
        kind, self._emu._garbage = self._emu._garbage, None
        if kind == "columns":
            columns = columns[:-2]
        elif kind == "nan":
            columns[1] = tuple(math.nan for _ in columns[1])
        elif kind == "time":
            columns[0] = tuple(t - 1e3 for t in columns[0])
        return len(rows), tuple(tuple(c) for c in columns)

    def _acquire(self, now: float) -> None:
        """Points due up to ``now``: the cell advanced sample by sample with the applied current."""
        inst = self._pstat.inst
        signal = inst.signal
        t_end = self.t0 + (signal.n_points - 1) * signal.sample
        k_hi = min(int(math.floor((min(now, t_end) - self.t0) / signal.sample + 1e-9)), signal.n_points - 1)
        if k_hi >= self.k:
            ks = np.arange(self.k, k_hi + 1)
            t = self.t0 + ks * signal.sample
            current = np.full(len(t), inst.applied_current())
            if not inst.cell_on:
                current[:] = 0.0
            before = inst.cell.snapshot()
            resp = inst.cell.advance(current, np.diff(t, prepend=inst.t_cell))
            trip = self._trip(resp.E_we)
            if trip is not None:
                inst.cell.restore(before)
                t, current = t[: trip + 1], current[: trip + 1]
                resp = inst.cell.advance(current, np.diff(t, prepend=inst.t_cell))
            inst.t_cell = float(t[-1])
            inst.last_we, inst.last_cell = float(resp.E_we[-1]), float(resp.E_cell[-1])
            self._emit(inst, t, resp.E_we, resp.E_cell, current, trip)
            self.k = int(ks[len(t) - 1]) + 1
            self._emu.post(self, f"{self.EVENTS}_OnDataAvailable", float(t[-1]))
            if trip is not None:
                self._finish(inst, float(t[-1]))
                return
        if self.k >= signal.n_points:
            self._finish(inst, t_end)

    def _trip(self, e_we: np.ndarray) -> int | None:
        hit = np.zeros(len(e_we), dtype=bool)
        if self.stop_vmin is not None:
            hit |= e_we < self.stop_vmin
        if self.stop_vmax is not None:
            hit |= e_we > self.stop_vmax
        idx = np.flatnonzero(hit)
        return int(idx[0]) if idx.size else None

    def _finish(self, inst: _Instrument, t: float) -> None:
        inst.run_to(t)
        self._stop(inst)
        self._emu.post(self, f"{self.EVENTS}_OnDataDone", t)

    def _overload(self, inst: _Instrument, t: np.ndarray, current: np.ndarray) -> np.ndarray:
        bits = np.where(np.abs(current) >= inst.full_scale(inst.ie_range) * 0.999, 0x2, 0)
        if inst.overload_from is not None:
            bits = np.where(t >= inst.overload_from, bits | 0x4, bits)
        return bits

    def _emit(self, inst, t, e_we, e_cell, current, trip) -> None:
        raise NotImplementedError


class DtaqCiiv(_Dtaq):
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


class DtaqChrono(_Dtaq):
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


class DtaqOcv(_Dtaq):
    """Open-circuit potential with the cell off."""

    COLUMNS = ("Time", "Vf", "Vm", "Vsig", "Ach", "Overload", "StopTest", "Ignore1", "Ignore2", "Ignore3")

    def _emit(self, inst, t, e_we, e_cell, current, trip) -> None:
        for j in range(len(t)):
            self.buffer.append(
                (float(t[j] - self.t0), float(e_we[j]), float(e_we[j]), 0.0, float(e_cell[j]), 0, 0, 0, 0, 0)
            )


class ReadZ(_Object):
    """Single-frequency impedance: Measure(f, amplitude) then OnDataDone(status) while events are pumped."""

    EVENTS = "_IGamryReadZEvents"

    def __init__(self, emulator: GamryComEmulator):
        super().__init__(emulator)
        self._pstat: Pstat | None = None
        self.idc_hint = 0.0
        self.result: dict[str, float] = {}
        self.status = GC.ReadZStatusOk
        self.message = ""
        self.pending: tuple[float, float, float] | None = None  # (freq, amplitude, due time)
        self.cycle_lim = (2, 10)

    @_com
    def Init(self, pstat: Pstat) -> None:
        self._pstat = pstat

    @_com
    def SetIdc(self, idc: float) -> None:
        self.idc_hint = float(idc)

    @_com
    def SetCycleLim(self, lo: int, hi: int) -> None:
        self.cycle_lim = (int(lo), int(hi))

    @_com
    def SetSpeed(self, speed: int) -> None:
        pass

    @_com
    def SetGain(self, gain: float) -> None:
        pass

    @_com
    def SetINoise(self, value: float) -> None:
        pass

    @_com
    def SetVNoise(self, value: float) -> None:
        pass

    @_com
    def SetIENoise(self, value: float) -> None:
        pass

    @_com
    def SetZmod(self, value: float) -> None:
        pass

    @_com
    def Measure(self, freq: float, amplitude: float) -> None:
        if self._pstat is None:
            raise COMError(E_FAIL, "ReadZ not initialised")
        inst = self._pstat._hw()
        inst.advance()
        if inst.dtaq is not None and inst.dtaq.running:
            raise COMError(E_FAIL, "Another data acquisition is running")
        duration = max(self.cycle_lim[0] / freq + 1.0 / freq, 0.25)
        self.pending = (float(freq), float(amplitude), self._emu.clock.now() + duration)
        self.result = {}
        inst.readz = self

    def _poll(self) -> None:
        if self.pending is None or self._pstat is None or self._pstat.inst is None:
            return
        inst = self._pstat.inst
        freq, amplitude, due = self.pending
        if self._emu.clock.now() < due:
            return
        inst.run_to(due)
        self.pending = None
        inst.readz = None
        status = self._emu.readz_statuses.popleft() if self._emu.readz_statuses else GC.ReadZStatusOk
        if not inst.cell_on:
            status = GC.ReadZStatusError
        i_dc = inst.applied_current()
        z = complex(inst.cell.impedance(np.array([freq]), i_dc)[0])
        rng = inst.cell.rng
        z *= 1 + rng.normal(0, 0.002) + 1j * rng.normal(0, 0.002)
        galvano = inst.ctrl_mode == GC.GstatMode
        v_ac = abs(z) * amplitude if galvano else amplitude
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
        self._emu.post(self, f"{self.EVENTS}_OnDataDone", due, status)

    def _value(self, key: str) -> float:
        if key not in self.result:
            return 0.0
        return self.result[key]

    @_com
    def Zfreq(self) -> float:
        return self._value("Zfreq")

    @_com
    def Zreal(self) -> float:
        return self._value("Zreal")

    @_com
    def Zimag(self) -> float:
        return self._value("Zimag")

    @_com
    def Zsig(self) -> float:
        return self._value("Zsig")

    @_com
    def Zmod(self) -> float:
        return self._value("Zmod")

    @_com
    def Zphz(self) -> float:
        return self._value("Zphz")

    @_com
    def Idc(self) -> float:
        return self._value("Idc")

    @_com
    def Vdc(self) -> float:
        return self._value("Vdc")

    @_com
    def IERange(self) -> int:
        return int(self._value("IERange"))

    @_com
    def StatusMessage(self) -> str:
        return self.message

    @_com
    def Cook(self, n: int) -> tuple[int, tuple]:
        return 0, ((), ())
