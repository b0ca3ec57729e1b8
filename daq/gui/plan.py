"""Protocol progress and time remaining, estimated from the protocol's own steps.

The plan is built from the resolved protocol (``daq.engine.runner.resolved`` for a live run, ``/protocol/resolved``
in a run file), so live runs and followed files share one code path. Loops are unrolled, which makes a
planned step's position equal to the engine's step index (the row of ``/steps``).

Estimates (SI, cell time): a rest or potentiostatic step lasts its duration; a galvanostatic step the
shorter of capacity / current density and its duration (operando spectra are taken while the current
flows, so they add no time); an impedance step about three periods per frequency, at least 0.2 s each.
Steps that have ended count with their real duration. A step that ends early (a short, a limit) ends
the protocol, and then nothing remains.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PlannedStep:
    index: int  # execution order = row in /steps
    kind: str
    label: str
    cycle: int  # 1-based cycle of the innermost loop (0 outside loops)
    cycles: int  # cycles of that loop (0 outside loops)
    estimate: float  # s


def sweep_time(spec: Mapping[str, Any] | None) -> float:
    """Seconds one impedance sweep takes: about three periods per frequency, at least 0.2 s each."""
    if not spec:
        return 0.0
    f0, f1, ppd = float(spec["f_start"]), float(spec["f_end"]), int(spec["points_per_decade"])
    n = max(int(round(abs(math.log10(f1 / f0)) * ppd)) + 1, 2)
    f = np.logspace(math.log10(f0), math.log10(f1), n)
    return float(np.maximum(3.0 / f, 0.2).sum())


def step_estimate(step: Mapping[str, Any]) -> float:
    """Expected duration of one (non-loop) step in s, from its SI parameters."""
    kind = step.get("kind")
    if kind in ("rest", "potentiostatic"):
        return float(step.get("duration") or 0.0)
    if kind == "galvanostatic":
        options = []
        if step.get("capacity") and step.get("current_density"):
            options.append(float(step["capacity"]) / float(step["current_density"]))
        if step.get("duration"):
            options.append(float(step["duration"]))
        return min(options) if options else 0.0
    if kind == "eis":
        return sweep_time(step.get("spec"))
    return 0.0


class Plan:
    """The protocol's steps in execution order with their expected durations."""

    def __init__(self, steps: Iterable[PlannedStep]):
        self.steps = list(steps)
        est = np.array([s.estimate for s in self.steps], dtype=float)
        self._after = np.concatenate((np.cumsum(est[::-1])[::-1], [0.0]))  # s expected from step i on
        self.total = float(self._after[0]) if self.steps else 0.0

    @classmethod
    def from_resolved(cls, resolved: Mapping[str, Any]) -> Plan:
        out: list[PlannedStep] = []

        def visit(steps: list[Mapping[str, Any]], cycle: int, cycles: int) -> None:
            for step in steps:
                if step.get("kind") == "loop":
                    n = int(step.get("cycles", 1))
                    for c in range(1, n + 1):
                        visit(step.get("steps", []), c, n)
                else:
                    out.append(
                        PlannedStep(
                            len(out),
                            str(step.get("kind", "")),
                            str(step.get("label", "")),
                            cycle,
                            cycles,
                            step_estimate(step),
                        )
                    )

        visit(list(resolved.get("steps", [])), 0, 0)
        return cls(out)

    def __len__(self) -> int:
        return len(self.steps)

    def step(self, index: int) -> PlannedStep | None:
        return self.steps[index] if 0 <= index < len(self.steps) else None

    def remaining(self, step_index: int, in_step: float) -> float:
        """Seconds expected to remain with step ``step_index`` running for ``in_step`` s."""
        if step_index < 0:
            return self.total
        if step_index >= len(self.steps):
            return 0.0
        current = max(self.steps[step_index].estimate - in_step, 0.0)
        return current + float(self._after[step_index + 1])


def progress(elapsed: float, remaining: float) -> float:
    """Fraction done, from elapsed and remaining time."""
    total = elapsed + remaining
    return 1.0 if total <= 0 else min(max(elapsed / total, 0.0), 1.0)


def format_duration(seconds: float) -> str:
    """'3 d 4 h', '2 h 05 min', '4 min 10 s', '12 s' (people read durations, not seconds)."""
    if not math.isfinite(seconds):
        return "-"
    s = max(int(round(seconds)), 0)
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m, sec = divmod(rem, 60)
    if d:
        return f"{d} d {h} h"
    if h:
        return f"{h} h {m:02d} min"
    if m:
        return f"{m} min {sec:02d} s"
    return f"{sec} s"
