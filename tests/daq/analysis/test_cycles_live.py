"""Per-cycle rows computed while a run is recorded equal the stored /analysis/cycles table, appear as
each cycle completes, and hold no more than the samples of the cycle still open."""

from __future__ import annotations

import json

import numpy as np
import pytest

from daq.analysis.cycles import CHUNK, CYCLE_DTYPE
from daq.analysis.cycles_live import LiveCycles, last_steps_of
from daq.gui.plan import Plan
from daq.storage.reader import open_run
from tests.conftest import EXAMPLES, run_sim

pytestmark = pytest.mark.timeout(120)

BLOCK = 997  # samples per block: cuts nowhere near the stored table's slices (multiples of CHUNK)


@pytest.fixture(scope="module")
def cycling(tmp_path_factory):
    """20 cycles of 3800 samples after a 3600-sample rest: more than one CHUNK of samples."""
    out = tmp_path_factory.mktemp("live") / "cycling.h5"
    assert run_sim(EXAMPLES / "asymmetric_cycling.toml", out, overrides={"cycles": 20}).outcome == "completed"
    return out


@pytest.fixture(scope="module")
def shorted(tmp_path_factory):
    out = tmp_path_factory.mktemp("live") / "short.h5"
    overrides = {
        "cycles": 20,
        "steps.2.steps.1.current_density": "9 mA/cm^2",
        "steps.2.steps.2.current_density": "1 mA/cm^2",
    }
    assert run_sim(EXAMPLES / "asymmetric_cycling.toml", out, 83, overrides=overrides).outcome == "short_circuit"
    return out


def replay(path, planned: bool):
    """Feed a run file to LiveCycles as a live view receives it: blocks of samples, and each step's row
    right after the block holding its last sample. Returns the live table, the stored table, the rows
    present after each block, the most samples held, and the number of samples in each cycle."""
    with open_run(path) as run:
        ts = {name: run.column(name) for name in ("t", "cycle", "step", "I", "Q", "E_we", "E_cell")}
        steps = run.f["steps"][()]
        stored = run.f["analysis/cycles"][()]
        area = float(run.cell["electrodes.working_area"])
        plan = Plan.from_resolved(json.loads(run.f["protocol/resolved"][()]))
    live = LiveCycles(area, "E_we", last_steps_of(plan.steps) if planned else None)
    n, next_step, rows_after, held = len(ts["t"]), 0, [], 0
    for lo in range(0, n, BLOCK):
        live.add_samples({name: col[lo : lo + BLOCK] for name, col in ts.items()})
        held = max(held, live.held)
        t_last = ts["t"][min(n, lo + BLOCK) - 1]
        while next_step < len(steps) and steps[next_step]["t_end"] <= t_last:
            live.add_step({name: steps[next_step][name] for name in steps.dtype.names})
            next_step += 1
        held = max(held, live.held)
        rows_after.append((min(n, lo + BLOCK), len(live.rows)))
    live.finish()
    return live, stored, rows_after, held, np.bincount(ts["cycle"])


def assert_same(live_rows, stored):
    assert len(live_rows) == len(stored)
    for name in CYCLE_DTYPE.names:
        if name == "stop":
            assert [str(s) for s in live_rows[name]] == [
                s.decode() if isinstance(s, bytes) else s for s in stored[name]
            ]
        else:  # the same slices summed in the same order: equal to the last bit
            assert np.array_equal(live_rows[name], stored[name], equal_nan=True), name


@pytest.mark.parametrize("planned", [True, False])
def test_live_rows_equal_the_stored_table(cycling, planned):
    live, stored, rows_after, held, per_cycle = replay(cycling, planned)
    assert sum(per_cycle) > CHUNK  # cycles straddle the stored table's slices
    assert len(stored) == 20
    assert_same(live.rows, stored)


def test_a_row_appears_when_its_cycle_completes(cycling):
    live, stored, rows_after, held, per_cycle = replay(cycling, planned=True)
    with open_run(cycling) as run:
        cyc = run.column("cycle")
    ends = {c: int(np.flatnonzero(cyc == c)[-1]) + 1 for c in range(1, 21)}  # samples up to each cycle's end
    for received, rows in rows_after:
        complete = sum(1 for end in ends.values() if end <= received)
        assert rows == complete, (received, rows, complete)  # never early, never a block late
    # at most one open cycle and a block are held, never the run
    assert held <= per_cycle[1:].max() + 2 * BLOCK
    assert held < sum(per_cycle) / 10


def test_without_a_plan_the_next_cycle_completes_a_cycle(cycling):
    live, stored, rows_after, held, per_cycle = replay(cycling, planned=False)
    first_of_2 = 3600 + 3800  # rest, then cycle 1
    before = [rows for received, rows in rows_after if received <= first_of_2]
    after = [rows for received, rows in rows_after if received > first_of_2 + BLOCK]
    assert max(before) == 0 and min(after) >= 1
    assert [rows for received, rows in rows_after][-1] == 19  # the last cycle waits for the run's end


def test_a_short_circuit_cycle_after_finish(shorted):
    live, stored, rows_after, held, per_cycle = replay(shorted, planned=True)
    assert_same(live.rows, stored)
    assert live.rows["stop"][-1] == "short_circuit"
    assert live.held == 0
