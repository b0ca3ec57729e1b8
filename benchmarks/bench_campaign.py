"""CCD campaign in parallel: the example campaign (protocols/examples/ccd_campaign.toml: 2 cell types x 4
current densities x 3 cells = 24 tests, each the 8 mAh/cm^2 single-plating run with its post-run
analysis) with ``jobs=1`` and ``jobs=2`` worker processes, ``run_campaign`` as ``daq campaign --sim``
calls it, in one process whose imports are done before timing. The runs alternate (jobs 1, jobs 2,
jobs 1, ...) so both see the same load, and the best of each is compared. Wall time (what the user
waits), CPU time (this process and its workers), the cores that CPU time kept busy (CPU / wall: below
the number of workers when other jobs share the machine) and the load average; the tests tables must
be identical. When other jobs left the run fewer cores than the target speed-up, the row says so: the
speed-up cannot exceed the cores the run got.

    python benchmarks/bench_campaign.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from daq.engine.campaign import run_campaign
from protocols.campaign import load_campaign
from simulators.rig import simulated_channel

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGN = ROOT / "protocols/examples/ccd_campaign.toml"
TARGET = 1.8  # speed-up with 2 workers on 2 cores

Row = tuple[str, str, str, str, str, bool | None]


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (the workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_once(out: Path, jobs: int) -> tuple[float, float, np.ndarray]:
    campaign = load_campaign(CAMPAIGN)
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    tests, _, _ = run_campaign(campaign, out, simulated_channel, jobs=jobs)
    return time.perf_counter() - t0, cpu_seconds() - cpu0, tests


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return all(np.array_equal(a[n], b[n], equal_nan=a[n].dtype.kind == "f") for n in a.dtype.names)


def rows(repeat: int = 3) -> list[Row]:
    load0 = os.getloadavg()[0]
    runs: dict[int, list[tuple[float, float, np.ndarray]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for jobs in (1, 2):  # imports, caches and the worker start-up path warm before timing
            run_once(Path(tmp) / f"warm{jobs}", jobs)
        for i in range(repeat):
            for jobs in (1, 2):
                runs[jobs].append(run_once(Path(tmp) / f"j{jobs}_{i}", jobs))
    load1 = os.getloadavg()[0]
    best = {jobs: min(r, key=lambda x: x[0]) for jobs, r in runs.items()}
    identical = all(same(best[1][2], r[2]) for r in runs[2])
    speedup = best[1][0] / best[2][0]
    n = len(best[1][2])
    busy = best[2][1] / best[2][0]
    limited = (
        f"; other jobs limited the run: it got {busy:.2f} cores, so the speed-up could not reach {TARGET}x"
        if busy < TARGET
        else ""
    )
    return [
        (
            f"CCD campaign, {n} tests (ccd_campaign.toml), --jobs 2 vs --jobs 1, best of {repeat} each (load "
            f"average {load0:.1f} before, {load1:.1f} after, on {os.cpu_count()} cores{limited}); identical tests "
            f"tables: {'yes' if identical else 'NO'}",
            f"jobs 2: {best[2][0]:.2f} s wall, {best[2][1]:.2f} s CPU ({busy:.2f} cores busy)",
            f"jobs 1: {best[1][0]:.2f} s wall, {best[1][1]:.2f} s CPU ({best[1][1] / best[1][0]:.2f} cores busy)",
            f"{speedup:.2f}x",
            f">= {TARGET}x faster, same results",
            speedup >= TARGET and identical,
        )
    ]


def main() -> list[Row]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args([] if __name__ != "__main__" else None)
    result = rows(args.repeat)
    for row in result:
        print(" | ".join(str(x) for x in row), flush=True)
    return result


if __name__ == "__main__":
    main()
