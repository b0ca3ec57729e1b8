"""The same run on every clock: virtual time, scaled wall time (60x, 3600x) and 3600x with both cores busy.

Stop conditions, short detection and capacity are judged on the instrument's sample times, so the step
table, the stop reasons and the outcome must not depend on when the PC happened to read a block, and each
step's charge must agree with the virtual-clock run to within one sample period's charge.
"""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest

from daq.core.clock import Clock, ScaledClock, VirtualClock
from daq.engine.runner import run_protocol
from daq.models.cell import load_cell
from daq.storage.reader import open_run
from protocols.loader import load_protocol
from simulators.rig import simulated_rig
from tests.conftest import EXAMPLES, cell_file

# Half cycles of 0.05 mAh/cm^2 at the protocol's 9 and 0.05 mA/cm^2 (20 s and 1 h), 6 cycles.
ASYM = (
    "asymmetric_cycling.toml",
    {"steps.1.duration": "60 s", "steps.2.cycles": 6}
    | {f"steps.2.steps.{i}.capacity": "0.05 mAh/cm^2" for i in (1, 2)},
)
# At 60x real time the same protocol with 0.005 mAh/cm^2 half cycles, 2 cycles (13 s of wall time).
ASYM_SHORT = (
    "asymmetric_cycling.toml",
    {"steps.1.duration": "10 s", "steps.2.cycles": 2}
    | {f"steps.2.steps.{i}.capacity": "0.005 mAh/cm^2" for i in (1, 2)},
)
CCD = ("ccd_single_plating.toml", {"steps.1.duration": "60 s"})
CCD_SHORT = ("ccd_single_plating.toml", {"steps.1.duration": "10 s", "steps.2.capacity": "2 mAh/cm^2"})


@contextmanager
def busy_cores(n: int = 2):
    """Processes spinning on every core, as a starved PC would be."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def run(case: tuple[str, dict], density: int, clock: Clock, out):
    name, overrides = case
    protocol = load_protocol(EXAMPLES / name, overrides)
    cell = load_cell(cell_file(density))
    _, pstat, transducer = simulated_rig(cell, clock)
    result = run_protocol(protocol, cell, pstat, clock, out, transducer=transducer, transcript=False)
    with open_run(result.path) as f:
        steps = f.steps()
        ts = f.timeseries()
    return result, steps, ts


def sample_charge(ts, steps) -> np.ndarray:
    """Per step: the charge of one sample at the step's largest current (C)."""
    out = []
    for index in steps["index"]:
        part = ts[ts.step == index]
        dt = float(np.median(np.diff(part.t))) if len(part) > 1 else 1.0
        out.append(float(np.abs(part.I).max()) * dt if len(part) else 0.0)
    return np.array(out)


def assert_same(virtual, other) -> None:
    (r0, s0, ts0), (r1, s1, _) = virtual, other
    assert r1.outcome == r0.outcome, r1.message
    table = ["index", "kind", "label", "cycle", "end_reason"]
    assert s1[table].to_dict("records") == s0[table].to_dict("records")
    tolerance = sample_charge(ts0, s0) * (1 + 1e-6) + 1e-15
    stopped = (s0.end_reason == "short_circuit").to_numpy()
    # A step ended by a short keeps flowing until the engine's next poll on a wall clock; its charge
    # at the tripping sample is in the short record and compared below.
    assert np.all(np.abs(s1.Q.to_numpy() - s0.Q.to_numpy())[~stopped] <= tolerance[~stopped])
    if r0.short is not None:
        assert r1.short is not None
        area_tol = tolerance[stopped].max() / load_area(r0)
        assert abs(r1.short["capacity"] - r0.short["capacity"]) <= area_tol


def load_area(result) -> float:
    with open_run(result.path) as f:
        return float(f.cell["electrodes.working_area"])


CASES = [
    pytest.param(ASYM, 99, 3600, False, id="asymmetric-99-3600x"),
    pytest.param(ASYM, 83, 3600, False, id="asymmetric-83-3600x"),
    pytest.param(ASYM, 99, 3600, True, id="asymmetric-99-3600x-busy"),
    pytest.param(ASYM_SHORT, 99, 60, False, id="asymmetric-99-60x"),
    pytest.param(CCD, 83, 3600, False, id="ccd-83-3600x"),
    pytest.param(CCD, 99, 3600, False, id="ccd-99-3600x"),
    pytest.param(CCD, 83, 3600, True, id="ccd-83-3600x-busy"),
    pytest.param(CCD, 99, 3600, True, id="ccd-99-3600x-busy"),
    pytest.param(CCD, 83, 60, False, id="ccd-83-60x"),
    pytest.param(CCD_SHORT, 99, 60, False, id="ccd-99-60x"),
]


@pytest.mark.parametrize("case,density,speed,busy", CASES)
def test_same_outcome_on_every_clock(tmp_path, case, density, speed, busy):
    virtual = run(case, density, VirtualClock(), tmp_path / "virtual.h5")
    if busy:
        with busy_cores():
            scaled = run(case, density, ScaledClock(speed), tmp_path / "scaled.h5")
    else:
        scaled = run(case, density, ScaledClock(speed), tmp_path / "scaled.h5")
    assert_same(virtual, scaled)


def test_expected_outcomes_of_the_cases(tmp_path):
    """The comparison above means something: the 83 % cell shorts in CCD plating, the 99 % cell does not,
    and the asymmetric cycling of the 99 % cell runs its 6 cycles to capacity."""
    r83, s83, _ = run(CCD, 83, VirtualClock(), tmp_path / "a.h5")
    r99, s99, _ = run(CCD, 99, VirtualClock(), tmp_path / "b.h5")
    ra, sa, _ = run(ASYM, 99, VirtualClock(), tmp_path / "c.h5")
    assert r83.outcome == "short_circuit" and "short_circuit" in set(s83.end_reason)
    assert r99.outcome == "completed" and list(s99.end_reason) == ["time_reached", "capacity_reached"]
    assert ra.outcome == "completed" and len(sa) == 13 and int(sa.cycle.max()) == 6
    area = load_area(ra)
    np.testing.assert_allclose(np.abs(sa.Q.to_numpy()[1:]) / area / 36000, 0.05, rtol=1e-9)
