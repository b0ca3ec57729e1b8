"""`daq export`: CSV read back equals the run file; EC-Lab and Gamry text layouts read back by the
vendor-format readers (written against real instrument files) give the same numbers."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from daq.analysis.cycles import read_cycles
from daq.cli import main
from daq.importers.biologic_mpt import read_mpt
from daq.importers.gamry_dta import read_dta
from daq.storage.reader import open_run
from tests.conftest import EXAMPLES, ROOT, run_sim

REAL_ECLAB = ROOT.parent / "shared" / "data" / "real" / "eclab"
SHORTING = {
    "cycles": 20,
    "steps.2.steps.1.current_density": "9 mA/cm^2",
    "steps.2.steps.2.current_density": "1 mA/cm^2",
}


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run.h5"
    run_sim(EXAMPLES / "asymmetric_cycling.toml", out, 83, overrides=SHORTING)
    return out


def test_timeseries_csv_round_trip(run_path, tmp_path, monkeypatch):
    from daq.commands import export_writers

    monkeypatch.setattr(export_writers, "BLOCK", 1000)  # several blocks, one header
    out = tmp_path / "ts.csv"
    assert main(["export", str(run_path), "--out", str(out)]) == 0
    back = pd.read_csv(out, float_precision="round_trip")
    with open_run(run_path) as run:
        ts, units = run.timeseries(), run.units()
    assert list(back.columns[:7]) == ["t (s)", "step", "cycle", "E_we (V)", "E_cell (V)", "I (A)", "Q (C)"]
    assert len(back) == len(ts)
    for name in ts.columns:
        column = name if units[name] == "1" else f"{name} ({units[name]})"
        np.testing.assert_array_equal(back[column].to_numpy(), ts[name].to_numpy())


def test_cycles_and_steps_csv_round_trip(run_path, tmp_path):
    out = tmp_path / "cycles.csv"
    assert main(["export", str(run_path), "--what", "cycles", "--out", str(out)]) == 0
    back = pd.read_csv(out, float_precision="round_trip")
    with open_run(run_path) as run:
        table = read_cycles(run)
        steps = run.steps()
    assert "plate_capacity (C/m^2)" in back.columns and "coulombic_efficiency" in back.columns
    np.testing.assert_array_equal(back["plate_charge (C)"], table.plate_charge)
    np.testing.assert_array_equal(back["strip_mean (V)"], table.strip_mean)
    assert list(back.stop) == list(table.stop)
    out = tmp_path / "steps.csv"
    assert main(["export", str(run_path), "--what", "steps", "--out", str(out)]) == 0
    back = pd.read_csv(out, keep_default_na=False, float_precision="round_trip")
    np.testing.assert_array_equal(back["Q (C)"], steps.Q)
    assert list(back.end_reason) == list(steps.end_reason)


def test_mpt_read_back_by_the_ec_lab_text_reader(run_path, tmp_path):
    out = tmp_path / "ts.mpt"
    assert main(["export", str(run_path), "--format", "mpt", "--out", str(out)]) == 0
    rec = read_mpt(out)
    with open_run(run_path) as run:
        ts = run.timeseries()
    assert rec.n_samples == len(ts)
    for ours, theirs in (("t", "t"), ("E_we", "E_we"), ("I", "I"), ("Q", "Q"), ("E_cell", "E_we_ce")):
        np.testing.assert_allclose(rec.timeseries[theirs], ts[ours], rtol=1e-9, atol=1e-15)
    np.testing.assert_array_equal(rec.timeseries["cycle"], ts.cycle)
    np.testing.assert_array_equal(rec.timeseries["step"], ts.step)
    assert rec.metadata["electrode_area"] == pytest.approx(7.853981633974482e-07, rel=1e-5)


def test_mpt_spectra_read_back(run_path, tmp_path):
    out = tmp_path / "eis.mpt"
    assert main(["export", str(run_path), "--format", "mpt", "--what", "spectra", "--out", str(out)]) == 0
    rec = read_mpt(out)
    with open_run(run_path) as run:
        first = run.spectrum(0)
    assert len(rec.spectra) == 1
    np.testing.assert_allclose(rec.spectra[0].frequency, first.frequency, rtol=1e-9)
    np.testing.assert_allclose(rec.spectra[0].Z_im, first.z_imag, rtol=1e-9)  # the sign of -Im(Z) undone


@pytest.mark.skipif(not REAL_ECLAB.is_dir(), reason="needs ../shared/data/real/eclab (real EC-Lab exports)")
def test_mpt_header_layout_matches_real_ec_lab_exports(run_path, tmp_path):
    """Line 2 gives the line number of the column labels, as in EC-Lab's own exports."""
    out = tmp_path / "ts.mpt"
    assert main(["export", str(run_path), "--format", "mpt", "--out", str(out)]) == 0
    for path in (REAL_ECLAB / "cp.issue_149.mpt", out):
        lines = path.read_bytes().decode("cp1252").splitlines()
        assert lines[0] == "EC-Lab ASCII FILE"
        n = int(lines[1].split(":")[1])
        labels = lines[n - 1].split("\t")
        assert "time/s" in labels and "cycle number" in labels and "Ns" in labels
        assert len(lines[n].rstrip("\t").split("\t")) == len([x for x in labels if x])


def test_dta_read_back_by_the_gamry_reader(run_path, tmp_path):
    out = tmp_path / "ts.DTA"
    assert main(["export", str(run_path), "--format", "dta", "--out", str(out)]) == 0
    rec = read_dta(out)
    with open_run(run_path) as run:
        ts = run.timeseries()
    assert rec.technique == "chronopotentiometry" and rec.n_samples == len(ts)
    for name in ("t", "E_we", "I", "Q"):
        np.testing.assert_allclose(rec.timeseries[name], ts[name], rtol=1e-9, atol=1e-15)


def test_refusals(run_path, tmp_path, capsys):
    assert main(["export", str(run_path), "--format", "dta", "--what", "cycles"]) == 2
    assert "the dta format holds timeseries" in capsys.readouterr().err
    out = tmp_path / "x.csv"
    out.write_text("keep")
    assert main(["export", str(run_path), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err and out.read_text() == "keep"
    notes = tmp_path / "notes.txt"
    notes.write_text("not a run")
    assert main(["export", str(notes), "--out", str(tmp_path / "y.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("daq: error:") and "notes.txt" in err and "run file" in err


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is not None, reason="pyarrow installed")
def test_parquet_without_pyarrow_says_so(run_path, capsys):
    assert main(["export", str(run_path), "--format", "parquet"]) == 2
    assert "needs pyarrow" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="parquet export needs pyarrow")
def test_parquet_round_trip(run_path, tmp_path):
    out = tmp_path / "ts.parquet"
    assert main(["export", str(run_path), "--format", "parquet", "--out", str(out)]) == 0
    back = pd.read_parquet(out)
    with open_run(run_path) as run:
        ts = run.timeseries()
    np.testing.assert_array_equal(back["E_we (V)"], ts.E_we)


CA_MPT = (
    "EC-Lab ASCII FILE\r\nNb header lines : 5\r\n\r\nChronoamperometry / Chronocoulometry\r\n"
    "mode\ttime/s\tcontrol/V\tEwe/V\tI/mA\tcycle number\t\r\n"
    "2\t0.0\t0.3\t0.146\t1.86E-002\t0\r\n2\t60.0\t0.3\t0.2987\t2.89E-005\t0\r\n2\t120.0\t0.3\t0.2984\t1.95E-005\t0\r\n"
)


@pytest.mark.parametrize(
    ("title", "technique"), [("Chronoamperometry / Chronocoulometry", "chronoamperometry"), ("", "unknown")]
)
def test_mpt_of_an_imported_recording_keeps_its_technique_and_writes_no_nan(tmp_path, title, technique):
    """A recording without Ece, electrode area or technique title: the export leaves out what was not
    measured instead of writing NAN, and its title line reads back as the same technique."""
    src = tmp_path / "ca.mpt"
    text = (
        CA_MPT
        if title
        else CA_MPT.replace(
            "Nb header lines : 5\r\n\r\nChronoamperometry / Chronocoulometry\r\n", "Nb header lines : 3\r\n"
        )
    )
    src.write_bytes(text.encode("cp1252"))
    run, out = tmp_path / "ca.h5", tmp_path / "back.mpt"
    assert main(["import", str(src), "--out", str(run)]) == 0
    assert main(["export", str(run), "--format", "mpt", "--out", str(out)]) == 0
    written = out.read_bytes().decode("cp1252")
    assert "nan" not in written.lower() and "Ewe-Ece/V" not in written and "surface area" not in written
    rec = read_mpt(out)
    assert rec.technique == technique
    np.testing.assert_allclose(rec.timeseries["E_we"], [0.146, 0.2987, 0.2984], rtol=1e-9)
    np.testing.assert_allclose(rec.timeseries["I"], [1.86e-5, 2.89e-8, 1.95e-8], rtol=1e-9)
