"""``daq predict``: printed values in user units, and one-line refusals with exit code 2."""

from __future__ import annotations

import re

import pytest

from daq import cli
from daq.models import ccd
from tests.conftest import cell_file


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(["predict", *argv])
    except SystemExit as exc:  # argparse refusals
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"(?<![\^\w.])\d+\.?\d*(?:e[-+]?\d+)?", text)]  # not exponents


def test_registered():
    assert "daq.commands.predict" in cli.COMMANDS


def test_ccd_from_cell_file(capsys):
    code, out, err = run(capsys, "ccd", "--cell", str(cell_file(99)))
    assert code == 0 and err == ""
    value, low, high = numbers(out.splitlines()[0])
    pred = ccd.predict(ccd.HIGH_DENSITY)
    assert value == pytest.approx(pred.value / 10, rel=1e-3) == pytest.approx(9.5, rel=1e-3)
    assert low == pytest.approx(pred.low / 10, rel=1e-2) and high == pytest.approx(pred.high / 10, rel=1e-2)
    assert low < 9.0 and high > 10.0
    assert "mA/cm^2" in out and "LPSCl-99-01" in out


def test_ccd_from_explicit_microstructure_matches_cell(capsys):
    code, out, _ = run(
        capsys,
        "ccd",
        "--pore-radius",
        "2.3 um",
        "--pore-separation",
        "10 um",
        "--crack-length",
        "2.5 um",
        "--crack-width",
        "158 nm",
    )
    assert code == 0
    assert numbers(out.splitlines()[0])[0] == pytest.approx(0.95, rel=1e-2)
    # overriding one length of a cell file: wider cracks raise the CCD
    code, out, _ = run(capsys, "ccd", "--cell", str(cell_file(99)), "--crack-width", "150 nm")
    assert code == 0 and numbers(out.splitlines()[0])[0] > 9.5


def test_void_limit(capsys):
    code, out, _ = run(capsys, "void-limit", "--pressure", "7 MPa")
    assert code == 0
    assert numbers(out)[0] == pytest.approx(0.0943, rel=1e-3)
    code, out, _ = run(capsys, "void-limit", "--pressure", "5 MPa", "--asr", "20 ohm cm^2")
    assert numbers(out)[0] == pytest.approx(0.0337, rel=1e-2)


def test_fracture(capsys):
    code, out, _ = run(capsys, "fracture", "--flaw", "1 um")
    assert code == 0
    assert "338.5 MPa" in out and "0.04561 V" in out
    code, out, _ = run(capsys, "fracture", "--flaw", "4 um", "--toughness", "0.6 MPa m^0.5")
    assert "169.3 MPa" in out


def test_tip_current_and_filament(capsys):
    code, out, _ = run(capsys, "tip-current", "--growth-rate", "1 um/s")
    assert code == 0 and "742.2 mA/cm^2" in out
    code, out, _ = run(capsys, "tip-current", "--growth-rate", "3.6 mm/h")
    assert "742.2 mA/cm^2" in out
    code, out, _ = run(capsys, "filament", "--resistance", "440 ohm", "--thickness", "1.2 mm")
    assert code == 0 and "0.5677 um" in out


@pytest.mark.parametrize(
    "argv, names",
    [
        (["void-limit", "--pressure", "7 MPx"], "--pressure"),
        (["void-limit", "--pressure=-7 MPa"], "--pressure"),
        (["void-limit", "--pressure", "7 MPa", "--asr", "10 ohm"], "--asr"),
        (["fracture", "--flaw", "1 um", "--toughness", "0.6 MPa"], "--toughness"),
        (["tip-current", "--growth-rate", "1 um"], "--growth-rate"),
        (["filament", "--resistance", "440", "--thickness", "1.2 mm"], "--resistance"),
        (["filament", "--resistance", "440 ohm", "--thickness", "0 mm"], "--thickness"),
        (["ccd", "--pore-radius", "0.5 um"], "--pore-separation"),
        (["ccd", "--cell", "no/such/cell.toml"], "cell"),
        (["filament", "--resistance", "440 ohm"], "--thickness"),  # argparse: required
        (["nonsense"], "MODEL"),
    ],
)
def test_bad_values_give_one_line_and_exit_2(capsys, argv, names):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("daq: error:")
    assert names in lines[0]
