"""Exit codes of ``daq run`` for each way a run ends, as documented in ``daq run --help`` and the README."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import daq.commands.run as run_command
from daq.cli import main
from daq.core.exit_codes import BY_OUTCOME, TABLE
from daq.core.records import Outcome
from daq.storage.reader import open_run
from simulators.faults import FaultPlan, FaultyPotentiostat
from tests.conftest import EXAMPLES

ROOT = Path(__file__).resolve().parents[3]
PROTOCOL = str(EXAMPLES / "ccd_single_plating.toml")
CELL_83 = str(EXAMPLES / "cells" / "li6ps5cl_83.toml")
CELL_99 = str(EXAMPLES / "cells" / "li6ps5cl_99.toml")

CURRENT_LIMITED = """
[protocol]
name = "hold"
[[steps]]
kind = "potentiostatic"
label = "hold"
potential = "-0.5 V"
duration = "10 min"
i_limit = "0.1 mA/cm^2"
"""

INTERLOCKED = """
[protocol]
name = "pulse under a pressure interlock"
[interlocks.pressure]
min = "8 MPa"
clear_wait = "10 s"
timeout = "1 min"
[[steps]]
kind = "galvanostatic"
label = "pulse"
direction = "plate"
current_density = "1 mA/cm^2"
capacity = "0.01 mAh/cm^2"
"""


def run_code(tmp_path: Path, *argv: str) -> tuple[int, str]:
    """Exit code of ``daq run ... --sim --quiet`` and the outcome stored in its run file."""
    out = tmp_path / "run.h5"
    code = main(["run", *argv, "--sim", "--quiet", "--out", str(out)])
    with open_run(out) as run:
        return code, run.attrs["outcome"]


def test_every_outcome_has_its_own_code_and_a_documented_line():
    assert set(BY_OUTCOME) == {str(o) for o in Outcome}
    codes = {code for code, _ in TABLE}
    assert set(BY_OUTCOME.values()) <= codes and len(codes) == len(TABLE)
    assert BY_OUTCOME["completed"] == 0 and BY_OUTCOME["aborted"] == 130
    stops = [BY_OUTCOME[o] for o in ("short_circuit", "voltage_limit", "fault", "interlock", "aborted")]
    assert len(set(stops)) == len(stops) and not {0, 2, 3} & set(stops)
    readme = (ROOT / "README.md").read_text()
    for code, text in TABLE:
        assert f"| {code} | {text} |" in readme


def test_help_lists_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    for code, meaning in TABLE:
        assert f"{code:>3}  {meaning}" in text


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"sse-rig {__import__('daq').__version__}"


def test_completed_exits_0(tmp_path):
    assert run_code(tmp_path, PROTOCOL, "--set", "capacity=0.5 mAh/cm^2") == (0, "completed")


def test_short_circuit_exits_4(tmp_path):
    assert run_code(tmp_path, PROTOCOL, "--cell", CELL_83) == (4, "short_circuit")


def test_voltage_limit_exits_5(tmp_path):
    assert run_code(tmp_path, PROTOCOL, "--set", "steps.2.v_min=-5 mV") == (5, "voltage_limit")


def test_current_limit_exits_5(tmp_path):
    protocol = tmp_path / "hold.toml"
    protocol.write_text(CURRENT_LIMITED)
    assert run_code(tmp_path, str(protocol), "--cell", CELL_99) == (5, "current_limit")


def test_interlock_exits_7(tmp_path):
    protocol = tmp_path / "interlocked.toml"  # the simulated press holds the cell at 7 MPa
    protocol.write_text(INTERLOCKED)
    assert run_code(tmp_path, str(protocol), "--cell", CELL_99) == (7, "interlock")


def test_fault_exits_6(tmp_path, monkeypatch):
    """An instrument that stops answering mid-run: the run ends as a fault, exit code 6."""
    real = run_command.simulated_rig

    def dying_rig(cell, clock):
        sim, pstat, transducer = real(cell, clock)
        return sim, FaultyPotentiostat(pstat, clock, FaultPlan(dead_after=900.0, timeout=0.5)), transducer

    monkeypatch.setattr(run_command, "simulated_rig", dying_rig)
    assert run_code(tmp_path, PROTOCOL) == (6, "fault")


def test_ctrl_c_exits_130(tmp_path):
    out = tmp_path / "run.h5"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "daq.cli", "run", "--sim", "--speed", "50", "--quiet", "--out", str(out)]
    proc = subprocess.Popen([*cmd, "--set", "steps.1.duration=10 s"], cwd=ROOT, env=env, stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not out.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the run did not start"
            time.sleep(0.05)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    with open_run(out) as run:
        assert run.attrs["outcome"] == "aborted"
