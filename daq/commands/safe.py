"""``daq safe RIG.toml#CHANNEL``: make one channel safe, whatever happened to the run driving it.

Connects to the channel's instrument, switches its output off and confirms it is off: by asking the
instrument where it can tell (a Keithley 2450's ``:OUTP?``, read by its driver's ``probe``), otherwise
by sampling a moment at open circuit and checking that no current flows. It touches no run file. Meant
for a supervisor (systemd ``ExecStopPost``, see deploy/sse-rig@.service) and for an operator at a rig
whose run died. Exit code 0 only when the output was confirmed off; 1 when it could not be confirmed.
"""

from __future__ import annotations

import argparse
import math
import threading
from typing import Any

import numpy as np

from daq.commands.emulate import load_emulated_rig
from daq.commands.stopping import abort_on_signals
from daq.core.clock import Clock, RealClock
from daq.core.errors import ConfigError, InstrumentError
from daq.engine.engine import RunControl
from daq.engine.rig import build_potentiostat

CONFIRM_SAMPLES = 3  # open-circuit samples that must all show no current


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "safe",
        help="switch a channel's output off and confirm it (no data touched)",
        description="Connect to the instrument of RIG.toml#CHANNEL, switch its output off and confirm it. "
        "Exit code 0 only when the output is confirmed off.",
    )
    p.add_argument(
        "target",
        metavar="RIG.toml#CHANNEL",
        help="rig file and channel (the channel may be left out only on a rig of one channel)",
    )
    p.add_argument("--timeout", type=float, help="seconds to wait for each instrument reply (overrides the rig file)")
    p.add_argument(
        "--deadline", type=float, default=30.0, help="seconds for the whole command (default 30); then exit 1"
    )
    p.set_defaults(func=cmd_safe)


def cmd_safe(args: argparse.Namespace) -> int:
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        raise ConfigError("--timeout", args.timeout, "must be a positive number of seconds")
    rig_path, _, channel_name = str(args.target).partition("#")
    rig = load_emulated_rig(rig_path)
    channel = rig.channel_for(channel_name or None)
    if not (math.isfinite(args.deadline) and args.deadline > 0):
        raise ConfigError("--deadline", args.deadline, "must be a positive number of seconds")
    clock = RealClock()
    pstat = build_potentiostat(rig, channel, clock)
    if args.timeout is not None and hasattr(pstat, "timeout"):
        pstat.timeout = args.timeout
    where = f"rig '{rig.name}', channel {channel.name} ({channel.instrument})"
    verdict: list[tuple[bool, str]] = []
    # The instrument is talked to in a worker, so that neither a driver call that hangs nor a signal can
    # keep this command from answering within its deadline.
    worker = threading.Thread(target=lambda: verdict.append(make_safe(pstat, clock)), daemon=True)
    try:
        with abort_on_signals(RunControl()):
            worker.start()
            worker.join(args.deadline)
    except KeyboardInterrupt as exc:
        verdict = [(False, f"interrupted by {exc or 'a signal'} before the output was confirmed off")]
    ok, how = verdict[0] if verdict else (False, f"no confirmation within {args.deadline:g} s")
    if ok:
        print(f"{where}: output off, confirmed ({how})")
        return 0
    print(f"daq: error: {where}: output NOT confirmed off: {how}; switch it off at the instrument")
    return 1


def make_safe(pstat: Any, clock: Clock) -> tuple[bool, str]:
    """Output off and confirmed: (confirmed, how or why not). Never raises for instrument trouble."""
    try:
        pstat.connect()
        pstat.open_circuit(None)
    except InstrumentError as exc:
        _close(pstat)
        return False, f"the instrument did not take the off command: {exc}"
    try:
        if hasattr(pstat, "probe"):  # the instrument reports its output state itself
            _close(pstat)
            _, output_on = pstat.probe()
            return (not output_on), "the instrument reports its output off" if not output_on else "output still ON"
        return _confirm_by_sampling(pstat, clock)
    except InstrumentError as exc:
        return False, f"the output state could not be read back: {exc}"
    finally:
        _close(pstat)


def _confirm_by_sampling(pstat: Any, clock: Clock) -> tuple[bool, str]:
    period = max(pstat.capabilities.min_sample_period, 0.1)
    pstat.open_circuit(period)
    clock.sleep((CONFIRM_SAMPLES + 1) * period)
    block = pstat.read()
    pstat.open_circuit(None)
    current = np.asarray(block.I, float)
    if current.size < 1:
        return False, "the instrument returned no open-circuit sample"
    limit = max(10 * pstat.capabilities.current_resolution, 1e-9)  # A
    worst = float(np.max(np.abs(current)))
    if not worst <= limit:
        return False, f"{worst:.3g} A still flows at open circuit"
    return True, f"{current.size} open-circuit samples with |I| <= {limit:.1g} A"


def _close(pstat: Any) -> None:
    try:
        pstat.close()
    except Exception:  # noqa: BLE001 - closing is best effort; the verdict comes from the confirmation
        pass
