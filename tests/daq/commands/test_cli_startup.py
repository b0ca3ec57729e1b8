"""The command line starts without the heavy libraries: ``daq --help``, a mistyped command and the help of
a light command import no numpy, scipy, h5py, pandas, matplotlib or Qt; a command's module is imported
only when that command runs, and the short help listed from the table is the commands' own."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from daq import cli
from tests.conftest import ROOT

HEAVY = ("numpy", "scipy", "h5py", "pandas", "matplotlib", "PySide6", "PyQt5", "PyQt6", "pyqtgraph")

PROBE = """
import json, sys, io, contextlib
import daq.cli
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
    try:
        code = daq.cli.main({argv!r})
    except SystemExit as exc:
        code = exc.code
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r}))
commands = sorted(m for m in sys.modules if m.startswith("daq.commands."))
print(json.dumps({{"code": code, "out": out.getvalue(), "heavy": heavy, "commands": commands}}))
"""


def probe(argv: list[str]) -> dict:
    """Run ``daq.cli.main(argv)`` in a fresh interpreter; its exit code, output and what it imported."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return json.loads(proc.stdout)


def test_help_imports_no_heavy_library_and_no_command():
    result = probe(["--help"])
    assert result["code"] == 0
    assert result["heavy"] == [] and result["commands"] == []
    for command in cli.COMMAND_TABLE:
        assert f"    {command.name} " in result["out"]


def test_mistyped_command_is_refused_from_the_table_alone():
    result = probe(["rnu", "--sim"])
    assert result["code"] == 2
    assert "invalid choice: 'rnu'" in result["out"] and "did you mean run?" in result["out"]
    assert result["heavy"] == [] and result["commands"] == []


@pytest.mark.parametrize("command", ["campaign", "predict", "validate", "import", "replay", "gui"])
def test_a_command_imports_only_its_own_module(command):
    result = probe([command, "--help"])
    module = next(c.module for c in cli.COMMAND_TABLE if c.name == command)
    assert result["code"] == 0 and f"usage: daq {command}" in result["out"]
    assert [m for m in result["commands"] if m in cli.COMMANDS] == [module]


def test_campaign_help_imports_no_heavy_library():
    result = probe(["campaign", "--help"])
    assert "--jobs N" in result["out"] and "--dask ADDRESS" in result["out"]
    assert result["heavy"] == []


def test_the_table_lists_each_command_with_its_own_help():
    full, light = cli.build_parser(), cli.build_parser("")
    assert light.format_help() == full.format_help()
    assert cli.COMMANDS == [c.module for c in cli.COMMAND_TABLE]


def test_one_command_parses_as_in_the_full_parser():
    argv = ["run", "p.toml", "--sim", "--set", "current_density=2 mA/cm^2", "--speed", "10"]
    full, one = cli.build_parser().parse_args(argv), cli.build_parser("run").parse_args(argv)
    assert vars(full) == vars(one)
    assert one.speed == 10.0 and one.set == ["current_density=2 mA/cm^2"]


@pytest.mark.parametrize(
    ("argv", "command"),
    [(["run", "--sim"], "run"), (["-h", "report"], "report"), (["--help"], ""), (["rnu"], ""), ([], "")],
)
def test_command_named(argv, command):
    assert cli.command_named(argv) == command
