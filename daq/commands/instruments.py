"""``daq instruments RIG.toml``: connect to everything a rig names and list what answers.

Identity, firmware and ranges of each potentiostat, its dead-man time (how long it sources current
without the engine re-arming it, and whether the instrument guarantees that), one reading of each transducer with its
calibration. No current is applied: drivers are only connected and closed (a Keithley 2450 is only
probed, so an output another process has switched on stays as it is). An instrument that does not
answer is listed with the reason and the others are still listed; the exit code is 1 if any failed.
"""

from __future__ import annotations

import argparse
from typing import Any

from daq.commands.emulate import load_emulated_rig
from daq.core import units as u
from daq.core.clock import RealClock
from daq.core.errors import ConfigError
from daq.engine.rig import Rig, build_potentiostat, build_transducer, deadman_note


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "instruments",
        help="list the instruments and transducers of a rig (no current applied)",
        description="Connect to each instrument and transducer the rig file names and list "
        "identity, firmware, ranges and a pressure reading. No current is applied.",
    )
    p.add_argument("rig", help="rig file (TOML)")
    p.add_argument("--timeout", type=float, help="seconds to wait for each instrument (overrides the rig file)")
    p.set_defaults(func=cmd_instruments)


def cmd_instruments(args: argparse.Namespace) -> int:
    rig = load_emulated_rig(args.rig)
    if args.timeout is not None and not args.timeout > 0:
        raise ConfigError("--timeout", args.timeout, "must be a positive number of seconds")
    lines, failures = describe_rig(rig, timeout=args.timeout)
    print("\n".join(lines))
    return 1 if failures else 0


def describe_rig(rig: Rig, timeout: float | None = None) -> tuple[list[str], int]:
    """Lines to print and the number of instruments or transducers that could not be reached."""
    clock = RealClock()
    failures = 0
    lines = [f"Rig '{rig.name}'" + (f" ({rig.path})" if rig.path else ""), "", "Instruments"]
    for spec in rig.instruments.values():
        channels = rig.channels_of(spec.name)
        used = ", ".join(f"{c.name} (ch {c.channel})" for c in channels) or "no channel"
        lines.append(f"  {spec.name}: {spec.kind} at {spec.resource}; serves {used}")
        seconds, backing = deadman_note(spec)
        lines.append(f"    dead-man time: {seconds:g} s ({backing})")
        if not channels:
            lines.append("    not used by any channel; not connected")
            continue
        try:
            pstat = build_potentiostat(rig, channels[0], clock)
            if timeout is not None and hasattr(pstat, "timeout"):
                pstat.timeout = timeout
            lines += _potentiostat_lines(pstat)
        except Exception as exc:  # noqa: BLE001 - one instrument's failure must not hide the others
            failures += 1
            lines.append(f"    UNREACHABLE: {_reason(exc)}")
    lines += ["", "Transducers"]
    if not rig.transducers:
        lines.append("  none")
    for spec in rig.transducers.values():
        channel = next((c for c in rig.channels.values() if c.transducer == spec.name), None)
        lines.append(
            f"  {spec.name}: {spec.kind} at {spec.port}; press of "
            f"{'channel ' + channel.name if channel else 'no channel'}"
        )
        if channel is None:
            lines.append("    not used by any channel; not connected")
            continue
        try:
            transducer = build_transducer(rig, channel, clock)
            if timeout is not None and hasattr(transducer, "timeout"):
                transducer.timeout = timeout
            lines += _transducer_lines(transducer)
        except Exception as exc:  # noqa: BLE001 - one instrument's failure must not hide the others
            failures += 1
            lines.append(f"    UNREACHABLE: {_reason(exc)}")
    return lines, failures


def _potentiostat_lines(pstat: Any) -> list[str]:
    output_note = ""
    if hasattr(pstat, "probe"):
        info, output_on = pstat.probe()
        output_note = "; output ON (in use by another run?)" if output_on else "; output off"
    else:
        try:
            info = pstat.connect()
        finally:
            pstat.close()
    caps = pstat.capabilities
    eis = (
        f"EIS {caps.eis_min_frequency:g} Hz - {caps.eis_max_frequency:g} Hz"
        + (
            " (galvanostatic" + (", potentiostatic)" if caps.eis_potentiostatic else ")")
            if caps.eis_galvanostatic
            else " (potentiostatic)"
        )
        if caps.eis_galvanostatic or caps.eis_potentiostatic
        else "no EIS"
    )
    modes = ", ".join(
        m for m, ok in (("galvanostatic", caps.galvanostatic), ("potentiostatic", caps.potentiostatic)) if ok
    )
    return [
        f"    {info.vendor} {info.model}, serial {info.serial or '?'}, firmware {info.firmware or '?'}{output_note}",
        f"    ranges: +-{u.fmt(caps.max_current, 'mA')} (resolution {caps.current_resolution:.3g} A), "
        f"+-{caps.max_voltage:g} V, sample period >= {u.fmt(caps.min_sample_period, 'ms')}",
        f"    {modes}; {eis}; reference electrode: {'yes' if caps.reference_electrode else 'no (two-terminal)'}; "
        f"hardware voltage limit: {'yes' if caps.hardware_voltage_limit else 'no'}",
    ]


def _transducer_lines(transducer: Any) -> list[str]:
    try:
        info = transducer.connect()
        reading = transducer.read()
    finally:
        transducer.close()
    cal = transducer.calibration
    force = (
        f" ({reading.force:.4g} N on {u.fmt(transducer.pressed_area, 'mm^2')})"
        if reading.force is not None
        else f" (pressed area {u.fmt(transducer.pressed_area, 'mm^2')})"
    )
    calibration = (
        f"gain {cal.gain:g}, offset {cal.offset:g} {getattr(transducer, 'offset_unit', '')}".rstrip()
        + f", {'dated ' + cal.date if cal.date else 'undated'}"
        + (f", {cal.reference}" if cal.reference else "")
    )
    ident = " ".join(x for x in (info.vendor, info.model) if x)
    extra = ", ".join(
        x
        for x in (f"serial {info.serial}" if info.serial else "", f"firmware {info.firmware}" if info.firmware else "")
        if x
    )
    return [
        f"    {ident}" + (f", {extra}" if extra else ""),
        f"    pressure {u.fmt(reading.pressure, 'MPa')}{force}",
        f"    calibration: {calibration}",
    ]


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if not isinstance(exc, (ImportError, OSError)) else f"{type(exc).__name__}: {text}"
