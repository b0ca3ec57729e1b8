"""The status lines and the event log of a channel panel (daq.gui.panel): what the operator reads.

The line builders are plain functions of the run's state, so what a line says does not depend on the
widgets that show it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from daq.core import units as u
from daq.gui import plan as P
from daq.gui.buffers import TraceBuffer
from daq.gui.sources import ALARM_EVENTS, RunInfo

PER_HOUR = u.to_unit(1.0, "h")  # the log shows time in hours
EVENT_COLOURS = {
    "short_circuit": ("#ffc9c9", "#a00000"),
    "fault": ("#ffc9c9", "#a00000"),
    "transducer_fault": ("#ffc9c9", "#a00000"),
    "listener_error": ("#ffc9c9", "#a00000"),
    "voltage_limit": ("#ffe2b8", "#8a4b00"),
    "current_limit": ("#ffe2b8", "#8a4b00"),
    "interlock": ("#ffe2b8", "#8a4b00"),
    "paused": ("#dde9ff", "#1d3f80"),
    "resumed": ("#dde9ff", "#1d3f80"),
}
MAX_LOG_ROWS = 20_000
STOP_REASONS = {"short_circuit", "voltage_limit", "current_limit", "aborted", "fault", "interlock"}
SEP = " \u00b7 "


def stopping_step(steps_done: Mapping[int, Mapping[str, Any]]) -> int | None:
    """Index of the step that ended the protocol early (short, limit, fault), if one did."""
    stops = [i for i, r in steps_done.items() if str(r.get("end_reason", "")) in STOP_REASONS]
    return min(stops) if stops else None


def step_line(idx: int, plan: P.Plan, row: Mapping[str, Any] | None, stop: int | None) -> str:
    """ "step 3 of 12 · plate (galvanostatic) · cycle 2 of 50": the running step, from its row in the
    run (``row``) or else from the plan; steps the engine adds after a stop are named so."""
    planned = plan.step(idx)
    if row is not None:
        label, kind, cycle = row["label"], row["kind"], int(row["cycle"])
    elif planned is not None:
        label, kind, cycle = planned.label, planned.kind, planned.cycle
    else:
        label, kind, cycle = "", "", 0
    cycles = planned.cycles if planned is not None else 0
    if idx < 0:
        parts = ["step -"]
    elif (stop is not None and idx > stop) or idx >= len(plan):
        parts = [f"step {idx + 1} (after the stop)" if stop is not None else f"step {idx + 1}"]
    else:
        parts = [f"step {idx + 1} of {len(plan)}"]
    if label or kind:
        parts.append(f"{label} ({kind})" if label else kind)
    if cycle:
        parts.append(f"cycle {cycle} of {cycles}" if cycles else f"cycle {cycle}")
    return SEP.join(parts)


def time_line(t_now: float, remaining: float, info: RunInfo, outcome: str | None) -> str:
    """Elapsed cell time, then how the run ended (``outcome`` of a finished run) or the time remaining,
    also in wall time for a live run faster than real time."""
    text = f"elapsed {P.format_duration(t_now)} cell time"
    if outcome is not None:
        return text + f"{SEP}ended: {outcome.replace('_', ' ')}"
    text += f"{SEP}remaining \u2248 {P.format_duration(remaining)}"
    if info.live and info.speed:
        text += f" ({P.format_duration(remaining / info.speed)} at {info.speed:g}x)"
    return text


def readings_line(info: RunInfo, buf: TraceBuffer) -> str:
    """The latest potential, current density, capacity and pressure in user units, and sample counts."""
    e_name = "E_we" if info.three_electrode else "E_cell"
    parts = [f"{e_name} = {_value(buf.last(e_name), '+.4f')} V"]
    if info.area > 0:
        parts.append(f"j = {_value(u.to_unit(buf.last('I') / info.area, 'mA/cm^2'), '+.3f')} mA/cm^2")
        parts.append(f"capacity = {_value(u.to_unit(buf.last('capacity'), 'mAh/cm^2'), '.3f')} mAh/cm^2")
    else:  # an imported recording without electrode area: no per-area numbers
        parts.append(f"I = {_value(u.to_unit(buf.last('I'), 'mA'), '+.4g')} mA")
    p = buf.last("pressure")
    if math.isfinite(p):
        parts.append(f"P = {u.to_unit(p, 'MPa'):.2f} MPa")
    parts.append(f"{buf.received:,} samples ({len(buf):,} held)")
    return "   ".join(parts)


def _value(x: float, spec: str) -> str:
    """A reading, or "-" where the recording has none (a spectrum-only file has no current)."""
    return format(x, spec) if math.isfinite(x) else "-"


def make_event_log() -> QTableWidget:
    """An empty, read-only event table: time (h), event, message."""
    log = QTableWidget(0, 3)
    log.setHorizontalHeaderLabels(["time (h)", "event", "message"])
    log.verticalHeader().setVisible(False)
    log.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    log.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    header = log.horizontalHeader()
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
    return log


def append_event(table: QTableWidget, ev: Mapping[str, Any]) -> None:
    """One row per event, coloured by kind, alarms in bold; the oldest row goes beyond MAX_LOG_ROWS.
    The view scrolls to the new row if it was at the bottom, and always for an alarm."""
    at_bottom = table.verticalScrollBar().value() >= table.verticalScrollBar().maximum() - 2
    if table.rowCount() >= MAX_LOG_ROWS:
        table.removeRow(0)
    row = table.rowCount()
    table.insertRow(row)
    kind = str(ev.get("kind", ""))
    items = [
        QTableWidgetItem(f"{float(ev['t']) * PER_HOUR:.3f}"),
        QTableWidgetItem(kind.replace("_", " ")),
        QTableWidgetItem(str(ev.get("message", ""))),
    ]
    colours = EVENT_COLOURS.get(kind)
    for col, item in enumerate(items):
        if colours:
            item.setBackground(QBrush(QColor(colours[0])))
            item.setForeground(QBrush(QColor(colours[1])))
            if kind in ALARM_EVENTS:
                font = QFont()
                font.setBold(True)
                item.setFont(font)
        table.setItem(row, col, item)
    if at_bottom or kind in ALARM_EVENTS:
        QTimer.singleShot(0, table.scrollToBottom)  # after the new row has been laid out
