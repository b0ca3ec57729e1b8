"""The ``daq`` command line. Errors are one clear line (exit code 2), never a traceback.

Each subcommand lives in its own module under daq.commands and defines ``register(subparsers)``, which
adds its parser and sets ``func(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from daq.core.errors import DaqError

COMMANDS = [
    "daq.commands.run",
    "daq.commands.resume",
    "daq.commands.validate",
    "daq.commands.report",
    "daq.commands.export",
    "daq.commands.campaign",
    "daq.commands.predict",
    "daq.commands.import_",
    "daq.commands.replay",
    "daq.commands.instruments",
    "daq.commands.gui",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other refusal
        self.exit(2, f"daq: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
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
