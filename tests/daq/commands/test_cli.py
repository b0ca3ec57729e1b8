"""The command line: one clear line and exit code 2 for bad input, nothing created, nothing run."""

import os
import subprocess
import sys

import pytest

from daq.cli import main
from tests.conftest import EXAMPLES

PROTOCOL = str(EXAMPLES / "ccd_single_plating.toml")


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--set", "current_density=-9 mA/cm^2"], "must be positive"),
        (["--set", "current_density=9 mA"], "not a unit of current density"),
        (["--set", "current_density=9 parsecs"], "unknown unit 'parsecs'"),
        (["--set", "capacity=0 mAh/cm^2"], "capacity = '0 mAh/cm^2': must be a positive"),
        (["--set", "current_density=100 A/cm^2"], "must be at most 1000 mA/cm^2"),
        (
            ["--set", "current_density=900 mA/cm^2", "--set", "cell.electrodes.working_diameter=10 mm"],
            "beyond the instrument's range",
        ),
        (["--set", "current_density=0.000001 mA/cm^2"], "below what the instrument can control"),
        (["--set", "nonsense"], "expected name=value"),
        (["--cell", "/nonexistent/cell.toml"], "file not found"),
    ],
)
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
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "daq.cli",
            "run",
            str(bad),
            "--sim",
            "--cell",
            str(EXAMPLES / "cells" / "li6ps5cl_99.toml"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "steps.1.kind = 'warp': unknown step kind" in proc.stderr and "Traceback" not in proc.stderr


def test_run_refused_after_connect_leaves_no_file(tmp_path):
    """The instrument's own ranges (known once it identified itself) refuse the run: no file is left."""
    import dataclasses

    from daq.core.clock import VirtualClock
    from daq.core.errors import ConfigError
    from daq.engine.runner import run_protocol
    from daq.models.cell import load_cell
    from protocols.loader import load_protocol
    from simulators.cell import SimulatedCell
    from simulators.potentiostat import SIM_CAPABILITIES, SimulatedPotentiostat

    protocol = load_protocol(EXAMPLES / "operando_geis_plating.toml")
    cell = load_cell(EXAMPLES / "cells" / "li6ps5cl_99.toml")
    clock = VirtualClock()
    pstat = SimulatedPotentiostat(
        SimulatedCell(cell), clock, dataclasses.replace(SIM_CAPABILITIES, eis_max_frequency=1e6)
    )
    out = tmp_path / "r.h5"
    with pytest.raises(ConfigError, match="outside the instrument's"):
        run_protocol(protocol, cell, pstat, clock, out)
    assert not out.exists() and not (tmp_path / "r.h5.lock").exists()


def test_run_with_no_steps_recorded_still_closes_cleanly(tmp_path):
    """A fault at the very start: the run file is complete and the post-run analysis copes."""
    from daq.core.clock import VirtualClock
    from daq.core.errors import InstrumentError
    from daq.engine.runner import run_protocol
    from daq.models.cell import load_cell
    from daq.storage.reader import open_run
    from protocols.loader import load_protocol
    from simulators.rig import simulated_rig

    protocol = load_protocol(EXAMPLES / "ccd_single_plating.toml")
    cell = load_cell(EXAMPLES / "cells" / "li6ps5cl_99.toml")
    clock = VirtualClock()
    _, pstat, _ = simulated_rig(cell, clock)

    def broken(*args, **kwargs):
        raise InstrumentError("sim0: no answer within 2 s")

    pstat.open_circuit = broken
    res = run_protocol(protocol, cell, pstat, clock, tmp_path / "r.h5")
    assert res.outcome == "fault" and "post-run analysis failed" not in res.message
    with open_run(res.path) as run:
        assert run.status == "failed" and list(run.events().kind) == ["fault"]
