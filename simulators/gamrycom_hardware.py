"""The hardware side of the emulated GamryCOM: type-library constants, HRESULTs, one instrument's state.

An ``EmulatedInstrument`` is what sits behind a GamryCOM "section": the cell, the output (cell switch,
control mode, I/E range, voltage channel range, current convention), the running signal and data
acquisition, and a ReadZ in flight. The enum values are placeholders: the driver reads them from the
type library at run time and does not depend on them.
"""

from __future__ import annotations

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

HANG_CAP = 60.0  # s of real time


class COMError(Exception):
    """Like comtypes.COMError: args are (hresult as signed 32-bit int, text, details)."""

    def __init__(self, hresult: int, text: str, details: tuple = (None, None, None, 0, None)):
        signed = hresult - (1 << 32) if hresult & 0x80000000 else hresult
        super().__init__(signed, text, details)
        self.hresult, self.text, self.details = signed, text, details


def type_library_constants() -> SimpleNamespace:
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


GC = type_library_constants()


class EmulatedInstrument:
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
        self.vch_range = 1  # a range left by an earlier experiment (0.3 V): Vf beyond it is truncated
        self.vch_auto = True
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

    # Voltage channel ranges (full scale, V) by index; placeholders, the real table is in the instrument.
    VCH_RANGES = (0.03, 0.3, 3.0, 12.0)

    def vch_full_scale(self) -> float:
        return self.VCH_RANGES[self.vch_range]

    def measured_vf(self, e_we: np.ndarray) -> np.ndarray:
        """Vf as the voltage channel reports it: truncated at the full scale of its range."""
        fs = self.vch_full_scale()
        return np.clip(e_we, -fs, fs)

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
        e = self.signal.value if self.signal is not None and self.signal.active else self.v_dc
        i = self.cell.current_for_potential(e)
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
            self.dtaq.acquire(now)
        self.run_to(now)


class ComServer:
    """One GamryCOM.exe process: objects created through it die with it."""

    def __init__(self) -> None:
        self.alive = True
