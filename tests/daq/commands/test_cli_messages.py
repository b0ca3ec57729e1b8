"""What the command line says to a person who mistyped: the option, field or command meant, the quoting a
value with a unit needs, which options conflict."""

import pytest

from daq.cli import main
from tests.conftest import EXAMPLES

PROTOCOL = str(EXAMPLES / "ccd_single_plating.toml")


def exit_code(argv: list[str]) -> int:
    """main()'s return value, or the status argparse exits with."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["run", PROTOCOL, "--sim", "--notfy", "n.toml"], "--notfy n.toml; did you mean --notify?"),
        (["rnu"], "invalid choice: 'rnu'"),
        (["rnu"], "did you mean run?"),
        (
            ["run", PROTOCOL, "--sim", "--set", "curent_density=9 mA/cm^2"],
            "no step has it; did you mean current_density?",
        ),
        (["run", PROTOCOL, "--sim", "--rig", "rig.toml"], "daq run: --sim and --rig exclude each other"),
        (["run", PROTOCOL], "choose where to run: --sim (simulator) or --rig RIG.toml"),
        (["run", "--sim", "--set", "current_density=9", "mA/cm^2"], '--set current_density="9 mA/cm^2"'),
        (["run", PROTOCOL, "--sim", "--set", "current_density=9", "mA/cm^2"], "quote the value"),
        (["run", PROTOCOL, "--sim", "--speed", "1e-300"], "--speed = 1e-300: must be a multiple of real time"),
        (["validate", PROTOCOL, "--set", "capacty=1 mAh/cm^2"], "did you mean capacity?"),
    ],
)
def test_mistakes_are_named(capsys, argv, needle):
    assert exit_code(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err


def test_papers_notation_on_the_command_line(tmp_path, capsys):
    assert main(["validate", PROTOCOL, "--set", "current_density=9 mA cm-2"]) == 0
    assert main(["validate", PROTOCOL, "--set", "capacity=8 mAh cm⁻²"]) == 0
