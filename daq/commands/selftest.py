"""``daq selftest RIG.toml#CH``: the acceptance test of a channel on the dummy cell the rig file names.

Current accuracy at each of the dummy's test currents (the ranges the lab's protocols use), the voltage
limit stopping the current at the instrument, the output off at the end of a step and after the
dead-man time (where the driver has one), an impedance spectrum within the dummy's tolerance, the
transducer's reading. Prints a pass/fail table, writes a run file (samples, spectrum, one event per
check) and exits 0 only when every check that applies passed. On hardware the operator plugs the dummy in
first; an emulated channel (``emulate = true``) has the dummy wired in by the emulation.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from daq.commands import selftest_checks as C
from daq.commands.emulate import load_emulated_rig
from daq.commands.inputs import check_speed
from daq.core.clock import Clock, RealClock, ScaledClock, VirtualClock
from daq.core.errors import ConfigError
from daq.engine.rig import ChannelSpec, Rig, build_potentiostat, build_transducer
from daq.models import cell as cellmod
from daq.storage import layout as L
from daq.storage.naming import safe_name
from daq.storage.writer import RunWriter


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "selftest",
        help="acceptance test of a channel on its dummy cell (pass/fail table, run file)",
        description="Test a channel of a rig on the dummy cell the rig file names for it: current accuracy, "
        "voltage limit, output off at step end and after the dead-man time, impedance spectrum, transducer.",
    )
    p.add_argument("rig", help="RIG.toml#CHANNEL (the channel may be left out when the rig has one)")
    p.add_argument("--out", help="run file to write (default: runs/selftest-<rig>-<channel>-<time>.h5)")
    p.add_argument("--speed", type=float, help="emulated channels: this multiple of real time (default: virtual)")
    p.set_defaults(func=cmd_selftest)


def cmd_selftest(args: argparse.Namespace) -> int:
    check_speed(args.speed)
    rig_path, _, name = str(args.rig).partition("#")
    rig = load_emulated_rig(rig_path)
    channel = rig.channel_for(name or None)
    emulated = rig.emulated(channel)
    if args.speed is not None and not emulated:
        raise ConfigError("--speed", args.speed, "only a simulated or emulated channel can run faster than real time")
    clock: Clock = (ScaledClock(args.speed) if args.speed else VirtualClock()) if emulated else RealClock()
    stamp = clock.wall_time() if hasattr(clock, "wall_time") else None
    out = Path(args.out) if args.out else default_out(rig, channel, stamp)
    try:
        checks = run_selftest(rig, channel, clock, out)
    finally:
        if rig.emulation is not None and hasattr(rig.emulation, "close"):
            rig.emulation.close()
    print(table(rig, channel, checks))
    print(f"run file {out}")
    return 0 if all(c.passed is not False for c in checks) else 1


def default_out(rig: Rig, channel: ChannelSpec, stamp: Any = None) -> Path:
    import time

    return (
        Path("runs") / f"selftest-{safe_name(rig.name)}-{safe_name(channel.name)}-{time.strftime('%Y%m%d-%H%M%S')}.h5"
    )


def run_selftest(rig: Rig, channel: ChannelSpec, clock: Clock, out: Path) -> list[C.Check]:
    """Every check on ``channel`` wired to its dummy cell; the run file is written whatever happens."""
    if channel.dummy_cell is None:
        raise ConfigError(
            f"channels.{channel.name}.dummy_cell", None, "the self test needs a dummy cell: dummy_cell = NAME"
        )
    dummy = rig.dummy_cells[channel.dummy_cell]
    wired = dataclasses.replace(channel, on_dummy=True)
    shared: dict[str, Any] = {}
    pstat = build_potentiostat(rig, wired, clock, shared)
    transducer = build_transducer(rig, wired, clock, shared)
    bench = C.Bench(pstat, transducer, clock, dummy, shared.get("output_on"), bool(shared.get("deadman_wall_time")))
    writer = _writer(rig, channel, out, transducer is not None)
    checks: list[C.Check] = []
    try:
        info = pstat.connect()
        checks.append(C.Check("connect", True, f"{info.vendor} {info.model} {info.serial}".strip(), "identity"))
        steps = [lambda i=i: C.current_accuracy(bench, i) for i in dummy.test_currents]
        steps += [lambda: C.voltage_limit(bench), lambda: C.off_at_end(bench), lambda: C.off_after_deadman(bench)]
        steps += [lambda: C.impedance_spectrum(bench)]
        for step in steps:
            checks.append(_guarded(step, bench))
        pstat.close()
        on = bench.output_on() if bench.output_on is not None else None
        checks.append(
            C.Check("output off after close", None if on is None else not on, _on(on), "off")
            if on is not None
            else C.Check("output off after close", None, "n/a", "no output probe")
        )
        checks.append(_guarded(lambda: C.transducer_reading(bench), bench, "transducer"))
    except Exception as exc:  # noqa: BLE001 - a failing instrument is a failed check, never a traceback
        checks.append(C.Check("instrument", False, " ".join(str(exc).split())[:120], "answers"))
        _safe_close(pstat)
    finally:
        _store(writer, bench, checks)
    return checks


def _guarded(step: Any, bench: C.Bench, name: str | None = None) -> C.Check:
    try:
        return step()
    except Exception as exc:  # noqa: BLE001 - a check that raises has failed; the others still run
        try:
            bench.pstat.open_circuit(C.SAMPLE_PERIOD)
        except Exception:  # noqa: BLE001 - already reported by the failed check
            pass
        label = name or getattr(step, "__name__", "check")
        return C.Check(label, False, " ".join(str(exc).split())[:120], "no error")


def _on(on: bool | None) -> str:
    return "n/a" if on is None else ("ON" if on else "off")


def _safe_close(pstat: Any) -> None:
    try:
        pstat.close()
    except Exception:  # noqa: BLE001 - closing after a failure; the failure is what is reported
        pass


def table(rig: Rig, channel: ChannelSpec, checks: list[C.Check]) -> str:
    dummy = rig.dummy_cells[channel.dummy_cell] if channel.dummy_cell else None
    head = f"Self test of channel {channel.name} ({channel.instrument}) of rig '{rig.name}'"
    lines = [head, f"on dummy cell {channel.dummy_cell}: {dummy.describe() if dummy else '?'}", ""]
    w = max(len(c.name) for c in checks)
    lines.append(f"  {'check':<{w}}  result  measured / expected")
    for c in checks:
        verdict = "n/a" if c.passed is None else ("PASS" if c.passed else "FAIL")
        lines.append(f"  {c.name:<{w}}  {verdict:<6}  {c.measured} / {c.expected}")
    failed = [c.name for c in checks if c.passed is False]
    lines += ["", f"FAILED: {', '.join(failed)}" if failed else "PASSED: every check"]
    return "\n".join(lines)


def _writer(rig: Rig, channel: ChannelSpec, out: Path, aux: bool) -> RunWriter:
    cell = channel.cell
    return RunWriter(
        out,
        cell_attrs=cell.attrs(),
        cell_units=cellmod.ATTR_UNITS,
        protocol_source="",
        protocol_path="",
        protocol_resolved={"selftest": {"dummy_cell": channel.dummy_cell}},
        predictions={},
        run_attrs={"kind": "selftest", "rig": rig.name, "channel": channel.name, "instrument": channel.instrument},
        aux_columns=["pressure", "force"] if aux else [],
    )


def _store(writer: RunWriter, bench: C.Bench, checks: list[C.Check]) -> None:
    """Samples, the spectrum and one event per check; status completed, outcome passed or failed."""
    try:
        writer.start()
        for block in bench.blocks:
            if len(block):
                n = len(block)
                writer.append(
                    {
                        "t": block.t,
                        "step": np.zeros(n, "i4"),
                        "cycle": np.zeros(n, "i4"),
                        "E_we": block.E_we,
                        "E_cell": block.E_cell,
                        "I": block.I,
                        "Q": np.zeros(n),
                        "flags": block.flags,
                    }
                )
        for meta, points in bench.spectra:
            rows = np.array(
                [(0, p.frequency, p.z_real, p.z_imag, p.t, p.E_dc, p.I_dc, p.ok) for p in points], dtype=L.POINTS
            )
            t0, t1 = (points[0].t, points[-1].t) if points else (0.0, 0.0)
            writer.add_spectrum(dict(meta, t_start=t0, t_end=t1, step=0, cycle=0, Q=0.0, dc=0.0), rows)
        for c in checks:
            verdict = "n/a" if c.passed is None else ("pass" if c.passed else "fail")
            data = {"check": c.name, "verdict": verdict, "measured": c.measured, "expected": c.expected, **c.data}
            writer.add_event(bench.clock.now(), "selftest", 0, f"{c.name}: {verdict}", json.loads(json.dumps(data)))
    finally:
        failed = any(c.passed is False for c in checks)
        writer.close(L.COMPLETED, "failed" if failed else "passed")
