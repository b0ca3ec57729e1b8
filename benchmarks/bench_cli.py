"""Command-line start-up: CPU time of ``daq --help`` and of the default ``daq run --sim`` end to end (the
CCD single-plating example on the simulated 99 % cell), each a fresh interpreter, best of several; and
where the time of ``daq run --sim`` goes, from ``python -X importtime`` (the libraries and the run).

CPU time (user + system of the child process, from getrusage) is what the command costs whatever else
the machine does; wall time is shown beside it and depends on the load.

    python benchmarks/bench_cli.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HELP_TARGET = 0.15  # s CPU
RUN_TARGET = 0.5  # s CPU
# what the time of `daq run --sim` is spent importing: these packages, as first imported (cumulative)
LIBRARIES = ("numpy", "h5py", "pandas", "scipy.signal", "scipy.optimize", "scipy.stats", "matplotlib")

Row = tuple[str, str, str, str, str, bool | None]


def timed(argv: list[str], cwd: Path) -> tuple[float, float, str]:
    """(CPU s, wall s, stderr) of ``python -m daq.cli ARGV`` in a fresh interpreter."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}: {proc.stderr.strip()[-300:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, proc.stderr


def import_times(stderr: str) -> dict[str, float]:
    """Cumulative seconds of each package in LIBRARIES and of all of daq's own imports (importtime)."""
    found: dict[str, float] = {}
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m and m.group(3) in LIBRARIES and m.group(3) not in found:
            found[m.group(3)] = int(m.group(1)) / 1e6
    total = sum(
        int(m.group(1)) / 1e6
        for m in (re.match(r"import time:\s+\d+ \|\s+(\d+) \| ?(\S+)", line) for line in stderr.splitlines())
        if m
    )
    found["all imports"] = total
    return found


def rows(repeat: int = 5) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        help_runs = [timed(["-m", "daq.cli", "--help"], cwd) for _ in range(repeat)]
        run_runs = [
            timed(["-m", "daq.cli", "run", "--sim", "--out", str(cwd / f"r{i}.h5")], cwd)
            for i in range(max(3, repeat // 2))
        ]
        _, _, traced = timed(["-X", "importtime", "-m", "daq.cli", "run", "--sim", "--out", str(cwd / "t.h5")], cwd)
    help_cpu, help_wall = min(r[0] for r in help_runs), min(r[1] for r in help_runs)
    run_cpu, run_wall = min(r[0] for r in run_runs), min(r[1] for r in run_runs)
    libs = import_times(traced)
    top = sorted(((v, k) for k, v in libs.items() if k != "all imports"), reverse=True)
    where = ", ".join(f"{k} {v:.2f}" for v, k in top)
    return [
        (
            "'daq --help', CPU time of the whole process (fresh interpreter)",
            f"{help_cpu:.3f} s CPU ({help_wall:.2f} s wall)",
            "-",
            "-",
            f"<= {HELP_TARGET} s CPU",
            help_cpu <= HELP_TARGET,
        ),
        (
            "default 'daq run --sim' end to end (CCD single plating, 99 % cell; fresh interpreter)",
            f"{run_cpu:.2f} s CPU ({run_wall:.2f} s wall)",
            "-",
            "-",
            f"<= {RUN_TARGET} s CPU",
            run_cpu <= RUN_TARGET,
        ),
        (
            "where 'daq run --sim' spends its time: imports under python -X importtime (inflated by the "
            "tracing; cumulative s, as first imported)",
            f"all imports {libs['all imports']:.2f} s: {where}",
            "-",
            "-",
            "(information)",
            None,
        ),
    ]


def main() -> list[Row]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args([] if __name__ != "__main__" else None)
    result = rows(args.repeat)
    for row in result:
        print(" | ".join(str(x) for x in row), flush=True)
    return result


if __name__ == "__main__":
    main()
