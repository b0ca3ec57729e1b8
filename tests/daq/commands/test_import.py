"""``daq import``: the real recordings convert to run files and read back through the store's reader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from daq.cli import main
from daq.importers import read_recording
from daq.storage.reader import RunFile

VENDOR = Path(__file__).resolve().parents[4] / "shared" / "data" / "vendor"  # shared/ sits beside the repo
DATA = Path(__file__).resolve().parents[2] / "data"

pytestmark = pytest.mark.skipif(not (VENDOR / "CstC_nesd.mpr").exists(), reason="vendor recordings not available")


def _import(src: Path, out: Path, *extra: str) -> RunFile:
    assert main(["import", str(src), "--out", str(out), *extra]) == 0
    return RunFile(out)


@pytest.mark.parametrize("name", ["CHRONOP.DTA", "CstC_nesd.mpr", "GEIS_nesd.mpr"])
def test_real_recordings_convert_and_read_back(tmp_path: Path, name: str) -> None:
    src = VENDOR / name
    rec = read_recording(src)
    with _import(src, tmp_path / "run.h5") as run:
        assert run.status == "completed" and len(run) == rec.n_samples
        units = run.units()
        assert (units["t"], units["E_we"], units["I"], units["Q"]) == ("s", "V", "A", "C")
        np.testing.assert_array_equal(run.column("t"), rec.timeseries["t"])
        np.testing.assert_allclose(run.column("E_we"), rec.timeseries["E_we"])
        np.testing.assert_allclose(run.column("I"), rec.timeseries["I"])
        assert run.attrs["start_time"] == rec.metadata["start_time"]
        assert run.attrs["imported_from"] == str(src)
        inst = {k: v for k, v in run.f["instruments/potentiostat"].attrs.items()}
        assert inst["vendor"] == rec.metadata["instrument_vendor"]
        assert inst["serial"] == rec.metadata["instrument_serial"]
        assert run.cell["electrodes.working_area"] == pytest.approx(rec.metadata["electrode_area"])
        assert run.cell_units["electrodes.working_area"] == "m^2"
        resolved = json.loads(run.f["protocol/resolved"][()])
        assert resolved["technique"] == rec.technique
        for key, value in resolved["settings"].items():
            assert value == pytest.approx(rec.metadata[key])
            assert resolved["settings_units"].get(key) == rec.metadata_units.get(key)
        imported = run.f["imported/timeseries"]
        assert set(imported) == set(rec.timeseries)
        assert all(imported[k].attrs["unit"] == rec.units[k] for k in imported)
        steps = run.steps()
        assert np.all(np.diff(run.column("step")) >= 0) and run.column("step")[-1] == len(steps) - 1


def test_chronop_steps_and_limits(tmp_path: Path) -> None:
    with _import(VENDOR / "CHRONOP.DTA", tmp_path / "c.h5") as run:
        steps = run.steps()
        assert steps["kind"].tolist() == ["rest", "galvanostatic", "galvanostatic"]
        assert [json.loads(p)["I"] for p in steps["parameters"]] == [0.0, 1e-5, 2e-5]
        resolved = json.loads(run.f["protocol/resolved"][()])
        assert resolved["settings"]["sample_period"] == 1.0
        assert (resolved["settings"]["E_limit_min"], resolved["settings"]["E_limit_max"]) == (0.0, 1.0)
        inst = run.f["instruments/potentiostat"].attrs
        assert inst["model"] == "IFC1010" and inst["serial"] == "21185"
        # Q (C) is charge since the start of each step: 10 uA for 4 s between the samples at 1 s and 5 s.
        q, step = run.column("Q"), run.column("step")
        assert q[step == 1][-1] == pytest.approx(4e-5, rel=0.01)
        assert "temperature" not in run.columns()  # 1489 degC: no thermocouple
        assert "temperature" not in run.f["imported/timeseries"]


def test_cstc_steps(tmp_path: Path) -> None:
    with _import(VENDOR / "CstC_nesd.mpr", tmp_path / "c.h5") as run:
        steps = run.steps()
        assert steps["kind"].tolist() == ["rest", "galvanostatic"]
        assert steps["t_start"].tolist() == pytest.approx([70.05, 80.05], abs=1e-3)
        assert json.loads(steps["parameters"][1])["I"] == pytest.approx(1e-5)
        assert steps["Q"][1] == pytest.approx(6.99e-4, rel=0.01)


def test_geis_spectra(tmp_path: Path) -> None:
    rec = read_recording(VENDOR / "GEIS_nesd.mpr")
    with _import(VENDOR / "GEIS_nesd.mpr", tmp_path / "g.h5") as run:
        spectra = run.spectra()
        assert len(spectra) == 12 and spectra["n_points"].tolist() == [19] * 12
        assert spectra["mode"].unique().tolist() == ["galvanostatic"]
        assert spectra["dc"].tolist() == pytest.approx([5e-5] * 4 + [1e-4] * 4 + [2e-4] * 4)
        assert spectra["amplitude"].tolist() == pytest.approx([1e-4] * 12)
        assert run.steps()["kind"].tolist() == ["eis"] * 3
        for k in (0, 11):
            pts = run.spectrum(k)
            np.testing.assert_allclose(pts["frequency"], rec.spectra[k].frequency)
            np.testing.assert_allclose(pts["z_real"], rec.spectra[k].Z_re)
            np.testing.assert_allclose(pts["z_imag"], rec.spectra[k].Z_im)
            assert np.all(pts["z_real"] > 0) and np.all(pts["z_imag"] < 0)


def test_area_option_and_text_export(tmp_path: Path) -> None:
    with _import(DATA / "geis_export_eu.mpt", tmp_path / "e.h5", "--area", "0.785 mm^2") as run:
        assert run.cell["electrodes.working_area"] == pytest.approx(7.85e-7)
        assert run.cell["electrodes.working_area_source"] == "--area"
        assert len(run.spectra()) == 2


def test_refusals_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.h5"
    assert main(["import", str(VENDOR / "CHRONOP.DTA"), "--out", str(out)]) == 0
    assert main(["import", str(VENDOR / "CHRONOP.DTA"), "--out", str(out)]) == 2  # exists, no --force
    assert "already exists" in capsys.readouterr().err
    assert main(["import", str(VENDOR / "CHRONOP.DTA"), "--out", str(out), "--force"]) == 0
    bad = tmp_path / "bad.mpr"
    bad.write_bytes((VENDOR / "CstC_nesd.mpr").read_bytes()[:5000])
    capsys.readouterr()
    assert main(["import", str(bad), "--out", str(tmp_path / "b.h5")]) == 2
    err = capsys.readouterr().err
    assert "bad.mpr" in err and err.count("\n") == 1 and not (tmp_path / "b.h5").exists()
    assert main(["import", str(VENDOR / "CHRONOP.DTA"), "--out", str(tmp_path / "a.h5"), "--area", "5 V"]) == 2


def test_report_of_a_recording_without_electrode_area_gives_its_charge_in_mah(tmp_path: Path, capsys) -> None:
    src = Path(__file__).resolve().parents[4] / "shared" / "data" / "real" / "eclab" / "gcpl.issue_149.mpt"
    with _import(src, tmp_path / "run.h5") as run:
        q = run.steps().Q.to_numpy()  # C per step
        assert np.isnan(run.cell["electrodes.working_area"])
    assert main(["report", str(tmp_path / "run.h5"), "--out", str(tmp_path / "report")]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("plated:"))
    assert "nan" not in line and line.endswith("(no electrode area)")
    assert f"{-q[q < 0].sum() / 3.6:.4g} mAh in total, stripped {q[q > 0].sum() / 3.6:.4g} mAh" in line


def test_recording_shorter_than_declared_imports_as_interrupted(tmp_path: Path) -> None:
    """A Gamry table holding fewer rows than it declares (the run stopped, or the file was cut) is not
    imported as a completed run."""
    src = tmp_path / "OCP.DTA"
    text = "EXPLAIN\r\nTAG\tCORPOT\r\nCURVE\tTABLE\t99\r\n\tPt\tT\tVf\tAch\tOver\r\n\t#\ts\tV vs. Ref.\tV\tbits\r\n"
    text += "\t0\t5.0\t2.05E-002\t1.67E-003\t...........\r\n\t1\t10.0\t2.06E-002\t1.66E-003\t...........\r\n"
    src.write_bytes(text.encode())
    out = tmp_path / "ocp.h5"
    assert main(["import", str(src), "--out", str(out)]) == 0
    with RunFile(out) as run:
        assert run.status == "interrupted" and len(run) == 2


def test_a_plain_spectrum_imports_and_reports_as_a_spectrum(tmp_path: Path, capsys) -> None:
    src = DATA / "spectra" / "exampleDataZPlot.z"
    _import(src, tmp_path / "z.h5").close()
    assert "exampleDataZPlot.z (impedance): 21 samples" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "z.h5"), "--out", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "spectra: 1" in out and "plated:" not in out
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["nyquist.png"]  # no empty time traces


def test_nyquist_of_an_area_less_spectrum_names_it_by_number(tmp_path: Path) -> None:
    from daq.commands.report_figures import nyquist_figure

    with _import(DATA / "spectra" / "exampleDataZPlot.z", tmp_path / "z.h5") as run:
        fig = nyquist_figure(run)
    assert len(fig.axes) == 1  # one spectrum: no colour scale
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["#0"]
    assert fig.axes[0].get_title() == "Nyquist: points measured, lines circuit fits, x decade frequencies"
