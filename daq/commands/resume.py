"""``daq resume RUN.h5 --sim | --rig RIG.toml[#CHANNEL]``: continue an interrupted run in the same file.

The run goes on from where it stopped (what is left of the step's capacity or time, the remaining loop
cycles), but only after the cell has passed a check at open circuit (daq.engine.soundness): a cell that
shorted or lost contact while nobody watched is refused, with one line naming what was measured and
the limit, exit code 2, and no current applied. The refusal and the measurements are recorded in the
run file, which stays resumable.

With ``--sim`` the simulated cell is rebuilt from the cell text the file keeps; ``--set
cell.simulation.start_shorted=true`` (or ``start_damage="97 %"``) rehearses a cell that failed meanwhile.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from daq.commands.inputs import check_speed, check_where, parse_settings
from daq.commands.progress import add_quiet_option, progress_subscriber
from daq.commands.publishing import add_publish_option, publisher_from
from daq.commands.stopping import abort_on_signals
from daq.commands.summary import summary
from daq.core import exit_codes
from daq.core import units as u
from daq.core.capabilities import Potentiostat, PressureSensor, honoured
from daq.core.clock import Clock, RealClock, ScaledClock, VirtualClock
from daq.core.errors import ConfigError, DaqError
from daq.engine.engine import RunControl
from daq.engine.notify import Notice, Notifier, load_notify
from daq.engine.runner import rebuild, resume_protocol
from daq.engine.soundness import SoundnessError, SoundnessLimits, check_cell, reference_from_run
from daq.models.cell import Cell, cell_from_text
from daq.storage import layout as L
from daq.storage.probe import probe_readable
from daq.storage.reader import open_run
from daq.storage.writer import RunWriter
from drivers.resilient import ResilientPotentiostat, ResilientTransducer
from protocols import binding


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "resume",
        help="continue an interrupted run in the same file, after checking the cell",
        description="Continue an interrupted run in its own file from where it stopped. The cell's "
        "open-circuit voltage and impedance are checked first; an unsound cell is "
        "refused (exit code 2) and no current flows.",
        epilog=exit_codes.epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="the interrupted run file (.h5)")
    p.add_argument("--sim", action="store_true", help="resume on the simulator")
    p.add_argument("--rig", help="rig file (TOML); RIG.toml#CHANNEL names the channel")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="cell.simulation.FIELD=VALUE",
        help="with --sim: the simulated cell's state now, e.g. cell.simulation.start_shorted=true",
    )
    p.add_argument("--notify", metavar="NOTIFY.toml", help="notify the operator (settings in a [notify] table)")
    p.add_argument("--ocv-max", metavar="VOLTAGE", help="largest |open-circuit voltage| accepted (default 50 mV)")
    p.add_argument("--speed", type=float, help="with --sim: run at this multiple of real time")
    add_quiet_option(p)
    add_publish_option(p)
    p.set_defaults(func=cmd_resume)


def _limits(args: argparse.Namespace) -> SoundnessLimits:
    limits = SoundnessLimits()
    if args.ocv_max is not None:
        ocv_max = u.parse(args.ocv_max, u.VOLTAGE, "--ocv-max")
        if not 0 < ocv_max <= 5:
            raise ConfigError("--ocv-max", args.ocv_max, "must be a voltage above 0 and at most 5 V")
        limits = dataclasses.replace(limits, ocv_max=ocv_max)
    return limits


def _sim_settings(items: list[str]) -> dict[str, Any]:

    proto, cell = parse_settings(items)
    if proto:
        key = next(iter(proto))
        raise ConfigError(
            f"--set {key}",
            proto[key],
            "a resumed run keeps its protocol; only the simulated "
            "cell's state can be set (cell.simulation.FIELD=VALUE)",
        )
    for key, value in cell.items():
        if not key.startswith("simulation."):
            raise ConfigError(
                f"--set cell.{key}", value, "a resumed run keeps its cell; only cell.simulation.* fields can be set"
            )
    return cell


def _hardware(
    args: argparse.Namespace, path: Path, cell: Cell
) -> tuple[Potentiostat, PressureSensor | None, Clock, dict[str, Any], bool]:
    """(potentiostat, transducer, clock, run attributes, simulated) for where the run continues."""
    if args.sim:
        from simulators.rig import simulated_rig

        sim_overrides = _sim_settings(args.set)
        with open_run(path) as run:
            sim_cell = cell_from_text(run.cell_source, {**run.cell_overrides, **sim_overrides}, f"{path}:/cell/source")
        clock: Clock = ScaledClock(args.speed) if args.speed else VirtualClock()
        _, pstat, transducer = simulated_rig(sim_cell, clock)
        return pstat, transducer, clock, {"rig": "simulator"}, True
    if args.set:
        raise ConfigError("--set", args.set[0], "only with --sim (it sets the simulated cell's state)")
    from daq.commands.emulate import load_emulated_rig  # instruments are imported only when a rig is used
    from daq.engine.rig import build_channel

    rig_path, _, channel_name = str(args.rig).partition("#")
    rig = load_emulated_rig(rig_path)
    with open_run(path) as run:  # without #CHANNEL: the channel the run file says it ran on, never a guess
        stored = str(run.attrs.get("channel", "") or "")
    channel = rig.channel_for(channel_name or stored or None, cell.cell_id)
    if channel.cell.cell_id != cell.cell_id:
        raise ConfigError(
            "--rig",
            args.rig,
            f"channel {channel.name} holds cell {channel.cell.cell_id}, but the run file is of cell {cell.cell_id}",
        )
    simulated = rig.instruments[channel.instrument].kind == "sim"
    if args.speed is not None and not simulated:
        raise ConfigError("--speed", args.speed, "only a simulated channel can run faster than real time")
    clock = (ScaledClock(args.speed) if args.speed else VirtualClock()) if simulated else RealClock()
    hw = build_channel(rig, channel, clock, cell)
    return hw.potentiostat, hw.transducer, clock, {"rig": rig.name, "channel": channel.name}, simulated


def record(path: Path, kind: str, message: str, data: dict[str, Any]) -> None:
    """Add one event to an interrupted run file and leave it interrupted (resumable)."""
    with open_run(path) as run:
        point = run.resume_point()
    writer = RunWriter.reopen(path)
    try:
        writer.add_event(point.t_last, kind, point.steps_done, message, data)
    finally:
        writer.close(L.INTERRUPTED, "")


def cmd_resume(args: argparse.Namespace) -> int:
    check_where(args, "daq resume", "continue")
    check_speed(args.speed)
    limits = _limits(args)
    notify_config = load_notify(args.notify) if args.notify else None
    path = Path(args.file)
    probe_readable(path, consequence="nothing was changed and no current applied")
    protocol, cell, point, _ = rebuild(path)
    with open_run(path) as run:
        reference = reference_from_run(run, cell)
    control = RunControl()  # every stop signal aborts, from connecting on
    with abort_on_signals(control):
        raw_pstat, raw_transducer, clock, attrs, simulated = _hardware(args, path, cell)
        pstat = ResilientPotentiostat(raw_pstat, clock)
        transducer = ResilientTransducer(raw_transducer, clock) if raw_transducer is not None else None
        notifier = (
            Notifier(notify_config, {"run_file": str(path), "cell_id": cell.cell_id, "protocol": protocol.name})
            if notify_config
            else None
        )
        binding.check(protocol, cell, honoured(pstat))
        try:
            pstat.connect()
            report = check_cell(pstat, clock, cell, reference, limits)
        except BaseException:
            _off(pstat)
            raise
        if not report.ok:
            _off(pstat)
            message = f"{path}: not resumed: {report.problem}"
            try:
                record(path, "resume_refused", f"resume refused, no current applied: {report.problem}", report.data())
            except DaqError as exc:
                message += f" (could not be recorded in the file: {exc})"
            _refused_notice(notifier, message, cell)
            raise SoundnessError(message, report)
        record(path, "soundness_check", f"before resuming: {report.summary()}", report.data())
        try:
            subscribers = ([notifier] if notifier else []) + publisher_from(args, protocol, cell)
            subscribers.append(progress_subscriber(protocol, cell, args.quiet))
            result = resume_protocol(path, pstat, clock, transducer, control=control, subscribers=subscribers)
        finally:
            for line in notifier.close() if notifier else []:
                print(f"daq: warning: {line}", file=sys.stderr)
    print(
        f"resumed {path} in step {point.steps_done + 1} after {point.t_last:.0f} s of run time "
        f"({attrs.get('rig', '')}); {report.summary()}"
    )
    print(summary(result, protocol, cell, simulated=simulated))
    return exit_codes.for_outcome(result.outcome)


def _off(pstat: Potentiostat) -> None:
    try:
        pstat.open_circuit(None)
    except Exception:  # noqa: BLE001 - the driver's close switches off too
        pass
    try:
        pstat.close()
    except Exception:  # noqa: BLE001 - the cell is already off; closing is best effort
        pass


def _refused_notice(notifier: Notifier | None, message: str, cell: Cell) -> None:
    if notifier is None or "refused" not in notifier.config.on:
        return
    notice = Notice(
        "refused",
        f"{cell.cell_id}: resume refused",
        message,
        {**notifier.context, "event_kind": "resume_refused", "outcome": "refused"},
    )
    for channel, error in notifier.deliver(notice):
        if error:
            print(f"daq: warning: notification by {channel} failed: {error}", file=sys.stderr)
