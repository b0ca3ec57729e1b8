"""A complete simulated rig for one cell: simulated cell, potentiostat and stack-pressure transducer."""

from __future__ import annotations

import numpy as np

from daq.core.capabilities import Calibration, InstrumentInfo, PressureReading, PressureSensor
from daq.core.clock import Clock
from daq.models.cell import Cell
from drivers.registry import BuildContext, InstrumentEntry, TransducerEntry
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


def simulated_channel(cell: Cell, clock: Clock) -> tuple[SimulatedPotentiostat, SimulatedTransducer]:
    """A fresh simulated cell's potentiostat and press (a campaign's channel factory)."""
    _, pstat, transducer = simulated_rig(cell, clock)
    return pstat, transducer


def simulated_rig(cell: Cell, clock: Clock) -> tuple[SimulatedCell, SimulatedPotentiostat, SimulatedTransducer]:
    sim = SimulatedCell(cell)
    return sim, SimulatedPotentiostat(sim, clock), SimulatedTransducer(sim, clock)


def _channel_cell(ctx: BuildContext) -> SimulatedCell:
    """The one simulated cell behind a channel's simulated potentiostat and press."""
    if "sim_cell" not in ctx.shared:
        ctx.shared["sim_cell"] = SimulatedCell(ctx.cell)
    return ctx.shared["sim_cell"]


def _build_potentiostat(ctx: BuildContext) -> SimulatedPotentiostat:
    return SimulatedPotentiostat(_channel_cell(ctx), ctx.clock, name=f"{ctx.name}:{ctx.channel}")


def _build_transducer(ctx: BuildContext) -> SimulatedTransducer:
    sim = SimulatedTransducer(_channel_cell(ctx), ctx.clock, **ctx.options)
    sim.pressed_area = ctx.pressed_area
    return sim


POTENTIOSTAT_ENTRY = InstrumentEntry(_build_potentiostat)
TRANSDUCER_ENTRY = TransducerEntry(_build_transducer, frozenset({"noise"}), needs_port=False)
