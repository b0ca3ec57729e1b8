"""``daq report FILE``: summary of a run and its plots as PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

from daq.commands.report_figures import report
from daq.core.errors import DataFileError
from daq.storage.probe import probe_readable


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="summarise a run file and plot it (PNG)")
    p.add_argument("file", help="run file (.h5)")
    p.add_argument("--out", help="folder for the plots (default: FILE_report/ beside the file)")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise DataFileError(f"{args.file!r}: no such run file")
    probe_readable(path)
    lines, files = report(path, args.out)
    print("\n".join(lines))
    for f in files:
        print(f"  plot: {f}")
    return 0
