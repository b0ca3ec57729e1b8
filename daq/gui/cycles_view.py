"""The cycles view of a channel: the per-cycle table (/analysis/cycles) as plots and rows.

Overpotential (mean and largest of each half cycle), coulombic efficiency and capacity against cycle
number, beside a table with one row per cycle in user units. During a run (simulated here, or a run
file another process is writing) the rows grow as cycles complete (daq.analysis.cycles_live, fed the
samples and ended steps the panel receives); when the run ends, or a finished file is opened, the
stored table is shown (older files get it computed, a chunk at a time).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from daq.analysis.cycles import CYCLE_DTYPE, CYCLE_UNITS
from daq.analysis.cycles_live import LiveCycles
from daq.core import units as u

AXIS_WIDTH = 56  # px, left axes of the three plots

EMPTY = "no cycles yet: rows appear as cycles complete, or when a cycling run's file is opened"

COLUMNS = (
    ("cycle", "cycle", lambda r: f"{int(r.cycle)}"),
    ("plated", "plated\n(mAh/cm^2)", lambda r: f"{u.to_unit(r.plate_capacity, 'mAh/cm^2'):.3f}"),
    ("stripped", "stripped\n(mAh/cm^2)", lambda r: f"{u.to_unit(r.strip_capacity, 'mAh/cm^2'):.3f}"),
    ("ce", "CE\n(%)", lambda r: "-" if math.isnan(r.coulombic_efficiency) else f"{100 * r.coulombic_efficiency:.2f}"),
    ("plate", "plating (mV)\nmean / end", lambda r: f"{1e3 * r.plate_mean:.1f} / {1e3 * r.plate_end:.1f}"),
    ("strip", "stripping (mV)\nmean / end", lambda r: _mv_pair(r.strip_mean, r.strip_end)),
    ("duration", "duration\n(h)", lambda r: f"{r.duration / 3600:.3f}"),
    ("stop", "ended", lambda r: str(r.stop).replace("_", " ")),
)


def _mv_pair(a: float, b: float) -> str:
    return "-" if math.isnan(a) else f"{1e3 * a:.1f} / {1e3 * b:.1f}"


def cycle_tick(last: int) -> int:
    """Whole-cycle tick spacing: every cycle for a few, about ten ticks for many (1, 2, 5, 10, 20, ...)."""
    step = 1
    while last / step > 12:
        step *= 2.5 if str(step)[0] == "2" else 2
        step = int(step)
    return step


def frame(rows: np.ndarray, potential: str):
    """Table rows (CYCLE_DTYPE) as the DataFrame read_cycles gives (SI, units in attrs)."""
    import pandas as pd

    df = pd.DataFrame({name: rows[name] for name in CYCLE_DTYPE.names})
    df["stop"] = [v.decode() if isinstance(v, bytes) else str(v) for v in df["stop"]]
    df.attrs["units"] = dict(CYCLE_UNITS)
    df.attrs["potential"] = potential
    return df


class CyclesView(QWidget):
    """Plots and table of the per-cycle analysis of one run: live as cycles complete, then the stored table."""

    changed = Signal(int)  # rows shown, after every change (live rows added, stored table loaded)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.live: LiveCycles | None = None
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        left = QVBoxLayout()
        self.message = QLabel(EMPTY)
        left.addWidget(self.message)
        self.plots = pg.GraphicsLayoutWidget()
        self.potential = self.plots.addPlot(row=0, col=0)
        self.efficiency = self.plots.addPlot(row=1, col=0)
        self.capacity = self.plots.addPlot(row=2, col=0)
        for item, label, title in (
            (
                self.potential,
                "overpotential (mV)",
                "Overpotential: <span style='color:#1f4e9c'>plating</span>, "
                "<span style='color:#c03030'>stripping</span> (mean solid, largest dashed)",
            ),
            (self.efficiency, "CE (%)", "Coulombic efficiency (stripped / plated)"),
            (
                self.capacity,
                "capacity (mAh/cm^2)",
                "<span style='color:#1f4e9c'>Plated</span> and <span style='color:#c03030'>stripped</span> capacity",
            ),
        ):
            item.setTitle(title, size="9pt")
            item.setLabel("left", label)
            item.setLabel("bottom", "cycle")
            item.showGrid(x=True, y=True, alpha=0.3)
            item.getAxis("left").enableAutoSIPrefix(False)
            item.getAxis("left").setWidth(AXIS_WIDTH)  # equal widths keep the linked cycle axes aligned
        # Steady cycling gives nearly equal values: never zoom into rounding noise (1e-13 %)
        for item, span in ((self.potential, 5.0), (self.efficiency, 2.0), (self.capacity, 0.05)):  # mV, %, mAh/cm^2
            item.getViewBox().setLimits(minYRange=span, minXRange=2.0)
        self.efficiency.setXLink(self.potential)
        self.capacity.setXLink(self.potential)
        left.addWidget(self.plots, 1)
        layout.addLayout(left, 1)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([title for _, title, _ in COLUMNS])
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)  # px: more cycles in view
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.table, 1)
        self.rows = 0
        self._axes(False)

    def _axes(self, shown: bool) -> None:
        """No axes without data: empty plots stay empty (no made-up ranges)."""
        for item in (self.potential, self.efficiency, self.capacity):
            for side in ("left", "bottom"):
                item.showAxis(side, shown)

    def clear(self) -> None:
        """Empty the view and forget any live run."""
        self.live = None
        self._clear_display()

    def _clear_display(self) -> None:
        for item in (self.potential, self.efficiency, self.capacity):
            item.clear()
        self.table.setRowCount(0)
        self.rows = 0
        self._axes(False)
        self.message.setText(EMPTY)

    # --- live runs ------------------------------------------------------------------------------
    def start_live(self, area: float, potential: str, last_steps: dict[int, int] | None = None) -> None:
        """Follow a run being recorded: ``area`` (m^2) of the working electrode, the potential column
        the table uses (daq.analysis.cycles.potential_column), each cycle's last step from the plan."""
        self.clear()
        self.live = LiveCycles(area, potential, last_steps)

    def live_samples(self, cols) -> int:
        """A block of samples of the live run; returns the cycles it completed (drawn at once)."""
        if self.live is not None and any(name not in cols for name in self.live_columns()):
            self.live = None  # a recording without the columns the table needs: the stored table only
        return self._feed("add_samples", cols)

    def live_step(self, row) -> int:
        """An ended step of the live run (a /steps row); returns the cycles it completed."""
        return self._feed("add_step", row)

    def live_finish(self) -> int:
        """The live run ended: rows for the cycles still open (the stored table replaces all rows next)."""
        return self._feed("finish")

    def _feed(self, method: str, *args) -> int:
        if self.live is None:
            return 0
        try:
            return self._show_live(getattr(self.live, method)(*args))
        except Exception as exc:  # noqa: BLE001 - the live table must never stop the traces of a run
            self.live = None
            self.message.setText(f"live cycles stopped ({type(exc).__name__}: {exc}); the table comes at the end")
            return 0

    def live_columns(self) -> tuple[str, ...]:
        assert self.live is not None
        return ("t", "cycle", "step", "I", "Q", self.live.potential)

    def _show_live(self, added: np.ndarray) -> int:
        if len(added) and self.live is not None:
            self._clear_display()
            self.show_table(frame(self.live.rows, self.live.potential), live=True)
        return len(added)

    def load(self, path: str | Path) -> int:
        """Show the cycles of the run file at ``path``; returns the number of cycles (0: not a cycling run)."""
        from daq.analysis.cycles import read_cycles
        from daq.core.errors import DaqError
        from daq.storage.reader import open_run

        try:
            with open_run(path) as run:
                table = read_cycles(run)
        except DaqError as exc:
            return self._unavailable(f"cycles not available: {exc}")
        except (OSError, KeyError, RuntimeError, ValueError) as exc:  # h5py: a file changed while it was read
            return self._unavailable(f"cycles not available: {path}: unreadable just now ({type(exc).__name__}: {exc})")
        self._clear_display()
        if not len(table):
            self.message.setText("this run has no loop cycles")
            self.changed.emit(0)
            return 0
        self.show_table(table)
        return len(table)

    def _unavailable(self, message: str) -> int:
        """The stored table cannot be read: live rows, if any, stay (with the reason), else the message."""
        if self.rows:
            self.message.setText(f"{self.rows} cycles computed live; stored table {message.removeprefix('cycles ')}")
            return self.rows
        self._clear_display()
        self.message.setText(message)
        return 0

    def show_table(self, table, live: bool = False) -> None:
        """Draw a per-cycle DataFrame (daq.analysis.cycles.read_cycles) on an empty view."""
        c = table.cycle.to_numpy(dtype=float)
        pot = table.attrs.get("potential", "E_we")
        for half, colour in (("plate", "#1f4e9c"), ("strip", "#c03030")):
            pen = pg.mkPen(colour, width=1.5)
            self.potential.plot(c, 1e3 * table[f"{half}_mean"].to_numpy(), pen=pen, symbol="o", symbolSize=5,
                                symbolBrush=colour, symbolPen=None, name=f"{half} mean ({pot})")  # fmt: skip
            dashed = pg.mkPen(colour, width=1, style=Qt.PenStyle.DashLine)
            self.potential.plot(c, 1e3 * table[f"{half}_extreme"].to_numpy(), pen=dashed, name=f"{half} largest")
        ce = 100 * table.coulombic_efficiency.to_numpy()
        ok = np.isfinite(ce)
        self.efficiency.plot(c[ok], ce[ok], pen=pg.mkPen("k", width=1.5), symbol="o", symbolSize=5, symbolBrush="k")
        stripped = np.isfinite(table.strip_mean.to_numpy())  # not a cycle that ended before stripping
        every = np.ones(len(c), dtype=bool)
        for column, colour, shown in (("plate_capacity", "#1f4e9c", every), ("strip_capacity", "#c03030", stripped)):
            values = u.to_unit(table[column].to_numpy(), "mAh/cm^2")
            self.capacity.plot(c[shown], values[shown], pen=pg.mkPen(colour, width=1.5), symbol="s", symbolSize=4,
                               symbolBrush=colour)  # fmt: skip
        for cycle in table.cycle[table.stop == "short_circuit"]:
            for item in (self.potential, self.efficiency, self.capacity):
                item.addItem(
                    pg.InfiniteLine(float(cycle), angle=90, pen=pg.mkPen("#d00000", style=Qt.PenStyle.DashLine))
                )
        self._axes(True)
        step = cycle_tick(int(c.max()) if len(c) else 1)
        for item in (self.potential, self.efficiency, self.capacity):
            item.getAxis("bottom").setTickSpacing(step, step)
        self.table.setRowCount(len(table))
        for i, row in enumerate(table.itertuples()):
            for j, (_, _, text) in enumerate(COLUMNS):
                item = QTableWidgetItem(text(row))
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        if live:
            self.table.scrollToBottom()
        self.rows = len(table)
        done = int((table.strip_charge > 0).sum())
        shorted = table.cycle[table.stop == "short_circuit"]
        note = f"; short circuit in cycle {int(shorted.iloc[0])}" if len(shorted) else ""
        state = " (live: a row as each cycle completes)" if live else ""
        self.message.setText(f"{len(table)} cycles, {done} with stripping{note}{state}")
        self.changed.emit(self.rows)
