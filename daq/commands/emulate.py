"""``daq emulate RIG.toml``: start the wire-protocol emulators of a rig file and print their resources.

For trying other software against the lab's instruments without the instruments: every entry marked
``emulate = true`` that speaks a wire protocol gets its emulator (a Keithley 2450 on a loopback socket,
a transducer on a pseudo-terminal) around the channel's simulated cell, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from daq.commands.inputs import check_speed
from daq.core.clock import Clock, RealClock, ScaledClock
from daq.core.errors import ConfigError
from daq.engine.rig import Rig, load_rig


def load_emulated_rig(path: str | Path) -> Rig:
    """A rig whose ``emulate = true`` entries are built by the simulators' emulation."""
    from simulators.emulated import Emulation

    return load_rig(path, Emulation())


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "emulate",
        help="start the wire-protocol emulators of a rig file and print their resources",
        description="Start the socket and pseudo-terminal emulators of the rig's emulated entries around "
        "simulated cells and print their VISA resources and serial ports, until Ctrl-C.",
    )
    p.add_argument("rig", help="rig file (TOML)")
    p.add_argument("--speed", type=float, help="run the emulated cells at this multiple of real time")
    p.set_defaults(func=cmd_emulate)


def cmd_emulate(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """``stop``: set it to end the emulators (tests); the command line ends them with Ctrl-C."""
    from simulators.emulated import Emulation, start_wire_emulators

    check_speed(args.speed)
    emulation = Emulation()
    rig = load_rig(args.rig, emulation)
    clock: Clock = ScaledClock(args.speed) if args.speed else RealClock()
    started = start_wire_emulators(emulation, rig, clock)
    if not started:
        raise ConfigError("emulate", args.rig, "the rig has no emulated entry serving a channel (emulate = true)")
    print(f"Rig '{rig.name}': emulators running (Ctrl-C to stop)")
    for name, what, resource in started:
        print(f"  {name}: {what}: {resource}", flush=True)
    try:
        (stop or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulation.close()
    print("emulators stopped")
    return 0
