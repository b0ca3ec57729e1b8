"""The walking skeleton's experiment: CCD single plating on simulated Li6PS5Cl three-electrode cells."""

import json

import h5py
import numpy as np
import pytest

from daq.storage.reader import open_run
from tests.conftest import EXAMPLES, run_sim

PROTOCOL = EXAMPLES / "ccd_single_plating.toml"
Q_UNIT = 36000.0  # C/m^2 per mAh/cm^2


def test_99_percent_at_9_reaches_capacity_without_short(tmp_path):
    res = run_sim(PROTOCOL, tmp_path / "r.h5", 99)
    assert res.outcome == "completed" and res.short is None
    assert res.plated_capacity / Q_UNIT == pytest.approx(8.0, rel=1e-6)
    with open_run(res.path) as run:
        steps = run.steps()
        assert list(steps.end_reason) == ["time_reached", "capacity_reached"]
        assert "short_circuit" not in set(run.events().kind)
        ts = run.timeseries()
        plate = ts[ts.step == 1]
        area = run.cell["electrodes.working_area"]
        assert abs(plate.Q.iloc[-1]) / area / Q_UNIT == pytest.approx(8.0, rel=1e-6)
        assert plate.I.mean() == pytest.approx(-90.0 * area, rel=1e-9)  # 9 mA/cm^2 = 70.7 uA
        assert -0.5 < plate.E_we.median() < -0.1  # steady plating polarisation
        assert run.status == "completed"


def test_99_percent_at_10_shorts_and_current_is_off_after_detection(tmp_path):
    res = run_sim(PROTOCOL, tmp_path / "r.h5", 99, {"current_density": "10 mA/cm^2"})
    assert res.outcome == "short_circuit"
    assert res.short["capacity"] / Q_UNIT < 8.0
    with open_run(res.path) as run:
        events = run.events()
        short = events[events.kind == "short_circuit"]
        assert len(short) == 1
        t_off = short.t.iloc[0]  # when the engine switched the current off
        data = json.loads(short.data.iloc[0])
        ts = run.timeseries()
        after = ts[ts.t > t_off]
        assert len(after) >= 5 and np.all(after.I == 0.0)
        # detection within one real poll (1 s) of the collapse
        k = data["sample"]
        assert abs(ts.E_we.iloc[k]) < 0.5 * abs(ts.E_we.iloc[k - 1])
        assert t_off - ts.t.iloc[k] <= 1.0 + 1e-9
        assert list(run.steps().end_reason)[1] == "short_circuit"


def test_83_percent_at_1_shorts_before_8(tmp_path):
    res = run_sim(PROTOCOL, tmp_path / "r.h5", 83, {"current_density": "1 mA/cm^2"})
    assert res.outcome == "short_circuit"
    assert res.plated_capacity / Q_UNIT < 8.0


def test_predictions_rise_with_density(tmp_path):
    values = []
    for d in (83, 86, 95, 99):
        res = run_sim(
            PROTOCOL, tmp_path / f"r{d}.h5", d, {"steps.2.capacity": "0.01 mAh/cm^2", "steps.1.duration": "1 s"}
        )
        with open_run(res.path) as run:
            pred = run.prediction("ccd")
            assert pred["unit"] == "mA/cm^2" and pred["low"] < pred["value"] < pred["high"]
            values.append(pred["value"])
    assert values == sorted(values) and len(set(values)) == 4


def test_runs_are_reproducible_from_the_seed(tmp_path):
    a = run_sim(PROTOCOL, tmp_path / "a.h5", 99, {"current_density": "10 mA/cm^2"})
    b = run_sim(PROTOCOL, tmp_path / "b.h5", 99, {"current_density": "10 mA/cm^2"})
    c = run_sim(
        PROTOCOL, tmp_path / "c.h5", 99, {"current_density": "10 mA/cm^2"}, cell_overrides={"simulation.seed": 5}
    )
    assert a.short == b.short
    assert a.short["t"] != c.short["t"]


def test_hdf5_layout_and_units(tmp_path):
    res = run_sim(PROTOCOL, tmp_path / "r.h5", 99, {"steps.2.capacity": "0.1 mAh/cm^2"})
    with h5py.File(res.path, "r") as f:
        assert f.attrs["status"] == "completed" and f.attrs["schema_version"]
        cell = f["cell"].attrs
        assert cell["electrolyte.relative_density"] == pytest.approx(0.99)
        assert cell["electrodes.working_area"] > 0 and cell["microstructure.pore_radius"] == pytest.approx(0.5e-6)
        assert json.loads(cell["units"])["electrodes.working_area"] == "m^2"
        assert "ccd_single_plating" in f["protocol/source"][()].decode() or "CCD" in f["protocol/source"][()].decode()
        units = {k: f["timeseries"][k].attrs["unit"] for k in ("t", "E_we", "I", "Q", "pressure")}
        assert units == {"t": "s", "E_we": "V", "I": "A", "Q": "C", "pressure": "Pa"}
        assert f["timeseries/t"].chunks is not None
        assert f["timeseries/pressure"][0] == pytest.approx(7e6, rel=0.02)
        assert "end_reason" in f["steps"].dtype.names and "kind" in f["events"].dtype.names
        ccd = f["predictions/ccd"].attrs
        assert ccd["unit"] == "mA/cm^2" and ccd["value"] == pytest.approx(9.5) and "model" in ccd
        assert f["instruments/potentiostat"].attrs["model"] == "SimPstat-1"
