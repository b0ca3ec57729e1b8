"""Live view under load: frame time with 10 million samples in a trace while 1,000 samples/s arrive.

A channel panel (offscreen) is filled with 10 million synthetic cycling samples, then for each mode
samples keep arriving at 1,000 per second (20 blocks of 50 per second, as the engine delivers them)
while every plot of the panel is repainted as fast as possible:

- follow: the view auto-ranges over the whole run as it grows (what an unattended run shows);
- pan/zoom: the operator pans a zoomed window along the time axis (the view changes every frame).

A frame = one pass of the event loop: the pending appends, the timed redraw of the traces, and Qt
repainting every plot whose view changed (counted, to be sure the frame really paints).
Run with ``--unbounded`` to keep all 10 million samples at full resolution (no envelope) and see
why the buffer is bounded.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_gui.py [--seconds 10] [--unbounded]

First data of a run file: ``--first-data FILE`` runs ``daq gui FILE`` (offscreen) in fresh interpreters
and times process start to the first traces drawn and painted (wall, and CPU of the process), best of
``--repeat``; FILE is made first if missing (the 1000-cycle asymmetric cycling run, about 3.8 M samples).

    python benchmarks/bench_gui.py --first-data /tmp/c1000.h5 [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from PySide6.QtCore import QEvent, QObject

AREA = 7.853981633974482e-07  # m^2
PERIOD = 0.1  # s between synthetic samples


class Source:
    """Synthetic asymmetric cycling: 200 s plating spikes, long stripping plateaus, pressure noise."""

    def __init__(self) -> None:
        self.k = 0
        self.rng = np.random.default_rng(1)

    def block(self, n: int) -> dict[str, np.ndarray]:
        k = self.k + np.arange(n)
        self.k += n
        t = k * PERIOD
        phase = t % 36200.0
        plating = phase < 200.0
        current = np.where(plating, -7.07e-5, 3.9e-7)
        e = np.where(plating, -0.35 - 1e-4 * phase, 0.012) + self.rng.normal(0, 2e-4, n)
        step = (t // 36200.0 * 2 + (~plating)).astype(np.int32)
        q = current * (np.where(plating, phase, phase - 200.0) + PERIOD)
        return {
            "t": t,
            "step": step,
            "cycle": (t // 36200.0).astype(np.int32) + 1,
            "E_we": e,
            "E_cell": e * 1.1,
            "I": current,
            "Q": q,
            "pressure": 7e6 + self.rng.normal(0, 1e4, n),
        }


class PaintCounter(QObject):
    """Counts paint events of the plot viewports (a frame must really repaint them)."""

    def __init__(self, widgets: list) -> None:
        super().__init__()
        self.count = 0
        for w in widgets:
            w.viewport().installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.count += 1
        return False


def measure(panel, app, source: Source, seconds: float, mode: str) -> dict[str, float]:
    """Frames that painted something: their durations, rate, and the GUI thread's busy fraction."""
    painted = PaintCounter(
        [panel.plot_e_t, panel.plot_j_t, panel.plot_p_t, panel.plot_e_q, panel.plot_nyquist, panel.plot_bode]
    )
    vb = panel.plot_e_t.getPlotItem().getViewBox()
    t_end = float(panel.buffer.last("t"))
    if mode == "follow":
        panel.follow()
    else:
        span = 0.05 * t_end
        vb.setXRange(t_end - 4 * span, t_end - 3 * span, padding=0)
    app.processEvents()
    received0 = panel.buffer.received
    frames: list[float] = []
    paints = 0
    busy = append_cost = 0.0
    start = time.perf_counter()
    due = 0.0
    while (now := time.perf_counter()) - start < seconds:
        f0, before = now, painted.count
        due_now = (now - start) * 1000.0  # samples that should have arrived by now at 1,000/s
        while due + 50 <= due_now:  # blocks of 50 samples, 20 per second
            a0 = time.perf_counter()
            panel._on_block(source.block(50))
            append_cost += time.perf_counter() - a0
            due += 50
        if mode == "pan":
            x0, x1 = vb.viewRange()[0]
            shift = (x1 - x0) * 0.01
            vb.setXRange(x0 + shift, x1 + shift, padding=0)
        app.processEvents()  # delivers the redraw timer and paints every plot whose view changed
        dt = time.perf_counter() - f0
        if painted.count > before:
            frames.append(dt)
            paints += painted.count - before
            busy += dt
        elif mode == "follow":
            time.sleep(0.001)  # an idle event loop would wait here
            busy += dt
    elapsed = time.perf_counter() - start
    arr = np.array(frames)
    appended = panel.buffer.received - received0
    return {
        "frames_per_s": len(arr) / elapsed,
        "median_ms": 1e3 * float(np.median(arr)),
        "p95_ms": 1e3 * float(np.percentile(arr, 95)),
        "max_ms": 1e3 * float(arr.max()),
        "plots_per_frame": paints / len(arr),
        "busy": busy / elapsed,
        "appended_per_s": appended / elapsed,
        "append_us_per_block": 1e6 * append_cost / max(appended / 50, 1),
    }


FIRST_DATA_CHILD = """
import os, resource, sys, time
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
import daq.gui.panel as panel_module
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
draw_traces = panel_module.ChannelPanel._draw_traces
def first_draw(self, buf):
    draw_traces(self, buf)
    if not getattr(first_draw, "done", False):
        first_draw.done = True
        def painted():
            ru = resource.getrusage(resource.RUSAGE_SELF)
            t = buf.column("t")
            print(f"FIRST {time.perf_counter():.4f} {ru.ru_utime + ru.ru_stime:.3f} {buf.received} {t[-1] - t[0]:.0f}")
            sys.stdout.flush()
            QApplication.instance().quit()
        QTimer.singleShot(0, painted)
panel_module.ChannelPanel._draw_traces = first_draw
from daq.cli import main
sys.argv = ["daq", "gui", sys.argv[1]]
main()
"""


def first_data(path: Path, repeat: int) -> int:
    """Time from a fresh interpreter's start to the first traces of ``daq gui FILE`` drawn (offscreen)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(root))
    if not path.exists():
        protocol = root / "protocols/examples/asymmetric_cycling.toml"
        cmd = [sys.executable, "-m", "daq.cli", "run", str(protocol), "--sim", "--set", "steps.2.cycles=1000"]
        subprocess.run([*cmd, "--out", str(path)], check=True, env=env, stdout=subprocess.DEVNULL)
    import h5py

    with h5py.File(path, "r") as f:
        samples = len(f["timeseries/t"])
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", FIRST_DATA_CHILD, str(path)], env=env, capture_output=True, text=True, timeout=120
        )
        lines = [line.split() for line in out.stdout.splitlines() if line.startswith("FIRST")]
        if not lines:
            raise RuntimeError(f"daq gui drew no data: {out.stderr.strip()[-300:]}")
        _, t_first, cpu, received, span = lines[0]
        runs.append((float(t_first) - t0, float(cpu), int(received), float(span)))
    wall, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
    print(
        f"first data: {wall:.2f} s wall, {cpu:.2f} s CPU from process start ('daq gui FILE', {samples:,}-sample "
        f"file, {path.stat().st_size / 2**20:.0f} MiB; first picture {runs[0][2]:,} samples, "
        f"{runs[0][3] / 86400:.0f} days; best of {repeat}; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000_000)
    parser.add_argument("--seconds", type=float, default=10.0, help="per mode")
    parser.add_argument("--unbounded", action="store_true", help="hold every sample at full resolution")
    parser.add_argument("--first-data", type=Path, metavar="FILE", help="time 'daq gui FILE' to its first traces")
    parser.add_argument("--repeat", type=int, default=3, help="with --first-data: fresh processes timed")
    args = parser.parse_args()
    if args.first_data:
        return first_data(args.first_data, args.repeat)

    from PySide6.QtWidgets import QApplication

    from daq.gui.panel import ChannelPanel
    from daq.gui.plan import Plan
    from daq.gui.sources import RunInfo

    app = QApplication.instance() or QApplication([])
    options = {"full_cap": args.samples + 1, "envelope_cap": args.samples} if args.unbounded else {}
    panel = ChannelPanel("bench", simulated=False, refresh_ms=100, buffer_options=options)
    panel.resize(1500, 900)
    panel.show()
    panel._on_started(RunInfo("bench.h5", "benchmark", "synthetic", AREA, True, Plan([]), live=False))
    source = Source()
    t0 = time.perf_counter()
    for _ in range(args.samples // 100_000):
        panel._on_block(source.block(100_000))
    fill = time.perf_counter() - t0
    buf = panel.buffer
    panel.refresh()
    app.processEvents()
    print(
        f"trace: {buf.received:,} samples ({buf.received * PERIOD / 86400:.1f} days at {PERIOD:g} s), "
        f"{len(buf):,} rows held ({buf.n_envelope:,} envelope), {buf.nbytes / 2**20:.0f} MiB "
        f"(bound {buf.max_nbytes / 2**20:.0f} MiB); filled at {buf.received / fill / 1e6:.1f} M samples/s"
    )
    import os as _os

    print(f"machine load (1 min): {_os.getloadavg()[0]:.1f} on {_os.cpu_count()} cores")
    for mode in ("follow", "pan"):
        r = measure(panel, app, source, args.seconds, mode)
        what = "redraws (timer) " if mode == "follow" else "frames (panning)"
        print(
            f"{mode:6s}: {r['frames_per_s']:.0f} {what}/s, frame time median {r['median_ms']:.1f} ms, "
            f"p95 {r['p95_ms']:.1f} ms, max {r['max_ms']:.1f} ms ({r['plots_per_frame']:.1f} plot repaints per "
            f"frame); GUI thread busy {100 * r['busy']:.0f} %; appended {r['appended_per_s']:.0f} samples/s "
            f"({r['append_us_per_block']:.0f} us per 50-sample block)"
        )
    panel.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
