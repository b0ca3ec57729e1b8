"""Soak test: a 12-hour overnight protocol (simulated, accelerated) under a steady rain of instrument faults.

The protocol: 10 min rest, an impedance spectrum, then 24 plating/stripping cycles at 1 mA/cm^2
(0.25 mAh/cm^2 each half cycle, an operando spectrum in every plating step) with a stack-pressure
interlock: about 12 h of cell time. The simulated potentiostat and transducer are wrapped in seeded
fault injection (simulators.faults): in every simulated minute at least one fault, on the potentiostat
or the transducer, of a random kind (timeout, disconnect, garbage reply, transient error, NaN block,
garbage values), plus random faults on 2 % of all calls. The instruments are driven through the
resilient wrappers (drivers.resilient), as on a rig.

Checks: the run completes or stops safe (current off); no exception escapes; every injected fault is
recorded as an event in the run file; every completed step reaches its capacity (within three
samples' charge when samples were dropped or a reconnection hold restarted it); nothing invalid is
stored.

    python scripts/soak_test.py                  # one 12 h run (about a minute of wall time)
    python scripts/soak_test.py --seeds 3

Writes docs/images/soak_test.json and docs/images/soak_test.png; exit code 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CYCLES = 24
PROTOCOL = f"""
[protocol]
name = "overnight soak"
[defaults]
sample_period = "1 s"
[interlocks.pressure]
min = "5 MPa"
max = "9 MPa"
clear_wait = "30 s"
timeout = "1 h"
[[steps]]
kind = "rest"
duration = "10 min"
[[steps]]
kind = "eis"
mode = "potentiostatic"
f_start = "100 kHz"
f_end = "1 Hz"
points_per_decade = 5
amplitude = "5 mV"
dc = "ocv"
[[steps]]
kind = "loop"
cycles = {CYCLES}
  [[steps.steps]]
  kind = "galvanostatic"
  direction = "plate"
  current_density = "1 mA/cm^2"
  capacity = "0.25 mAh/cm^2"
  eis_every = "0.125 mAh/cm^2"
  [steps.steps.operando_eis]
  f_start = "100 kHz"
  f_end = "10 Hz"
  points_per_decade = 3
  amplitude = "0.05 mA/cm^2"
  [[steps.steps]]
  kind = "galvanostatic"
  direction = "strip"
  current_density = "1 mA/cm^2"
  capacity = "0.25 mAh/cm^2"
"""
DURATION = 600 + 30 + CYCLES * 1800  # s of cell time, roughly
# Charge is integrated from measured samples: a step whose last samples were unreadable (dropped) ends
# by its instrument-timed duration short of their charge, and a step re-applied after a hold restarts its
# sample grid at an arbitrary moment. Such steps end within a few samples' charge of their capacity.
ONE_SAMPLE = 1.0 / 3600  # mAh/cm^2 passed in one 1 s sample at 1 mA/cm^2


def soak(seed: int, workdir: Path, block_interval: float) -> dict[str, Any]:
    import numpy as np

    from daq.core.clock import VirtualClock
    from daq.engine.runner import run_protocol
    from daq.models.cell import load_cell
    from daq.storage.reader import open_run
    from drivers.resilient import ResilientPotentiostat, ResilientTransducer
    from protocols.loader import protocol_from_text
    from simulators.faults import POTENTIOSTAT_KINDS, TRANSDUCER_KINDS, FaultPlan, faulty_rig
    from simulators.rig import simulated_rig

    rng = np.random.default_rng(seed)
    minutes = int(math.ceil(DURATION / 60)) + 5
    schedules: dict[str, list[tuple[float, str]]] = {"pstat": [], "press": []}
    for m in range(minutes):  # one fault in every simulated minute, on either instrument
        device = "pstat" if rng.random() < 0.5 else "press"
        kinds = POTENTIOSTAT_KINDS if device == "pstat" else TRANSDUCER_KINDS
        # early enough in the minute that the next instrument call (every block) still falls inside it
        schedules[device].append((60.0 * m + float(rng.uniform(0, 30)), str(rng.choice(kinds))))
    protocol = protocol_from_text(PROTOCOL, "soak.toml")
    cell = load_cell(ROOT / "protocols" / "examples" / "cells" / "li6ps5cl_99.toml")
    clock = VirtualClock()
    _, pstat, transducer = simulated_rig(cell, clock)
    fp, ft, log = faulty_rig(
        pstat,
        transducer,
        clock,
        FaultPlan(rate=0.02, kinds=POTENTIOSTAT_KINDS, schedule=tuple(schedules["pstat"]), seed=seed),
        FaultPlan(rate=0.02, kinds=TRANSDUCER_KINDS, schedule=tuple(schedules["press"]), seed=seed + 1000),
    )
    rp, rt = ResilientPotentiostat(fp, clock), ResilientTransducer(ft, clock)
    out = workdir / f"soak-{seed}.h5"
    t0 = time.monotonic()
    escaped = None
    try:
        result = run_protocol(protocol, cell, rp, clock, out, transducer=rt, block_interval=block_interval)
    except Exception as exc:  # noqa: BLE001 - counted: this must never happen
        escaped = f"{type(exc).__name__}: {exc}"
        result = None
    wall = time.monotonic() - t0
    summary: dict[str, Any] = {
        "seed": seed,
        "wall_seconds": round(wall, 1),
        "uncaught_exceptions": int(bool(escaped)),
        "exception": escaped,
    }
    if result is None:
        return summary
    with open_run(out) as run:
        events = run.events()
        steps = run.steps()
        ts = run.timeseries()
        area = run.cell["electrodes.working_area"]
        spectra = len(run.spectra())
    recorded = Counter(json.loads(d)["device"] for d in events[events.kind == "instrument_fault"].data)
    injected = Counter(device for _, device, _, _ in log.entries)
    fired_minutes = {int(t // 60) for t, _, _, _ in log.entries}
    run_minutes = int(math.ceil(result.duration / 60))
    galv = steps[steps.kind == "galvanostatic"]
    capacities = (galv.Q.abs() / area / 36000).to_numpy()
    finite = bool(np.all(np.isfinite(ts[["t", "E_we", "E_cell", "I", "Q"]].to_numpy())))
    summary.update(
        outcome=result.outcome,
        status=result.status,
        message=result.message,
        cell_hours=result.duration / 3600,
        samples=len(ts),
        spectra=spectra,
        steps=len(steps),
        cycles=result.cycles,
        injected_total=len(log.entries),
        injected_by_device=dict(injected),
        injected_by_kind=dict(Counter(f"{d}:{k}" for _, d, _, k in log.entries)),
        recorded_fault_events=dict(recorded),
        every_fault_recorded=recorded == injected,
        minutes=run_minutes,
        minutes_with_a_fault=sum(1 for m in range(run_minutes) if m in fired_minutes),
        max_gap_between_faults_s=float(np.max(np.diff(sorted(t for t, *_ in log.entries)))) if log.entries else None,
        faults_per_minute=len(log.entries) / max(run_minutes, 1),
        reconnects=rp.counts["reconnects"] + rt.counts["reconnects"],
        recovery_holds=int((events.kind == "interlock").sum()),
        dropped_samples=rp.counts["dropped_samples"],
        event_kinds=dict(Counter(events.kind)),
        capacity_error_max=float(np.max(np.abs(capacities[:-1] - 0.25))) if len(capacities) > 1 else None,
        steps_ended_short=int((galv.end_reason == "time_reached").sum()),
        stored_values_finite=finite,
        time_base_continuous=bool(np.all(np.diff(ts.t) > 0)),
        cell_off_at_end=pstat._mode == "off",
        series={
            "t_fault": [t for t, *_ in log.entries],
            "device": [d for _, d, _, _ in log.entries],
            "t_event": [float(t) for t in events[events.kind == "instrument_fault"].t],
        },
    )
    safe = result.outcome == "completed" or (summary["cell_off_at_end"] and result.outcome in ("fault", "interlock"))
    summary["ok"] = bool(
        safe
        and not escaped
        and summary["every_fault_recorded"]
        and finite
        and summary["time_base_continuous"]
        and (summary["capacity_error_max"] or 0.0) <= 3 * ONE_SAMPLE * (1 + 1e-6)
        and summary["minutes_with_a_fault"] == run_minutes
    )
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--block-interval", type=float, default=5.0, help="s of cell time per block (default 5)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "images"))
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="daq-soak-"))
    results = [soak(seed, workdir, args.block_interval) for seed in range(1, args.seeds + 1)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _plot(results[0], out / "soak_test.png")
    for r in results:
        r.pop("series", None)
    (out / "soak_test.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    return 0 if all(r.get("ok") for r in results) else 1


def _plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    series = r.get("series")
    if not series:
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(9.5, 3.4))
    for device, colour in (("sim0", "tab:blue"), ("press", "tab:green")):
        t = sorted(t for t, d in zip(series["t_fault"], series["device"]) if d == device)
        a.step(
            np.asarray(t) / 3600,
            np.arange(1, len(t) + 1),
            where="post",
            color=colour,
            label=f"injected, {'potentiostat' if device == 'sim0' else 'transducer'}",
        )
    te = np.sort(series["t_event"]) / 3600
    a.step(te, np.arange(1, len(te) + 1), where="post", color="k", ls="--", label="fault events recorded (both)")
    a.set_xlabel("cell time (h)")
    a.set_ylabel("faults (cumulative)")
    a.legend(fontsize=7)
    minutes = np.floor(np.asarray(series["t_fault"]) / 60).astype(int)
    per_minute = np.bincount(minutes, minlength=r["minutes"])[: r["minutes"]]
    b.hist(per_minute, bins=np.arange(per_minute.max() + 2) - 0.5, color="tab:orange")
    b.set_xlabel("faults in one simulated minute")
    b.set_ylabel("minutes")
    fig.suptitle(
        f"Soak: {r['cell_hours']:.1f} h, {r['injected_total']} faults, outcome {r['outcome']}, "
        f"{sum(r['recorded_fault_events'].values())} fault events",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
