"""The short account of a run printed at its end (user units)."""

from __future__ import annotations

from daq.core import units as u
from daq.core.records import RunResult
from daq.engine.runner import predictions
from daq.models.cell import Cell
from protocols.steps import Galvanostatic, Protocol

OUTCOME_TEXT = {
    "completed": "completed: every step reached its end, no short circuit",
    "short_circuit": "SHORT CIRCUIT detected; current switched off",
    "voltage_limit": "stopped at the voltage limit",
    "current_limit": "stopped at the current limit",
    "aborted": "aborted",
    "fault": "FAULT: the run stopped with the cell switched off",
}


def summary(result: RunResult, protocol: Protocol, cell: Cell, simulated: bool) -> str:
    pred = predictions(cell)["ccd"]
    plating = [s for s in protocol.walk() if isinstance(s, Galvanostatic) and s.direction == "plate"]
    lines = [
        f"{protocol.name} on {cell.cell_id} ({cell.electrolyte.material}, "
        f"{100 * cell.electrolyte.relative_density:.0f} % dense){', simulated' if simulated else ''}",
        f"  outcome:           {OUTCOME_TEXT.get(result.outcome, result.outcome)}",
    ]
    if result.outcome not in ("completed",):
        lines.append(f"  reason:            {result.message}")
    totals = _totals(result.path, cell.electrodes.working_area)
    if plating:
        densities = ", ".join(sorted({u.fmt(s.current_density, "mA/cm^2", 3) for s in plating}))
        if result.cycles or result.short or len(plating) > 1:
            total = f", {u.fmt(totals['plated'], 'mAh/cm^2', 4)} in total" if totals else ""
            lines.append(
                f"  plated:            {u.fmt(result.plated_capacity, 'mAh/cm^2', 3)} in the largest step{total}, "
                f"at {densities}"
            )
        else:
            lines.append(f"  capacity reached:  {u.fmt(result.plated_capacity, 'mAh/cm^2', 3)} plated at {densities}")
    if result.short:
        where = f"cycle {totals['short_cycle']}, " if totals and totals.get("short_cycle") else ""
        lines.append(
            f"  short circuit at:  {u.fmt(result.short['t'], 'h', 3)} cell time, {where}"
            f"{u.fmt(result.short['capacity'], 'mAh/cm^2', 3)} into the step"
        )
    if result.cycles:
        done = f"{totals['completed']} completed of " if totals else ""
        lines.append(f"  cycles:            {done}{result.cycles} started")
    lines += [
        f"  predicted CCD:     {pred['value']:.3g} mA/cm^2 (band {pred['low']:.3g}-{pred['high']:.3g}; "
        f"{pred['model']})",
        f"  cell time:         {u.fmt(result.duration, 'h', 4)}, {result.samples} samples",
        f"  file:              {result.path}",
    ]
    return "\n".join(lines)


def _totals(path: str, area: float) -> dict | None:
    """Total plated capacity (C/m^2), cycles completed and the cycle that shorted, from the run file
    (read as plain arrays: the summary costs no pandas)."""
    import numpy as np

    from daq.analysis.closed_run import ClosedRun, Table
    from daq.analysis.cycles import cycle_table
    from daq.core.errors import DaqError

    try:
        with ClosedRun(path) as run:
            q = run.steps().Q
            stored = "analysis" in run.f and "cycles" in run.f["analysis"]
            table = Table(run.f["analysis/cycles"]) if stored else Table(cycle_table(run))
            stop, strip, cycle = table.stop, table.strip_charge, table.cycle
    except (DaqError, OSError, KeyError):  # the summary still prints what the engine knows
        return None
    full = np.isin(stop, ["capacity_reached", "time_reached", "completed"]) & (strip > 0)
    shorted = cycle[stop == "short_circuit"]
    return {
        "plated": float(-q[q < 0].sum() / area),
        "completed": int(full.sum()),
        "short_cycle": int(shorted[0]) if len(shorted) else 0,
    }
