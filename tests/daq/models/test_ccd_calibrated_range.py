"""CCD predictions outside the calibrated range carry a warning: in the model, printed, stored in runs."""

from __future__ import annotations

from dataclasses import replace

import pytest

from daq.cli import main
from daq.models import ccd
from daq.storage.reader import open_run
from tests.conftest import EXAMPLES, run_sim


@pytest.mark.parametrize("ms", [ccd.LOW_DENSITY, ccd.HIGH_DENSITY], ids=["83%", "99%"])
def test_calibration_microstructures_carry_no_warning(ms: ccd.Microstructure) -> None:
    assert ccd.predict(ms).warning == ""


def test_wide_crack_is_an_extrapolation_and_says_why() -> None:
    pred = ccd.predict(replace(ccd.HIGH_DENSITY, crack_width=600e-9))
    assert pred.value / 10 > 1e4  # mA/cm^2: far beyond any published CCD
    assert "crack width 0.6 um" in pred.warning and "CCD" in pred.warning and "extrapolation" in pred.warning


def test_toughness_outside_published_range_is_flagged() -> None:
    p = replace(ccd.calibrated(), fracture_toughness=0.6e6)
    assert "K_IC 0.6 MPa m^0.5" in ccd.predict(ccd.HIGH_DENSITY, p).warning


def test_just_inside_margin_is_quiet_and_just_outside_is_not() -> None:
    inside = replace(ccd.HIGH_DENSITY, pore_separation=22e-6 * 1.2)
    outside = replace(ccd.HIGH_DENSITY, pore_separation=22e-6 * 1.3)
    assert ccd.predict(inside).warning == ""
    assert "pore separation" in ccd.predict(outside).warning


def test_warning_is_printed_by_daq_predict(capsys) -> None:
    argv = ["predict", "ccd", "--pore-radius", "0.5 um", "--pore-separation", "22 um", "--crack-length", "1.5 um"]
    assert main([*argv, "--crack-width", "600 nm"]) == 0
    assert "warning: outside the calibrated range" in capsys.readouterr().out
    assert main([*argv, "--crack-width", "125 nm"]) == 0
    assert "warning" not in capsys.readouterr().out


def test_warning_is_stored_with_the_value_in_the_run(tmp_path) -> None:
    protocol = EXAMPLES / "ccd_single_plating.toml"
    overrides = {"steps.1.duration": "1 s"}
    res = run_sim(protocol, tmp_path / "w.h5", 99, overrides, cell_overrides={"microstructure.crack_width": "600 nm"})
    with open_run(res.path) as run:
        stored = run.prediction("ccd")
    assert stored["value"] > 1e4 and "crack width" in stored["warning"]
    res = run_sim(protocol, tmp_path / "ok.h5", 99, overrides)
    with open_run(res.path) as run:
        assert run.prediction("ccd")["warning"] == ""
