"""Time for the engine. The engine never sleeps on its own: it asks its Clock.

A RealClock waits on the wall clock (real instruments). A VirtualClock jumps ahead instantly, so the
simulators run a 42-day protocol in seconds through the same engine code. A ScaledClock runs the
simulator at a chosen multiple of real time (live demos, GUI).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod


class Clock(ABC):
    virtual: bool = False

    @abstractmethod
    def now(self) -> float:
        """Seconds since the clock started."""

    @abstractmethod
    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` of clock time pass."""


class RealClock(Clock):
    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualClock(Clock):
    virtual = True

    def __init__(self, start: float = 0.0) -> None:
        self._t = start

    def now(self) -> float:
        return self._t

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._t += seconds

    def rewind(self, t: float) -> None:
        """Go back to ``t`` (speculative simulation: see SimulatedPotentiostat.rewind)."""
        if t > self._t:
            raise ValueError("rewind goes back in time only")
        self._t = t


class ScaledClock(Clock):
    """Clock time runs ``speed`` times faster than the wall clock."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._t0 = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._t0) * self.speed

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.speed)
