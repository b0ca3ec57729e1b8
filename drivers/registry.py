"""How a rig file's entries become driver objects.

Each driver module declares how it is built from a rig-file entry (an :class:`InstrumentEntry` or
:class:`TransducerEntry`) and names it as a package entry point (``sse_rig.instruments`` and
``sse_rig.transducers`` in pyproject.toml); the simulators declare theirs the same way. The rig reader
knows the kinds from the entry points' names alone, and a driver module is imported only when a rig
uses it, so a rig without vendor instruments needs none of the vendor packages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal

from daq.core.capabilities import Calibration, Potentiostat, PressureSensor
from daq.core.clock import Clock
from daq.core.errors import ConfigError

INSTRUMENTS = "sse_rig.instruments"
TRANSDUCERS = "sse_rig.transducers"


@dataclass(frozen=True)
class Option:
    """A rig-file key a driver accepts beyond the common ones, and how to read it."""

    name: str
    kind: Literal["integer", "time", "text"]
    minimum: float | None = None


@dataclass
class BuildContext:
    """What a builder gets: the rig-file entry (SI values) and the channel it serves."""

    name: str  # the instrument's or transducer's name in the rig file
    resource: str  # VISA resource, address, section or port
    options: dict[str, Any]  # checked values of the entry's options (SI)
    channel: int  # as numbered on the instrument (1 = first)
    cell: Any  # daq.models.cell.Cell on that channel
    clock: Clock
    shared: dict[str, Any] = field(default_factory=dict)  # objects the parts of one channel share
    connections: dict[Any, Any] = field(default_factory=dict)  # objects the channels of one process share
    pressed_area: float = 0.0  # m^2, transducers only
    calibration: Calibration = field(default_factory=Calibration)  # transducers only


@dataclass(frozen=True)
class InstrumentEntry:
    build: Callable[[BuildContext], Potentiostat]
    options: tuple[Option, ...] = ()
    title: str = "the instrument"  # for messages: "a Keithley 2450"
    channels: int | None = None  # channels the instrument has; None: as many as the rig names
    resource_example: str | None = None  # a resource is required; its form, for messages
    resource_check: Callable[[str], bool] = lambda resource: True


@dataclass(frozen=True)
class TransducerEntry:
    build: Callable[[BuildContext], PressureSensor]
    keys: frozenset[str] = frozenset()  # rig-file keys it accepts beyond kind, port, pressed_area, calibration
    measures: Callable[[dict[str, Any]], str] = lambda options: "pressure"  # "force" or "pressure"
    needs_port: bool = True


def _points(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def instrument_kinds() -> list[str]:
    return sorted(_points(INSTRUMENTS))


def transducer_kinds() -> list[str]:
    return sorted(_points(TRANSDUCERS))


def _load(group: str, kind: str, what: str) -> Any:
    points = _points(group)
    if kind not in points:
        raise ConfigError("kind", kind, f"unknown {what} kind; expected one of {', '.join(sorted(points))}")
    try:
        return points[kind].load()
    except ImportError as exc:
        raise ConfigError("kind", kind, f"the {kind} driver cannot be imported: {exc}") from None


def instrument_entry(kind: str) -> InstrumentEntry:
    return _load(INSTRUMENTS, kind, "instrument")


def transducer_entry(kind: str) -> TransducerEntry:
    return _load(TRANSDUCERS, kind, "transducer")
