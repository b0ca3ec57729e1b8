"""The engine: runs one protocol on one channel, block by block, on a Clock.

Per block: read the instrument's buffered samples, evaluate stop conditions and safety monitors over
the whole block with numpy, switch the current off first if anything tripped, then store the block and
record what happened. The same code runs real instruments on a RealClock and the simulator on a
VirtualClock (accelerated time).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import numpy as np

from daq.core.capabilities import Potentiostat, PressureSensor, Rewindable, honoured
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
    StepEnd,
    StepStart,
    StopReason,
)
from daq.core.samples import SampleBlock
from daq.engine.control import RunControl
from daq.engine.holds import Holds
from daq.engine.interlocks import Interlock
from daq.engine.step_runners import StepRunners, StopRun
from daq.engine.stream import RecordStream
from daq.models.cell import Cell
from daq.storage.space import MAX_CHUNK
from protocols import steps as S

__all__ = ["Engine", "RunControl", "step_parameters"]  # RunControl lives in daq.engine.control

POST_SHORT_EIS = S.EisSpec("potentiostatic", 1e5, 1.0, 5, 0.005, None)


def step_parameters(step: S.Step) -> dict[str, Any]:
    """A step's parameters as a JSON-able dict (SI), loops without their children."""
    out = {f.name: getattr(step, f.name) for f in dataclasses.fields(step) if f.name != "steps"}
    out["kind"] = step.kind
    for key, value in list(out.items()):
        if dataclasses.is_dataclass(value):
            out[key] = dataclasses.asdict(value)
    return out


class Engine(StepRunners, Holds):
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
        rewound_block_samples: int = MAX_CHUNK,
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
        # rewound_block_samples; per-block Python work then costs little next to numpy and storage, and a
        # block of the run file's largest chunk is written through to it without a copy.
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
        self._step_parameters: dict[int, tuple[S.Step, dict[str, Any]]] = {}  # by id(step): loops repeat steps
        self._constants: dict[str, tuple[int, np.ndarray]] = {}  # step and cycle columns (see _constant)

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
        if not self.clock.virtual:
            return max(1.0, period)
        blocks = max(self.block_samples, self.rewound_block_samples) if rewound and self._rewound_blocks else None
        interval = (blocks or self.block_samples) * period
        # An instrument that stops sourcing unless read often enough on the run's clock is read that often.
        limit = getattr(self.pstat, "max_read_interval", None)
        return min(interval, limit) if isinstance(limit, int | float) and limit > 0 else interval

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
        t = block.t - self.t0 if self.t0 else block.t  # (x - 0.0 == x: a virtual clock's run starts at 0)
        dt = np.empty(n)  # np.diff(t, prepend=t_prev) without its per-call overhead (same subtractions)
        if n:
            dt[0] = t[0] - t_prev
            if self._first_dt is not None:
                # The instrument started the command at or after t_prev and samples every period: its first
                # sample carries at most one period's charge, however late the PC read it.
                dt[0] = min(max(dt[0], 0.0), self._first_dt)
                self._first_dt = None
            np.subtract(t[1:], t[:-1], out=dt[1:])
        q = np.multiply(block.I, dt, out=dt)  # q_prev + cumsum(I dt), in place (same sums, no temporaries)
        np.cumsum(q, out=q)
        q += q_prev
        cols = {
            "t": t,
            "step": self._constant("step", self.step_index, n),
            "cycle": self._constant("cycle", self.cycle, n),
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

    def _constant(self, name: str, value: int, n: int) -> np.ndarray:
        """A read-only int32 column of ``n`` times ``value``, shared by the blocks of a step (what
        np.full(n, value, np.int32) gives, without allocating and filling it for every block)."""
        known = self._constants.get(name)
        if known is None or known[0] != value or len(known[1]) < n:
            column = np.full(max(n, 256), value, np.int32)
            column.flags.writeable = False
            known = self._constants[name] = (value, column)
        return known[1][:n]

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
        except StopRun as stop:
            outcome, message = Outcome(stop.reason), stop.message
            if self._open_row is not None:  # an abort or an interlock that never cleared: one way to record
                self._interrupted(StopReason(stop.reason), message)
            elif stop.reason in (S.SHORT_CIRCUIT, S.VOLTAGE_LIMIT, S.CURRENT_LIMIT) and self.after_stop > 0:
                # Record the cell at open circuit after the cut-off: shows the current is off and what the
                # cell does then (a shorted cell stays near 0 V).
                self._rest(S.Rest("open circuit after stop", self.after_stop, 1.0))
                if stop.reason == S.SHORT_CIRCUIT and honoured(self.pstat).eis_potentiostatic:
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
        """A short rest at I = 0 that shows the output off: two samples at the last step's period.

        Not the rest step's loop: an abort is what is being recorded, so neither the abort request nor
        a pause may cut it short (the wall-clock wait is the clock's own, two periods)."""
        period = self._period  # the interrupted step's: the instrument is known to sample at it
        self.resume = None
        _, row, _, _ = self._begin(S.Rest(label, 2 * period, period))
        t_prev = self._commanded(period)
        self.pstat.open_circuit(period)
        self.clock.sleep(2 * period)
        cols, q, t_prev = self._drain(0.0, t_prev)  # read while sampling (some instruments keep nothing after)
        self.pstat.open_circuit(None)
        self._drain(q, t_prev)
        self._end(row, StopReason.TIME_REACHED, self._step_q if cols is not None else q)

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
                except StopRun as stop:
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

    def _parameters(self, step: S.Step) -> dict[str, Any]:
        """step_parameters(step), computed once per step of the protocol (a loop repeats the same steps;
        the dataclass conversion costs more than the step's samples when steps are short). A copy: the
        records own their dicts."""
        known = self._step_parameters.get(id(step))
        if known is None or known[0] is not step:
            known = self._step_parameters[id(step)] = (step, step_parameters(step))
        return dict(known[1])

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
            "parameters": self._parameters(step),
        }
        self._emit(StepStart(**row))
        self._open_row, self._step_q, self._unchecked = row, charge, None
        return row["t_start"], row, elapsed, charge

    def _end(self, row: dict[str, Any], reason: str, q: float) -> None:
        self._open_row = None
        self._emit(StepEnd(**dict(row, t_end=self._now(), end_reason=StopReason(reason), Q=q)))
