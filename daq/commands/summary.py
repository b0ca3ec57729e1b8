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
    if plating:
        densities = sorted({u.fmt(s.current_density, "mA/cm^2", 3) for s in plating})
        lines.append(
            f"  capacity reached:  {u.fmt(result.plated_capacity, 'mAh/cm^2', 3)} plated at {', '.join(densities)}"
        )
    if result.short:
        lines.append(
            f"  short circuit at:  {u.fmt(result.short['t'], 'h', 3)} cell time, "
            f"{u.fmt(result.short['capacity'], 'mAh/cm^2', 3)}"
        )
    if result.cycles:
        lines.append(f"  cycles:            {result.cycles}")
    lines += [
        f"  predicted CCD:     {pred['value']:.3g} mA/cm^2 (band {pred['low']:.3g}-{pred['high']:.3g}; "
        f"{pred['model']})",
        f"  cell time:         {u.fmt(result.duration, 'h', 4)}, {result.samples} samples",
        f"  file:              {result.path}",
    ]
    return "\n".join(lines)
