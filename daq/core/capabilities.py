"""What instruments offer the engine, as data (ranges) and capability Protocols; nothing vendor-specific
crosses it.

Drivers push limits into the instrument where it can enforce them (voltage limits, fixed current
range, step duration), so safety does not depend on the PC. What an instrument cannot do is declared
in its Capabilities and a protocol that needs it is refused before it starts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

from daq.core.clock import Clock
from daq.core.errors import InstrumentError
from daq.core.samples import EisPoint, SampleBlock


@dataclass(frozen=True)
class Capabilities:
    """What an instrument (channel) can do, in SI units."""

    max_current: float  # A, largest current it can source
    current_resolution: float  # A, smallest current step it can control meaningfully
    max_voltage: float  # V, compliance
    min_sample_period: float  # s
    galvanostatic: bool = True
    potentiostatic: bool = True
    eis_galvanostatic: bool = False
    eis_potentiostatic: bool = False
    eis_min_frequency: float = 0.0  # Hz
    eis_max_frequency: float = 0.0  # Hz
    reference_electrode: bool = True  # reports E_we vs a separate reference
    hardware_voltage_limit: bool = False


@dataclass(frozen=True)
class Calibration:
    """Linear calibration of the raw reading: value = gain * raw + offset (in the reading's unit)."""

    gain: float = 1.0
    offset: float = 0.0
    date: str = ""
    reference: str = ""


@dataclass(frozen=True)
class PressureReading:
    t: float  # s, run clock
    pressure: float  # Pa, on the pressed area
    force: float | None  # N, when the transducer measures force


@dataclass(frozen=True)
class InstrumentInfo:
    """Identity reported at connect, stored in /instruments."""

    vendor: str
    model: str
    serial: str
    firmware: str
    driver: str
    resource: str


@dataclass(frozen=True)
class EisRequest:
    """An impedance sweep. ``mode`` "galvanostatic": amplitude in A around dc (A); "potentiostatic":
    amplitude in V around dc (V, vs reference; None = open-circuit potential)."""

    mode: str
    frequencies: Sequence[float]
    amplitude: float
    dc: float | None = 0.0
    v_min: float = -5.0
    v_max: float = 5.0


def checked_frequencies(name: str, caps: Capabilities, request: EisRequest) -> list[float]:
    """The request's frequencies, once the instrument is known to be able to measure them all."""
    if request.mode not in ("galvanostatic", "potentiostatic"):
        raise InstrumentError(f"{name}: unknown impedance mode {request.mode!r}")
    if not (caps.eis_galvanostatic if request.mode == "galvanostatic" else caps.eis_potentiostatic):
        raise InstrumentError(f"{name}: this instrument has no {request.mode} impedance")
    freqs = [float(f) for f in request.frequencies]
    for f in freqs:
        if not caps.eis_min_frequency <= f <= caps.eis_max_frequency:
            raise InstrumentError(f"{name}: {f:g} Hz outside {caps.eis_min_frequency:g}-{caps.eis_max_frequency:g} Hz")
    return freqs


def check_setpoint(
    name: str,
    caps: Capabilities,
    *,
    current: float | None = None,
    potential: float | None = None,
    v_limits: tuple[float, float] | None = None,
    i_limits: tuple[float, float] | None = None,
    sample_period: float | None = None,
    duration: float | None = None,
    holder: str = "instrument",
) -> None:
    """Refuse a step the instrument's declared Capabilities cannot hold, before anything is sent to it.

    One check for every driver: the set current (|I| <= max_current) or potential (|E| <= max_voltage),
    a non-empty voltage or current window, a sample period not below min_sample_period, a duration above
    zero (None: until stopped). NaN fails every check. ``holder`` names what the limit belongs to in the
    message ("instrument", "channel", "2450")."""
    if current is not None and not abs(current) <= caps.max_current:
        raise InstrumentError(f"{name}: {current:g} A beyond the {holder}'s {caps.max_current:g} A")
    if potential is not None and not abs(potential) <= caps.max_voltage:
        raise InstrumentError(f"{name}: {potential:g} V beyond the {holder}'s +/-{caps.max_voltage:g} V")
    if v_limits is not None and not v_limits[0] < v_limits[1]:
        raise InstrumentError(f"{name}: voltage limits [{v_limits[0]:g}, {v_limits[1]:g}] V are empty")
    if i_limits is not None and not i_limits[0] < i_limits[1]:
        raise InstrumentError(f"{name}: current limits [{i_limits[0]:g}, {i_limits[1]:g}] A are empty")
    if sample_period is not None and not sample_period >= caps.min_sample_period:
        raise InstrumentError(f"{name}: sample period {sample_period:g} s too short")
    if duration is not None and not duration > 0:
        raise InstrumentError(f"{name}: step duration {duration:g} s must be positive")


@runtime_checkable
class Potentiostat(Protocol):
    """One potentiostat channel. Every method is bounded in time; failures raise InstrumentError.

    Optional abilities are separate Protocols (HoldsPotential, MeasuresImpedance, Rewindable), checked
    with isinstance: an instrument has the methods it can honour and no others.
    """

    capabilities: Capabilities

    def connect(self) -> InstrumentInfo:
        """Open the instrument and identify it. Never switches the cell on."""
        ...

    def apply_current(
        self, current: float, v_min: float, v_max: float, sample_period: float, duration: float | None = None
    ) -> None:
        """Source ``current`` (A) until ``duration`` (s) or a further command; the instrument stops
        the output by itself when E_we leaves [v_min, v_max] where it can (FLAG_HW_LIMIT)."""
        ...

    def open_circuit(self, sample_period: float | None = None) -> None:
        """The safe state: no current flows; keeps sampling the open-circuit potential if a period is
        given, otherwise switches the cell off."""
        ...

    def read(self) -> SampleBlock:
        """All samples buffered since the previous read (possibly none)."""
        ...

    def close(self) -> None:
        """Cell off, then release the instrument. Safe to call more than once."""
        ...


@runtime_checkable
class HoldsPotential(Protocol):
    def apply_potential(
        self, potential: float, i_min: float, i_max: float, sample_period: float, duration: float | None = None
    ) -> None:
        """Hold E_we at ``potential`` (V vs reference) with current limits (A)."""
        ...


@runtime_checkable
class MeasuresImpedance(Protocol):
    def impedance(self, request: EisRequest) -> Iterator[EisPoint]:
        """Measure one point per frequency, in order."""
        ...


@runtime_checkable
class Rewindable(Protocol):
    """Simulated instruments on a virtual clock only."""

    def rewind(self, t: float) -> SampleBlock:
        """Undo everything after clock time ``t`` and return the part of the last read block up to
        ``t``. Lets accelerated runs read big blocks yet react to a stop as fast as a real engine
        polling the instrument would."""
        ...


@runtime_checkable
class PressureSensor(Protocol):
    """One stack-pressure transducer on one press. Every call is bounded in time."""

    pressed_area: float  # m^2
    calibration: Calibration

    def connect(self) -> InstrumentInfo: ...

    def read(self) -> PressureReading: ...

    def close(self) -> None: ...


@runtime_checkable
class RunHandle(Protocol):
    """What a running engine offers the parts of its run: a place to report events, its interlocks."""

    path: str
    interlocks: list[Any]
    clock: Clock
    cell: Any
    protocol: Any

    def report(self, kind: str, message: str, data: dict[str, Any]) -> None: ...


@runtime_checkable
class ReportsToRun(Protocol):
    """Parts (fault-tolerant instruments, notifiers) whose reports become the run's events."""

    def bind_run(self, engine: RunHandle) -> None: ...


def honoured(pstat: Potentiostat) -> Capabilities:
    """The instrument's capabilities less the modes it has no method for: a driver whose flags claim
    more than it implements is then refused when the protocol is checked, before any current flows,
    instead of failing in the middle of a run."""
    caps = pstat.capabilities
    holds, measures = isinstance(pstat, HoldsPotential), isinstance(pstat, MeasuresImpedance)
    return replace(
        caps,
        potentiostatic=caps.potentiostatic and holds,
        eis_galvanostatic=caps.eis_galvanostatic and measures,
        eis_potentiostatic=caps.eis_potentiostatic and measures,
    )


OPTIONAL_ABILITIES: dict[str, type] = {
    "apply_potential": HoldsPotential,
    "impedance": MeasuresImpedance,
    "rewind": Rewindable,
}


class InstrumentWrapper:
    """Base of wrappers around an instrument (transcript, retries, fault injection).

    ``Wrapper(inner, ...)`` is built as a subclass without the optional abilities ``inner`` lacks, so
    capability checks see through any stack of wrappers.
    """

    _variants: dict[tuple[type, tuple[str, ...]], type] = {}

    def __new__(cls, inner: Any, *args: Any, **kwargs: Any) -> Any:
        lacking = tuple(
            name
            for name, ability in OPTIONAL_ABILITIES.items()
            if callable(getattr(cls, name, None)) and not isinstance(inner, ability)
        )
        if lacking:
            key = (cls, lacking)
            if key not in InstrumentWrapper._variants:
                InstrumentWrapper._variants[key] = type(cls.__name__, (cls,), dict.fromkeys(lacking))
            cls = InstrumentWrapper._variants[key]
        return super().__new__(cls)
