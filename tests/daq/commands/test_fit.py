"""``daq fit``: run files (simulated), real recordings and plain spectra; JSON lines, stored table, figure."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from daq.analysis.circuits import Circuit
from daq.cli import main
from tests.conftest import EXAMPLES, VENDOR_DATA, run_sim

REAL = VENDOR_DATA.parent / "real" / "eis"
ZPLOT = Path(__file__).resolve().parents[2] / "data" / "spectra" / "exampleDataZPlot.z"
TWO_ARCS = "R0-p(R1,CPE1)-p(R2,CPE2)"
ONE_ARC = "R0-p(R1,CPE1)"
TRUTH = {"R0": 12.0, "R1": 800.0, "CPE1.Q": 2e-9, "CPE1.alpha": 0.92, "R2": 4000.0, "CPE2.Q": 3e-6, "CPE2.alpha": 0.85}


def _json_lines(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def _relative(circuit: str, params: dict, f: np.ndarray, z: np.ndarray) -> float:
    zm = Circuit(circuit).impedance(f, params)
    return float(np.sqrt(np.mean(np.abs(zm - z) ** 2 / np.abs(z) ** 2)))


@pytest.fixture(scope="module")
def peis_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fit") / "peis.h5"
    run_sim(EXAMPLES / "peis.toml", out, 99, overrides={"steps.1.duration": "60 s", "steps.3.duration": "60 s"})
    return out


def test_csv_spectrum_recovers_the_circuit_it_was_made_from(tmp_path: Path, capsys) -> None:
    f = np.geomspace(1e6, 0.1, 61)
    z = Circuit(TWO_ARCS).impedance(f, TRUTH)
    path = tmp_path / "spectrum.csv"
    np.savetxt(path, np.column_stack([f, z.real, z.imag]), delimiter=",")
    assert main(["fit", str(path), "--json"]) == 0
    (obj,) = _json_lines(capsys)
    assert obj["circuit"] == TWO_ARCS and obj["success"] is True and obj["spectrum"] == 0
    for name, value in TRUTH.items():
        assert obj["parameters"][name] == pytest.approx(value, rel=1e-4)
        assert obj["stderr"][name] >= 0
    assert obj["relative_residual"] < 1e-6
    assert set(obj["units"]) == set(TRUTH) and obj["units"]["R1"] == "ohm"


def test_run_file_fits_are_printed_and_stored_in_analysis_table(peis_run: Path, capsys) -> None:
    assert main(["fit", str(peis_run), "--json"]) == 0
    objs = _json_lines(capsys)
    assert [o["spectrum"] for o in objs] == [0, 1]
    with h5py.File(peis_run, "r") as h5:
        table = h5["analysis/eis_fits"][()]
        assert h5["analysis/eis_fits"].attrs["circuit"] == TWO_ARCS
        stored = json.loads(h5["analysis/eis_fits"].attrs["parameters"])
    assert list(table["spectrum"]) == [0, 1]
    for obj, row in zip(objs, table):
        assert obj["success"] is True and obj["relative_residual"] < 0.01
        assert obj["kramers_kronig"]["valid"] is True
        assert row["R1"] == pytest.approx(obj["parameters"]["R1"], rel=1e-12)
        assert row["R2_err"] == pytest.approx(obj["stderr"]["R2"], rel=1e-12)
        assert row["relative_residual"] == pytest.approx(obj["relative_residual"], rel=1e-12)
        assert stored[str(obj["spectrum"])]["CPE2.Q"][0] == pytest.approx(obj["parameters"]["CPE2.Q"], rel=1e-12)
    # arcs by time constant: the bulk arc (p(R1,CPE1)) is the faster one in every spectrum
    for o in objs:
        p = o["parameters"]
        tau = [(p[f"R{k}"] * p[f"CPE{k}.Q"]) ** (1 / p[f"CPE{k}.alpha"]) for k in (1, 2)]
        assert tau[0] < tau[1] / 10


def test_one_spectrum_with_another_circuit_replaces_the_table(peis_run: Path, capsys, tmp_path: Path) -> None:
    png = tmp_path / "fig" / "fit.png"
    assert main(["fit", str(peis_run), "--circuit", ONE_ARC, "--spectrum", "1", "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert "spectrum 1" in out and "Kramers-Kronig" in out and f"figure: {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    with h5py.File(peis_run, "r") as h5:
        ds = h5["analysis/eis_fits"]
        assert ds.attrs["circuit"] == ONE_ARC
        assert list(ds["spectrum"]) == [1] and np.isnan(ds["R2"][0]) and np.isfinite(ds["R1"][0])


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--spectrum", "7"], "holds spectra 0 to 1"),
        (["--circuit", "R0-p(R1"], "missing ')'"),
        (["--spectrum", "x"], "spectrum number or 'all'"),
    ],
)
def test_bad_arguments_are_refused_in_one_line(peis_run: Path, capsys, argv: list[str], expected: str) -> None:
    assert main(["fit", str(peis_run), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err and "Traceback" not in err


def test_file_without_spectra_is_refused(tmp_path: Path, capsys) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    assert main(["fit", str(path)]) == 2
    assert "empty.csv" in capsys.readouterr().err


REAL_FILES = [*sorted(REAL.glob("*")), VENDOR_DATA / "GEIS_nesd.mpr", ZPLOT]


@pytest.mark.skipif(not REAL.exists(), reason=f"real spectra not available ({REAL})")
@pytest.mark.parametrize("circuit", [TWO_ARCS, ONE_ARC])
@pytest.mark.parametrize("path", REAL_FILES, ids=[p.name for p in REAL_FILES])
def test_real_spectra_give_one_honest_json_object_each(path: Path, circuit: str, capsys) -> None:
    from daq.importers import read_recording

    spectra = read_recording(path).spectra
    assert main(["fit", str(path), "--circuit", circuit, "--json"]) == 0
    objs = _json_lines(capsys)
    assert len(objs) == len(spectra)
    for obj, s in zip(objs, spectra):
        f, z = s.frequency, s.Z_re + 1j * s.Z_im
        assert obj["circuit"] == circuit
        assert obj["relative_residual"] == pytest.approx(_relative(circuit, obj["parameters"], f, z), rel=1e-9)
        if obj["success"]:
            assert obj["message"] == "converged" and obj["relative_residual"] < 0.25
            assert all(v is not None and np.isfinite(v) for v in obj["stderr"].values())
        else:
            assert obj["message"] and obj["message"] != "converged"


@pytest.mark.skipif(not (VENDOR_DATA / "GEIS_nesd.mpr").exists(), reason=f"vendor file not available ({VENDOR_DATA})")
def test_imported_recording_is_fitted_and_stored(tmp_path: Path, capsys) -> None:
    run = tmp_path / "geis.h5"
    assert main(["import", str(VENDOR_DATA / "GEIS_nesd.mpr"), "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["fit", str(run), "--spectrum", "0", "--json"]) == 0
    (obj,) = _json_lines(capsys)
    assert obj["spectrum"] == 0 and obj["success"] is True and obj["relative_residual"] < 0.001
    with h5py.File(run, "r") as h5:
        row = h5["analysis/eis_fits"][()]
    assert list(row["spectrum"]) == [0] and row["R2"][0] == pytest.approx(obj["parameters"]["R2"], rel=1e-12)


def _spectrum_csv(path: Path, scale: float) -> Path:
    f = np.geomspace(1e6, 0.1, 41)
    z = Circuit(TWO_ARCS).impedance(f, {**TRUTH, "R1": TRUTH["R1"] * scale, "R2": TRUTH["R2"] * scale})
    np.savetxt(path, np.column_stack([f, z.real, z.imag]), delimiter=",")
    return path


def test_study_of_several_files_in_workers_equals_one_by_one(peis_run: Path, tmp_path: Path, capsys) -> None:
    # Spectra of three files fitted in two worker processes: the same JSON lines, in the files' order, as
    # fitting them one after another; the run file gets its table as with a single file.
    files = [str(_spectrum_csv(tmp_path / f"cell{k}.csv", 1.0 + k)) for k in range(3)]
    files.insert(1, str(peis_run))
    assert main(["fit", *files, "--json", "--jobs", "1"]) == 0
    serial = _json_lines(capsys)
    assert main(["fit", *files, "--json", "--jobs", "2"]) == 0
    parallel = _json_lines(capsys)
    assert parallel == serial
    assert [(Path(o["file"]).name, o["spectrum"]) for o in parallel] == [
        ("cell0.csv", 0),
        ("peis.h5", 0),
        ("peis.h5", 1),
        ("cell1.csv", 0),
        ("cell2.csv", 0),
    ]
    for k, o in zip((1.0, 2.0, 3.0), (parallel[0], parallel[3], parallel[4])):
        assert o["parameters"]["R2"] == pytest.approx(TRUTH["R2"] * k, rel=1e-4)
    with h5py.File(peis_run, "r") as h5:
        stored = h5["analysis/eis_fits"][()]
    assert list(stored["spectrum"]) == [0, 1]
    assert stored["R1"][1] == pytest.approx(parallel[2]["parameters"]["R1"], rel=1e-12)


def test_unreadable_file_of_a_study_is_one_line_and_the_others_are_fitted(tmp_path: Path, capsys) -> None:
    good = _spectrum_csv(tmp_path / "good.csv", 1.0)
    bad = tmp_path / "bad.csv"
    bad.write_text("frequency,Z'\nnot,a number\n")
    assert main(["fit", str(bad), str(good), "--jobs", "2"]) == 2
    out, err = capsys.readouterr()
    assert out.startswith("good.csv: spectrum 0 (41 points)") and "success: yes" in out
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"{bad}: not fitted:") and "1 of 2 files could not be read" in lines[-1]
    assert "Traceback" not in err


def test_study_on_a_dask_cluster_equals_one_by_one(tmp_path: Path, capsys) -> None:
    distributed = pytest.importorskip("distributed")
    files = [str(_spectrum_csv(tmp_path / f"cell{k}.csv", 1.0 + k)) for k in range(3)]
    assert main(["fit", *files, "--json", "--jobs", "1"]) == 0
    serial = _json_lines(capsys)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        assert main(["fit", *files, "--json", "--dask", c.scheduler_address]) == 0
    assert _json_lines(capsys) == serial and len(serial) == 3
