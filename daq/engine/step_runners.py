"""How each kind of step runs on the instrument, as the engine's methods (see daq.engine.engine).

Every step ends the same way: output off (or already off), the instrument's buffered samples read and
stored with the step whose command produced them, then its /steps row. Stops are judged on the
instrument's samples (sample times, flags, set points), never on when the PC read them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from daq.core import units as u
from daq.core.capabilities import EisRequest
from daq.core.records import EventKind, Spectrum
from daq.core.samples import FLAG_HW_LIMIT
from daq.engine.safety import ShortCircuitDetector, first_flagged, first_outside
from daq.storage import layout as L
from protocols import steps as S


class StopRun(Exception):
    """Ends the protocol: a terminal stop condition, an abort or a fault."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


class StepRunners:
    """The step kinds of daq.engine.engine.Engine (a mixin: it uses the engine's state and plumbing)."""

    area: float
    use_reference: bool
    events: list[dict[str, Any]]

    def _rest(self, step: S.Rest) -> None:
        if self._skip():
            return
        t_start, row, elapsed, _ = self._begin(step)
        t_prev, q = self._commanded(step.sample_period), 0.0
        self.pstat.open_circuit(step.sample_period)
        deadline = t_start + step.duration
        while True:
            self._sleep(min(self._interval(step.sample_period, rewound=True), deadline - self._now()))
            cols = self._columns(self.pstat.read(), q, t_prev)
            self._store(cols)
            if len(cols["t"]):
                t_prev, q = float(cols["t"][-1]), float(cols["Q"][-1])
            if self._now() >= deadline - 1e-9:
                break
            if self._check_control(cols=cols, period=step.sample_period, q=q) == "paused":
                t_prev = self._commanded(step.sample_period)
                self.pstat.open_circuit(step.sample_period)
        self.pstat.open_circuit(None)
        _, q, _ = self._drain(q, t_prev)
        self._end(row, S.TIME_REACHED, q)

    def _galvanostatic(self, step: S.Galvanostatic) -> None:
        if self._skip():
            return
        current = self.cell.current(step.signed_current_density)
        q_target = step.capacity * self.area if step.capacity is not None else math.inf  # C
        t_limit = step.duration if step.duration is not None else math.inf
        every = step.eis_every * self.area if step.eis_every else math.inf
        t_start, row, elapsed, q = self._begin(step)
        next_eis = every * (math.floor(abs(q) / every + 1e-9) + 1) if every < math.inf else math.inf
        used = elapsed  # s the current has flowed in this step (on the instrument's samples)
        if elapsed > 0 and self._resumed_complete(step, row, q, q_target, used >= t_limit - 1e-9, current):
            return

        def apply() -> tuple[ShortCircuitDetector, float, float, float, float]:
            """(Re)apply the current for what is left of the step; returns a fresh detector (no history
            from before this command), the run time the command was sent, t_on, |q| then, the duration."""
            remaining = min((q_target - abs(q)) / abs(current), t_limit - used)
            t_cmd = self._commanded(step.sample_period)
            self.pstat.apply_current(current, step.v_min, step.v_max, step.sample_period, remaining)
            detector = ShortCircuitDetector(self.protocol.short_circuit, step.sample_period, current)
            return detector, t_cmd, self._now(), abs(q), remaining

        detector, t_prev, t_on, q_on, remaining = apply()
        reason, k, cols = None, -1, None
        while reason is None:
            now = self._now()
            t_end = t_on + remaining
            t_eis = t_on + (next_eis - q_on) / abs(current)
            self._sleep(min(now + self._interval(step.sample_period, rewound=True), t_end, t_eis) - now)
            cols = self._columns(self.pstat.read(), q, t_prev)
            reason, k = self._galvanostatic_stop(step, cols, detector)
            if reason is not None:
                cols = self._react(cols, k)
                self.pstat.open_circuit(None)  # current off before anything else
            self._store(cols)
            if len(cols["t"]):
                t_prev, q = float(cols["t"][-1]), float(cols["Q"][-1])
            if reason is None and self._now() >= t_end - 1e-9:
                reason, k, last, q, t_prev = self._instrument_ended(step, detector, q, t_prev, q_target, current)
                cols = last if last is not None else cols
            if reason is not None:
                self._record_stop(step, reason, cols, k, q)
                break
            due = abs(q) >= next_eis * (1 - 1e-9) or self._now() >= t_eis - 1e-9
            if due and step.operando_eis is not None:
                next_eis += every
                q, t_prev, reason = self._operando_sweep(step, q, t_prev, current)
                if reason is not None:
                    break
            if step.direction == S.PLATE:
                self.plated = max(self.plated, abs(q) / self.area)
            if self._check_control(cols=cols, period=step.sample_period, q=q) == "paused":
                used += t_prev - t_on
                detector, t_prev, t_on, q_on, remaining = apply()
        if step.direction == S.PLATE:
            self.plated = max(self.plated, abs(q) / self.area)
        self._drain(q, t_prev)
        self._end(row, reason, self._step_q)
        if reason in step.stop_on:
            raise StopRun(reason, self.events[-1]["message"])

    def _instrument_ended(
        self,
        step: S.Galvanostatic,
        detector: ShortCircuitDetector,
        q: float,
        t_prev: float,
        q_target: float,
        current: float,
    ) -> tuple[str, int, dict[str, np.ndarray] | None, float, float]:
        """The instrument ended the technique by itself (its duration): its last samples are collected
        before judging, so the step's charge is what the instrument delivered. Returns the stop reason,
        the tripping sample, the block it was found in (None when the step simply ran out), q and t_prev."""
        self.pstat.open_circuit(None)
        last, q, t_prev = self._drain(q, t_prev)
        reason, k = self._galvanostatic_stop(step, last, detector) if last is not None else (None, -1)
        if reason is not None:
            return reason, k, last, q, t_prev
        full = _charge_reached(step, q, q_target, current)
        return (S.CAPACITY_REACHED if full else S.TIME_REACHED), k, None, q, t_prev

    def _resumed_complete(
        self, step: S.Galvanostatic, row: dict[str, Any], q: float, q_target: float, timed_out: bool, current: float
    ) -> bool:
        """A resumed step whose stored samples already reach its end (the run was killed after its last
        sample was stored, before its row): ended without applying anything. True if it was."""
        full = _charge_reached(step, q, q_target, current)
        if not (full or timed_out):
            return False
        if step.direction == S.PLATE:
            self.plated = max(self.plated, abs(q) / self.area)
        self._resumed_done(step, row, S.CAPACITY_REACHED if full else S.TIME_REACHED)
        return True

    def _operando_sweep(
        self, step: S.Galvanostatic, q: float, t_prev: float, current: float
    ) -> tuple[float, float, str | None]:
        """An impedance sweep on top of the plating current; returns q, t_prev and VOLTAGE_LIMIT (recorded,
        output off) if the instrument tripped its limit during the sweep, else None."""
        q, t_prev, swept, cut = self._sweep(step.operando_eis, q, t_prev, current, (step.v_min, step.v_max))
        k = self._sweep_trip(step, swept, cut)
        if k is None:
            return q, t_prev, None
        self.pstat.open_circuit(None)
        self._record_stop(step, S.VOLTAGE_LIMIT, swept if swept is not None else {}, k, q)
        return q, t_prev, S.VOLTAGE_LIMIT

    def _limit_trip(self, step: S.Step, cols: dict[str, np.ndarray]) -> int | None:
        """First sample where the instrument's own limit switched the output off, or E_we left the step's
        window; None if neither."""
        hw = first_flagged(cols["flags"], FLAG_HW_LIMIT)
        found = [hw] if hw is not None else []
        k = first_outside(cols["E_we"], getattr(step, "v_min", -math.inf), getattr(step, "v_max", math.inf))
        if k is not None:
            found.append(k)
        return min(found) if found else None

    def _sweep_trip(self, step: S.Step, swept: dict[str, np.ndarray] | None, cut: bool) -> int | None:
        """Sample where an operando sweep's DC current was stopped by the instrument's limit, or None.
        A sweep cut short because the instrument reported its output off is a trip even when no stored
        sample carries the flag (k = -1 then: no sample to name)."""
        k = self._limit_trip(step, swept) if swept is not None else None
        if k is None and cut:
            return len(swept["t"]) - 1 if swept is not None else -1
        return k

    def _galvanostatic_stop(
        self, step: S.Galvanostatic, cols: dict[str, np.ndarray], detector: ShortCircuitDetector
    ) -> tuple[str | None, int]:
        """The first stop condition in the block and the sample where it happened."""
        e = cols["E_we"] if self.use_reference or _unmeasured(cols["E_cell"]) else cols["E_cell"]
        found: list[tuple[int, str]] = []
        k = detector.check(e, cols["I"])
        if k is not None:
            found.append((k, S.SHORT_CIRCUIT))
        k = self._limit_trip(step, cols)
        if k is not None:
            found.append((k, S.VOLTAGE_LIMIT))
        if not found:
            return None, -1
        k, reason = min(found)
        return reason, k

    def _resumed_done(self, step: S.Step, row: dict[str, Any], reason: str) -> None:
        """End a resumed step whose stored samples already reach its end, without switching anything on
        (an instrument refuses a step of no duration; one more sample would overshoot the target)."""
        message = f"{step.label}: {reason.replace('_', ' ')} before the interruption"
        self.event(EventKind.STEP_END, message, reason=reason)
        self._end(row, reason, self._step_q)
        if reason in getattr(step, "stop_on", ()):
            raise StopRun(reason, self.events[-1]["message"])

    def _record_stop(self, step: S.Step, reason: str, cols: dict[str, np.ndarray], k: int, q: float) -> None:
        if reason == S.SHORT_CIRCUIT:
            t = float(cols["t"][k])
            cap = abs(float(cols["Q"][k])) / self.area
            self.short = {"t": t, "capacity": cap, "sample": self.samples - len(cols["t"]) + k}
            self.event(
                S.SHORT_CIRCUIT,
                f"short circuit at {t:.0f} s after {u.to_unit(cap, 'mAh/cm^2'):.3f} mAh/cm^2: polarisation "
                f"collapsed from {1e3 * float(np.max(np.abs(cols['E_we'][max(0, k - 10) : k + 1]))):.1f} mV to "
                f"{1e3 * abs(float(cols['E_we'][k])):.1f} mV; current switched off",
                t_trip=t,
                capacity=cap,
                E_at_trip=float(cols["E_we"][k]),
                sample=self.short["sample"],
            )
        elif reason == S.VOLTAGE_LIMIT:
            e = float(cols["E_we"][k]) if k >= 0 else math.nan
            lo, hi = getattr(step, "v_min", math.nan), getattr(step, "v_max", math.nan)
            tripped = k >= 0 and bool(cols["flags"][k] & FLAG_HW_LIMIT)
            how = "; the instrument's own limit switched the output off" if tripped else ""
            self.event(
                S.VOLTAGE_LIMIT,
                f"voltage limit reached: E_we = {e:.3f} V outside [{lo:g}, {hi:g}] V{how}",
                E=e,
                hardware=tripped,
            )
        elif reason == S.CURRENT_LIMIT:
            self.event(S.CURRENT_LIMIT, f"current limit reached: I = {float(cols['I'][k]):.3e} A")
        else:
            self.event(
                EventKind.STEP_END,
                f"{step.label}: {reason.replace('_', ' ')} ({u.to_unit(abs(q) / self.area, 'mAh/cm^2'):.3f} mAh/cm^2)",
                reason=reason,
            )

    def _potentiostatic(self, step: S.Potentiostatic) -> None:
        if self._skip():
            return
        i_lim = step.i_limit * self.area
        t_start, row, elapsed, q = self._begin(step)
        deadline = t_start + step.duration
        if elapsed > 0 and deadline - self._now() <= 1e-9:  # resumed after its last sample: no time left to apply
            self._resumed_done(step, row, S.TIME_REACHED)
            return

        def apply() -> float:
            t_cmd = self._commanded(step.sample_period)
            self.pstat.apply_potential(step.potential, -i_lim, i_lim, step.sample_period, deadline - self._now())
            return t_cmd

        t_prev = apply()
        reason = None
        while reason is None:
            self._sleep(min(self._interval(step.sample_period), deadline - self._now()))
            cols = self._columns(self.pstat.read(), q, t_prev)
            k = self._current_trip(cols, i_lim)
            if k is not None:
                reason = S.CURRENT_LIMIT
                cols = self._react(cols, k)
                self.pstat.open_circuit(None)
            self._store(cols)
            if len(cols["t"]):
                t_prev, q = float(cols["t"][-1]), float(cols["Q"][-1])
            if reason is None and self._now() >= deadline - 1e-9:
                self.pstat.open_circuit(None)
                last, q, t_prev = self._drain(q, t_prev)
                k = self._current_trip(last, i_lim) if last is not None else None
                reason, cols = (S.CURRENT_LIMIT, last) if k is not None else (S.TIME_REACHED, cols)
            if reason is not None:
                self._record_stop(step, reason, cols, k if k is not None else -1, q)
                break
            if self._check_control(cols=cols, period=step.sample_period, q=q) == "paused":
                t_prev = apply()
        self.pstat.open_circuit(None)
        self._drain(q, t_prev)
        self._end(row, reason, self._step_q)
        if reason in step.stop_on:
            raise StopRun(reason, self.events[-1]["message"])

    @staticmethod
    def _current_trip(cols: dict[str, np.ndarray], i_lim: float) -> int | None:
        """First sample at the current limit, or where the instrument's own limit switched it off."""
        k = first_outside(np.abs(cols["I"]), -1.0, i_lim * (1 - 1e-9))
        found = [x for x in (k, first_flagged(cols["flags"], FLAG_HW_LIMIT)) if x is not None]
        return min(found) if found else None

    def _eis(self, step: S.Eis) -> None:
        """A whole sweep; an interrupted sweep is measured again from its first frequency on resume."""
        if self._skip():
            return
        _, row, _, _ = self._begin(step)
        spec = step.spec
        t_cmd = self._commanded(1.0)
        if spec.mode == "galvanostatic" and spec.dc:
            dc = self.cell.current(spec.dc)
            self.pstat.apply_current(dc, -5.0, 5.0, 1.0)
        elif spec.mode == "potentiostatic" and spec.dc is not None:
            dc = spec.dc
            self.pstat.apply_potential(
                dc, -self.pstat.capabilities.max_current, self.pstat.capabilities.max_current, 1.0
            )
        else:
            dc = 0.0
            self.pstat.open_circuit(1.0)
        q, t_prev, swept, _ = self._sweep(spec, 0.0, t_cmd, dc if spec.mode == "galvanostatic" else 0.0)
        self.pstat.open_circuit(None)
        self._drain(q, t_prev)
        k = self._limit_trip(step, swept) if swept is not None and spec.mode == "galvanostatic" else None
        if k is not None:  # the instrument's limit cut the DC level mid-sweep: the spectrum is not valid
            self._record_stop(step, S.VOLTAGE_LIMIT, swept, k, self._step_q)
            self._end(row, S.VOLTAGE_LIMIT, self._step_q)
            raise StopRun(S.VOLTAGE_LIMIT, self.events[-1]["message"])
        self._end(row, S.COMPLETED, self._step_q)

    def _sweep(
        self,
        spec: S.EisSpec,
        q: float,
        t_prev: float,
        dc_current: float,
        window: tuple[float, float] | None = None,
    ) -> tuple[float, float, dict[str, np.ndarray] | None, bool]:
        """Measure and store one spectrum; samples taken meanwhile are stored too (charge bookkeeping
        goes on). Returns the step charge, the time of the last sample, those samples (or None) and
        whether the sweep was cut short because the instrument's limit ended its DC level.

        ``window``: the step's voltage window around an operando sweep; the sweep stops at the first
        point the instrument measured with its DC current gone (its limit switched the output off) or
        with E_dc outside the window, and that point is not kept: it is not part of the spectrum asked
        for (no current)."""
        amplitude = self.cell.current(spec.amplitude) if spec.mode == "galvanostatic" else spec.amplitude
        dc = dc_current if spec.mode == "galvanostatic" else spec.dc
        request = EisRequest(spec.mode, list(spec.frequencies()), amplitude, dc)
        t_begin = self._now()
        points, cut = [], False
        for p in self.pstat.impedance(request):
            if window is not None and _output_lost(p.I_dc, p.E_dc, dc_current, window):
                cut = True
                break
            points.append((0, p.frequency, p.z_real, p.z_imag, p.t - self.t0, p.E_dc, p.I_dc, p.ok))
            if self.control.abort_requested:
                break
        arr = np.array(points, dtype=L.POINTS)
        meta = {
            "t_start": t_begin,
            "t_end": self._now(),
            "step": self.step_index,
            "cycle": self.cycle,
            "Q": q,
            "mode": spec.mode,
            "dc": dc if dc is not None else math.nan,
            "amplitude": amplitude,
        }
        self._emit(Spectrum(self.spectra, meta, arr))
        self.spectra += 1
        block = self.pstat.read()
        if not len(block):
            return q, t_prev, None, cut
        cols = self._columns(block, q, t_prev)
        self._store(cols)
        return float(cols["Q"][-1]), float(cols["t"][-1]), cols, cut


def _output_lost(i_dc: float, e_dc: float, dc_current: float, window: tuple[float, float]) -> bool:
    """An operando point measured after the instrument's limit ended the step's DC current: the mean
    current fell below half the set point, or the mean potential left the step's window."""
    if dc_current != 0 and math.isfinite(i_dc) and abs(i_dc) < 0.5 * abs(dc_current):
        return True
    return math.isfinite(e_dc) and not window[0] <= e_dc <= window[1]


def _unmeasured(column: np.ndarray) -> bool:
    """A column the instrument does not measure (all NaN). A symmetric cell's voltage then is E_we: with
    two electrodes the reference lead joins the counter, so the instrument measures E_we against it."""
    return bool(len(column)) and bool(np.isnan(column).all())


def _charge_reached(step: S.Galvanostatic, q: float, q_target: float, current: float) -> bool:
    """The step's charge is within half a sample's charge of its target (the instrument's last sample
    cannot land on it exactly)."""
    return abs(q) >= q_target - 0.5 * abs(current) * step.sample_period * (1 + 1e-9)
