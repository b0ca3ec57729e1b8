"""BioLogic samples as the run sees them: E_cell where the rows carry Ece, one time order across a technique
chain, and long open-circuit and operando reads on a virtual clock through the resilient wrapper."""

from __future__ import annotations

import numpy as np
import pytest

from daq.core.capabilities import EisRequest
from daq.core.clock import VirtualClock
from daq.core.samples import SampleBlock
from daq.models.cell import load_cell
from drivers import biologic_layouts as L
from drivers import biologic_tables as T
from drivers.biologic import BiologicPotentiostat
from drivers.resilient import ResilientPotentiostat
from simulators import eclib as E
from simulators.cell import SimulatedCell
from simulators.potentiostat import SimulatedPotentiostat

pytestmark = pytest.mark.timeout(60)

CELL = "protocols/examples/cells/li6ps5cl_99.toml"
FAMILIES = [(16, T.PREMIUM), (5, T.ESSENTIAL), (33, T.DIGICORE)]
IDS = ["SP-300", "VMP3", "VMP-3e"]


class Reports:
    def __init__(self):
        self.events = []

    def report(self, kind, message, data):
        self.events.append((kind, message))


def make(device_code):
    spec = load_cell(CELL)
    clock = VirtualClock()
    cell = SimulatedCell(spec)
    emu = E.EClibEmulator(clock, {0: cell}, device_code=device_code)
    driver = BiologicPotentiostat("USB0", 0, clock=clock, dll=emu.dll, safe_timeout=3.0)
    reports = Reports()
    return spec, clock, cell, emu, ResilientPotentiostat(driver, clock, reporter=reports), reports


def read_every(pstat, clock, seconds, interval) -> SampleBlock:
    blocks, t_end = [], clock.now() + seconds
    while clock.now() < t_end - 1e-9:
        clock.sleep(min(interval, t_end - clock.now()))
        blocks.append(pstat.read())
    return SampleBlock.concat(blocks)


def test_time_order_repairs_single_precision_rounding_only():
    t = np.array([10.0, 10.0 - 2e-6, 11.0, 12.0])  # the second: a float32 time a rounding step behind
    fixed = L.in_time_order(t, 9.0)
    assert np.all(np.diff(fixed) > 0) and fixed[1] - 10.0 < 1e-12 and list(fixed[2:]) == [11.0, 12.0]
    assert L.in_time_order(np.array([10.0 - 1e-6]), 10.0)[0] > 10.0  # behind the previous read's last sample
    far = L.in_time_order(np.array([5.0, 6.0]), 10.0)  # seconds behind: corrupt, left for the caller to judge
    assert list(far) == [5.0, 6.0]
    ordered = np.arange(0.0, 5.0, 0.5)
    assert np.array_equal(L.in_time_order(ordered, -1.0), ordered)


def test_cell_voltage_only_where_the_row_carries_ece():
    ewe, ece = np.array([0.10, 0.20]), np.array([-0.05, 0.01])
    assert np.allclose(L.cell_voltage({"Ewe": ewe, "Ece": ece}), [0.15, 0.19])
    assert np.all(np.isnan(L.cell_voltage({"Ewe": ewe})))


@pytest.mark.parametrize("device_code, family", FAMILIES, ids=IDS)
def test_long_open_circuit_reads_keep_every_sample(device_code, family):
    """A virtual-clock run reads 256 s at a time: every open-circuit sample must reach the run."""
    spec, clock, cell, emu, pstat, reports = make(device_code)
    pstat.connect()
    pstat.open_circuit(1.0)
    block = read_every(pstat, clock, 1280.0, 256.0)
    assert len(block) == 1281 and not reports.events
    assert np.all(np.diff(block.t) > 0) and np.all(np.abs(block.E_we) < 5e-3)
    if family == T.PREMIUM:  # SP-300 OCV rows: Ewe alone, so the cell voltage is not measured
        assert np.all(np.isnan(block.E_cell))
    else:  # VMP3 family OCV rows carry Ece: E_cell = Ewe - Ece
        assert np.all(np.isfinite(block.E_cell)) and np.all(np.abs(block.E_cell) < 5e-3)


@pytest.mark.parametrize("device_code, family", FAMILIES, ids=IDS)
def test_operando_sweep_samples_in_one_time_order_with_the_cell_voltage(device_code, family):
    spec, clock, cell, emu, pstat, reports = make(device_code)
    pstat.connect()
    current = -spec.current(10 * 10.0)  # 10 mA/cm^2 plating
    pstat.apply_current(current, -2, 2, 1.0, duration=300.0)
    before = read_every(pstat, clock, 90.0, 30.0)
    freqs = np.logspace(6, 0, 13)
    points = list(pstat.impedance(EisRequest("galvanostatic", freqs, 5e-6, current)))
    after = read_every(pstat, clock, 300.0 - clock.now() + 5.0, 30.0)
    assert len(points) == 13 and not reports.events  # no sample refused, no dead-man stop
    block = SampleBlock.concat([before, after])
    assert np.all(np.diff(block.t) > 0)
    sweep = np.isfinite(block.E_cell)  # the sweep's DC levels (process-1 rows carry Ece on every family)
    assert sweep.sum() == 13 and np.all(np.isnan(block.E_cell[~sweep]))  # step rows: Ewe and I only
    ref_clock = VirtualClock()
    sim = SimulatedPotentiostat(SimulatedCell(spec), ref_clock)
    sim.connect()
    sim.apply_current(current, -2, 2, 0.1, duration=300.0)
    ref = read_every(sim, ref_clock, 300.0, 30.0)
    expected = np.interp(block.t[sweep], ref.t, ref.E_cell)
    np.testing.assert_allclose(block.E_cell[sweep], expected, rtol=0.03)  # WE and CE overpotentials
    assert np.all(np.abs(block.E_cell[sweep]) - np.abs(block.E_we[sweep]) > 0.01)  # the counter electrode adds
