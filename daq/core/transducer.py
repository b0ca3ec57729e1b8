"""The stack-pressure transducer interface: a force or pressure reading converted with the pressed area."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from daq.core.capabilities import InstrumentInfo


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


class PressureTransducer(ABC):
    """One transducer on one press. Every call is bounded in time; failures raise InstrumentError."""

    pressed_area: float  # m^2
    calibration: Calibration

    @abstractmethod
    def connect(self) -> InstrumentInfo: ...

    @abstractmethod
    def read(self) -> PressureReading: ...

    @abstractmethod
    def close(self) -> None: ...
