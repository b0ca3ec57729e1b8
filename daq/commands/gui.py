"""``daq gui [FILE ...]``: the live rig window (simulated channels, or run files to review or follow)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from daq.core.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gui",
        help="open the rig window (live plots, run control, run files)",
        description="Open the rig window. Without FILE: simulated channels to run protocols on. "
        "With FILE: show a finished run, or follow one another process is writing "
        "(closing the window never affects that run).",
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="run file(s) to show or follow")
    p.add_argument("--channels", type=int, help="simulated channels (default: 1 without FILE, 0 with)")
    p.add_argument("--protocol", help="protocol file offered when starting a run")
    p.add_argument("--cell", help="cell file offered when starting a run (default: the protocol's own)")
    p.add_argument(
        "--speed",
        type=float,
        default=3600.0,
        help="simulated runs go this many times faster than real time (default 3600: 1 h per s)",
    )
    p.add_argument("--start", action="store_true", help="start the protocol on every simulated channel at once")
    p.set_defaults(func=cmd_gui)


def _refuse_non_run(path: str) -> None:
    """A file that is not a run file is refused here with one line, as ``daq report`` refuses it, instead
    of a tab that stays "opening..." (raises DataFileError)."""
    from daq.storage.reader import open_run

    open_run(path).close()


def cmd_gui(args: argparse.Namespace) -> int:
    for f in args.files:
        if not Path(f).exists():
            raise ConfigError("FILE", f, "no such run file")
        _refuse_non_run(f)
    if not args.speed > 0:
        raise ConfigError("--speed", args.speed, "must be a positive multiple of real time")
    channels = args.channels if args.channels is not None else (0 if args.files else 1)
    if channels < 0:
        raise ConfigError("--channels", channels, "must be 0 or more")
    if args.start and not args.protocol and channels == 0:
        raise ConfigError("--start", None, "needs a simulated channel (--channels N)")
    from daq.gui import qt_problem

    problem = qt_problem()
    if problem:
        raise ConfigError("daq gui", None, problem)
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from daq.gui.dialogs import default_protocol
    from daq.gui.window import RigWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    protocol = args.protocol or str(default_protocol())
    window = RigWindow(
        channels=channels,
        files=args.files,
        start_defaults={"protocol": protocol, "cell": args.cell, "speed": args.speed},
    )
    if args.start:
        for panel in window.panels:
            if panel.simulated:
                panel.start_run(protocol, args.cell, args.speed)

    def stop(*_: object) -> None:  # Ctrl-C or kill: runs end with the cell off, files are closed
        for panel in window.panels:
            panel.shutdown()
        app.quit()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    tick = QTimer()
    tick.timeout.connect(lambda: None)  # lets Python run its signal handlers while Qt waits for events
    tick.start(200)
    window.show()
    try:
        return int(app.exec())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
