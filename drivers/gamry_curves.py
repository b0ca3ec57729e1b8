"""The DC curves a Gamry potentiostat runs for a step: constant current, constant potential, open circuit.

Each curve is a GamrySignalConst played by a data acquisition (GamryDtaqCiiv for current, GamryDtaqCpiv
for potential, GamryDtaqOcv for open circuit). The limits are pushed into the acquisition twice, as
stop criteria and as thresholds (``SetStop*`` and ``SetThresh*``, armed together), and checked again
by the driver on every cooked point, so a stop criterion that does not fire still ends the step at the
first point outside the window: that point is flagged FLAG_HW_LIMIT, later points of the curve are not
reported and the cell is switched off. The voltage channel range is set from the window (``SetVchRange
(TestVchRange(...))``) so that Vf is never truncated at the edge of a range picked for another level.

Every method here runs on the driver's COM worker thread (names ending in ``_w``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from daq.core.errors import InstrumentError
from daq.core.samples import FLAG_HW_LIMIT, FLAG_OVERLOAD, SampleBlock
from drivers.gamry_com import DtaqSink

MAX_CURVE_POINTS = 262143
# Cook columns of GamryDtaqCiiv and GamryDtaqCpiv (the same list), and of GamryDtaqOcv (then undocumented
# columns); as listed in jdhuang-csm/pygamry, pygamry/dtaq/config.py (dtaq_cook_columns).
CURVE_COLUMNS = ("Time", "Vf", "Vu", "Im", "Vsig", "Ach", "IERange", "Overload", "StopTest")
OCV_COLUMNS = ("Time", "Vf", "Vm", "Vsig", "Ach", "Overload", "StopTest")
SOURCING = ("current", "potential")
MIN_VCH_SPAN = 0.1  # V: never the lowest voltage ranges, which a resting cell's potential can exceed


@dataclass
class Curve:
    """One step as the instrument runs it, re-armed in segments below the curve point limit."""

    kind: str  # "current" | "potential" | "ocv"
    setpoint: float = 0.0  # A (current) or V vs reference (potential)
    window: tuple[float, float] = (-math.inf, math.inf)  # E_we (current) or I (potential) limits
    period: float = 1.0
    end: float = math.inf  # clock time the step ends (duration)
    # s of the step still to play when this segment starts (inf: open-ended). The instrument plays
    # left / period points from Run, so the step's end is counted from Run, never from when the PC
    # computed it: a duration a few ms short would lose the last point (the count is rounded down).
    left: float = math.inf
    t0: float = 0.0  # clock time of the running curve's Run(True)
    segment_end: float = math.inf
    dtaq: Any = None
    signal: Any = None
    sink: DtaqSink | None = None
    events: Any = None
    last_t: float = -math.inf
    tripped: bool = False
    trip_source: str = ""  # "instrument" (StopTest) or "driver" (the software check)


def window_span(window: tuple[float, float], fallback: float) -> float:
    """Largest |value| a window allows (``fallback`` where a side is open)."""
    ends = [abs(v) for v in window if math.isfinite(v)]
    return max(ends) if len(ends) == 2 else fallback


class GamryCurves:
    """Mixin of GamryPotentiostat: starting, servicing and ending DC curves."""

    _gc: Any
    _pstat: Any
    _com: Any
    _step: Curve | None
    cook_chunk: int
    cell_voltage_from_ach: bool

    # --- configuration --------------------------------------------------------------------------------
    def _set_vch_w(self, span: float) -> None:
        """Fixed voltage channel range wide enough for |Vf| up to ``span`` on either side of zero."""
        p = self._pstat
        p.SetVchRangeMode(False)
        p.SetVchRange(int(p.TestVchRange(max(1.05 * abs(span), MIN_VCH_SPAN))))

    def _configure_w(self, mode: int, i_span: float, v_span: float) -> int:
        """Control mode, anodic-positive current, fixed I/E range for |I| up to ``i_span``, Vch range."""
        gc, p = self._gc, self._pstat
        p.SetCtrlMode(mode)
        p.SetIEStability(gc.StabilityNorm)
        p.SetIConvention(gc.Anodic)  # positive = oxidation at the working electrode
        p.SetIERangeMode(False)
        rng = int(p.TestIERange(abs(i_span) * 1.05))
        p.SetIERange(rng)
        self._set_vch_w(v_span)
        return rng

    def _arm_limits_w(self, dtaq: Any, curve: Curve) -> None:
        """Thresholds and stop criteria on the window (V for current steps, I for potential steps)."""
        quantity = "V" if curve.kind == "current" else "I"
        for side, value in zip(("Min", "Max"), curve.window):
            enable = math.isfinite(value)
            level = value if enable else 0.0
            getattr(dtaq, f"SetThresh{quantity}{side}")(enable, level)
            getattr(dtaq, f"SetStop{quantity}{side}")(enable, level)

    # --- curves ---------------------------------------------------------------------------------------
    def _start_curve_w(self, curve: Curve) -> None:
        gc, p, com = self._gc, self._pstat, self._com
        caps = self.capabilities
        if curve.kind == "current":
            mode, progid = gc.GstatMode, "GamryCOM.GamryDtaqCiiv"
            self._configure_w(mode, abs(curve.setpoint), window_span(curve.window, caps.max_voltage))
        else:
            mode, progid = gc.PstatMode, "GamryCOM.GamryDtaqCpiv"
            self._configure_w(mode, window_span(curve.window, caps.max_current), abs(curve.setpoint))
        if not math.isfinite(curve.left):
            curve.left = curve.end - self.clock.now()
        seg = min(curve.left, (MAX_CURVE_POINTS - 2) * curve.period)
        signal = com.CreateObject("GamryCOM.GamrySignalConst")
        signal.Init(p, curve.setpoint, seg, curve.period, mode)
        dtaq = com.CreateObject(progid)
        dtaq.Init(p)
        p.SetSignal(signal)
        p.InitSignal()
        self._arm_limits_w(dtaq, curve)
        if curve.kind == "potential":
            p.SetVoltage(curve.setpoint)
        sink = DtaqSink()
        curve.events = com.GetEvents(dtaq, sink)
        curve.dtaq, curve.signal, curve.sink = dtaq, signal, sink
        p.SetCell(gc.CellOn)
        dtaq.Run(True)
        curve.t0 = self.clock.now()
        curve.segment_end, curve.tripped, curve.trip_source = curve.t0 + seg, False, ""
        curve.end = curve.t0 + curve.left
        self._step = curve

    def _start_ocv_w(self, curve: Curve) -> None:
        gc, p, com = self._gc, self._pstat, self._com
        seg = (MAX_CURVE_POINTS - 2) * curve.period
        signal = com.CreateObject("GamryCOM.GamrySignalConst")
        signal.Init(p, 0.0, seg, curve.period, gc.PstatMode)
        dtaq = com.CreateObject("GamryCOM.GamryDtaqOcv")
        dtaq.Init(p)
        p.SetSignal(signal)
        p.InitSignal()
        self._set_vch_w(self.capabilities.max_voltage)
        sink = DtaqSink()
        curve.events = com.GetEvents(dtaq, sink)
        curve.dtaq, curve.signal, curve.sink = dtaq, signal, sink
        p.SetCell(gc.CellOff)
        dtaq.Run(True)
        curve.t0 = self.clock.now()
        curve.segment_end = curve.t0 + seg
        self._step = curve

    # --- data -----------------------------------------------------------------------------------------
    def _cook_columns_w(self, curve: Curve, expected: tuple[str, ...]) -> tuple[int, np.ndarray] | None:
        """One Cook as a (count, columns) array, or None when the acquisition holds no more points."""
        count, columns = curve.dtaq.Cook(self.cook_chunk)
        if count <= 0:
            return None
        if (
            len(columns) < len(expected)
            or (curve.kind in SOURCING and len(columns) != len(expected))
            or any(len(c) != count for c in columns[: len(expected)])
        ):
            raise InstrumentError(
                f"malformed data from Cook: {len(columns)} columns of "
                f"{sorted({len(c) for c in columns})} points, expected {len(expected)} columns of {count}"
            )
        try:
            data = np.asarray(columns[: len(expected)], dtype=float)
        except (TypeError, ValueError) as exc:
            raise InstrumentError(f"malformed data from Cook: {exc}") from None
        if not np.all(np.isfinite(data)):
            raise InstrumentError("malformed data from Cook: non-finite values")
        return count, data

    def _cook_w(self, curve: Curve) -> None:
        """Every point the acquisition holds, checked against the step's window; refuses malformed data."""
        expected = CURVE_COLUMNS if curve.kind in SOURCING else OCV_COLUMNS
        blocks = []
        for _ in range(100_000):
            cooked = self._cook_columns_w(curve, expected)
            if cooked is None:
                break
            count, data = cooked
            t = curve.t0 + data[0]
            if np.any(np.diff(t) < 0) or t[0] < curve.last_t - 1e-9:
                raise InstrumentError("malformed data from Cook: time goes backwards")
            curve.last_t = float(t[-1])
            if curve.tripped:
                continue  # the step ended at its limit: later points are not reported
            col = dict(zip(expected, data))
            flags = np.zeros(count, dtype=np.uint8)
            flags[col["Overload"] != 0] |= FLAG_OVERLOAD
            e_cell = col["Ach"] if self.cell_voltage_from_ach else np.full(count, np.nan)
            current = col["Im"] if curve.kind in SOURCING else np.zeros(count)
            block = SampleBlock(t, col["Vf"], e_cell, current, flags)
            if curve.kind in SOURCING:
                block = self._limit_w(curve, block, col["StopTest"] != 0)
            blocks.append(block)
        if blocks:
            with self._pending_lock:
                self._pending.extend(blocks)

    def _limit_w(self, curve: Curve, block: SampleBlock, stop: np.ndarray) -> SampleBlock:
        """The block up to its first point outside the window or stopped by the instrument, flagged."""
        value = block.E_we if curve.kind == "current" else block.I
        lo, hi = curve.window
        hit = np.flatnonzero(stop | (value < lo) | (value > hi))
        if not hit.size:
            return block
        k = int(hit[0])
        curve.tripped, curve.trip_source = True, "instrument" if stop[k] else "driver"
        flags = block.flags[: k + 1].copy()
        flags[k] |= FLAG_HW_LIMIT
        return SampleBlock(block.t[: k + 1], block.E_we[: k + 1], block.E_cell[: k + 1], block.I[: k + 1], flags)

    # --- servicing ------------------------------------------------------------------------------------
    def _service_w(self) -> None:
        """Dispatch events, cook, and act on the end of a curve (cell off, or the next segment)."""
        curve = self._step
        if curve is None or curve.dtaq is None:
            return
        self._com.PumpEvents(0)
        self._cook_w(curve)
        now = self.clock.now()
        sourcing = curve.kind in SOURCING
        # The duration is over once the instrument's last point is in (or a period later without it):
        # the curve's own end, not the PC's clock, decides, so the step keeps its last sample.
        played = curve.last_t >= curve.end - 0.5 * curve.period or now >= curve.end + curve.period
        if sourcing and (curve.tripped or (now >= curve.end and played)):
            self._end_step_w(cell_off=True)  # a limit or the duration ended the step: current off now
            return
        if curve.sink is not None and curve.sink.done:
            self._cook_w(curve)
            if curve.tripped:
                self._end_step_w(cell_off=True)
            elif (curve.end - now > curve.period and now >= curve.segment_end - curve.period) or not sourcing:
                self._rearm_w(curve)
            else:
                self._end_step_w(cell_off=True)

    def _rearm_w(self, curve: Curve) -> None:
        curve.events = None
        if curve.kind in SOURCING:
            curve.left -= curve.segment_end - curve.t0  # what the ended segment played
            self._start_curve_w(curve)
        else:
            self._start_ocv_w(curve)

    def _end_step_w(self, cell_off: bool) -> None:
        """Stop the running acquisition keeping its data; optionally switch the cell off first."""
        curve = self._step
        self._step = None
        if curve is not None and curve.dtaq is not None:
            if cell_off:
                self._pstat.SetCell(self._gc.CellOff)
            curve.dtaq.Stop()
            self._cook_w(curve)
            curve.events = None
        if cell_off:
            self._pstat.SetCell(self._gc.CellOff)
