"""One channel's fault never stops another: two channels, two engines, two threads, two files."""

import threading

import pytest

from daq.core.clock import VirtualClock
from daq.engine.runner import run_protocol
from daq.models.cell import load_cell
from daq.storage.reader import open_run
from drivers.resilient import ResilientPotentiostat, ResilientTransducer
from protocols.loader import load_protocol
from simulators.faults import POTENTIOSTAT_KINDS, FaultPlan, faulty_rig
from simulators.rig import simulated_rig
from tests.conftest import CELLS, EXAMPLES


def channel(out, plan, results, name):
    protocol = load_protocol(
        EXAMPLES / "asymmetric_cycling.toml",
        {"steps.1.duration": "10 min", "steps.2.cycles": 2, "steps.2.steps.2.current_density": "1 mA/cm^2"},
    )
    cell = load_cell(CELLS / "li6ps5cl_99.toml")
    clock = VirtualClock()
    _, p, t = simulated_rig(cell, clock)
    fp, ft, log = faulty_rig(p, t, clock, plan)
    try:
        results[name] = (
            run_protocol(
                protocol,
                cell,
                ResilientPotentiostat(fp, clock),
                clock,
                out,
                transducer=ResilientTransducer(ft, clock),
                block_interval=30.0,
            ),
            log,
            p,
        )
    except BaseException as exc:  # noqa: BLE001 - the test reports it
        results[name] = exc


def test_a_channel_lost_for_good_does_not_stop_the_other(tmp_path):
    results: dict = {}
    plans = {
        "A": FaultPlan(dead_after=1500.0),  # instrument of channel A stops answering for good
        "B": FaultPlan(rate=0.1, kinds=POTENTIOSTAT_KINDS, seed=5),
    }  # B rides out transient faults
    threads = [threading.Thread(target=channel, args=(tmp_path / f"{n}.h5", plans[n], results, n)) for n in "AB"]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not any(th.is_alive() for th in threads)
    assert not isinstance(results["A"], BaseException) and not isinstance(results["B"], BaseException)
    a, _, _ = results["A"]
    b, log_b, _ = results["B"]
    assert a.status == "failed" and a.outcome == "fault" and "not answering" in a.message
    assert b.status == "completed" and b.outcome == "completed" and b.cycles == 2
    assert log_b.count() > 5  # B did see faults of its own
    with open_run(tmp_path / "A.h5") as run:
        assert run.status == "failed" and "instrument_lost" in set(run.events().kind)
        assert run.timeseries().t.iloc[-1] >= 1400
    with open_run(tmp_path / "B.h5") as run:
        steps = run.steps()
        area = run.cell["electrodes.working_area"]
        assert len(steps) == 1 + 2 * 2
        assert abs(steps.Q.iloc[1:]).div(area * 36000).to_list() == pytest.approx([0.5] * 4, rel=1e-6)
