"""The per-cycle table of a run longer than one read slice equals numpy over the whole columns."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from daq.analysis import cycles as cycles_mod
from daq.analysis.closed_run import ClosedRun, Table, table_blocks
from tests.conftest import EXAMPLES, run_sim

CYCLES = 40  # about 150,000 samples: the analysis reads them in several slices
HALF_CYCLE_KINDS = {"galvanostatic", "potentiostatic"}


@pytest.fixture(scope="module")
def long_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("long") / "cycling.h5"
    result = run_sim(EXAMPLES / "asymmetric_cycling.toml", out, 99, overrides={"steps.2.cycles": CYCLES})
    assert result.outcome == "completed" and result.cycles == CYCLES
    return out


def whole_column_table(path) -> dict[int, dict]:
    """Every value of /analysis/cycles computed from the full arrays at once."""
    with h5py.File(path, "r") as f:
        ts = {k: f["timeseries"][k][()] for k in ("t", "cycle", "step", "I", "Q", "E_we")}
        steps = f["steps"][()]
        area = f["cell"].attrs["electrodes.working_area"]
    kinds = {int(i): k.decode() for i, k in zip(steps["index"], steps["kind"])}
    t, cyc, step, cur, q, e = (ts[k] for k in ("t", "cycle", "step", "I", "Q", "E_we"))
    dt = np.diff(t, prepend=0.0)
    rows = {}
    for c in np.unique(cyc[cyc > 0]):
        idx = np.flatnonzero(cyc == c)
        half = np.array([kinds[int(s)] in HALF_CYCLE_KINDS for s in step[idx]])
        charges = np.array(
            [q[idx[step[idx] == s][-1]] for s in np.unique(step[idx]) if kinds[int(s)] in HALF_CYCLE_KINDS]
        )
        plate, strip = idx[half & (cur[idx] < 0)], idx[half & (cur[idx] > 0)]
        plated, stripped = -charges[charges < 0].sum(), charges[charges > 0].sum()
        reasons = [r.decode() for r in steps["end_reason"][steps["cycle"] == c]]
        terminal = [r for r in reasons if r in ("short_circuit", "voltage_limit", "current_limit", "aborted", "fault")]
        rows[int(c)] = {
            "t_start": t[idx[0] - 1],
            "t_end": t[idx[-1]],
            "duration": t[idx[-1]] - t[idx[0] - 1],
            "plate_charge": plated,
            "strip_charge": stripped,
            "plate_capacity": plated / area,
            "strip_capacity": stripped / area,
            "coulombic_efficiency": stripped / plated,
            "plate_mean": e[plate].mean(),
            "plate_end": e[plate][-1],
            "plate_extreme": e[plate][np.argmax(np.abs(e[plate]))],
            "strip_mean": e[strip].mean(),
            "strip_end": e[strip][-1],
            "strip_extreme": e[strip][np.argmax(np.abs(e[strip]))],
            "plate_duration": dt[plate].sum(),
            "strip_duration": dt[strip].sum(),
            "stop": terminal[0] if terminal else reasons[-1],
        }
    return rows


def test_the_run_spans_several_read_slices(long_run):
    with ClosedRun(long_run) as run:
        assert len(run) > 2 * cycles_mod.CHUNK


def test_stored_cycle_table_equals_numpy_over_the_whole_columns(long_run):
    ref = whole_column_table(long_run)
    with h5py.File(long_run, "r") as f:
        stored = f["analysis/cycles"][()]
    assert list(stored["cycle"]) == list(range(1, CYCLES + 1)) == sorted(ref)
    for row in stored:
        r = ref[int(row["cycle"])]
        assert row["stop"].decode() == r["stop"] == "capacity_reached"
        for key, value in r.items():
            if key != "stop":
                assert row[key] == pytest.approx(value, rel=1e-12, abs=1e-15), (int(row["cycle"]), key)
    # half a mAh/cm^2 each way (18,000 C/m^2): the reference itself is what the protocol asks
    assert np.allclose(stored["plate_capacity"], 18000.0, rtol=1e-6)


def test_cycle_table_recomputed_in_small_slices_is_identical(long_run, monkeypatch):
    with ClosedRun(long_run) as run:
        stored = run.f["analysis/cycles"][()]
        monkeypatch.setattr(cycles_mod, "CHUNK", 5000)  # slice edges inside steps and cycles
        again = cycles_mod.cycle_table(run)
    for name in stored.dtype.names:
        if name == "stop":
            assert [s.decode() for s in stored[name]] == list(again[name])
        else:
            np.testing.assert_allclose(again[name], stored[name], rtol=1e-12)  # sums in another order


def test_tables_read_in_blocks_equal_the_whole_table(long_run):
    with ClosedRun(long_run) as run:
        whole = Table(run.f["steps"])
        firsts, parts = zip(*table_blocks(run.f["steps"], ("index", "kind", "end_reason"), rows=7), strict=True)
    assert firsts == tuple(range(0, len(whole), 7))
    for name in ("index", "kind", "end_reason"):
        assert list(np.concatenate([p[name] for p in parts])) == list(whole[name])
