"""``daq report FILE``: summary of a run and its plots as PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

from daq.core.errors import DataFileError
from daq.storage.probe import probe_readable


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="summarise a run file and plot it (PNG)")
    p.add_argument("file", help="run file (.h5)")
    p.add_argument("--out", help="folder for the plots (default: FILE_report/ beside the file)")
    p.add_argument(
        "--cycles",
        metavar="LIST",
        help="cycles whose plating and stripping curves to draw, e.g. 1,10,50-60 (default: 12 spread over the run)",
    )
    p.set_defaults(func=cmd_report)


def report(
    path: str | Path, out_dir: str | Path | None = None, cycles: str | None = None
) -> tuple[list[str], list[Path]]:
    """The summary lines and the PNG files written for the run file at ``path``."""
    from daq.commands.report_figures import plot
    from daq.commands.report_text import summary_lines
    from daq.storage.reader import open_run

    path = Path(path)
    out = Path(out_dir) if out_dir else path.with_name(path.stem + "_report")
    with open_run(path) as run:
        return summary_lines(run), plot(run, out, cycles)


def cmd_report(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise DataFileError(f"{args.file!r}: no such run file")
    probe_readable(path)
    lines, files = report(path, args.out, args.cycles)
    print("\n".join(lines))
    for f in files:
        print(f"  plot: {f}")
    return 0
