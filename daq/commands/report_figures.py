"""A run's summary and plots (PNG): what the operator looks at in the morning.

Plots decimate long traces to a min/max envelope per pixel column, so a 42-day run with millions of
samples plots in about a second and looks the same as the full data.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from daq.core import units as u
from daq.storage.reader import RunFile, open_run

Q_UNIT = 36000.0


def envelope(x: np.ndarray, y: np.ndarray, bins: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Min/max of y in ``bins`` equal slices of the samples (keeps spikes such as a short visible)."""
    n = len(x)
    if n <= 2 * bins:
        return x, y
    edges = np.linspace(0, n, bins + 1).astype(int)
    lo = np.minimum.reduceat(y, edges[:-1])
    hi = np.maximum.reduceat(y, edges[:-1])
    xs = x[edges[:-1]]
    return np.repeat(xs, 2), np.column_stack([lo, hi]).ravel()


def summary_lines(run: RunFile) -> list[str]:
    attrs, cell = run.attrs, run.cell
    area = cell["electrodes.working_area"]
    steps, events = run.steps(), run.events()
    if "electrolyte.material" in cell and "electrolyte.relative_density" in cell:
        what = f"({cell['electrolyte.material']}, {100 * cell['electrolyte.relative_density']:.0f} % dense)"
    else:  # an imported recording: the file describes no cell
        what = "(no cell description: electrolyte, density and plated capacity left out)"
    lines = [
        f"{run.path}: {attrs.get('protocol', '?')} on {cell.get('cell_id', '?')} {what}",
        f"  status:   {run.status}   outcome: {attrs.get('outcome', '') or '-'}",
        f"  started:  {attrs.get('start_time', '')}   ended: {attrs.get('end_time', '') or '-'}",
        f"  samples:  {len(run)}   steps: {len(steps)}   spectra: {len(run.spectra())}",
    ]
    if len(steps):
        plated = np.abs(steps.Q[steps.parameters.str.contains('"direction": "plate"')]) / area / Q_UNIT
        if len(plated):
            lines.append(f"  plated:   {plated.max():.3g} mAh/cm^2 in one step, {plated.sum():.3g} mAh/cm^2 in total")
        lines.append(f"  cycles:   {int(steps.cycle.max())}")
    pred = run.prediction("ccd") if "ccd" in run.f["predictions"] else None
    if pred:
        lines.append(f"  predicted CCD: {pred['value']:.3g} {pred['unit']} (band {pred['low']:.3g}-{pred['high']:.3g})")
    analysis = run.f["analysis"].attrs if "analysis" in run.f else {}
    if "short" in analysis and analysis["short"] not in ("{}", ""):
        s = json.loads(analysis["short"])
        text = f"  short circuit: at {u.fmt(s['t'], 'h', 3)}, {s['capacity']:.3g} mAh/cm^2"
        if "resistance" in s:
            diameter = u.fmt(s["filament_diameter"], "um", 2)
            text += f"; shorted cell {s['resistance']:.0f} ohm, filament diameter {diameter}"
        lines.append(text)
        if "bulk_resistance_slope" in s:
            lines.append(
                f"  bulk resistance before the short: {s['bulk_resistance_first']:.0f} -> "
                f"{s['bulk_resistance_last']:.0f} ohm ({s['bulk_resistance_slope']:.0f} ohm per mAh/cm^2)"
            )
    important = events[
        events.kind.isin(["short_circuit", "voltage_limit", "current_limit", "fault", "interlock", "paused", "aborted"])
    ]
    for _, e in important.iterrows():
        lines.append(f"  event at {u.fmt(e.t, 'h', 4)}: {e.kind}: {e.message}")
    return lines


def plot(run: RunFile, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    area = run.cell["electrodes.working_area"]
    t = run.column("t")
    hours = t / 3600
    files = []

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for name, label in (("E_we", "E_we vs reference"), ("E_cell", "E_cell")):
        ax1.plot(*envelope(hours, run.column(name)), lw=0.7, label=label)
    ax1.set_ylabel("potential / V")
    ax1.legend(loc="best")
    ax2.plot(*envelope(hours, run.column("I") / area / 10), lw=0.7, color="tab:green")
    ax2.set_ylabel("current density / mA cm$^{-2}$")
    ax2.set_xlabel("time / h")
    for _, e in run.events().iterrows():
        if e.kind in ("short_circuit", "voltage_limit", "fault", "interlock"):
            for ax in (ax1, ax2):
                ax.axvline(e.t / 3600, color="red", ls="--", lw=0.8)
    fig.tight_layout()
    files.append(_save(fig, out_dir / "voltage_time.png"))

    fig, ax = plt.subplots(figsize=(8, 5))
    steps = run.steps()
    step_col, e_we, q = run.column("step"), run.column("E_we"), run.column("Q")
    plating = steps.index[steps.parameters.str.contains('"direction": "plate"')]
    for k in list(plating)[:200]:
        sel = step_col == steps["index"][k]
        ax.plot(np.abs(q[sel]) / area / Q_UNIT, e_we[sel], lw=0.7)
    ax.set_xlabel("plated capacity / mAh cm$^{-2}$")
    ax.set_ylabel("E_we / V")
    ax.set_title("plating steps: potential vs capacity")
    files.append(_save(fig, out_dir / "voltage_capacity.png"))

    spectra = run.spectra()
    if len(spectra):
        fig, ax = plt.subplots(figsize=(7, 6))
        cmap = plt.get_cmap("viridis")
        for i in range(len(spectra)):
            s = run.spectrum(i)
            ax.plot(
                s.z_real,
                -s.z_imag,
                ".-",
                ms=3,
                lw=0.6,
                color=cmap(i / max(len(spectra) - 1, 1)),
                label=f"#{i} {abs(spectra.Q[i]) / area / Q_UNIT:.2f} mAh/cm$^2$" if len(spectra) <= 12 else None,
            )
        ax.set_xlabel("Z' / ohm")
        ax.set_ylabel("-Z'' / ohm")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title("Nyquist (colour: order taken)")
        if len(spectra) <= 12:
            ax.legend(fontsize=7)
        files.append(_save(fig, out_dir / "nyquist.png"))

    if "pressure" in run.columns():
        fig, ax = plt.subplots(figsize=(10, 3.5))
        ax.plot(*envelope(hours, run.column("pressure") / 1e6), lw=0.7)
        ax.set_xlabel("time / h")
        ax.set_ylabel("stack pressure / MPa")
        fig.tight_layout()
        files.append(_save(fig, out_dir / "pressure.png"))
    return files


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report(path: str | Path, out_dir: str | Path | None = None) -> tuple[list[str], list[Path]]:
    path = Path(path)
    out = Path(out_dir) if out_dir else path.with_name(path.stem + "_report")
    with open_run(path) as run:
        return summary_lines(run), plot(run, out)
