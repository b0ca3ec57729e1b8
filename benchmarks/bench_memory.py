"""Memory: peak resident memory of asymmetric cycling runs of 10, 100 and 1000 cycles.

Each run is a fresh Python process (``daq run --sim`` set-up: simulated potentiostat and press, transcript
on), so none inherits another's heap. Reported per run: resident memory after the imports (baseline),
the peak while acquiring (VmHWM read when the engine reports the run's end), the peak including the
post-run analysis (same process, as ``daq run`` does it), and the file size; then the post-run analysis
alone, in a fresh process reading the finished file back.

What is bounded, by declared constants, whatever the run length: the writer's sample buffers
(one chunk per column, about 5 MiB at 65,536-sample chunks), HDF5's chunk caches (one
column chunk per column, TABLE_CACHE_CHUNKS chunks per table) and its metadata cache
(METADATA_CACHE_BYTES); the analysis reads CHUNK samples and TABLE_ROWS table rows at a time without a
chunk cache. Those buffers fill during the first ~100 cycles, so the targets compare 1000 cycles with
100 (10 cycles is shown for information: its buffers never fill).

    python benchmarks/bench_memory.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GROWTH_LIMIT = 8 * 2**20  # bytes of acquisition peak growth tolerated from 100 to 1000 cycles
ANALYSIS_RATIO = 1.2  # post-run analysis peak, 1000 cycles / 100 cycles (the ``daq report`` target)

PEAK = """
def peak(key="VmHWM"):
    # VmHWM, this process's own high-water mark (ru_maxrss would carry over the parent's at exec)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(key))
"""

RUN = (
    """
import json, sys
sys.path.insert(0, {root!r})
from pathlib import Path
from daq.models.cell import load_cell
from daq.core.clock import VirtualClock
from daq.engine.runner import run_protocol
from daq.core.records import RunEnd
from protocols.loader import load_protocol
from simulators.rig import simulated_rig
"""
    + PEAK
    + """
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
)

ANALYSE = (
    """
import json, sys
sys.path.insert(0, {root!r})
from daq.analysis import postrun
"""
    + PEAK
    + """
baseline = peak()
postrun.analyse({out!r})
print(json.dumps({{"baseline": baseline, "analysis": peak()}}))
"""
)

Row = tuple[str, str, str, str, str, bool | None]


def _child(code: str) -> dict[str, int]:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(cycles: int, out: Path) -> dict[str, int]:
    """Acquisition and whole-run peaks of one run, then the analysis of its file alone."""
    run = _child(
        RUN.format(
            root=str(ROOT),
            protocol=str(ROOT / "protocols/examples/asymmetric_cycling.toml"),
            cell=str(ROOT / "protocols/examples/cells/li6ps5cl_99.toml"),
            cycles=cycles,
            out=str(out),
        )
    )
    analysis = _child(ANALYSE.format(root=str(ROOT), out=str(out)))
    return {**run, "analysis": analysis["analysis"], "analysis_baseline": analysis["baseline"]}


def mib(b: float) -> str:
    return f"{b / 2**20:.0f} MiB"


def rows() -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        runs = {n: measure(n, Path(tmp) / f"c{n}.h5") for n in (10, 100, 1000)}
    short, mid, long = runs[10], runs[100], runs[1000]
    growth = long["acquisition"] - mid["acquisition"]
    growth_total = long["total"] - mid["total"]
    file_growth = long["size"] - mid["size"]
    analysis_ratio = long["analysis"] / mid["analysis"]

    def above(r: dict[str, int], key: str, base: str = "baseline") -> str:
        return f"{mib(r[key])} ({mib(r[key] - r[base])} above the imports)"

    return [
        (
            "peak resident memory while acquiring, 1000 cycles (this product) vs 100 cycles (reference); "
            f"baseline after imports {mib(long['baseline'])}",
            f"{above(long, 'acquisition')}; {long['samples']:,} samples, file {mib(long['size'])}",
            f"{above(mid, 'acquisition')}; {mid['samples']:,} samples, file {mib(mid['size'])}",
            f"{long['acquisition'] / mid['acquisition']:.2f}",
            f"growth < {mib(GROWTH_LIMIT)} (here {mib(growth)}; the file grew {mib(file_growth)})",
            growth < GROWTH_LIMIT,
        ),
        (
            "peak resident memory of the post-run analysis alone (fresh process reading the file back), "
            "1000 vs 100 cycles",
            above(long, "analysis", "analysis_baseline"),
            above(mid, "analysis", "analysis_baseline"),
            f"{analysis_ratio:.2f}",
            f"<= {ANALYSIS_RATIO:.1f}",
            analysis_ratio <= ANALYSIS_RATIO,
        ),
        (
            "peak resident memory of the whole run, acquisition then post-run analysis in one process "
            "(as 'daq run' does), 1000 vs 100 cycles",
            mib(long["total"]),
            mib(mid["total"]),
            f"{long['total'] / mid['total']:.2f}",
            f"growth < {mib(GROWTH_LIMIT)} (here {mib(growth_total)})",
            growth_total < GROWTH_LIMIT,
        ),
        (
            "peak resident memory while acquiring (and of the post-run analysis alone), 10 cycles (buffers not "
            "yet full) vs 100 cycles",
            f"{above(short, 'acquisition')}; analysis {mib(short['analysis'])}; {short['samples']:,} samples",
            f"{above(mid, 'acquisition')}; analysis {mib(mid['analysis'])}",
            f"{short['acquisition'] / mid['acquisition']:.2f}",
            "(information)",
            None,
        ),
    ]


def main() -> list[Row]:
    result = rows()
    for row in result:
        print(" | ".join(str(x) for x in row), flush=True)
    return result


if __name__ == "__main__":
    main()
