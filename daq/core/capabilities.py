"""The potentiostat interface protocols run on; nothing vendor-specific crosses it.

Drivers push limits into the instrument where it can enforce them (voltage limits, fixed current
range, step duration), so safety does not depend on the PC. What an instrument cannot do is declared
in its Capabilities and a protocol that needs it is refused before it starts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

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
    speculative: bool = False  # simulated instruments only: supports rewind() on a virtual clock


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


class Potentiostat(ABC):
    """One potentiostat channel. Every method is bounded in time; failures raise InstrumentError."""

    capabilities: Capabilities

    @abstractmethod
    def connect(self) -> InstrumentInfo:
        """Open the instrument and identify it. Never switches the cell on."""

    @abstractmethod
    def apply_current(
        self, current: float, v_min: float, v_max: float, sample_period: float, duration: float | None = None
    ) -> None:
        """Source ``current`` (A) until ``duration`` (s) or a further command; the instrument stops
        the output by itself when E_we leaves [v_min, v_max] where it can (FLAG_HW_LIMIT)."""

    @abstractmethod
    def apply_potential(
        self, potential: float, i_min: float, i_max: float, sample_period: float, duration: float | None = None
    ) -> None:
        """Hold E_we at ``potential`` (V vs reference) with current limits (A)."""

    @abstractmethod
    def open_circuit(self, sample_period: float | None = None) -> None:
        """The safe state: no current flows; keeps sampling the open-circuit potential if a period is
        given, otherwise switches the cell off."""

    @abstractmethod
    def read(self) -> SampleBlock:
        """All samples buffered since the previous read (possibly none)."""

    def impedance(self, request: EisRequest) -> Iterator[EisPoint]:
        """Measure one point per frequency, in order. Instruments without EIS refuse."""
        raise NotImplementedError(f"{type(self).__name__} cannot measure impedance")

    def rewind(self, t: float) -> SampleBlock:
        """Simulated instruments on a virtual clock only: undo everything after clock time ``t`` and
        return the part of the last read block up to ``t``. Lets accelerated runs read big blocks yet
        react to a stop as fast as a real engine polling the instrument would."""
        raise NotImplementedError(f"{type(self).__name__} cannot rewind time")

    @abstractmethod
    def close(self) -> None:
        """Cell off, then release the instrument. Safe to call more than once."""
