"""A complete simulated rig for one cell: simulated cell, potentiostat and stack-pressure transducer."""

from __future__ import annotations

import numpy as np

from daq.core.capabilities import Calibration, InstrumentInfo, PressureReading, PressureSensor
from daq.core.clock import Clock
from daq.models.cell import Cell
from simulators.cell import SimulatedCell
from simulators.potentiostat import SimulatedPotentiostat


class SimulatedTransducer(PressureSensor):
    """Reads the simulated press: the cell's stack pressure with a little noise (force on the pressed area)."""

    def __init__(self, cell: SimulatedCell, clock: Clock, noise: float = 0.01e6):
        self.cell, self.clock, self.noise = cell, clock, noise
        self.pressed_area = cell.spec.pressed_area
        self.calibration = Calibration(reference="simulated")
        self._rng = np.random.default_rng([cell.spec.simulation.seed, 2])

    def connect(self) -> InstrumentInfo:
        return InstrumentInfo("simulated", "SimPress-1", "0", "1.0", "simulators.rig", "sim://press")

    def read(self) -> PressureReading:
        p = self.cell.stack_pressure + float(self._rng.normal(0, self.noise))
        return PressureReading(self.clock.now(), p, p * self.pressed_area)

    def close(self) -> None:
        pass


def simulated_rig(cell: Cell, clock: Clock) -> tuple[SimulatedCell, SimulatedPotentiostat, SimulatedTransducer]:
    sim = SimulatedCell(cell)
    return sim, SimulatedPotentiostat(sim, clock), SimulatedTransducer(sim, clock)
