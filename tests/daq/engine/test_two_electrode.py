"""A symmetric (two-electrode) cell on an instrument that reports no separate cell voltage (BioLogic CP
rows carry no Ece): the short-circuit detector judges E_we, which two-electrode wiring makes the cell
voltage, and finds the short where the cell voltage shows it."""

from __future__ import annotations

import numpy as np
import pytest

from daq.core.clock import VirtualClock
from daq.core.samples import SampleBlock
from daq.engine.runner import run_protocol
from daq.models.cell import load_cell
from protocols.loader import load_protocol
from simulators.cell import SimulatedCell
from simulators.potentiostat import SimulatedPotentiostat
from tests.conftest import EXAMPLES, cell_file

SHORTS = {"current_density": "1 mA/cm^2"}  # the 83 % disc shorts below 8 mAh/cm^2 at 1 mA/cm^2


class TwoLeadPotentiostat(SimulatedPotentiostat):
    """Two-electrode wiring as a BioLogic CP row reports it: E_we is the cell voltage, no E_cell."""

    def read(self) -> SampleBlock:
        block = super().read()
        return SampleBlock(block.t, block.E_cell.copy(), np.full(len(block), np.nan), block.I, block.flags, block.aux)

    def rewind(self, t: float) -> SampleBlock:
        block = super().rewind(t)
        return SampleBlock(block.t, block.E_cell.copy(), np.full(len(block), np.nan), block.I, block.flags, block.aux)


def _run(tmp_path, cls, name):
    protocol = load_protocol(EXAMPLES / "ccd_single_plating.toml", SHORTS)
    cell = load_cell(cell_file(83), {"cell.configuration": "symmetric"})
    clock = VirtualClock()
    pstat = cls(SimulatedCell(cell), clock)
    return run_protocol(protocol, cell, pstat, clock, tmp_path / name)


def test_short_found_on_e_we_when_the_cell_voltage_is_not_measured(tmp_path):
    measured = _run(tmp_path, SimulatedPotentiostat, "measured.h5")
    two_leads = _run(tmp_path, TwoLeadPotentiostat, "two-leads.h5")
    assert measured.outcome == "short_circuit"
    assert two_leads.outcome == "short_circuit"
    assert two_leads.short["capacity"] == pytest.approx(measured.short["capacity"], rel=1e-9)
