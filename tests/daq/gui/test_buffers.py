"""Live-view buffers and progress estimates (no Qt needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from daq.engine.runner import resolved
from daq.gui.buffers import TraceBuffer
from daq.gui.plan import Plan, format_duration, progress, step_estimate, sweep_time
from protocols.loader import load_protocol
from tests.conftest import EXAMPLES

AREA = 7.853981633974482e-07  # m^2, 1 mm working electrode


def block(t0: float, n: int, step: int = 0, current: float = -7e-5, q0: float = 0.0) -> dict[str, np.ndarray]:
    t = t0 + np.arange(n, dtype=float)
    return {
        "t": t,
        "step": np.full(n, step, np.int32),
        "cycle": np.zeros(n, np.int32),
        "E_we": -0.1 + 0.01 * np.sin(t / 50),
        "E_cell": -0.2 + 0.01 * np.sin(t / 50),
        "I": np.full(n, current),
        "Q": q0 + current * (np.arange(n) + 1.0),
        "pressure": np.full(n, 7e6),
    }


def test_appends_grow_preallocated_columns():
    buf = TraceBuffer(AREA, initial=1024)
    for k in range(10):
        buf.append(block(500.0 * k, 500, q0=-7e-5 * 500 * k))
    assert len(buf) == buf.received == 5000
    assert buf.n_envelope == 0  # below the cap: everything at full resolution
    assert np.array_equal(buf.column("t"), np.arange(5000.0))
    assert buf.nbytes < buf.max_nbytes


def test_capacity_is_charge_throughput_per_area():
    buf = TraceBuffer(AREA)
    buf.append(block(0.0, 100, step=0, current=-7e-5))  # plate 100 s
    buf.append(block(100.0, 50, step=1, current=+7e-5))  # strip 50 s: Q restarts in the new step
    expected = 7e-5 * 150 / AREA
    assert buf.last("capacity") == pytest.approx(expected)
    assert np.all(np.diff(buf.column("capacity")) >= 0)


def test_memory_is_bounded_and_extremes_survive_folding():
    buf = TraceBuffer(AREA, full_cap=4096, envelope_cap=2048, factor=64, initial=512)
    spike_at = 1234.0
    for k in range(200):  # 200 x 1000 = 200k samples through a buffer that holds 6144 rows
        b = block(1000.0 * k, 1000)
        if k == 1:
            b["E_we"][np.searchsorted(b["t"], spike_at)] = -1.5  # a short spike long ago
        buf.append(b)
    assert buf.received == 200_000
    assert len(buf) <= 4096 + 2048
    assert buf.nbytes <= buf.max_nbytes
    t = buf.column("t")
    assert np.all(np.diff(t) >= 0), "time must stay monotonic for clip-to-view"
    assert buf.column("E_we").min() == pytest.approx(-1.5)
    assert t[np.argmin(buf.column("E_we"))] == spike_at
    # the newest samples are still at full resolution
    assert np.array_equal(t[-1000:], 199_000.0 + np.arange(1000))


def test_one_huge_block_is_folded_too():
    buf = TraceBuffer(AREA, full_cap=4096, envelope_cap=2048, factor=64)
    buf.append(block(0.0, 50_000))
    assert buf.received == 50_000 and len(buf) <= 4096 + 2048
    assert buf.last("t") == 49_999.0


def test_plan_estimates_from_the_asymmetric_cycling_example():
    protocol = load_protocol(EXAMPLES / "asymmetric_cycling.toml")
    plan = Plan.from_resolved(json.loads(json.dumps(resolved(protocol))))
    cycles = [s for s in plan.steps if s.label == "plate"]
    assert len(cycles) == 100 and cycles[-1].cycle == 100 and cycles[-1].cycles == 100
    per_cycle = 0.5 * 36000 / 90 + 0.5 * 36000 / 0.5  # 200 s plating + 10 h stripping
    assert plan.total == pytest.approx(3600 + 100 * per_cycle)
    # one hour into the first plating step of cycle 1: rest done, 100 cycles minus 1 h of plating left
    i = cycles[0].index
    assert plan.remaining(i, 100.0) == pytest.approx(plan.total - 3600 - 100.0)
    assert plan.remaining(len(plan), 0.0) == 0.0
    assert progress(3600.0, plan.total - 3600.0) == pytest.approx(3600 / plan.total)


def test_step_estimates():
    assert step_estimate({"kind": "galvanostatic", "capacity": 18000.0, "current_density": 90.0}) == 200.0
    assert (
        step_estimate({"kind": "galvanostatic", "capacity": 18000.0, "current_density": 90.0, "duration": 60.0}) == 60.0
    )
    assert step_estimate({"kind": "rest", "duration": 600.0}) == 600.0
    spec = {"f_start": 1e6, "f_end": 1.0, "points_per_decade": 10}
    assert step_estimate({"kind": "eis", "spec": spec}) == pytest.approx(sweep_time(spec)) and sweep_time(spec) > 12
    assert format_duration(90061) == "1 d 1 h" and format_duration(3725) == "1 h 02 min"
