"""``daq gui [FILE ...]``: the live rig window (simulated channels, or run files to review or follow)."""

from __future__ import annotations

import argparse
import re
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from daq.commands.publishing import add_publish_option, publish_settings
from daq.core.errors import ConfigError
from daq.engine.publish import parse_url


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
    p.add_argument(
        "--lab",
        metavar="mqtt://HOST[:PORT][/LAB]",
        help="open the lab overview: a tile per channel publishing to this MQTT broker (see docs/lab.md)",
    )
    add_publish_option(p)
    p.set_defaults(func=cmd_gui)


def publishers(args: argparse.Namespace, channels: int):
    """``--publish`` for the simulated channels: a function making each run's publisher (None without it).
    Each channel publishes as ``<lab>/<rig>/sim-N`` (rig: this host, unless the address names one)."""
    settings = publish_settings(args)
    if settings is None:
        return None
    if settings.channel and channels > 1:
        raise ConfigError("--publish", args.publish, "names one channel: leave it out with several --channels")
    from daq.engine.publish import Publisher

    def make(protocol: Any, cell: Any, name: str) -> list[Any]:
        context = {
            "cell": cell.cell_id,
            "protocol": protocol.name,
            "working_area": cell.electrodes.working_area,
            "host": socket.gethostname(),
            "channel": re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "sim",
        }
        return [Publisher(settings, context)]

    return make


def _refuse_non_run(path: str) -> None:
    """A file that is not a run file is refused here with one line, as ``daq report`` refuses it, instead
    of a tab that stays "opening..." (raises DataFileError)."""
    from daq.storage.reader import open_run

    open_run(path).close()


def _checked_channels(args: argparse.Namespace) -> int:
    """The number of simulated channels, once the files and options are known to be sound."""
    for f in args.files:
        if not Path(f).exists():
            raise ConfigError("FILE", f, "no such run file")
        _refuse_non_run(f)
    if not args.speed > 0:
        raise ConfigError("--speed", args.speed, "must be a positive multiple of real time")
    default = 0 if args.files or args.lab else 1
    channels = args.channels if args.channels is not None else default
    if channels < 0:
        raise ConfigError("--channels", channels, "must be 0 or more")
    if args.start and not args.protocol and channels == 0:
        raise ConfigError("--start", None, "needs a simulated channel (--channels N)")
    return channels


def _check_libraries(lab: bool, publish: bool) -> None:
    """Qt that can open a window, and paho-mqtt when a lab is watched or runs publish: one line if not."""
    from daq.gui import qt_problem

    problem = qt_problem()
    if problem:
        raise ConfigError("daq gui", None, problem)
    if lab or publish:
        try:
            import paho.mqtt.client  # noqa: F401
        except ImportError:
            raise ConfigError(
                "--lab" if lab else "--publish", None, "needs paho-mqtt: pip install 'sse-rig[lab]'"
            ) from None


def cmd_gui(args: argparse.Namespace) -> int:
    channels = _checked_channels(args)
    lab = parse_url(args.lab, "--lab") if args.lab else None
    publish = publishers(args, channels)
    _check_libraries(lab is not None, publish is not None)
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from daq.gui.dialogs import default_protocol
    from daq.gui.sources import SimulatedRun
    from daq.gui.window import RigWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    SimulatedRun.extra_subscribers = publish
    windows: list[Any] = []
    if lab is not None:
        from daq.gui.lab import LabWindow

        windows.append(LabWindow(lab))
    window = None
    if channels or args.files or lab is None:
        protocol = args.protocol or str(default_protocol())
        window = RigWindow(
            channels=channels,
            files=args.files,
            start_defaults={"protocol": protocol, "cell": args.cell, "speed": args.speed},
        )
        windows.append(window)
        if args.start:
            for panel in window.panels:
                if panel.simulated:
                    panel.start_run(protocol, args.cell, args.speed)

    def stop(*_: object) -> None:  # Ctrl-C or kill: runs end with the cell off, files are closed
        if window is not None:
            for panel in window.panels:
                panel.shutdown()
        app.quit()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    tick = QTimer()
    tick.timeout.connect(lambda: None)  # lets Python run its signal handlers while Qt waits for events
    tick.start(200)
    for w in windows:
        w.show()
    try:
        return int(app.exec())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
