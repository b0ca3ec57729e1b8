"""The ``daq`` command line. Errors are one clear line (exit code 2), never a traceback; the exit
codes of a run's outcomes are in daq.core.exit_codes.

Each subcommand lives in its own module under daq.commands and defines ``register(subparsers)``, which
adds its parser and sets ``func(args) -> int``. The command line starts instantly: the table below names
each command, its one-line help and its module, and only the module of the command being run is
imported (``daq --help`` and a mistyped command import none, hence no numpy, h5py or Qt).
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import re
import sys
from typing import NamedTuple

from daq.core import exit_codes as X
from daq.core import units as u
from daq.core.errors import DaqError


class Command(NamedTuple):
    name: str
    module: str
    help: str  # the same line the module's register() gives (checked by the tests)


COMMAND_TABLE: tuple[Command, ...] = (
    Command("run", "daq.commands.run", "run a protocol (on the simulator with --sim)"),
    Command("resume", "daq.commands.resume", "continue an interrupted run in the same file, after checking the cell"),
    Command("validate", "daq.commands.validate", "check a protocol file without running it"),
    Command("report", "daq.commands.report", "summarise a run file and plot it (PNG)"),
    Command("export", "daq.commands.export", "write a run's data as CSV, EC-Lab .mpt, Gamry .DTA or Parquet"),
    Command("campaign", "daq.commands.campaign", "run a CCD campaign (current densities x repeats, a fresh cell each)"),
    Command("predict", "daq.commands.predict", "model predictions (CCD, void-free limit, fracture, filament ...)"),
    Command(
        "fit",
        "daq.commands.fit",
        "fit an equivalent circuit to impedance spectra (run file, recording or plain spectrum)",
    ),
    Command("import", "daq.commands.import_", "convert a Gamry .DTA or BioLogic .mpr/.mpt recording into a run file"),
    Command("replay", "daq.commands.replay", "run a protocol's logic against a recorded run file"),
    Command(
        "instruments", "daq.commands.instruments", "list the instruments and transducers of a rig (no current applied)"
    ),
    Command("safe", "daq.commands.safe", "switch a channel's output off and confirm it (no data touched)"),
    Command(
        "selftest",
        "daq.commands.selftest",
        "acceptance test of a channel on its dummy cell (pass/fail table, run file)",
    ),
    Command(
        "emulate", "daq.commands.emulate", "start the wire-protocol emulators of a rig file and print their resources"
    ),
    Command("gui", "daq.commands.gui", "open the rig window (live plots, run control, run files)"),
    Command("lab", "daq.commands.lab", "show every channel publishing to the lab's MQTT broker"),
    Command("serve", "daq.commands.serve", "serve a folder of run files read-only over HTTP (Tiled)"),
)
COMMANDS = [c.module for c in COMMAND_TABLE]


class _Parser(argparse.ArgumentParser):
    options_seen: set[str] = set()  # every option of every subcommand (for "did you mean")

    def add_argument(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        _Parser.options_seen.update(a for a in args if isinstance(a, str) and a.startswith("--"))
        return super().add_argument(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, exit 2, like every other refusal
        self.exit(
            X.BAD_INPUT, f"daq: error: {message}{hint_for(message, _Parser.options_seen)} (see '{self.prog} --help')\n"
        )


def hint_for(message: str, options: set[str]) -> str:
    """A hint for an argparse complaint: the option or command probably meant, or the quoting a value
    with a unit needs when the shell split it (``--set current_density=9 mA/cm^2``)."""
    choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if choice:
        names = [c.strip(" '") for c in choice[2].split(",")]
        close = difflib.get_close_matches(choice[1], names, n=1, cutoff=0.6)
        return f"; did you mean {close[0]}?" if close else ""
    if "unrecognized arguments:" not in message:
        return ""
    for token in message.split("unrecognized arguments:", 1)[1].split():
        if token.startswith("--"):
            close = difflib.get_close_matches(token.split("=", 1)[0], sorted(options), n=1, cutoff=0.7)
            if close:
                return f"; did you mean {close[0]}?"
        elif u.is_unit(token):
            return (
                f"; '{token}' looks like the unit of a value the shell split off: quote the value, "
                f'e.g. --set current_density="9 {token}"'
            )
    return ""


def version() -> str:
    """The installed distribution's version, else the package's own (a checkout on PYTHONPATH)."""
    from importlib import metadata

    try:
        return metadata.version("sse-rig")
    except metadata.PackageNotFoundError:
        import daq

        return daq.__version__


class _Version(argparse.Action):
    """``--version``: the version is looked up only when asked for (the parser stays instant)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: object):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="print the version and exit")

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # type: ignore[no-untyped-def]
        print(f"sse-rig {version()}")
        parser.exit()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser (every command's module imported), or with ``command`` only that command's
    parser built and the others listed by name and help from the table."""
    _Parser.options_seen = set()
    parser = _Parser(prog="daq", description="Solid-state cell test rig: run protocols, record, analyse.")
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for entry in COMMAND_TABLE:
        if command is None or entry.name == command:
            importlib.import_module(entry.module).register(sub)
        else:
            sub.add_parser(entry.name, help=entry.help, add_help=False)
    return parser


def command_named(argv: list[str]) -> str:
    """The command a command line runs (its first word that is not an option), or "" if none is known:
    then only the table is needed, to list the commands or to refuse an unknown one."""
    word = next((a for a in argv if not a.startswith("-")), "")
    return word if any(c.name == word for c in COMMAND_TABLE) else ""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(command_named(argv))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DaqError as exc:
        print(f"daq: error: {exc}", file=sys.stderr)
        return X.BAD_INPUT
    except BrokenPipeError:  # output piped into head & co.: not an error
        sys.stderr.close()
        return 0
    except OSError as exc:  # a file, directory or device the operator named: one line, not an internal error
        where = f"{exc.filename}: " if exc.filename is not None else ""
        print(f"daq: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return X.BAD_INPUT
    except KeyboardInterrupt:
        print("daq: interrupted; the cell was switched off", file=sys.stderr)
        return X.ABORTED
    except Exception as exc:
        if os.environ.get("DAQ_DEBUG"):
            raise
        print(f"daq: internal error: {type(exc).__name__}: {exc} (set DAQ_DEBUG=1 to see where)", file=sys.stderr)
        return X.INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
