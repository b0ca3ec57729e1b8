"""/analysis/cycles against values computed here with numpy from the raw /timeseries columns."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from daq.analysis import cycles as cycles_mod
from daq.analysis.cycles import cycle_table, read_cycles
from daq.storage.reader import open_run
from tests.conftest import EXAMPLES, run_sim

SHORTING = {
    "cycles": 20,
    "steps.2.steps.1.current_density": "9 mA/cm^2",
    "steps.2.steps.2.current_density": "1 mA/cm^2",
}


@pytest.fixture(scope="module")
def shorted_run(tmp_path_factory):
    """Cycling on the 83 % dense cell: a few full cycles, then a short part-way into a plating step."""
    out = tmp_path_factory.mktemp("cycles") / "short.h5"
    result = run_sim(EXAMPLES / "asymmetric_cycling.toml", out, 83, overrides=SHORTING)
    assert result.outcome == "short_circuit"
    return out


def expected(path):
    """Per-cycle values from the raw columns: charge = -sum(I dt) over the samples of each sign."""
    with h5py.File(path, "r", locking=False) as f:
        ts = {k: f["timeseries"][k][()] for k in ("t", "cycle", "I", "E_we")}
        area = f["cell"].attrs["electrodes.working_area"]
    t, cyc, cur, e = ts["t"], ts["cycle"], ts["I"], ts["E_we"]
    dt = np.diff(t, prepend=0.0)
    rows = {}
    for c in np.unique(cyc[cyc > 0]):
        idx = np.flatnonzero(cyc == c)
        plate = idx[cur[idx] < 0]
        strip = idx[cur[idx] > 0]
        rows[int(c)] = {
            "t_start": t[idx[0] - 1],
            "t_end": t[idx[-1]],
            "plate_charge": -np.sum(cur[plate] * dt[plate]),
            "strip_charge": np.sum(cur[strip] * dt[strip]) if len(strip) else 0.0,
            "plate_mean": e[plate].mean(),
            "plate_end": e[plate][-1],
            "plate_extreme": e[plate][np.argmax(np.abs(e[plate]))],
            "strip_mean": e[strip].mean() if len(strip) else np.nan,
            "strip_end": e[strip][-1] if len(strip) else np.nan,
            "plate_duration": dt[plate].sum(),
            "area": area,
        }
    return rows


def test_cycles_stored_match_raw_columns(shorted_run):
    with open_run(shorted_run) as run:
        table = read_cycles(run)
        with_units = run.f["analysis/cycles"]
        units = json.loads(with_units.attrs["units"])
        assert with_units.attrs["potential"] == "E_we"
    assert units["plate_charge"] == "C" and units["plate_capacity"] == "C/m^2" and units["plate_mean"] == "V"
    ref = expected(shorted_run)
    assert list(table.cycle) == sorted(ref) and len(table) >= 3
    for _, row in table.iterrows():
        r = ref[int(row.cycle)]
        for key in ("t_start", "t_end", "plate_charge", "strip_charge", "plate_mean", "plate_end", "plate_extreme"):
            assert row[key] == pytest.approx(r[key], rel=1e-9, abs=1e-12), key
        for key in ("strip_mean", "strip_end"):
            assert row[key] == pytest.approx(r[key], rel=1e-9, nan_ok=True), key
        assert row.plate_capacity == pytest.approx(r["plate_charge"] / r["area"], rel=1e-9)
        assert row.duration == pytest.approx(r["t_end"] - r["t_start"])
        assert row.plate_duration == pytest.approx(r["plate_duration"])


def test_full_cycles_are_half_a_mah_each_way_and_the_short_ends_the_last(shorted_run):
    with open_run(shorted_run) as run:
        table = read_cycles(run)
        steps = run.steps()
    full, last = table.iloc[:-1], table.iloc[-1]
    # 0.5 mAh/cm^2 = 18000 C/m^2 each way in every full cycle, so coulombic efficiency 1
    assert np.allclose(full.plate_capacity, 18000.0, rtol=1e-6)
    assert np.allclose(full.coulombic_efficiency, 1.0, rtol=1e-6)
    assert (full.stop == "capacity_reached").all()
    assert last.stop == "short_circuit"
    assert 0 < last.plate_capacity < 18000.0 and last.strip_charge == 0.0 and np.isnan(last.coulombic_efficiency)
    # the step table's signed charges agree with the per-cycle sums
    shorted = steps[steps.cycle == last.cycle]
    assert last.plate_charge == pytest.approx(-shorted.Q[shorted.Q < 0].sum(), rel=1e-9)
    # plating potential negative, stripping positive (three-electrode cell, E_we vs reference)
    assert (full.plate_mean < 0).all() and (full.strip_mean > 0).all()


def test_chunked_scan_equals_one_pass(shorted_run, monkeypatch):
    with open_run(shorted_run) as run:
        whole = cycle_table(run)
        monkeypatch.setattr(cycles_mod, "CHUNK", 777)  # chunk edges fall inside steps and cycles
        chunked = cycle_table(run)
    for name in whole.dtype.names:
        if name == "stop":
            assert list(whole[name]) == list(chunked[name])
        else:
            np.testing.assert_allclose(chunked[name], whole[name], rtol=1e-12, equal_nan=True)
