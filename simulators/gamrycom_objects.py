"""Emulated GamryCOM objects a driver creates by ProgID: device list, potentiostat, constant signal.

Every method goes through ``com_method``: injected faults and hangs, a dead GamryCOM server, and the
emulator lock. The voltage channel range is modelled (``SetVchRange``/``TestVchRange``/``FindVchRange``):
Vf beyond its full scale is truncated, and a newly opened instrument keeps a small range from an earlier
experiment, so a driver that does not set the range sees truncated potentials.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from simulators.gamrycom_hardware import (
    E_FAIL,
    E_INVALIDARG,
    GAMRY_DEVICE_IN_USE,
    GAMRY_DEVICE_NOT_FOUND,
    GAMRY_DEVICE_NOT_OPEN,
    GAMRY_INVALID_DEVICE_TYPE,
    GAMRY_INVALID_SIGNAL,
    GC,
    MAX_CURVE_POINTS,
    COMError,
    EmulatedInstrument,
)

if TYPE_CHECKING:
    from simulators.gamrycom import GamryComEmulator


def com_method(method):
    """Wrap an emulated COM method: fault checks and the emulator lock."""

    def wrapper(self, *args):
        self.emu.check(self, method.__name__)
        with self.emu.lock:
            return method(self, *args)

    wrapper.__name__ = method.__name__
    return wrapper


class ComObject:
    def __init__(self, emulator: GamryComEmulator):
        self.emu = emulator
        self.com_server = emulator.server


class DeviceList(ComObject):
    @com_method
    def Count(self) -> int:
        return len(self.emu.instruments)

    @com_method
    def EnumSections(self) -> tuple[str, ...]:
        return tuple(self.emu.instruments)

    @com_method
    def EnumLabels(self) -> tuple[str, ...]:
        return tuple(f"{s} ({i.model})" for s, i in self.emu.instruments.items())


class Pstat(ComObject):
    family = "Interface"

    def __init__(self, emulator: GamryComEmulator):
        super().__init__(emulator)
        self.inst: EmulatedInstrument | None = None
        self.is_open = False
        self.signal: SignalConst | None = None

    def hardware(self, need_open: bool = True) -> EmulatedInstrument:
        if self.inst is None or (need_open and not self.is_open):
            raise COMError(GAMRY_DEVICE_NOT_OPEN, "Device Not Open")
        return self.inst

    @com_method
    def Init(self, section: str) -> None:
        inst = self.emu.instruments.get(section)
        if inst is None:
            raise COMError(GAMRY_DEVICE_NOT_FOUND, "Device Not Found")
        if inst.family != self.family:
            raise COMError(GAMRY_INVALID_DEVICE_TYPE, "Invalid Device Type")
        self.inst = inst

    @com_method
    def Open(self) -> None:
        inst = self.hardware(need_open=False)
        if inst.owner is not None and inst.owner is not self:
            raise COMError(GAMRY_DEVICE_IN_USE, "Device In Use")
        inst.owner, self.is_open = self, True

    @com_method
    def Close(self) -> None:
        if self.inst is not None and self.inst.owner is self:
            self.inst.advance()
            self.inst.owner = None
        self.is_open = False

    @com_method
    def Section(self) -> str:
        return self.hardware(False).section

    @com_method
    def Label(self) -> str:
        return self.hardware(False).section

    @com_method
    def SerialNo(self) -> str:
        return self.hardware(False).serial

    @com_method
    def ModelNo(self) -> str:
        return self.hardware(False).model

    @com_method
    def CalDate(self, which: int) -> str:
        return "11/7/2023" if which == 0 else "6/11/2018"

    @com_method
    def FreqLimitUpper(self) -> float:
        return 2e6 if self.hardware(False).family == "Interface" else 5e6

    @com_method
    def FreqLimitLower(self) -> float:
        return 1e-5

    @com_method
    def SetCell(self, state: int) -> None:
        inst = self.hardware()
        inst.advance()
        inst.cell_on = state == GC.CellOn

    @com_method
    def Cell(self) -> int:
        inst = self.hardware()
        inst.advance()
        return GC.CellOn if inst.cell_on else GC.CellOff

    @com_method
    def SetCtrlMode(self, mode: int) -> None:
        inst = self.hardware()
        inst.advance()
        inst.ctrl_mode = mode

    @com_method
    def CtrlMode(self) -> int:
        return self.hardware().ctrl_mode

    @com_method
    def SetIConvention(self, convention: int) -> None:
        self.hardware().convention = convention

    @com_method
    def SetIERangeMode(self, auto: bool) -> None:
        self.hardware().ie_auto = bool(auto)

    @com_method
    def SetIERange(self, k: int) -> None:
        inst = self.hardware()
        if int(k) not in inst.RANGES:
            raise COMError(E_INVALIDARG, "The parameter is incorrect.")
        inst.advance()
        inst.ie_range = int(k)

    @com_method
    def IERange(self) -> int:
        return self.hardware().ie_range

    @com_method
    def TestIERange(self, current: float) -> int:
        inst = self.hardware()
        for k in inst.RANGES:
            if inst.full_scale(k) >= abs(current):
                return k
        return max(inst.RANGES)

    @com_method
    def IEResistor(self, k: int) -> float:
        return self.hardware().rm(int(k))

    @com_method
    def SetVoltage(self, v: float) -> None:
        inst = self.hardware()
        inst.advance()
        inst.v_dc = float(v)

    @com_method
    def MeasureV(self) -> float:
        inst = self.hardware()
        inst.advance()
        noise = inst.cell.spec.simulation.noise_voltage
        return inst.last_we if inst.cell_on else float(inst.cell.rng.normal(0, noise) if noise else 0.0)

    @com_method
    def MeasureI(self) -> float:
        inst = self.hardware()
        inst.advance()
        return inst.applied_current() * inst.sign()

    @com_method
    def SetVchRangeMode(self, auto: bool) -> None:
        self.hardware().vch_auto = bool(auto)

    @com_method
    def SetVchRange(self, k: int) -> None:
        inst = self.hardware()
        if not 0 <= int(k) < len(inst.VCH_RANGES):
            raise COMError(E_INVALIDARG, "The parameter is incorrect.")
        inst.advance()
        inst.vch_range = int(k)

    @com_method
    def VchRange(self) -> int:
        return self.hardware().vch_range

    @com_method
    def TestVchRange(self, v: float) -> int:
        ranges = self.hardware().VCH_RANGES
        return next((k for k, fs in enumerate(ranges) if fs >= abs(v)), len(ranges) - 1)

    @com_method
    def FindVchRange(self) -> None:
        """The range for the present potential only: a later excursion beyond it is truncated."""
        inst = self.hardware()
        inst.advance()
        inst.vch_range = next((k for k, fs in enumerate(inst.VCH_RANGES) if fs >= abs(inst.last_we)), 3)

    @com_method
    def SetSignal(self, signal: SignalConst) -> None:
        self.hardware()
        if signal.pstat is not self:
            raise COMError(E_INVALIDARG, "The parameter is incorrect.")
        self.signal = signal

    @com_method
    def InitSignal(self) -> None:
        inst = self.hardware()
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
                self.emu.check(self, name)

            return setter
        if name == "FindIERange":
            return lambda *args: self.emu.check(self, name)
        raise AttributeError(name)


class SignalConst(ComObject):
    def __init__(self, emulator: GamryComEmulator):
        super().__init__(emulator)
        self.pstat: Pstat | None = None
        self.value = 0.0
        self.total = 0.0
        self.sample = 1.0
        self.mode = GC.PstatMode
        self.active = False
        self.t0: float | None = None

    @com_method
    def Init(self, pstat: Pstat, value: float, total_time: float, sample_time: float, mode: int) -> None:
        if sample_time <= 0 or total_time <= 0 or total_time / sample_time + 1 > MAX_CURVE_POINTS:
            raise COMError(GAMRY_INVALID_SIGNAL, "Invalid Signal Generation Parameters")
        self.pstat, self.value, self.total, self.sample, self.mode = (
            pstat,
            float(value),
            float(total_time),
            float(sample_time),
            mode,
        )

    @property
    def n_points(self) -> int:
        """Total time / sample period, rounded down (Gamry Framework help, "Number of Points")."""
        return max(1, int(math.floor(self.total / self.sample + 1e-9)))
