"""A dummy cell on an emulated channel: the R_s + (R_p || C) network of daq.models.dummy_cell.

It answers the emulated instruments as a SimulatedCell does (advance, rest, current_for_potential,
impedance, snapshot/restore), so every emulator drives it unchanged. Exact step response of the RC
branch, no noise of its own and no ageing: its values are what the self test
checks the instrument against.

``gain_error`` models a faulty instrument: the current it really sources is ``gain_error`` times the
current it reports (a drifted current range), which only a measurement on known values reveals.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from daq.models.cell import Cell
from daq.models.dummy_cell import DummyCellSpec
from simulators.cell import Response


@dataclass
class DummyState:
    age: float = 0.0  # s
    v_c: float = 0.0  # V across the parallel branch
    shorted: bool = False  # a resistor network never shorts; read by code written for cells
    last_current: float = 0.0  # A really flowing at the last advance (0 at rest)


class DummyCell:
    """A resistor or Randles network with a SimulatedCell's interface."""

    def __init__(self, dummy: DummyCellSpec, cell: Cell, gain_error: float = 1.0):
        self.dummy, self.spec, self.gain_error = dummy, cell, gain_error
        self.area = cell.electrodes.working_area
        self.stack_pressure = dummy.pressure if dummy.pressure is not None else cell.stack_pressure
        self.rng = np.random.default_rng([cell.simulation.seed, 7])
        self.state = DummyState()

    def advance(self, current: np.ndarray, dt: np.ndarray) -> Response:
        """Pass ``current[k]`` (A) during ``dt[k]`` (s); potentials at the ends of the samples."""
        current = np.asarray(current, dtype=float) * self.gain_error
        dt = np.asarray(dt, dtype=float)
        n = len(current)
        r_p, tau = self.dummy.parallel_resistance or 0.0, self.dummy.time_constant
        v_c = np.empty(n)
        v = self.state.v_c
        for k in range(n):  # the RC branch relaxes towards I R_p with time constant tau
            target = current[k] * r_p
            v = target + (v - target) * (math.exp(-dt[k] / tau) if tau > 0 else 0.0)
            v_c[k] = v
        e = current * self.dummy.series_resistance + v_c  # resistors: the instrument adds its own noise
        if n:
            self.state.v_c = float(v_c[-1])
            self.state.age += float(dt.sum())
            self.state.last_current = float(current[-1])
        return Response(e, e.copy(), None)

    def rest(self, dt: float) -> None:
        """Open circuit: the capacitor discharges through R_p."""
        tau = self.dummy.time_constant
        self.state.v_c *= math.exp(-dt / tau) if tau > 0 else 0.0
        self.state.age += dt
        self.state.last_current = 0.0

    def current_for_potential(self, e_we: float) -> float:
        """Current (A) the instrument reports while holding ``e_we`` at steady state."""
        return e_we / self.dummy.dc_resistance / self.gain_error

    def impedance(self, frequencies: np.ndarray, dc_current: float = 0.0) -> np.ndarray:
        """The network's impedance as the (possibly faulty) instrument reports it."""
        return self.dummy.impedance(frequencies) * self.gain_error

    def snapshot(self) -> tuple[DummyState, dict]:
        return copy.copy(self.state), copy.deepcopy(self.rng.bit_generator.state)

    def restore(self, snap: tuple[DummyState, dict]) -> None:
        self.state = copy.copy(snap[0])
        self.rng.bit_generator.state = snap[1]
