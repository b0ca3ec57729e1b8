"""The ``daq`` command line. Errors are one clear line (exit code 2), never a traceback.

Each subcommand lives in its own module under daq.commands and defines ``register(subparsers)``, which
adds its parser and sets ``func(args) -> int``.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import re
import sys

from daq.core import units as u
from daq.core.errors import DaqError

COMMANDS = [
    "daq.commands.run",
    "daq.commands.resume",
    "daq.commands.validate",
    "daq.commands.report",
    "daq.commands.campaign",
    "daq.commands.predict",
    "daq.commands.import_",
    "daq.commands.replay",
    "daq.commands.instruments",
    "daq.commands.gui",
    "daq.commands.lab",
    "daq.commands.serve",
]


class _Parser(argparse.ArgumentParser):
    options_seen: set[str] = set()  # every option of every subcommand (for "did you mean")

    def add_argument(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        _Parser.options_seen.update(a for a in args if isinstance(a, str) and a.startswith("--"))
        return super().add_argument(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, exit 2, like every other refusal
        self.exit(2, f"daq: error: {message}{hint_for(message, _Parser.options_seen)} (see '{self.prog} --help')\n")


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


def build_parser() -> argparse.ArgumentParser:
    _Parser.options_seen = set()
    parser = _Parser(prog="daq", description="Solid-state cell test rig: run protocols, record, analyse.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DaqError as exc:
        print(f"daq: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into head & co.: not an error
        sys.stderr.close()
        return 0
    except OSError as exc:  # a file, directory or device the operator named: one line, not an internal error
        where = f"{exc.filename}: " if exc.filename is not None else ""
        print(f"daq: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("daq: interrupted; the cell was switched off", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("DAQ_DEBUG"):
            raise
        print(f"daq: internal error: {type(exc).__name__}: {exc} (set DAQ_DEBUG=1 to see where)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
