"""A current source cannot drive a cell beyond its compliance voltage: the simulated potentiostat clamps
there, flags the overload, and the engine ends the step at that first sample with voltage_limit."""

from __future__ import annotations

import numpy as np
import pytest

from daq.core.clock import VirtualClock
from daq.core.errors import InstrumentError
from daq.core.samples import FLAG_HW_LIMIT, FLAG_OVERLOAD
from daq.models.cell import load_cell
from daq.storage.reader import open_run
from simulators.cell import SimulatedCell
from simulators.potentiostat import SIM_CAPABILITIES, SimulatedPotentiostat
from tests.conftest import EXAMPLES, cell_file, run_sim

COMPLIANCE = SIM_CAPABILITIES.max_voltage  # 12 V
MA_CM2 = 10.0  # A/m^2 per mA/cm^2


def source(density_ma_cm2: float, window: tuple[float, float], seconds: float = 5.0):
    cell = load_cell(cell_file(99))
    clock = VirtualClock()
    pstat = SimulatedPotentiostat(SimulatedCell(cell), clock)
    pstat.connect()
    current = -density_ma_cm2 * MA_CM2 * cell.electrodes.working_area
    pstat.apply_current(current, *window, 1.0)
    clock.sleep(seconds)
    return pstat.read(), current


def test_900_ma_cm2_clamps_at_the_compliance_and_trips_the_window():
    block, current = source(900, (-2.0, 2.0))
    assert len(block) == 5 and np.all(block.I[1:] == 0)  # the output went off at the first sample
    assert not np.any(block.flags[1:])
    assert np.all(np.abs(block.E_cell) <= COMPLIANCE) and np.all(np.abs(block.E_we) <= COMPLIANCE)
    assert abs(block.E_cell[0]) == pytest.approx(COMPLIANCE)  # held at the compliance, not beyond
    assert block.flags[0] & FLAG_OVERLOAD and block.flags[0] & FLAG_HW_LIMIT
    assert 0 < abs(block.I[0]) < abs(current)  # the source could not deliver the set current


def test_a_current_within_the_compliance_is_not_flagged():
    block, current = source(1, (-2.0, 2.0))
    assert len(block) == 5
    assert not np.any(block.flags) and np.all(block.I == current)
    assert np.all(np.abs(block.E_cell) < 1.0)


def test_the_engine_stops_the_step_at_the_first_clamped_sample(tmp_path):
    overrides = {"steps.1.duration": "10 s", "steps.2.current_density": "900 mA/cm^2"}
    result = run_sim(EXAMPLES / "ccd_single_plating.toml", tmp_path / "r.h5", 99, overrides)
    assert result.outcome == "voltage_limit"
    assert "the instrument's own limit switched the output off" in result.message
    with open_run(result.path) as run:
        ts, steps = run.timeseries(), run.steps()
    plate = ts[(ts.step == 1) & (ts.I != 0)]
    assert len(plate) == 1  # one sample with current: the one that tripped
    assert plate.t.iloc[0] == 11.0  # the first sample of the plating step (after 10 s of rest)
    assert int(plate["flags"].iloc[0]) == FLAG_HW_LIMIT | FLAG_OVERLOAD
    assert ts.E_cell.abs().max() <= COMPLIANCE and ts.E_we.abs().max() <= COMPLIANCE
    assert list(steps.end_reason)[:2] == ["time_reached", "voltage_limit"]
    assert (ts[ts.t > plate.t.iloc[0]].I == 0).all()


@pytest.mark.parametrize("method", ["apply_current", "apply_potential"])
def test_a_step_of_no_duration_is_refused_as_the_instruments_refuse_it(method):
    # The drivers (Keithley 2450, Gamry, BioLogic) refuse a step whose duration is not above zero; the
    # simulated potentiostat does the same, so a run on the simulator meets what a run on them meets.
    pstat = SimulatedPotentiostat(SimulatedCell(load_cell(cell_file(99))), VirtualClock())
    pstat.connect()
    with pytest.raises(InstrumentError, match=r"step duration -7.2e-16 s must be positive$"):
        getattr(pstat, method)(-1e-4, -2.0, 2.0, 1.0, -7.2e-16)
    assert pstat.mode == "off" and len(pstat.read()) == 0
