"""The report's text: what happened in a run, in user units (mAh/cm^2, h)."""

from __future__ import annotations

import json

import numpy as np

from daq.analysis.cycles import read_cycles
from daq.commands import report_data as D
from daq.core import units as u
from daq.storage.reader import RunFile

MAH_CM2 = "mAh/cm^2"
IMPORTANT = ["short_circuit", "voltage_limit", "current_limit", "fault", "interlock", "paused", "aborted"]


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
    q = steps.Q.values[np.isfinite(steps.Q.values)] if len(steps) else np.array([])
    if len(q):
        # Per area where the cell is described; an imported recording knows no area: its charge in mAh
        scale, unit, note = (area, MAH_CM2, "") if np.isfinite(area) else (1.0, "mAh", " (no electrode area)")
        plated, stripped = abs(q[q < 0].sum()) / scale, q[q > 0].sum() / scale
        largest = -q.min() / scale if (q < 0).any() else 0.0
        lines.append(
            f"  plated:   {u.fmt(plated, unit, 4)} in total, stripped {u.fmt(stripped, unit, 4)}; "
            f"largest in one step {u.fmt(largest, unit, 3)}{note}"
        )
    lines += _cycle_lines(run)
    pred = run.prediction("ccd") if "ccd" in run.f["predictions"] else None
    if pred:
        lines.append(f"  predicted CCD: {pred['value']:.3g} {pred['unit']} (band {pred['low']:.3g}-{pred['high']:.3g})")
    lines += _short_lines(run)
    for _, e in events[events.kind.isin(IMPORTANT)].iterrows():
        lines.append(f"  event at {u.fmt(e.t, 'h', 4)}: {e.kind}: {e.message}")
    return lines


def _cycle_lines(run: RunFile) -> list[str]:
    table = read_cycles(run)
    if not len(table):
        return []
    full = table[table.stop.isin(["capacity_reached", "time_reached", "completed"]) & (table.strip_charge > 0)]
    ce = table.coulombic_efficiency.dropna()
    lines = [f"  cycles:   {len(full)} completed of {len(table)} started"]
    if len(ce):
        lines.append(f"  coulombic efficiency: mean {100 * ce.mean():.2f} %, last {100 * ce.iloc[-1]:.2f} %")
    pot = table.attrs.get("potential", "E_we")
    plate = table.plate_mean.dropna()
    if len(plate):
        first, last = int(table.cycle[plate.index[0]]), int(table.cycle[plate.index[-1]])
        lines.append(
            f"  plating overpotential ({pot}, mean of the half cycle): cycle {first} "
            f"{1e3 * plate.iloc[0]:.1f} mV -> cycle {last} {1e3 * plate.iloc[-1]:.1f} mV"
        )
    return lines


def _short_lines(run: RunFile) -> list[str]:
    short = D.short_info(run)
    analysis = run.f["analysis"].attrs if "analysis" in run.f else {}
    stored = json.loads(analysis["short"]) if analysis.get("short") not in (None, "", "{}") else {}
    if short is None:
        return []
    area = run.cell["electrodes.working_area"]
    steps = run.steps()
    q = steps.Q.values[(steps.t_end.values <= short["t"] + 1e-9) | (steps["index"].values == short["step"])]
    plated_before = -q[q < 0].sum() / area
    where = f"cycle {short['cycle']}, " if short["cycle"] else ""
    text = (
        f"  short circuit: at {u.fmt(short['t'], 'h', 4)} cell time, {where}step {short['step'] + 1} "
        f"'{short['label']}', {u.fmt(short['capacity'], MAH_CM2, 3)} into the step, "
        f"{u.fmt(plated_before, MAH_CM2, 4)} plated in total by then"
    )
    lines = [text]
    if "resistance" in stored and np.isfinite(stored.get("filament_diameter", np.nan)):
        diameter = u.fmt(stored["filament_diameter"], "um", 2)
        lines.append(f"  shorted cell: {stored['resistance']:.0f} ohm, filament diameter {diameter}")
    if "bulk_resistance_slope" in stored:
        lines.append(
            f"  bulk resistance before the short: {stored['bulk_resistance_first']:.0f} -> "
            f"{stored['bulk_resistance_last']:.0f} ohm ({stored['bulk_resistance_slope']:.0f} ohm per mAh/cm^2)"
        )
    return lines
