"""Interlocks: conditions outside the cell's safe window that suspend the protocol.

When an interlock's condition appears during a current step, the engine switches the cell to open
circuit (still sampling), records an ``interlock`` event, and waits: once the condition has been clear
for ``clear_wait`` it records ``interlock_cleared`` and resumes the step where it stopped; if it does
not clear within ``timeout`` the run stops with end reason ``interlock``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

import numpy as np

from daq.core.samples import FLAG_OVERLOAD
from protocols.steps import InterlockSpec


class Interlock(ABC):
    name: str = "interlock"

    def __init__(self, clear_wait: float = 60.0, timeout: float = 3600.0):
        self.clear_wait = clear_wait  # s the condition must stay clear before resuming
        self.timeout = timeout  # s to wait for it to clear before stopping the run

    @abstractmethod
    def violation(self, cols: dict[str, np.ndarray]) -> str | None:
        """A message if the condition is present in this block of samples, else None."""


class WindowInterlock(Interlock):
    """A measured column (e.g. pressure in Pa, temperature in K) must stay within [low, high]."""

    def __init__(self, column: str, low: float, high: float, unit: str, **kw: float):
        super().__init__(**kw)
        self.name, self.column, self.low, self.high, self.unit = f"{column}_window", column, low, high, unit

    def violation(self, cols: dict[str, np.ndarray]) -> str | None:
        values = cols.get(self.column)
        if values is None or len(values) == 0:
            return None
        bad = (values < self.low) | (values > self.high)
        if not bad.any():
            return None
        v = float(values[np.flatnonzero(bad)[0]])
        return f"{self.column} {v:.4g} {self.unit} outside its window [{self.low:.4g}, {self.high:.4g}] {self.unit}"


class OverloadInterlock(Interlock):
    """The instrument reports an overload (current or voltage out of its range)."""

    name = "overload"

    def violation(self, cols: dict[str, np.ndarray]) -> str | None:
        flags = cols.get("flags")
        if flags is not None and np.any(flags & FLAG_OVERLOAD):
            return "the instrument reports an overload"
        return None


def build(specs: Iterable[InterlockSpec]) -> list[Interlock]:
    """Interlock objects for a protocol's ``[interlocks]`` table."""
    out: list[Interlock] = []
    for spec in specs:
        kw = {"clear_wait": spec.clear_wait, "timeout": spec.timeout}
        if spec.kind == "overload":
            out.append(OverloadInterlock(**kw))
        else:
            unit = "Pa" if spec.kind == "pressure" else "K"
            out.append(WindowInterlock(spec.kind, spec.low, spec.high, unit, **kw))
    return out
