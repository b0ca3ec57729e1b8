"""What the engine says about a run, as typed records delivered to subscribers.

In the spirit of Bluesky's document stream: the engine emits one stream of records (samples, step
starts and ends, events, spectra, the run's end) and everything that wants to know about a run (the
HDF5 writer, live views, notifiers, progress output) subscribes to it. Vocabularies that used to be
bare strings (status, outcome, stop reasons, event kinds, pause and impedance modes) are StrEnums, so
they still compare equal to the strings stored in run files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np


class RunStatus(StrEnum):
    """The run file's ``status``: "running" with no live writer reads as "interrupted"."""

    RUNNING = "running"
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


class StopReason(StrEnum):
    """Why a step ended; the terminal ones are also a run's outcome."""

    CAPACITY_REACHED = "capacity_reached"
    TIME_REACHED = "time_reached"
    COMPLETED = "completed"
    SHORT_CIRCUIT = "short_circuit"
    VOLTAGE_LIMIT = "voltage_limit"
    CURRENT_LIMIT = "current_limit"
    ABORTED = "aborted"
    FAULT = "fault"
    INTERLOCK = "interlock"


class Outcome(StrEnum):
    """How a whole run ended (root attribute ``outcome``)."""

    COMPLETED = "completed"
    SHORT_CIRCUIT = "short_circuit"
    VOLTAGE_LIMIT = "voltage_limit"
    CURRENT_LIMIT = "current_limit"
    ABORTED = "aborted"
    FAULT = "fault"
    INTERLOCK = "interlock"


class EventKind(StrEnum):
    """Kinds of rows in /events."""

    SHORT_CIRCUIT = "short_circuit"
    VOLTAGE_LIMIT = "voltage_limit"
    CURRENT_LIMIT = "current_limit"
    STEP_END = "step_end"
    LOOP_END = "loop_end"
    PAUSED = "paused"
    RESUMED = "resumed"
    RESUMED_RUN = "resumed_run"
    INTERLOCK = "interlock"
    INTERLOCK_CLEARED = "interlock_cleared"
    ABORTED = "aborted"
    FAULT = "fault"
    SAFE_STATE_UNCONFIRMED = "safe_state_unconfirmed"
    TRANSDUCER_FAULT = "transducer_fault"
    INSTRUMENT_LOST = "instrument_lost"
    SUBSCRIBER_ERROR = "listener_error"
    NOTIFY_FAILED = "notify_failed"


class PauseMode(StrEnum):
    NOW = "now"
    AT_STEP_END = "step_end"


class EisMode(StrEnum):
    GALVANOSTATIC = "galvanostatic"
    POTENTIOSTATIC = "potentiostatic"


# --- records -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunStart:
    """Acquisition begins (the writer switches to SWMR: readers may follow from now on)."""

    t0: float  # s, run time of the first sample to come (non-zero when resuming)


@dataclass(frozen=True)
class Samples:
    """One block of samples: every /timeseries column, same length, SI units."""

    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.columns["t"])


@dataclass(frozen=True)
class StepStart:
    index: int
    kind: str
    label: str
    cycle: int
    t_start: float  # s
    parameters: dict[str, Any]


@dataclass(frozen=True)
class StepEnd:
    """A row of /steps."""

    index: int
    kind: str
    label: str
    cycle: int
    t_start: float  # s
    t_end: float  # s
    Q: float  # C, signed
    end_reason: StopReason
    parameters: dict[str, Any]


@dataclass(frozen=True)
class Event:
    """A row of /events."""

    t: float  # s
    kind: str
    step: int
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Spectrum:
    """One impedance spectrum: its row of /eis/spectra (``meta``) and points (/eis/points dtype)."""

    index: int
    meta: dict[str, Any]
    points: np.ndarray


@dataclass(frozen=True)
class RunEnd:
    status: RunStatus
    outcome: Outcome
    summary: dict[str, Any]
    result: RunResult | None = None


Record = RunStart | Samples | StepStart | StepEnd | Event | Spectrum | RunEnd
Subscriber = Callable[[Record], None]


@dataclass(frozen=True)
class ResumePoint:
    """Where an interrupted run stopped: steps already finished (rows of /steps), the progress of the
    step that was cut short, and the run time of the last stored sample."""

    steps_done: int
    elapsed: float  # s into the interrupted step
    charge: float  # C passed in the interrupted step (signed)
    t_last: float  # s, run time of the last stored sample
    samples: int
    spectra: int = 0


@dataclass
class RunResult:
    path: str
    status: RunStatus
    outcome: Outcome
    message: str
    duration: float  # s of cell (clock) time
    samples: int
    plated_capacity: float  # C/m^2, largest plated capacity of one galvanostatic step
    cycles: int  # loop cycles started
    short: dict[str, float] | None = None  # t (s), capacity (C/m^2) of the detected short
    events: list[dict[str, Any]] = field(default_factory=list)
