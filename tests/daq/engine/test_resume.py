"""An interrupted run continues in the same file from where it stopped, to the right total capacity."""

import numpy as np
import pytest

from daq.core.clock import VirtualClock
from daq.core.errors import DataFileError
from daq.engine.runner import rebuild, resume_protocol
from daq.storage.reader import open_run
from simulators.rig import simulated_rig
from tests.conftest import EXAMPLES, kill_run, run_sim


def resume(path):
    protocol, cell, point, _ = rebuild(path)
    clock = VirtualClock()
    _, pstat, transducer = simulated_rig(cell, clock)
    return resume_protocol(path, pstat, clock, transducer), point


def test_resume_mid_plating_reaches_total_capacity(tmp_path):
    path = kill_run(tmp_path / "run.h5", "ccd_single_plating.toml", blocks=8)  # 600 s rest + ~1400 s of plating
    with open_run(path) as run:
        assert run.status == "interrupted"
        point = run.resume_point()
    assert point.steps_done == 1 and point.charge < 0 and point.elapsed > 0
    result, _ = resume(path)
    assert result.outcome == "completed"
    with open_run(path) as run:
        assert run.status == "completed"
        steps = run.steps()
        assert list(steps.end_reason) == ["time_reached", "capacity_reached"]
        area = run.cell["electrodes.working_area"]
        assert abs(steps.Q.iloc[1]) / area / 36000 == pytest.approx(8.0, rel=1e-6)
        ts = run.timeseries()
        assert np.all(np.diff(ts.t) > 0)  # one continuous time base across the interruption
        plate = ts[ts.step == 1]
        assert abs(plate.Q.iloc[-1]) / area / 36000 == pytest.approx(8.0, rel=1e-6)
        assert "resumed_run" in set(run.events().kind)


def test_resume_in_cycling_continues_the_cycle_count(tmp_path):
    path = kill_run(tmp_path / "run.h5", "asymmetric_cycling.toml", blocks=60, overrides={"steps.2.cycles": 4})
    with open_run(path) as run:
        cycles_before = int(run.column("cycle")[-1])
    assert cycles_before >= 1
    result, _ = resume(path)
    assert result.outcome == "completed" and result.cycles == 4
    with open_run(path) as run:
        steps = run.steps()
        assert len(steps) == 1 + 2 * 4
        assert list(steps.cycle[1:]) == [1, 1, 2, 2, 3, 3, 4, 4]
        area = run.cell["electrodes.working_area"]
        assert np.allclose(np.abs(steps.Q[1:]) / area / 36000, 0.5, rtol=1e-6)


def test_finished_runs_are_not_resumed(tmp_path):
    res = run_sim(
        EXAMPLES / "ccd_single_plating.toml",
        tmp_path / "done.h5",
        99,
        {"capacity": "0.1 mAh/cm^2"},
        cell_source=(EXAMPLES / "cells" / "li6ps5cl_99.toml").read_text(),
    )
    with pytest.raises(DataFileError, match="only interrupted runs can be resumed"):
        rebuild(res.path)
