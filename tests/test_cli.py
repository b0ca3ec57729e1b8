"""The command line: one clear line and exit code 2 for bad input, nothing created, nothing run."""

import os
import subprocess
import sys

import pytest

from daq.cli import main
from tests.conftest import EXAMPLES

PROTOCOL = str(EXAMPLES / "ccd_single_plating.toml")


@pytest.mark.parametrize("args,needle", [
    (["--set", "current_density=-9 mA/cm^2"], "must be positive"),
    (["--set", "current_density=9 mA"], "not a unit of current density"),
    (["--set", "current_density=9 parsecs"], "unknown unit 'parsecs'"),
    (["--set", "capacity=0 mAh/cm^2"], "capacity = '0 mAh/cm^2': must be a positive"),
    (["--set", "current_density=100 A/cm^2"], "beyond the instrument's range"),
    (["--set", "current_density=0.000001 mA/cm^2"], "below what the instrument can control"),
    (["--set", "nonsense"], "expected name=value"),
    (["--cell", "/nonexistent/cell.toml"], "file not found"),
])
def test_bad_input_refused_before_anything_runs(tmp_path, capsys, args, needle):
    out = tmp_path / "run.h5"
    assert main(["run", PROTOCOL, "--sim", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_must_choose_sim_or_rig(capsys):
    assert main(["run", PROTOCOL]) == 2
    assert "--sim" in capsys.readouterr().err


def test_validate(capsys):
    assert main(["validate", PROTOCOL]) == 0
    assert "valid" in capsys.readouterr().out
    assert main(["validate", PROTOCOL, "--set", "current_density=abc"]) == 2


def test_run_prints_summary(tmp_path, capsys):
    out = tmp_path / "run.h5"
    assert main(["run", PROTOCOL, "--sim", "--out", str(out), "--set", "capacity=1 mAh/cm^2"]) == 0
    text = capsys.readouterr().out
    assert "outcome:" in text and "capacity reached:  1 mAh/cm^2" in text and "predicted CCD:     9.5 mA/cm^2" in text
    assert out.exists()
    assert main(["run", PROTOCOL, "--sim", "--out", str(out)]) == 2  # never overwrites a run
    assert "already exists" in capsys.readouterr().err


def test_console_script_bad_file_no_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[steps]]\nkind = 'warp'\n")
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-m", "daq.cli", "run", str(bad), "--sim", "--cell",
                           str(EXAMPLES / "cells" / "li6ps5cl_99.toml")], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 2
    assert "steps.1.kind = 'warp': unknown step kind" in proc.stderr and "Traceback" not in proc.stderr
