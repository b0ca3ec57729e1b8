"""Step primitives: typed, validated, SI. Protocol files and Python protocols both produce these.

Current densities and capacities stay per working-electrode area here (A/m^2, C/m^2); the cell turns
them into amperes and coulombs when the protocol is bound to a cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np

PLATE, STRIP = "plate", "strip"
# Conditions that end a step; those in a step's ``stop_on`` also end the whole protocol.
SHORT_CIRCUIT, VOLTAGE_LIMIT, CURRENT_LIMIT = "short_circuit", "voltage_limit", "current_limit"
CAPACITY_REACHED, TIME_REACHED, COMPLETED = "capacity_reached", "time_reached", "completed"
ABORTED, FAULT, INTERLOCK = "aborted", "fault", "interlock"


@dataclass(frozen=True)
class ShortCircuitCriteria:
    """A short is a sudden collapse of polarisation during a current step.

    Tripped at the first sample where |E| falls below ``collapse_fraction`` of the largest |E| of the
    preceding ``window`` and by more than ``min_drop``, while the set current flows. The window makes it
    "sudden": the slow decline as a dendrite shortens the bulk path does not trip it.
    """

    enabled: bool = True
    collapse_fraction: float = 0.5
    window: float = 10.0  # s
    min_drop: float = 0.005  # V


@dataclass(frozen=True)
class InterlockSpec:
    """A safe window for a measured column (pressure in Pa, temperature in K) or the instrument's
    overload flag; see daq.engine.interlocks."""

    kind: Literal["pressure", "temperature", "overload"]
    low: float = -np.inf
    high: float = np.inf
    clear_wait: float = 60.0  # s clear before resuming
    timeout: float = 3600.0  # s to clear before the run stops


@dataclass(frozen=True)
class EisSpec:
    """An impedance sweep. Galvanostatic amplitude/dc are current densities (A/m^2, dc signed as
    plating < 0); potentiostatic amplitude/dc are volts (dc None = at open-circuit potential)."""

    mode: Literal["galvanostatic", "potentiostatic"]
    f_start: float  # Hz
    f_end: float  # Hz
    points_per_decade: int
    amplitude: float
    dc: float | None = 0.0

    def frequencies(self) -> np.ndarray:
        decades = abs(np.log10(self.f_end / self.f_start))
        n = max(int(round(decades * self.points_per_decade)) + 1, 2)
        f = np.logspace(np.log10(self.f_start), np.log10(self.f_end), n)
        f[0], f[-1] = self.f_start, self.f_end  # exact ends: instruments check them against their range
        return f


@dataclass(frozen=True)
class Step:
    label: str = ""
    kind: ClassVar[str] = ""


@dataclass(frozen=True)
class Rest(Step):
    duration: float = 0.0  # s
    sample_period: float = 1.0  # s
    kind: ClassVar[str] = "rest"


@dataclass(frozen=True)
class Galvanostatic(Step):
    direction: str = PLATE
    current_density: float = 0.0  # A/m^2, magnitude
    capacity: float | None = None  # C/m^2
    duration: float | None = None  # s
    v_min: float = -2.0  # V, E_we (vs reference) limits, pushed into the instrument
    v_max: float = 2.0
    sample_period: float = 1.0
    stop_on: tuple[str, ...] = (SHORT_CIRCUIT, VOLTAGE_LIMIT)
    operando_eis: EisSpec | None = None
    eis_every: float | None = None  # C/m^2 between operando spectra
    kind: ClassVar[str] = "galvanostatic"

    @property
    def signed_current_density(self) -> float:
        """A/m^2 with the product's sign convention (plating < 0)."""
        return -self.current_density if self.direction == PLATE else self.current_density


@dataclass(frozen=True)
class Potentiostatic(Step):
    potential: float = 0.0  # V vs reference
    duration: float = 0.0  # s
    i_limit: float = 100.0  # A/m^2, magnitude; reaching it ends the step
    sample_period: float = 1.0
    stop_on: tuple[str, ...] = (SHORT_CIRCUIT, CURRENT_LIMIT)
    kind: ClassVar[str] = "potentiostatic"


@dataclass(frozen=True)
class Eis(Step):
    spec: EisSpec = field(default=None)  # type: ignore[assignment]
    kind: ClassVar[str] = "eis"


@dataclass(frozen=True)
class Loop(Step):
    """Repeat ``steps`` for ``cycles`` cycles; a stop condition listed in ``until`` ends the loop (the
    protocol goes on after it) instead of the whole protocol."""

    steps: tuple[Step, ...] = ()
    cycles: int = 1
    until: tuple[str, ...] = ()
    kind: ClassVar[str] = "loop"


@dataclass(frozen=True)
class Protocol:
    name: str
    steps: tuple[Step, ...]
    description: str = ""
    source_text: str = ""
    source_path: str = ""
    cell_path: str | None = None  # default cell file, resolved relative to the protocol file
    short_circuit: ShortCircuitCriteria = ShortCircuitCriteria()
    overrides: tuple[tuple[str, object], ...] = ()  # --set values applied to source_text
    interlocks: tuple[InterlockSpec, ...] = ()

    def walk(self) -> list[Step]:
        """Every step, loops expanded once (for validation)."""
        out: list[Step] = []

        def visit(steps: tuple[Step, ...]) -> None:
            for s in steps:
                out.append(s)
                if isinstance(s, Loop):
                    visit(s.steps)

        visit(self.steps)
        return out
