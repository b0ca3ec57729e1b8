"""Simulated cell time per wall second for the CCD single-plating run (8 mAh/cm^2 at 9 mA/cm^2, 1 s
sampling, 99 % cell), through the whole pipeline: simulated instrument, engine, safety checks, HDF5.

    python benchmarks/bench_ccd_sim.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from daq.core.clock import VirtualClock
from daq.engine.runner import run_protocol
from daq.models.cell import load_cell
from protocols.loader import load_protocol
from simulators.rig import simulated_rig

ROOT = Path(__file__).resolve().parents[1]


def run_once(out: Path) -> tuple[float, float, int, float]:
    protocol = load_protocol(ROOT / "protocols/examples/ccd_single_plating.toml", {"steps.1.duration": "1 s"})
    cell = load_cell(ROOT / "protocols/examples/cells/li6ps5cl_99.toml")
    clock = VirtualClock()
    _, pstat, transducer = simulated_rig(cell, clock)
    cpu0, t0 = time.process_time(), time.perf_counter()
    result = run_protocol(protocol, cell, pstat, clock, out, transducer=transducer)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    assert result.outcome == "completed"
    return result.duration, wall, result.samples, cpu


def main() -> list[tuple[str, str, str]]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args([] if __name__ != "__main__" else None)
    with tempfile.TemporaryDirectory() as tmp:
        runs = [run_once(Path(tmp) / f"r{i}.h5") for i in range(args.repeat)]
    cell_time, _, samples, _ = runs[0]
    best = min(r[1] for r in runs)
    cpu = min(r[3] for r in runs)
    ratio = cell_time / best
    rows = [
        (
            "CCD single plating, 8 mAh/cm^2 at 9 mA/cm^2, 1 s sampling",
            f"{cell_time:.0f} s cell time, {samples} samples in {best * 1e3:.0f} ms wall ({cpu * 1e3:.0f} ms CPU): "
            f"{ratio:,.0f}x real time",
            ">= 10,000x",
        )
    ]
    for row in rows:
        print(" | ".join(row))
    return rows


if __name__ == "__main__":
    main()
