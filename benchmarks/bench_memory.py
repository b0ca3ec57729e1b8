"""Memory: peak resident memory of a 100-cycle asymmetric cycling run against a 10-cycle one.

Each run is a fresh Python process (``daq run --sim`` set-up: simulated potentiostat and press, transcript
on), so neither inherits the other's heap. Reported per run: resident memory after the imports
(baseline), peak while acquiring (read when the engine reports the run's end), peak including the
post-run analysis, and the file size. The target is that acquisition memory does not grow with run
length: the writer buffers at most CHUNKS_PER_APPEND chunks of samples (up to 262,144 samples, about
16 MiB) before writing, and HDF5's metadata cache is bounded by the library's own maximum; the post-run
analysis reads the finished file back.

    python benchmarks/bench_memory.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GROWTH_LIMIT = 8 * 2**20  # bytes of peak-memory growth tolerated from 10 to 100 cycles (allocator noise)

CHILD = """
import json, sys
sys.path.insert(0, {root!r})
from pathlib import Path
from daq.models.cell import load_cell
from daq.core.clock import VirtualClock
from daq.engine.runner import run_protocol
from daq.core.records import RunEnd
from protocols.loader import load_protocol
from simulators.rig import simulated_rig

def peak():
    # VmHWM, this process's own high-water mark (ru_maxrss would carry over the parent's at exec)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM"))

protocol = load_protocol({protocol!r}, {{"steps.2.cycles": {cycles}}})
cell = load_cell({cell!r})
clock = VirtualClock()
_, pstat, press = simulated_rig(cell, clock)
baseline = peak()
acquired = []
result = run_protocol(protocol, cell, pstat, clock, {out!r}, transducer=press,
                      subscribers=[lambda record: isinstance(record, RunEnd) and acquired.append(peak())])
print(json.dumps({{"baseline": baseline, "acquisition": acquired[0], "total": peak(), "cycles": result.cycles,
                  "samples": result.samples, "size": Path({out!r}).stat().st_size}}))
"""

Row = tuple[str, str, str, str, str, bool | None]


def measure(cycles: int, out: Path) -> dict[str, int]:
    code = CHILD.format(
        root=str(ROOT),
        protocol=str(ROOT / "protocols/examples/asymmetric_cycling.toml"),
        cell=str(ROOT / "protocols/examples/cells/li6ps5cl_99.toml"),
        cycles=cycles,
        out=str(out),
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rows() -> list[Row]:
    mib = lambda b: f"{b / 2**20:.0f} MiB"  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        short, long = measure(10, Path(tmp) / "c10.h5"), measure(100, Path(tmp) / "c100.h5")
    growth = long["acquisition"] - short["acquisition"]
    growth_total = long["total"] - short["total"]
    file_growth = long["size"] - short["size"]
    return [
        (
            "peak resident memory while acquiring, 100 cycles (this product) vs 10 cycles (reference); "
            f"baseline after imports {mib(long['baseline'])}",
            f"{mib(long['acquisition'])} ({long['samples']:,} samples, file {mib(long['size'])})",
            f"{mib(short['acquisition'])} ({short['samples']:,} samples, file {mib(short['size'])})",
            f"{long['acquisition'] / short['acquisition']:.2f}",
            f"no growth with run length (< {mib(GROWTH_LIMIT)}; the file grew {mib(file_growth)})",
            growth < GROWTH_LIMIT,
        ),
        (
            "peak resident memory including the post-run analysis (reads the file back), 100 vs 10 cycles",
            mib(long["total"]),
            mib(short["total"]),
            f"{long['total'] / short['total']:.2f}",
            f"growth (here {mib(growth_total)}) no more than the file's ({mib(file_growth)})",
            growth_total <= file_growth,
        ),
    ]


def main() -> list[Row]:
    result = rows()
    for row in result:
        print(" | ".join(str(x) for x in row), flush=True)
    return result


if __name__ == "__main__":
    main()
