"""Kill test: runs killed (SIGKILL) at random moments lose at most the flush interval and resume fully.

Each trial starts a simulated cycling protocol in a child process: virtual clock, one sample (1 s of
cell time) per block, paced to one block every 2 ms of wall time (a rig polled every second, 500 x
faster), and the real writer with its 0.5 s flush interval. After every block the child reports
through a pipe how many samples it has handed to the writer, and when (monotonic clock, shared by both
processes). The parent kills the
child with SIGKILL at a random moment, then checks:

- the file opens and reads as an interrupted run;
- what it lost: samples the child had produced that the file does not hold, and the age of the oldest
  of them at the moment of the kill (must be at most the flush interval plus one block);
- the run resumes in the same file to completion with one continuous time base, every step at its
  capacity and the total capacity exact.

    python scripts/kill_test.py                 # 100 trials, 2 workers (a few minutes)
    python scripts/kill_test.py --trials 10
    python scripts/kill_test.py --keithley      # the real Keithley driver against the emulated 2450:
                                                # SIGTERM, SIGHUP, then 20 SIGKILLs (dead-man 2 s)

Writes docs/images/kill_test.json and docs/images/kill_test.png; exit code 1 if any trial fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FLUSH_INTERVAL = 0.5  # s, the writer's default
CYCLES = 4
STEP_CAPACITY = 0.25  # mAh/cm^2 per half cycle
PROTOCOL = f"""
[protocol]
name = "kill test cycling"
[defaults]
sample_period = "1 s"
[[steps]]
kind = "rest"
duration = "1 min"
[[steps]]
kind = "loop"
cycles = {CYCLES}
  [[steps.steps]]
  kind = "galvanostatic"
  direction = "plate"
  current_density = "2 mA/cm^2"
  capacity = "{STEP_CAPACITY} mAh/cm^2"
  [[steps.steps]]
  kind = "galvanostatic"
  direction = "strip"
  current_density = "2 mA/cm^2"
  capacity = "{STEP_CAPACITY} mAh/cm^2"
"""

CHILD = """
import os, sys, time
sys.path.insert(0, {root!r})
from daq.models.cell import cell_from_text
from daq.core.clock import VirtualClock
from daq.engine.runner import run_protocol
from daq.core.records import Samples
from protocols.loader import protocol_from_text
from simulators.rig import simulated_rig
fd = {fd}
protocol = protocol_from_text({protocol!r}, "kill_test.toml")
text = open({cell!r}).read()
cell = cell_from_text(text)
clock = VirtualClock()
_, pstat, transducer = simulated_rig(cell, clock)
n = [0]
def report(record):
    if isinstance(record, Samples):
        n[0] += len(record.columns["t"])
        t = float(record.columns["t"][-1]) if len(record.columns["t"]) else -1.0
        os.write(fd, f"{{time.monotonic():.6f}} {{n[0]}} {{t:.3f}}\\n".encode())
        time.sleep({pace})  # the rhythm of a rig polled every second, {speed:g} times faster
os.write(fd, f"{{time.monotonic():.6f}} start\\n".encode())
run_protocol(protocol, cell, pstat, clock, {out!r}, transducer=transducer, subscribers=[report],
             block_samples=1, flush_interval={flush}, cell_source=text)
os.write(fd, f"{{time.monotonic():.6f}} end\\n".encode())
"""


def child(
    out: Path, speed: float, kill_after: float | None
) -> tuple[list[tuple[float, int, float]], float | None, bool]:
    """Run the protocol in a child process; SIGKILL it ``kill_after`` s after its first block.

    Returns (reports (wall s, samples handed over, run time s of the last), kill wall time, finished)."""
    r, w = os.pipe()
    code = CHILD.format(
        root=str(ROOT),
        fd=w,
        protocol=PROTOCOL,
        cell=str(ROOT / "protocols" / "examples" / "cells" / "li6ps5cl_99.toml"),
        out=str(out),
        speed=speed,
        pace=1.0 / speed,
        flush=FLUSH_INTERVAL,
    )
    proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=(w,))
    os.close(w)
    reports: list[tuple[float, int, float]] = []
    buf = b""
    t_first: float | None = None
    t_kill: float | None = None
    finished = False
    while True:
        timeout = (
            None
            if t_first is None or kill_after is None or t_kill
            else max(0.0, t_first + kill_after - time.monotonic())
        )
        ready, _, _ = select.select([r], [], [], timeout)
        if not ready and kill_after is not None and t_kill is None:
            t_kill = time.monotonic()
            os.kill(proc.pid, signal.SIGKILL)
            continue
        chunk = os.read(r, 65536)
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            parts = line.decode().split()
            if parts[1] == "start":
                continue
            if parts[1] == "end":
                finished = True
                continue
            reports.append((float(parts[0]), int(parts[1]), float(parts[2])))
            if t_first is None:
                t_first = reports[-1][0]
    os.close(r)
    proc.wait()
    return reports, t_kill, finished


def trial(args: tuple[int, float, float, str]) -> dict[str, Any]:
    """One kill, the checks, the resume."""
    import numpy as np

    from daq.core.clock import VirtualClock
    from daq.core.errors import DaqError
    from daq.engine.runner import rebuild, resume_protocol
    from daq.storage.reader import open_run
    from simulators.rig import simulated_rig

    index, duration, speed, workdir = args
    rng = random.Random(index)
    out = Path(workdir) / f"kill-{index:03d}.h5"
    result: dict[str, Any] = {"trial": index, "ok": False}
    for _attempt in range(5):
        out.unlink(missing_ok=True)
        kill_after = rng.uniform(0.0, 0.95 * duration)
        reports, t_kill, finished = child(out, speed, kill_after)
        if not finished and t_kill is not None:
            break
    else:
        result["problem"] = "the child always finished before the kill"
        return result
    result["kill_after"] = kill_after
    produced = reports[-1][1] if reports else 0
    try:
        with open_run(out) as run:
            status = run.status
            stored = len(run)
            ts = run.timeseries()
            t_stored = float(ts.t.iloc[-1]) if stored else 0.0
            monotonic_t = bool(np.all(np.diff(ts.t) > 0))
            run.steps()
            run.events()
    except DaqError as exc:
        result["problem"] = f"unreadable after the kill: {exc}"
        return result
    lost = max(0, produced - stored)
    # age at the kill of the oldest sample the file lacks: when was it handed to the writer?
    first_lost = next((w for w, n, _ in reports if n > stored), None)
    age = (t_kill - first_lost) if (lost and first_lost is not None) else 0.0
    block_wall = float(np.median(np.diff([w for w, _, _ in reports]))) if len(reports) > 2 else 0.0
    result.update(
        status=status,
        produced=produced,
        stored=stored,
        lost=lost,
        loss_age=age,
        run_time_lost=max(0.0, reports[-1][2] - t_stored) if reports else 0.0,
        block_wall=block_wall,
        continuous=monotonic_t,
    )
    if status != "interrupted" or not monotonic_t:
        result["problem"] = f"status {status}, time base continuous: {monotonic_t}"
        return result
    try:
        protocol, cell, point, _ = rebuild(out)
        clock = VirtualClock()
        _, pstat, transducer = simulated_rig(cell, clock)
        res = resume_protocol(out, pstat, clock, transducer)
    except DaqError as exc:
        result["problem"] = f"resume failed: {exc}"
        return result
    with open_run(out) as run:
        steps = run.steps()
        area = run.cell["electrodes.working_area"]
        ts = run.timeseries()
        galv = steps[steps.kind == "galvanostatic"]
        capacities = galv.Q.abs() / area / 36000
        resumed = capacities[galv["index"] >= point.steps_done]  # the interrupted step and all after it
        before = capacities[galv["index"] < point.steps_done]  # finished on the wall clock before the kill
        result.update(
            resumed_outcome=res.outcome,
            final_status=run.status,
            steps=len(steps),
            interrupted_step=point.steps_done,
            total_capacity=float(capacities.sum()),
            capacity_error=float((resumed - STEP_CAPACITY).abs().max()) if len(resumed) else 0.0,
            capacity_error_before=float((before - STEP_CAPACITY).abs().max()) if len(before) else 0.0,
            continuous_after=bool(np.all(np.diff(ts.t) > 0)),
            cycles=res.cycles,
        )
    good = (
        res.outcome == "completed"
        and result["final_status"] == "completed"
        and len(galv) == 2 * CYCLES
        and result["capacity_error"] < 1e-6 * STEP_CAPACITY
        and result["continuous_after"]
        and age <= FLUSH_INTERVAL + max(block_wall, 0.05)
    )
    result["ok"] = bool(good)
    if not good:
        result["problem"] = "resumed run incomplete, capacity wrong or loss beyond the flush interval"
    out.unlink(missing_ok=True)
    return result


def _interrupted(path: Path) -> bool:
    """Whether the killed run had not finished (a kill can land after the run recorded its end)."""
    from daq.storage.reader import open_run

    with open_run(path) as run:
        return run.status == "interrupted"


def _fault_messages(path: Path) -> list[str]:
    """The fault and safe-state events of a run file."""
    from daq.storage.reader import open_run

    with open_run(path) as run:
        events = run.events()
    wanted = events["kind"].isin(["fault", "safe_state_unconfirmed"])
    return [str(m) for m in events.loc[wanted, "message"]]


def keithley_main(trials: int, out: Path) -> int:
    """Signals to a wall-clock run on the Keithley driver; writes docs/images/kill_test_keithley.json."""
    from daq.core.clock import RealClock
    from daq.models.cell import load_cell
    from simulators.cell import SimulatedCell
    from simulators.scpi_server import ScpiServer
    from tests.daq.commands import keithley_kill as K

    deadman, rng, rows = 2.0, random.Random(20), []
    workdir = Path(tempfile.mkdtemp(prefix="daq-kill-keithley-"))
    plan = [signal.SIGTERM, signal.SIGHUP] + [signal.SIGKILL] * trials
    with ScpiServer(SimulatedCell(load_cell(K.CELL)), RealClock()) as server:
        for i, sig in enumerate(plan):
            path = workdir / f"run-{i:02d}.h5"
            row = K.trial(server, path, sig, rng.uniform(0.05, K.SOURCING_SPAN), deadman)
            if sig == signal.SIGKILL and row["returncode"] == -signal.SIGKILL and _interrupted(path):
                row.update(K.resume(server, path, deadman))
                if row["outcome"] != "completed":
                    row["faults"] = _fault_messages(path)  # what ended the resumed run, in its own words
            rows.append(row)
            print(json.dumps(row), flush=True)
    kills = [r for r in rows if r["signal"] == "SIGKILL"]
    good_stop = all(r["off_after"] is not None and r["off_after"] <= 1.0 for r in rows[:2])
    good_kill = all(r["off_after"] is not None and r["off_after"] <= deadman for r in kills if r["on_at_signal"])
    exact = all(r["resumed_error"] < 1e-9 for r in kills if "resumed_error" in r)
    out.mkdir(parents=True, exist_ok=True)
    (out / "kill_test_keithley.json").write_text(json.dumps(rows, indent=1))
    return 0 if good_stop and good_kill and exact and all(r["readable"] for r in rows) else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keithley", action="store_true", help="kill runs on the Keithley driver (emulated 2450)")
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--speed",
        type=float,
        default=500.0,
        help="blocks (1 s of cell time each) per wall second (default 500: one every 2 ms)",
    )
    ap.add_argument("--out", default=str(ROOT / "docs" / "images"))
    args = ap.parse_args()
    if args.keithley:
        return keithley_main(20 if args.trials == 100 else args.trials, Path(args.out))
    workdir = tempfile.mkdtemp(prefix="daq-kill-")
    reports, _, finished = child(Path(workdir) / "calibration.h5", args.speed, None)
    duration = reports[-1][0] - reports[0][0]
    print(
        f"uninterrupted child run: {len(reports)} blocks, {reports[-1][1]} samples in {duration:.2f} s "
        f"(first block to last); finished: {finished}",
        flush=True,
    )
    t0 = time.monotonic()
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(trial, [(i, duration, args.speed, workdir) for i in range(args.trials)]))
    elapsed = time.monotonic() - t0
    ok = [r for r in results if r["ok"]]
    bad = [r for r in results if not r["ok"]]
    ages = [r["loss_age"] for r in results if "loss_age" in r]
    lost = [r["lost"] for r in results if "lost" in r]
    summary = {
        "trials": len(results),
        "passed": len(ok),
        "failed": len(bad),
        "seconds": round(elapsed, 1),
        "flush_interval": FLUSH_INTERVAL,
        "speed": args.speed,
        "readable": sum(1 for r in results if "stored" in r),
        "resumed_to_completion": sum(1 for r in results if r.get("final_status") == "completed"),
        "capacity_exact": sum(1 for r in results if r.get("capacity_error", 1) < 1e-6 * STEP_CAPACITY),
        "capacity_error_max": max((r.get("capacity_error", 1.0) for r in results), default=None),
        "capacity_error_before_kill_max": max((r.get("capacity_error_before", 0.0) for r in results), default=None),
        "total_capacity_range": [
            min((r.get("total_capacity", 0.0) for r in results), default=None),
            max((r.get("total_capacity", 0.0) for r in results), default=None),
        ],
        "loss_age_max": max(ages) if ages else None,
        "loss_age_median": sorted(ages)[len(ages) // 2] if ages else None,
        "lost_samples_max": max(lost) if lost else None,
        "files_with_loss": sum(1 for n in lost if n),
        "block_wall_median": sorted(r["block_wall"] for r in results if "block_wall" in r)[len(ages) // 2]
        if ages
        else None,
        "total_capacity_expected": 2 * CYCLES * STEP_CAPACITY,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "kill_test.json").write_text(json.dumps({"summary": summary, "trials": results}, indent=1))
    _plot(results, out / "kill_test.png")
    print(json.dumps(summary, indent=1))
    for r in bad[:10]:
        print(f"trial {r['trial']}: {r.get('problem')}")
    return 0 if not bad else 1


def _plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ages = [1e3 * r["loss_age"] for r in results if "loss_age" in r]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    a.hist(ages, bins=25, color="tab:blue")
    a.axvline(1e3 * FLUSH_INTERVAL, color="tab:red", ls="--", label=f"flush interval {FLUSH_INTERVAL:g} s")
    a.set_xlabel("age of the oldest lost sample at the kill (ms)")
    a.set_ylabel("killed runs")
    a.legend(fontsize=8)
    kills = [r["kill_after"] for r in results if "kill_after" in r]
    lost = [r["lost"] for r in results if "kill_after" in r]
    b.scatter(kills, lost, s=10)
    b.set_xlabel("kill moment after the first block (s)")
    b.set_ylabel("samples lost")
    passed = sum(r["ok"] for r in results)
    fig.suptitle(
        f"Kill test: {len(results)} SIGKILLed runs, {passed} readable and resumed to the exact capacity", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
