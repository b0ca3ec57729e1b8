"""``daq validate PROTOCOL``: check a protocol (and its cell) without touching an instrument."""

from __future__ import annotations

import argparse

from daq.commands.inputs import load_inputs
from daq.core import units as u
from protocols import binding


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a protocol file without running it")
    p.add_argument("protocol")
    p.add_argument("--cell", help="cell file (default: the protocol's own cell)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    p.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    from simulators.potentiostat import SIM_CAPABILITIES  # the simulator (numpy) only when validating

    protocol, cell, _ = load_inputs(args)
    binding.check(protocol, cell, SIM_CAPABILITIES)
    print(
        f"{args.protocol}: valid; {len(protocol.walk())} steps on cell {cell.cell_id} "
        f"(working electrode {u.fmt(cell.electrodes.working_area, 'mm^2')})"
    )
    for path, step in binding.walk_paths(protocol.steps):
        print(f"  {path}: {step.kind} '{step.label}'")
    return 0
