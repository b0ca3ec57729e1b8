"""``daq run PROTOCOL --rig RIG.toml[#CHANNEL]``: run a protocol on a channel of a rig.

The channel is the one named after ``#``, else the rig's only channel, else the one whose cell file
holds the run's cell. Without ``--cell`` the cell is the one the rig file puts on that channel (with any
``--set cell.*`` overrides); an explicit ``--cell`` must be that same cell (same id), because current
densities become currents through its electrode area. A simulated channel runs in virtual time (or at
``--speed``); real instruments run on the wall clock.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from daq.commands.emulate import load_emulated_rig
from daq.commands.progress import progress_subscriber
from daq.commands.stopping import abort_on_signals
from daq.commands.summary import summary
from daq.core import exit_codes
from daq.core.clock import Clock, RealClock, ScaledClock, VirtualClock
from daq.core.errors import ConfigError
from daq.engine.engine import RunControl
from daq.engine.rig import build_channel, deadman_note
from daq.engine.runner import run_protocol
from daq.models.cell import Cell, cell_from_text, read_cell_text
from daq.storage.naming import default_out
from protocols.steps import Protocol


def run_on_rig(args: argparse.Namespace, protocol: Protocol, cell: Cell, stored: dict[str, Any]) -> int:
    rig_path, _, channel_name = str(args.rig).partition("#")
    rig = load_emulated_rig(rig_path)
    channel = rig.channel_for(channel_name or None, cell.cell_id)
    if getattr(args, "cell", None):
        if cell.cell_id != channel.cell.cell_id:
            raise ConfigError(
                "--cell",
                args.cell,
                f"channel {channel.name} of rig '{rig.name}' holds cell "
                f"{channel.cell.cell_id} ({channel.cell_path}), not {cell.cell_id}",
            )
    else:
        text = read_cell_text(channel.cell_path)
        overrides = stored.get("cell_overrides") or {}
        cell = cell_from_text(text, overrides, str(channel.cell_path))
        stored = {**stored, "cell_source": text, "cell_overrides": overrides}
    progress = progress_subscriber(protocol, cell, getattr(args, "quiet", False))  # the channel's cell: its area
    stored = {**stored, "subscribers": [*stored.get("subscribers", []), progress]}
    simulated = rig.emulated(channel)  # simulated or emulated throughout: virtual (or --speed) time
    if args.speed is not None and not simulated:
        raise ConfigError("--speed", args.speed, "only a simulated or emulated channel can run faster than real time")
    clock: Clock = (ScaledClock(args.speed) if args.speed else VirtualClock()) if simulated else RealClock()
    out = Path(args.out) if args.out else default_out(protocol.name, cell.cell_id)
    deadman, backing = deadman_note(rig.instruments[channel.instrument])
    control = RunControl()
    with abort_on_signals(control):
        hardware = build_channel(rig, channel, clock, cell)
        result = run_protocol(
            protocol,
            cell,
            hardware.potentiostat,
            clock,
            out,
            transducer=hardware.transducer,
            control=control,
            run_attrs={
                "rig": rig.name,
                "rig_file": str(Path(rig_path).resolve()),
                "channel": channel.name,
                "instrument": channel.instrument,
                "clock": "wall" if not clock.virtual else "virtual",
                "deadman_s": deadman,
                "deadman_unit": "s",
                "deadman_backing": backing,
            },
            **stored,
        )
    print(f"rig '{rig.name}', channel {channel.name} ({channel.instrument}); run file {out}")
    print(summary(result, protocol, cell, simulated=simulated))
    return exit_codes.for_outcome(result.outcome)
