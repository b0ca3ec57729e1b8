"""``daq run PROTOCOL --sim``: run a protocol on the simulator (or a rig) and print a short summary."""

from __future__ import annotations

import argparse
import re
import signal
from datetime import datetime
from pathlib import Path
from typing import Any

from daq.commands.summary import summary
from daq.core.clock import ScaledClock, VirtualClock
from daq.core.errors import ConfigError
from daq.engine.engine import RunControl
from daq.engine.notify import cli_notifier
from daq.engine.runner import run_protocol
from daq.models.cell import cell_from_text, read_cell_text
from drivers.resilient import RetryPolicy
from protocols.loader import load_protocol
from simulators.rig import simulated_rig

MAX_SPEED = 1e6  # beyond, one wall-clock poll spans more samples than a block can hold
DEFAULT_PROTOCOL = Path(__file__).resolve().parents[2] / "protocols" / "examples" / "ccd_single_plating.toml"


def parse_settings(items: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``--set`` items -> (protocol overrides, cell overrides ``cell.section.field``)."""
    proto: dict[str, Any] = {}
    cell: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ConfigError("--set", item, 'expected name=value, e.g. --set current_density="10 mA/cm^2"')
        typed: Any = value
        if re.fullmatch(r"[-+]?\d+", value):
            typed = int(value)
        elif value in ("true", "false"):
            typed = value == "true"
        if key.startswith("cell."):
            cell[key[5:]] = typed
        else:
            proto[key] = typed
    return proto, cell


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a protocol (on the simulator with --sim)",
        description="Run a protocol file. With --sim the simulated cell and instruments run in accelerated time.",
    )
    p.add_argument(
        "protocol",
        nargs="?",
        default=str(DEFAULT_PROTOCOL),
        help="protocol file (TOML); default: the CCD single-plating example",
    )
    p.add_argument("--sim", action="store_true", help="run on the simulator")
    p.add_argument("--rig", help="rig file (TOML) naming the instruments")
    p.add_argument("--cell", help="cell file (TOML); default: the protocol's own cell")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help='override a protocol field (current_density="10 mA/cm^2", steps.2.capacity=...) or '
        "a cell field (cell.simulation.seed=3)",
    )
    p.add_argument("--out", help="run file to write (default: runs/<protocol>-<cell>-<time>.h5)")
    p.add_argument(
        "--speed", type=float, help="with --sim: run at this multiple of real time instead of as fast as possible"
    )
    p.add_argument(
        "--notify",
        metavar="NOTIFY.toml",
        help="notify the operator on stop, short circuit, interlock and fault ([notify] table)",
    )
    p.set_defaults(func=cmd_run)


def load_inputs(args: argparse.Namespace):
    overrides, cell_overrides = parse_settings(args.set)
    protocol = load_protocol(args.protocol, overrides)
    cell_path = args.cell or protocol.cell_path
    if cell_path is None:
        raise ConfigError("--cell", None, "the protocol names no cell; give --cell CELLFILE")
    cell_text = read_cell_text(cell_path)
    cell = cell_from_text(cell_text, cell_overrides, str(cell_path))
    return protocol, cell, {"cell_source": cell_text, "cell_overrides": cell_overrides}


def default_out(protocol_name: str, cell_id: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{protocol_name}-{cell_id}").strip("-").lower()
    return Path("runs") / f"{slug}-{datetime.now():%Y%m%d-%H%M%S}.h5"


def cmd_run(args: argparse.Namespace) -> int:
    if args.sim == bool(args.rig):
        raise ConfigError("daq run", None, "choose where to run: --sim (simulator) or --rig RIG.toml")
    if args.speed is not None and not 0 < args.speed <= MAX_SPEED:  # also refuses nan and inf
        raise ConfigError("--speed", args.speed, f"must be a positive multiple of real time, at most {MAX_SPEED:g}")
    protocol, cell, stored = load_inputs(args)
    notifier = cli_notifier(args.notify)  # --notify: checked now; the notifier listens to the run
    if notifier is not None:
        stored["listeners"] = [notifier]
    stored["resilience"] = RetryPolicy()  # instruments ride out faults; every fault is recorded as an event
    if args.rig:
        from daq.commands.rig_run import run_on_rig  # instruments are imported only when a rig is used

        return run_on_rig(args, protocol, cell, stored)
    clock = ScaledClock(args.speed) if args.speed else VirtualClock()
    sim, pstat, transducer = simulated_rig(cell, clock)
    out = Path(args.out) if args.out else default_out(protocol.name, cell.cell_id)
    control = RunControl()
    previous = signal.signal(signal.SIGINT, lambda *_: control.abort("interrupted from the keyboard (Ctrl-C)"))
    try:
        result = run_protocol(
            protocol,
            cell,
            pstat,
            clock,
            out,
            transducer=transducer,
            control=control,
            run_attrs={"rig": "simulator", "clock": "virtual" if clock.virtual else "scaled"},
            **stored,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    print(summary(result, protocol, cell, simulated=True))
    return 0 if result.status != "failed" else 1
