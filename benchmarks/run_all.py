"""Run every benchmark, print one table, and rewrite the generated tables in benchmarks/README.md.

    python benchmarks/run_all.py [--quick] [--no-readme]

Acquisition pipeline, simulation speed, memory and short-circuit response run here (memory in fresh
subprocesses); the EIS-fit and live-view benchmarks (bench_eis_fit.py, bench_gui.py) run as
subprocesses when present and their rows are parsed from what they print; when absent or failing,
the table says so. Only the block between the README's ``run_all`` markers is rewritten. Takes about
two to three minutes on 2 cores; --quick runs fewer repeats and samples (for checking the script).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

README = HERE / "README.md"
BEGIN = "<!-- run_all.py: generated tables begin (python benchmarks/run_all.py rewrites this block) -->"
END = "<!-- run_all.py: generated tables end -->"
HEADER = "| measurement | this product | reference | ratio | target | met? |\n|---|---|---|---|---|---|"

Row = tuple[str, str, str, str, str, bool | None]


def cell(text: object) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def table(rows: list[Row]) -> str:
    met = {True: "yes", False: "**no**", None: "-"}
    return "\n".join([HEADER] + ["| " + " | ".join(cell(x) for x in row[:5]) + f" | {met[row[5]]} |" for row in rows])


# --- this repository's own benchmarks (same process) ----------------------------------------------
def pipeline(quick: bool) -> list[Row]:
    import bench_pipeline

    return bench_pipeline.rows(
        samples=500_000 if quick else 2_000_000, pm_samples=10_000 if quick else 50_000, repeat=2 if quick else 5
    )


def simulation(quick: bool) -> list[Row]:
    import bench_sim

    rows = bench_sim.rows(repeat=1 if quick else 5)
    if (HERE / "bench_ccd_sim.py").exists():
        import bench_ccd_sim

        saved, sys.argv = sys.argv, [sys.argv[0]]
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # it prints its own row
                ccd_rows = bench_ccd_sim.main()
            for name, result, target in ccd_rows:
                speed = re.search(r"([\d,]+)x real time", result)
                need = re.search(r"([\d,]+)x", target)
                ratio = float(speed.group(1).replace(",", "")) if speed else None
                ok = ratio >= float(need.group(1).replace(",", "")) if ratio and need else None
                rows.append(
                    (
                        f"simulation speed, {name} (bench_ccd_sim.py)",
                        result,
                        "real time (1x)",
                        f"{ratio:,.0f}x" if ratio else "-",
                        target,
                        ok,
                    )
                )
        finally:
            sys.argv = saved
    return rows


def command_line(quick: bool) -> list[Row]:
    import bench_cli

    return bench_cli.rows(repeat=3 if quick else 5)


def campaigns(quick: bool) -> list[Row]:
    import bench_campaign

    return bench_campaign.rows(repeat=1 if quick else 3)


def memory(quick: bool) -> list[Row]:
    import bench_memory

    return bench_memory.rows()


def publishing(quick: bool) -> list[Row]:
    import bench_publish

    return bench_publish.rows(seconds=10.0 if quick else 30.0)


def short_circuit(quick: bool) -> list[Row]:
    import bench_short

    return bench_short.rows()


# --- benchmarks maintained beside this script (subprocesses; their printed output is parsed) ------
def _subprocess(script: str, args: list[str], timeout: float) -> str:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        [sys.executable, str(HERE / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=HERE.parent,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{script} exited with {proc.returncode}: {tail[0]}")
    return proc.stdout


def _number(text: str) -> float | None:
    m = re.search(r"-?[\d.]+(?:e-?\d+)?", text.replace(",", ""))
    return float(m.group()) if m else None


def eis_fit(quick: bool) -> list[Row]:
    """Rows of bench_eis_fit.py: | measurement | ours | impedance.py | ratio | target |."""
    out = _subprocess("bench_eis_fit.py", ["--repeat", "5" if quick else "20"], timeout=300)
    rows: list[Row] = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.strip().strip("|").split("|")]
        if len(parts) < 5 or parts[0] == "measurement" or set(parts[0]) <= set("-"):
            continue
        name, ours, theirs, ratio, target = parts[:5]
        a, b = _number(ours), _number(theirs)
        ok: bool | None = None
        if a is not None and b is not None:
            if "time" in name:
                ok, target = a <= b, f"faster than impedance.py ({target})"
            elif "residual" in name:
                ok, target = a <= b * 1.001, f"equal or better than impedance.py ({target})"
            elif (limit := re.search(r"\(([\d.]+) %\)", target)) is not None:
                ok = abs(a) <= float(limit.group(1))
        unit = " ms" if "(ms)" in name else " %" if "(%)" in name else ""
        rows.append((f"EIS fit, {name}", f"{ours}{unit}", f"impedance.py: {theirs}{unit}", ratio, target, ok))
    if not rows:
        raise RuntimeError("bench_eis_fit.py printed no table rows")
    return rows


def live_view(quick: bool) -> list[Row]:
    """bench_gui.py's frame times with 10 million samples: bounded live buffer (this product) against the
    same panel holding every sample at full resolution (--unbounded)."""
    seconds = "2" if quick else "4"

    def modes(text: str) -> dict[str, tuple[float, float, str]]:
        found = {}
        for line in text.splitlines():
            m = re.match(r"\s*(\w+)\s*:.*?median ([\d.]+) ms, p95 ([\d.]+) ms", line)
            if m:
                found[m.group(1)] = (float(m.group(2)), float(m.group(3)), line.strip())
        return found

    ours = modes(_subprocess("bench_gui.py", ["--seconds", seconds], timeout=240))
    ref = modes(_subprocess("bench_gui.py", ["--seconds", seconds, "--unbounded"], timeout=240))
    if not ours:
        raise RuntimeError("bench_gui.py printed no frame times")
    rows: list[Row] = []
    for mode, (median, p95, _) in ours.items():
        r = ref.get(mode)
        rows.append(
            (
                f"live view frame time, 10 million samples in the trace, 1,000 samples/s arriving, {mode} "
                "(bounded buffer vs every sample at full resolution)",
                f"median {median:.1f} ms, p95 {p95:.1f} ms",
                f"median {r[0]:.1f} ms, p95 {r[1]:.1f} ms" if r else "-",
                f"{r[1] / p95:.1f}x (p95)" if r and p95 > 0 else "-",
                "p95 <= 100 ms (10 frames/s stays interactive)",
                p95 <= 100.0,
            )
        )
    rows.append(_first_data(quick))
    return rows


def _first_data(quick: bool) -> Row:
    """bench_gui.py --first-data on a 1000-cycle run file it makes (fresh interpreters, offscreen)."""
    with tempfile.TemporaryDirectory() as tmp:
        text = _subprocess(
            "bench_gui.py", ["--first-data", str(Path(tmp) / "c1000.h5"), "--repeat", "2" if quick else "3"], 600
        )
    m = re.search(r"first data: ([\d.]+) s wall, ([\d.]+) s CPU.*?\(('daq gui FILE'.*)\)", text)
    if not m:
        raise RuntimeError("bench_gui.py --first-data printed no time")
    wall = float(m.group(1))
    return (
        f"first data of 'daq gui FILE', 1000-cycle asymmetric cycling file, fresh interpreter, offscreen "
        f"({m.group(3)})",
        f"{wall:.2f} s wall, {float(m.group(2)):.2f} s CPU",
        "-",
        "-",
        "<= 1 s",
        wall <= 1.0,
    )


SECTIONS: list[tuple[str, str, Callable[[bool], list[Row]], str]] = [
    ("cli", "Command line start-up", command_line, "bench_cli.py"),
    ("pipeline", "Acquisition pipeline throughput", pipeline, "bench_pipeline.py"),
    ("simulation", "Simulation speed", simulation, "bench_sim.py"),
    ("campaign", "Campaigns on several cores", campaigns, "bench_campaign.py"),
    ("memory", "Memory", memory, "bench_memory.py"),
    ("short", "Short-circuit response", short_circuit, "bench_short.py"),
    ("eis", "EIS fitting", eis_fit, "bench_eis_fit.py"),
    ("gui", "Live view", live_view, "bench_gui.py"),
    ("publish", "Lab publishing", publishing, "bench_publish.py"),
]


def environment() -> str:
    import h5py
    import numpy

    try:
        from importlib.metadata import version

        pymeasure = version("pymeasure")
    except Exception:  # noqa: BLE001 - any failure just means "not installed"
        pymeasure = "not installed"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()} with {os.cpu_count()} cores "
        f"(load average {load:.1f} at the start), Python {platform.python_version()}, numpy {numpy.__version__}, "
        f"h5py {h5py.__version__} (HDF5 {h5py.version.hdf5_version}), PyMeasure {pymeasure}"
    )


def run(quick: bool) -> str:
    blocks = [
        f"Measured {environment()}; `python benchmarks/run_all.py` in {{elapsed}} (load average {{load_end}} at "
        "the end). The machine is shared with other jobs: wall times depend on that load, CPU times much less.",
        "",
    ]
    for _key, title, fn, script in SECTIONS:
        print(f"\n## {title} ({script})", flush=True)
        t0 = time.perf_counter()
        if not (HERE / script).exists():
            note = f"{script} is not in this checkout: no measurement."
            rows: list[Row] = []
        else:
            try:
                rows, note = fn(quick), ""
            except Exception as exc:  # noqa: BLE001 - one failing benchmark must not hide the others
                traceback.print_exc()
                rows, note = [], f"{script} failed: {type(exc).__name__}: {exc}"
        text = table(rows) if rows else f"_{note}_"
        print(text, f"\n({time.perf_counter() - t0:.0f} s)", flush=True)
        blocks += [f"### {title}", "", f"`{script}`" + (f" — {note}" if note and rows else ""), "", text, ""]
    return "\n".join(blocks).rstrip() + "\n"


def rewrite_readme(generated: str) -> None:
    """Replace the block between the markers (or add it after the introduction); nothing else changes."""
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{generated}{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        cut = text.find("\n## ")
        text = (text + "\n" + block + "\n") if cut < 0 else (text[: cut + 1] + "\n" + block + "\n" + text[cut:])
    README.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples and repeats (checks the script)")
    parser.add_argument("--no-readme", action="store_true", help="print only; leave benchmarks/README.md alone")
    args = parser.parse_args()
    t0 = time.perf_counter()
    generated = run(args.quick)
    elapsed = time.perf_counter() - t0
    generated = generated.replace("{elapsed}", f"{elapsed / 60:.1f} min" + (" (--quick)" if args.quick else ""))
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    generated = generated.replace("{load_end}", f"{load_end:.1f}")
    if not args.no_readme:
        rewrite_readme(generated)
        print(f"\nbenchmarks/README.md: tables rewritten ({elapsed:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
