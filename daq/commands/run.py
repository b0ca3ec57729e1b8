"""``daq run PROTOCOL --sim``: run a protocol on the simulator (or a rig) and print a short summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from daq.commands.inputs import DEFAULT_PROTOCOL, check_speed, check_where, load_inputs
from daq.commands.progress import add_quiet_option, progress_subscriber
from daq.commands.publishing import add_publish_option, publisher_from
from daq.commands.stopping import abort_on_signals
from daq.commands.summary import summary
from daq.core import exit_codes
from daq.core.clock import ScaledClock, VirtualClock
from daq.engine.engine import RunControl
from daq.engine.notify import cli_notifier
from daq.engine.runner import run_protocol
from daq.storage.naming import default_out
from drivers.retry import RetryPolicy
from simulators.rig import simulated_rig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a protocol (on the simulator with --sim)",
        description="Run a protocol file. With --sim the simulated cell and instruments run in accelerated time. "
        "Progress goes to stderr (a bar on a terminal, a line every few minutes in a log), the summary to stdout.",
        epilog=exit_codes.epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    add_quiet_option(p)
    add_publish_option(p)
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    check_where(args, "daq run")
    check_speed(args.speed)
    protocol, cell, stored = load_inputs(args)
    notifier = cli_notifier(args.notify)  # --notify: checked now; the notifier listens to the run
    if notifier is not None:
        stored["subscribers"] = [notifier]
    stored["subscribers"] = [*stored.get("subscribers", []), *publisher_from(args, protocol, cell)]
    stored["resilience"] = RetryPolicy()  # instruments ride out faults; every fault is recorded as an event
    if args.rig:
        from daq.commands.rig_run import run_on_rig  # instruments are imported only when a rig is used

        return run_on_rig(args, protocol, cell, stored)
    stored["subscribers"].append(progress_subscriber(protocol, cell, args.quiet))
    clock = ScaledClock(args.speed) if args.speed else VirtualClock()
    sim, pstat, transducer = simulated_rig(cell, clock)
    out = Path(args.out) if args.out else default_out(protocol.name, cell.cell_id)
    control = RunControl()
    with abort_on_signals(control):
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
    print(summary(result, protocol, cell, simulated=True))
    return exit_codes.for_outcome(result.outcome)
