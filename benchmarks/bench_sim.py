"""Simulation speed: cell seconds per wall second for the 100-cycle asymmetric cycling protocol (9 mA/cm^2
plating 200 s at 1 s sampling, 0.05 mA/cm^2 stripping 10 h at 10 s sampling, about 42 days of cell time)
on the simulated 99 % cell, through simulated instrument, engine, short-circuit detection, HDF5 storage
with the instrument transcript, and the post-run analysis: ``run_protocol`` as ``daq run --sim`` calls it.

Two rigs: the simulated rig as ``daq run --sim`` builds it (potentiostat and stack-pressure transducer,
read once per 256-sample block), and the potentiostat alone (blocks of 65,536 samples, since every trip
is rewound exactly). The speed is given per CPU second (the run is one process: what it costs whatever
else the machine does) and per wall second (what the user waits, which depends on the load).

    python benchmarks/bench_sim.py [--repeat 3]
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
PROTOCOL = ROOT / "protocols/examples/asymmetric_cycling.toml"
CELL = ROOT / "protocols/examples/cells/li6ps5cl_99.toml"
TARGET = 10_000_000.0  # x real time per CPU second, storage included

Row = tuple[str, str, str, str, str, bool | None]


def run_once(out: Path, transducer: bool, cycles: int = 100) -> tuple[float, float, int, int, float]:
    """(cell seconds, wall seconds, samples, file bytes, CPU seconds) of one run."""
    protocol = load_protocol(PROTOCOL, {"steps.2.cycles": cycles})
    cell = load_cell(CELL)
    clock = VirtualClock()
    _, pstat, press = simulated_rig(cell, clock)
    cpu0, t0 = time.process_time(), time.perf_counter()
    result = run_protocol(protocol, cell, pstat, clock, out, transducer=press if transducer else None)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if result.outcome != "completed" or result.cycles != cycles:
        raise RuntimeError(f"asymmetric cycling ended {result.outcome} in cycle {result.cycles}: {result.message}")
    return result.duration, wall, result.samples, out.stat().st_size, cpu


def rows(repeat: int = 3) -> list[Row]:
    out: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for transducer, label in (
            (True, "simulated rig as 'daq run --sim' builds it (potentiostat + press)"),
            (False, "potentiostat only"),
        ):
            runs = [run_once(Path(tmp) / f"{transducer}{i}.h5", transducer) for i in range(repeat)]
            cell_time, _, samples, size, _ = runs[0]
            wall, cpu = min(r[1] for r in runs), min(r[4] for r in runs)
            speed = cell_time / cpu
            out.append(
                (
                    f"simulation speed, 100-cycle asymmetric cycling ({cell_time / 86400:.1f} days, "
                    f"{samples:,} samples, {size / 2**20:.0f} MiB file, storage and post-run analysis "
                    f"included), {label}",
                    f"{cpu:.2f} s CPU: {speed:,.0f}x real time per CPU second ({wall:.2f} s wall: "
                    f"{cell_time / wall:,.0f}x)",
                    "real time (1x)",
                    f"{speed:,.0f}x",
                    f">= {TARGET:,.0f}x per CPU second",
                    speed >= TARGET,
                )
            )
    return out


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
