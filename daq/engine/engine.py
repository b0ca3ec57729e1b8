"""The engine: runs one protocol on one channel, block by block, on a Clock.

Per block: read the instrument's buffered samples, evaluate stop conditions and safety monitors over
the whole block with numpy, switch the current off first if anything tripped, then store the block and
record what happened. The same code runs real instruments on a RealClock and the simulator on a
VirtualClock (accelerated time).
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np

from daq.core.capabilities import EisRequest, Potentiostat, PressureSensor, Rewindable
from daq.core.clock import Clock, RealClock
from daq.core.errors import DaqError, InstrumentError
from daq.core.records import (
    Event,
    EventKind,
    Outcome,
    Record,
    ResumePoint,
    RunEnd,
    RunResult,
    RunStart,
    RunStatus,
    Samples,
    Spectrum,
    StepEnd,
    StepStart,
    StopReason,
)
from daq.core.samples import FLAG_HW_LIMIT, SampleBlock
from daq.engine.interlocks import Interlock
from daq.engine.safety import ShortCircuitDetector, first_outside
from daq.engine.stream import RecordStream
from daq.models.cell import Cell
from daq.storage import layout as L
from protocols import steps as S

POST_SHORT_EIS = S.EisSpec("potentiostatic", 1e5, 1.0, 5, 0.005, None)


class RunControl:
    """Operator requests to a running engine, safe to call from any thread (GUI, signal handler)."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self.abort_requested = False
        self.running = False  # True while an engine runs the protocol (its loop acts on abort)
        self.pause_requested: str | None = None  # "now" | "step_end"
        self.reason = ""

    def abort(self, reason: str = "operator abort") -> None:
        with self._lock:
            self.abort_requested, self.reason = True, reason
            self._lock.notify_all()

    def pause(self, when: str = "now", reason: str = "operator pause") -> None:
        if when not in ("now", "step_end"):
            raise ValueError("pause when 'now' or 'step_end'")
        with self._lock:
            self.pause_requested, self.reason = when, reason
            self._lock.notify_all()

    def resume(self) -> None:
        with self._lock:
            self.pause_requested = None
            self._lock.notify_all()

    def wait(self, seconds: float) -> None:
        """Wait up to ``seconds`` of wall time; an abort ends the wait at once."""
        with self._lock:
            if not self.abort_requested:
                self._lock.wait(seconds)


class _Stop(Exception):
    """Ends the protocol: a terminal stop condition, an abort or a fault."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


def step_parameters(step: S.Step) -> dict[str, Any]:
    """A step's parameters as a JSON-able dict (SI), loops without their children."""
    out = {f.name: getattr(step, f.name) for f in dataclasses.fields(step) if f.name != "steps"}
    out["kind"] = step.kind
    for key, value in list(out.items()):
        if dataclasses.is_dataclass(value):
            out[key] = dataclasses.asdict(value)
    return out


class Engine:
    """Executes a Protocol on a potentiostat (and optional transducer), emitting records to a stream
    (the run file's writer is one of its subscribers)."""

    def __init__(
        self,
        protocol: S.Protocol,
        cell: Cell,
        potentiostat: Potentiostat,
        clock: Clock,
        stream: RecordStream,
        path: str,
        transducer: PressureSensor | None = None,
        control: RunControl | None = None,
        block_interval: float | None = None,
        block_samples: int = 256,
        reaction_time: float = 1.0,
        after_stop: float = 10.0,
        interlocks: Iterable[Interlock] = (),
        resume: ResumePoint | None = None,
        rewound_block_samples: int = 8192,
    ):
        self.protocol, self.cell, self.pstat, self.clock = protocol, cell, potentiostat, clock
        self.stream, self.path, self.transducer = stream, path, transducer
        self.control = control or RunControl()
        # Real instruments are polled every second; virtual time reads blocks of block_samples samples.
        self.block_interval = block_interval
        self.block_samples = block_samples
        self.reaction_time = reaction_time  # s from a tripping sample to current off (one real poll)
        self.after_stop = after_stop  # s of open-circuit record after a terminal stop
        self.interlocks = list(interlocks)
        self.resume = resume
        # Speed: where a trip is rewound exactly (virtual clock, speculative instrument) and nothing else
        # is sampled once per block (interlocks, the transducer), current and rest steps read blocks of
        # rewound_block_samples; per-block Python work then costs little next to numpy and storage.
        self.rewound_block_samples = rewound_block_samples
        self._rewound_blocks = (
            block_interval is None
            and clock.virtual
            and isinstance(potentiostat, Rewindable)
            and transducer is None
            and not self.interlocks
        )
        self.area = cell.electrodes.working_area
        self.use_reference = cell.configuration == "three_electrode" and potentiostat.capabilities.reference_electrode
        self.t0 = 0.0
        self.step_index = -1
        self.cycle = 0
        self.samples = 0
        self.spectra = resume.spectra if resume else 0
        self.plated = 0.0
        self.short: dict[str, float] | None = None
        self.events: list[dict[str, Any]] = []
        self._period = 1.0  # s, sample period of the latest step
        self._first_dt: float | None = None  # after a command: the first sample's charge spans at most this
        self._open_row: dict[str, Any] | None = None  # the step under way (its /steps row is not written yet)
        self._step_q = 0.0  # C, charge of the step under way up to its last stored sample
        self._unchecked: dict[str, np.ndarray] | None = None  # last stored block not yet seen by interlocks

    # --- plumbing -----------------------------------------------------------------------------
    def _now(self) -> float:
        return self.clock.now() - self.t0

    def _sleep(self, seconds: float) -> None:
        """Let clock time pass; on the wall clock an abort (a signal, the GUI) ends the wait at once."""
        if isinstance(self.clock, RealClock):
            if seconds > 0 and not self.control.abort_requested:
                self.control.wait(seconds)
            return
        self.clock.sleep(seconds)

    def _emit(self, record: Record) -> None:
        """Deliver a record; optional subscribers that fail are dropped, never the run."""
        for _, exc in self.stream.emit(record):
            self.event(EventKind.SUBSCRIBER_ERROR, f"a live view stopped receiving data: {type(exc).__name__}: {exc}")

    def report(self, kind: str, message: str, data: dict[str, Any]) -> None:
        """An event reported by a part of the run (instrument wrapper, notifier): see ReportsToRun."""
        self.event(kind, message, **data)

    def event(self, kind: str, message: str, **data: Any) -> None:
        record = Event(self._now(), kind, self.step_index, message, data)
        self.events.append({"t": record.t, "kind": kind, "step": record.step, "message": message, "data": data})
        self._emit(record)

    def _interval(self, period: float, rewound: bool = False) -> float:
        """Clock time per read; ``rewound``: the step's stops are all rewound exactly on a trip."""
        if self.block_interval is not None:
            return self.block_interval
        if rewound and self._rewound_blocks:
            return max(self.block_samples, self.rewound_block_samples) * period
        return self.block_samples * period if self.clock.virtual else max(1.0, period)

    def _safe(self) -> None:
        """Current off; never raises (used on every exit path)."""
        try:
            self.pstat.open_circuit(None)
        except Exception as exc:  # noqa: BLE001 - the run is already ending; report, keep going
            self.events.append(
                {
                    "t": self._now(),
                    "kind": "fault",
                    "step": self.step_index,
                    "message": f"could not switch the cell off: {exc}",
                    "data": {},
                }
            )

    def _columns(self, block: SampleBlock, q_prev: float, t_prev: float) -> dict[str, np.ndarray]:
        n = len(block)
        t = block.t - self.t0
        dt = np.empty(n)  # np.diff(t, prepend=t_prev) without its per-call overhead (same subtractions)
        if n:
            dt[0] = t[0] - t_prev
            if self._first_dt is not None:
                # The instrument started the command at or after t_prev and samples every period: its first
                # sample carries at most one period's charge, however late the PC read it.
                dt[0] = min(max(dt[0], 0.0), self._first_dt)
                self._first_dt = None
            np.subtract(t[1:], t[:-1], out=dt[1:])
        q = q_prev + np.cumsum(block.I * dt)
        cols = {
            "t": t,
            "step": np.full(n, self.step_index, np.int32),
            "cycle": np.full(n, self.cycle, np.int32),
            "E_we": block.E_we,
            "E_cell": block.E_cell,
            "I": block.I,
            "Q": q,
            "flags": block.flags,
        }
        cols.update(block.aux)
        if self.transducer is not None and n:
            try:
                reading = self.transducer.read()
                cols["pressure"] = np.full(n, reading.pressure)
                if reading.force is not None:
                    cols["force"] = np.full(n, reading.force)
            except InstrumentError as exc:
                self.event("transducer_fault", str(exc))
        return cols

    def _react(self, cols: dict[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
        """The block as a real engine would have recorded it before switching off.

        A real engine polls the instrument every ``reaction_time`` and switches off within one poll of
        the tripping sample. In accelerated time the simulator reads far bigger blocks, so when it can
        rewind, the block is cut (and the simulation rewound) to that same reaction time.
        """
        if not (self.clock.virtual and isinstance(self.pstat, Rewindable)):
            return cols
        t_cut = float(cols["t"][k]) + self.t0 + self.reaction_time
        if t_cut >= self.clock.now():
            return cols
        n = len(self.pstat.rewind(t_cut))
        return {name: v[:n] for name, v in cols.items()}

    def _store(self, cols: dict[str, np.ndarray]) -> None:
        self.samples += len(cols["t"])
        if len(cols["t"]):
            self._step_q = float(cols["Q"][-1])
            self._unchecked = cols
        self._emit(Samples(cols))

    def _commanded(self, period: float) -> float:
        """Called just before a command that starts sampling: returns the run time the instrument's
        samples are counted from (charge bookkeeping on the instrument's sample times)."""
        self._first_dt = period
        return self._now()

    def _drain(self, q: float, t_prev: float) -> tuple[dict[str, np.ndarray] | None, float, float]:
        """Store what the instrument buffered up to the step's last command: samples belong to the step
        whose command produced them, never to the next one. Returns (block or None, q, t_prev)."""
        block = self.pstat.read()
        if not len(block):
            return None, q, t_prev
        cols = self._columns(block, q, t_prev)
        self._store(cols)
        return cols, float(cols["Q"][-1]), float(cols["t"][-1])

    # --- protocol -----------------------------------------------------------------------------
    def run(self) -> RunResult:
        self.t0 = self.clock.now() - (self.resume.t_last if self.resume else 0.0)
        if self.resume:
            self.samples = self.resume.samples
        self.control.running = True
        self._emit(RunStart(self.resume.t_last if self.resume else 0.0))
        outcome, message, status = Outcome.COMPLETED, "protocol completed", RunStatus.COMPLETED
        try:
            self._run_steps(self.protocol.steps)
        except _Stop as stop:
            outcome, message = Outcome(stop.reason), stop.message
            if self._open_row is not None:  # an abort or an interlock that never cleared: one way to record
                self._interrupted(StopReason(stop.reason), message)
            elif stop.reason in (S.SHORT_CIRCUIT, S.VOLTAGE_LIMIT, S.CURRENT_LIMIT) and self.after_stop > 0:
                # Record the cell at open circuit after the cut-off: shows the current is off and what the
                # cell does then (a shorted cell stays near 0 V).
                self._rest(S.Rest("open circuit after stop", self.after_stop, 1.0))
                if stop.reason == S.SHORT_CIRCUIT and self.pstat.capabilities.eis_potentiostatic:
                    # A small-signal spectrum of the shorted cell: the impedance drop and the filament's
                    # resistance (for its diameter); 5 mV around open circuit is harmless.
                    self._eis(S.Eis("impedance after short", POST_SHORT_EIS))
        except (DaqError, Exception) as exc:  # noqa: BLE001 - any failure mid-run must still end with the cell off
            outcome, status = Outcome.FAULT, RunStatus.FAILED
            message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, DaqError) else str(exc)
            try:
                self._interrupted(StopReason.FAULT, message)
            except Exception:  # noqa: BLE001 - storage itself failed; the message still reaches the caller
                self._safe()
        finally:
            self._safe()
            self.control.running = False
        return self._finish(status, outcome, message)

    def _interrupted(self, reason: StopReason, message: str) -> None:
        """An abort, a fault or an interlock that did not clear, recorded one way: current off, the
        interrupted step's row, an event, then the open-circuit record (or an event saying the output
        could not be confirmed off)."""
        problem = ""
        try:
            self.pstat.open_circuit(None)
        except Exception as exc:  # noqa: BLE001 - a dead instrument: say so, never raise over the run's end
            problem = f"{type(exc).__name__}: {exc}"
        if not problem and self._open_row is not None:
            try:
                self._drain(self._step_q, self._last_t())
            except Exception as exc:  # noqa: BLE001 - as above
                problem = f"{type(exc).__name__}: {exc}"
        if self._open_row is not None:
            self._end(self._open_row, reason, self._step_q)
        kind = EventKind.ABORTED if reason == StopReason.ABORTED else EventKind.FAULT
        if reason == StopReason.INTERLOCK:
            kind = EventKind.INTERLOCK
        self.event(kind, message)
        if not problem:
            try:
                self._open_circuit_record(f"open circuit after {reason.value}")
                return
            except Exception as exc:  # noqa: BLE001 - as above
                problem = f"{type(exc).__name__}: {exc}"
            if self._open_row is not None:
                self._end(self._open_row, StopReason.FAULT, 0.0)
        self.event(
            EventKind.SAFE_STATE_UNCONFIRMED,
            f"the output could not be confirmed off ({problem}); the instrument's own dead-man time is the "
            "only guarantee: check the channel and run `daq safe` on it",
            error=problem,
        )

    def _open_circuit_record(self, label: str) -> None:
        """A short rest at I = 0 that shows the output off: two samples at the last step's period."""
        period = self._period  # the interrupted step's: the instrument is known to sample at it
        rest = S.Rest(label, 2 * period, period)
        self.resume = None
        self._rest(rest)

    def _last_t(self) -> float:
        cols = self._unchecked
        return float(cols["t"][-1]) if cols is not None and len(cols["t"]) else self._now()

    def _finish(self, status: RunStatus, outcome: Outcome, message: str) -> RunResult:
        duration = self._now()
        result = RunResult(
            self.path,
            status,
            outcome,
            message,
            duration,
            self.samples,
            self.plated,
            self.cycle,
            self.short,
            self.events,
        )
        summary = {
            "outcome": outcome,
            "message": message,
            "plated_capacity": self.plated,
            "plated_capacity_unit": "C/m^2",
            "duration": duration,
            "duration_unit": "s",
            "short": self.short or {},
        }
        self._emit(RunEnd(status, outcome, summary, result))
        return result

    def _run_steps(self, steps: tuple[S.Step, ...]) -> None:
        for step in steps:
            self._check_control(between_steps=True)
            if isinstance(step, S.Loop):
                try:
                    for c in range(1, step.cycles + 1):
                        self.cycle = c
                        self._run_steps(step.steps)
                except _Stop as stop:
                    if stop.reason not in step.until:
                        raise
                    self.event("loop_end", f"{step.label} ended in cycle {self.cycle}: {stop.message}")
                continue
            runner = {
                S.Rest: self._rest,
                S.Galvanostatic: self._galvanostatic,
                S.Potentiostatic: self._potentiostatic,
                S.Eis: self._eis,
            }[type(step)]
            runner(step)

    def _skip(self) -> bool:
        """While resuming: True for steps that finished before the interruption."""
        if self.resume is not None and self.step_index + 1 < self.resume.steps_done:
            self.step_index += 1
            return True
        return False

    def _begin(self, step: S.Step) -> tuple[float, dict[str, Any], float, float]:
        """Start a step; returns (t_start, row, elapsed, charge): the progress already made when this
        is the step an interrupted run is resuming."""
        self.step_index += 1
        self._period = getattr(step, "sample_period", self._period)
        elapsed, charge = 0.0, 0.0
        if self.resume is not None and self.step_index == self.resume.steps_done:
            elapsed, charge = self.resume.elapsed, self.resume.charge
            self.event(
                "resumed_run",
                f"run resumed in step {self.step_index} ({step.label}) after {elapsed:.0f} s of it",
                elapsed=elapsed,
                charge=charge,
            )
            self.resume = None
        row = {
            "index": self.step_index,
            "kind": step.kind,
            "label": step.label,
            "cycle": self.cycle,
            "t_start": self._now() - elapsed,
            "parameters": step_parameters(step),
        }
        self._emit(StepStart(**row))
        self._open_row, self._step_q, self._unchecked = row, charge, None
        return row["t_start"], row, elapsed, charge

    def _end(self, row: dict[str, Any], reason: str, q: float) -> None:
        self._open_row = None
        self._emit(StepEnd(**dict(row, t_end=self._now(), end_reason=StopReason(reason), Q=q)))

    def _check_control(
        self,
        between_steps: bool = False,
        cols: dict[str, np.ndarray] | None = None,
        period: float = 1.0,
        q: float = 0.0,
    ) -> str | None:
        """Handle abort, pause and interlocks after a block; returns 'paused' if the cell was made safe
        and the step must re-apply its current."""
        c = self.control
        if c.abort_requested:
            raise _Stop(S.ABORTED, c.reason or "aborted by the operator")
        if c.pause_requested == "now" or (between_steps and c.pause_requested == "step_end"):
            self.pstat.open_circuit(None)
            self.event("paused", c.reason or "paused", when=c.pause_requested)
            while c.pause_requested and not c.abort_requested:
                c.wait(0.2)  # the cell is off and not sampled: wait for the operator in wall time
            if c.abort_requested:
                raise _Stop(S.ABORTED, c.reason or "aborted by the operator")
            self.event("resumed", "resumed")
            return "paused"
        if between_steps and self.interlocks:
            # The last block of the step just ended, then a fresh reading: nothing starts while a
            # condition is present, however short the steps are.
            last, self._unchecked = self._unchecked, None
            for block in (last, self._fresh_reading()):
                if block is not None and self._interlocked(block, period, q):
                    return "paused"
        if cols is not None:
            self._unchecked = None
            if self._interlocked(cols, period, q):
                return "paused"
        return None

    def _interlocked(self, cols: dict[str, np.ndarray], period: float, q: float) -> bool:
        """Hold the cell at open circuit while an interlock's condition is present in ``cols``."""
        for interlock in self.interlocks:
            message = interlock.violation(cols)
            if message:
                self._hold(interlock, message, period, q)
                return True
        return False

    def _fresh_reading(self) -> dict[str, np.ndarray] | None:
        """The transducer's reading now, as a one-row block (None without a transducer)."""
        if self.transducer is None:
            return None
        try:
            reading = self.transducer.read()
        except InstrumentError as exc:
            self.event(EventKind.TRANSDUCER_FAULT, str(exc))
            return None
        cols = {"pressure": np.array([reading.pressure])}
        if reading.force is not None:
            cols["force"] = np.array([reading.force])
        return cols

    def _hold(self, interlock: Interlock, message: str, period: float, q: float) -> None:
        """Open circuit (still sampling; the step's charge stays at ``q``) until the interlock has been
        clear for its clear_wait."""
        self.pstat.open_circuit(period)
        self.event("interlock", f"{interlock.name}: {message}; cell at open circuit", interlock=interlock.name)
        t_trip = self._now()
        clear_since: float | None = None
        t_prev = t_trip
        while True:
            if self.control.abort_requested:
                raise _Stop(S.ABORTED, self.control.reason or "aborted by the operator")
            self._sleep(
                self._interval(period)
                if not self.clock.virtual
                else min(self._interval(period), max(interlock.clear_wait, period))
            )
            cols = self._columns(self.pstat.read(), q, t_prev)
            self._store(cols)
            if len(cols["t"]):
                t_prev = float(cols["t"][-1])
            now = self._now()
            if interlock.violation(cols):
                clear_since = None
            elif clear_since is None:
                clear_since = now
            if clear_since is not None and now - clear_since >= interlock.clear_wait:
                self.event(
                    "interlock_cleared",
                    f"{interlock.name} clear for {now - clear_since:.0f} s; resuming",
                    interlock=interlock.name,
                )
                self.pstat.open_circuit(None)
                self._drain(q, t_prev)  # the hold's samples stay with the hold
                return
            if now - t_trip > interlock.timeout:
                raise _Stop(
                    S.INTERLOCK,
                    f"{interlock.name} did not clear within {interlock.timeout:.0f} s: "
                    f"{message}; run stopped with the cell at open circuit",
                )

    # --- steps --------------------------------------------------------------------------------
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
                # The instrument ended the technique by itself (its duration): collect its last samples
                # before judging, so the step's charge is what the instrument delivered.
                self.pstat.open_circuit(None)
                last, q, t_prev = self._drain(q, t_prev)
                reason, k = self._galvanostatic_stop(step, last, detector) if last is not None else (None, -1)
                if reason is not None:
                    cols = last
                else:
                    full = abs(q) >= q_target - 0.5 * abs(current) * step.sample_period * (1 + 1e-9)
                    reason = S.CAPACITY_REACHED if full else S.TIME_REACHED
            if reason is not None:
                self._record_stop(step, reason, cols, k, q)
                break
            due = abs(q) >= next_eis * (1 - 1e-9) or self._now() >= t_eis - 1e-9
            if due and step.operando_eis is not None:
                q, t_prev, swept = self._sweep(step.operando_eis, q, t_prev, dc_current=current)
                next_eis += every
                if swept is not None:  # the instrument may have tripped its limit during the sweep
                    k = self._limit_trip(step, swept)
                    if k is not None:
                        reason = S.VOLTAGE_LIMIT
                        self.pstat.open_circuit(None)
                        self._record_stop(step, reason, swept, k, q)
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
            raise _Stop(reason, self.events[-1]["message"])

    def _limit_trip(self, step: S.Step, cols: dict[str, np.ndarray]) -> int | None:
        """First sample where the instrument's own limit switched the output off, or E_we left the step's
        window; None if neither."""
        hw = np.flatnonzero(cols["flags"] & FLAG_HW_LIMIT)
        found = [int(hw[0])] if hw.size else []
        k = first_outside(cols["E_we"], getattr(step, "v_min", -math.inf), getattr(step, "v_max", math.inf))
        if k is not None:
            found.append(k)
        return min(found) if found else None

    def _galvanostatic_stop(
        self, step: S.Galvanostatic, cols: dict[str, np.ndarray], detector: ShortCircuitDetector
    ) -> tuple[str | None, int]:
        """The first stop condition in the block and the sample where it happened."""
        e = cols["E_we"] if self.use_reference else cols["E_cell"]
        found: list[tuple[int, str]] = []
        k = detector.check(e, cols["I"])
        if k is not None:
            found.append((k, S.SHORT_CIRCUIT))
        hw = np.flatnonzero(cols["flags"] & FLAG_HW_LIMIT)
        if hw.size:
            found.append((int(hw[0]), S.VOLTAGE_LIMIT))
        k = first_outside(cols["E_we"], step.v_min, step.v_max)
        if k is not None:
            found.append((k, S.VOLTAGE_LIMIT))
        if not found:
            return None, -1
        k, reason = min(found)
        return reason, k

    def _record_stop(self, step: S.Step, reason: str, cols: dict[str, np.ndarray], k: int, q: float) -> None:
        if reason == S.SHORT_CIRCUIT:
            t = float(cols["t"][k])
            cap = abs(float(cols["Q"][k])) / self.area
            self.short = {"t": t, "capacity": cap, "sample": self.samples - len(cols["t"]) + k}
            self.event(
                S.SHORT_CIRCUIT,
                f"short circuit at {t:.0f} s after {cap / 36000:.3f} mAh/cm^2: polarisation collapsed from "
                f"{1e3 * float(np.max(np.abs(cols['E_we'][max(0, k - 10) : k + 1]))):.1f} mV to "
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
                "step_end",
                f"{step.label}: {reason.replace('_', ' ')} ({abs(q) / self.area / 36000:.3f} mAh/cm^2)",
                reason=reason,
            )

    def _potentiostatic(self, step: S.Potentiostatic) -> None:
        if self._skip():
            return
        i_lim = step.i_limit * self.area
        t_start, row, _, q = self._begin(step)
        deadline = t_start + step.duration

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
            raise _Stop(reason, self.events[-1]["message"])

    @staticmethod
    def _current_trip(cols: dict[str, np.ndarray], i_lim: float) -> int | None:
        """First sample at the current limit, or where the instrument's own limit switched it off."""
        k = first_outside(np.abs(cols["I"]), -1.0, i_lim * (1 - 1e-9))
        hw = np.flatnonzero(cols["flags"] & FLAG_HW_LIMIT)
        found = [x for x in (k, int(hw[0]) if hw.size else None) if x is not None]
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
        q, t_prev, swept = self._sweep(spec, 0.0, t_cmd, dc_current=dc if spec.mode == "galvanostatic" else 0.0)
        self.pstat.open_circuit(None)
        self._drain(q, t_prev)
        k = self._limit_trip(step, swept) if swept is not None and spec.mode == "galvanostatic" else None
        if k is not None:  # the instrument's limit cut the DC level mid-sweep: the spectrum is not valid
            self._record_stop(step, S.VOLTAGE_LIMIT, swept, k, self._step_q)
            self._end(row, S.VOLTAGE_LIMIT, self._step_q)
            raise _Stop(S.VOLTAGE_LIMIT, self.events[-1]["message"])
        self._end(row, S.COMPLETED, self._step_q)

    def _sweep(
        self, spec: S.EisSpec, q: float, t_prev: float, dc_current: float
    ) -> tuple[float, float, dict[str, np.ndarray] | None]:
        """Measure and store one spectrum; samples taken meanwhile are stored too (charge bookkeeping
        goes on). Returns the step charge, the time of the last sample and those samples (or None)."""
        amplitude = self.cell.current(spec.amplitude) if spec.mode == "galvanostatic" else spec.amplitude
        dc = dc_current if spec.mode == "galvanostatic" else spec.dc
        request = EisRequest(spec.mode, list(spec.frequencies()), amplitude, dc)
        t_begin = self._now()
        points = []
        for p in self.pstat.impedance(request):
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
            return q, t_prev, None
        cols = self._columns(block, q, t_prev)
        self._store(cols)
        return float(cols["Q"][-1]), float(cols["t"][-1]), cols
