"""Progress of a running protocol for the operator: a run subscriber (``daq.core.records`` records in).

On a terminal (the stream is a TTY) one line is redrawn in place, at most a few times a second of
wall time: a bar, the step (``3/201 plate``), the cycle (``cycle 2/100``), the capacity passed in the
step (mAh/cm^2) and the cell time left (from the protocol's own estimates, daq.gui.plan). Otherwise
(a log file, a pipe, a service journal) a full line is printed when a step begins and then every
``every`` seconds of *run* time (default 5 min), so a 42-day run logs a readable history and a
simulated run at 10,000 x real time does not flood the log. ``quiet`` prints nothing at all. Faults
and shorts are not printed here: the run's summary and the CLI's error line say those.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import IO

from daq.core import units as u
from daq.core.records import Event, Record, RunEnd, RunStart, Samples, StepEnd, StepStart
from daq.engine.runner import resolved
from daq.gui.plan import Plan, format_duration, progress
from daq.models.cell import Cell
from protocols.steps import Protocol

STOPS = {"short_circuit", "voltage_limit", "current_limit", "aborted", "fault", "interlock"}
LOG_EVERY = 300.0  # s of run time between log lines
REDRAW = 0.2  # s of wall time between terminal redraws
BAR = 24


class Progress:
    """Callable run subscriber; see the module docstring."""

    def __init__(
        self,
        protocol: Protocol,
        cell: Cell,
        quiet: bool = False,
        stream: IO[str] | None = None,
        every: float = LOG_EVERY,
        wall: Callable[[], float] = time.monotonic,
    ):
        self.plan = Plan.from_resolved(resolved(protocol))
        self.area = cell.electrodes.working_area
        self.quiet = quiet
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every, self.wall = every, wall
        self.step, self.label, self.cycle, self.cycles = -1, "", 0, 0
        self.t, self.t_step, self.charge = 0.0, 0.0, 0.0
        self._next_log, self._last_draw, self._drawn = 0.0, -1e9, False
        self.stopped = False  # a step ended the protocol (short, limit, fault): what follows is unplanned

    def __call__(self, record: Record) -> None:
        if self.quiet:
            return
        if isinstance(record, RunStart):
            self.t = self.t_step = record.t0
            self._next_log = record.t0
        elif isinstance(record, StepStart):
            self.step, self.label, self.t_step, self.charge = (
                record.index,
                record.label or record.kind,
                record.t_start,
                0.0,
            )
            planned = self.plan.step(record.index)
            self.cycle, self.cycles = record.cycle, planned.cycles if planned else 0
            self._emit(force=True)
        elif isinstance(record, Samples) and len(record):
            self.t = float(record.columns["t"][-1])
            self.charge = float(record.columns["Q"][-1]) if "Q" in record.columns else self.charge
            self._emit()
        elif isinstance(record, StepEnd):
            self.t = max(self.t, record.t_end)
            self.stopped = self.stopped or str(record.end_reason) in STOPS
        elif isinstance(record, RunEnd):
            self._finish(str(record.outcome))
        elif isinstance(record, Event):
            return

    def line(self) -> str:
        """The progress text (no bar): step, cycle, capacity, time left."""
        if self.stopped:  # steps the engine adds after a stop are not in the plan: never "step 13 of 3"
            parts = [f"step {self.step + 1} {self.label} (after the stop)"]
        else:
            parts = [f"step {self.step + 1}/{max(len(self.plan), self.step + 1)} {self.label}".rstrip()]
        if self.cycle:
            parts.append(f"cycle {self.cycle}/{self.cycles}" if self.cycles else f"cycle {self.cycle}")
        parts.append(f"{u.to_unit(abs(self.charge) / self.area, 'mAh/cm^2'):.3f} mAh/cm^2")
        parts.append(f"{format_duration(self.t)} elapsed, {format_duration(self.remaining())} left")
        return " | ".join(parts)

    def remaining(self) -> float:
        if self.stopped:
            return 0.0
        return self.plan.remaining(self.step, max(self.t - self.t_step, 0.0))

    def fraction(self) -> float:
        return progress(self.t, self.remaining())

    def _emit(self, force: bool = False) -> None:
        if self.tty:
            now = self.wall()
            if force or now - self._last_draw >= REDRAW:
                self._last_draw = now
                filled = int(round(BAR * self.fraction()))
                bar = "#" * filled + "-" * (BAR - filled)
                self.stream.write(f"\r\x1b[2K[{bar}] {100 * self.fraction():3.0f}% {self.line()}")
                self.stream.flush()
                self._drawn = True
        elif force or self.t >= self._next_log:
            self._next_log = self.t + self.every
            self.stream.write(f"[{100 * self.fraction():3.0f}%] {self.line()}\n")
            self.stream.flush()

    def _finish(self, outcome: str) -> None:
        if self.tty:
            self._emit(force=True)  # the final state, whatever the redraw rate skipped
            self.stream.write("\n")
        self.stream.write(f"run ended after {format_duration(self.t)} cell time: {outcome.replace('_', ' ')}\n")
        self.stream.flush()


def progress_subscriber(protocol: Protocol, cell: Cell, quiet: bool, stream: IO[str] | None = None) -> Progress:
    """A run subscriber printing progress to ``stream`` (stderr by default); silent when ``quiet``."""
    return Progress(protocol, cell, quiet=quiet, stream=stream if stream is not None else sys.stderr)


def add_quiet_option(parser: argparse.ArgumentParser) -> None:
    """``--quiet``: the option of every command that shows a run's progress."""
    parser.add_argument("--quiet", action="store_true", help="no progress output (the summary is still printed)")
