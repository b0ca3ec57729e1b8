"""One channel's panel: potential vs time and capacity, current, stack pressure, impedance spectra,
current step, progress, time remaining, event log, and run control.

Data arrive as queued Qt signals (daq.gui.sources) and are appended to a TraceBuffer at once; plots are
redrawn by a timer (10 Hz by default) only if something changed, so a fast run cannot flood the GUI.
Stored values are SI; the axes show user units by scaling their tick labels (h, mAh/cm^2, mA/cm^2,
MPa), so no array is ever converted for display. The widgets are built by daq.gui.panel_layout, the
status lines and event log written by daq.gui.panel_status, the spectra drawn by daq.gui.panel_impedance.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from daq.analysis.cycles_live import last_steps_of
from daq.core import units as u
from daq.gui import panel_layout
from daq.gui import plan as P
from daq.gui.buffers import TraceBuffer
from daq.gui.panel_impedance import SPECTRUM_COLOURS, draw_spectra, show_impedance_axes
from daq.gui.panel_status import append_event, readings_line, step_line, stopping_step, time_line
from daq.gui.sources import ALARM_EVENTS, ChannelSignals, FileFollower, RunInfo, SimulatedRun

MARKER_COLOURS = {
    "short_circuit": "#d00000",
    "voltage_limit": "#e07000",
    "current_limit": "#e07000",
    "fault": "#d00000",
    "paused": "#3060c0",
}


class ChannelPanel(QWidget):
    """A channel: a simulated rig this window can run protocols on, or a run file under review."""

    state_changed = Signal(str)
    alarm = Signal(str)  # an alarm event (short circuit, limit, fault) on this channel

    def __init__(
        self,
        name: str,
        parent: QWidget | None = None,
        *,
        simulated: bool = True,
        refresh_ms: int = 100,
        buffer_options: dict[str, Any] | None = None,
        start_defaults: dict[str, Any] | None = None,
    ):
        super().__init__(parent)
        self.name, self.simulated = name, simulated
        self.buffer_options = buffer_options or {}
        self.start_defaults = start_defaults or {}
        self.signals = ChannelSignals(self)
        self.signals.started.connect(self._on_started)
        self.signals.block.connect(self._on_block)
        self.signals.step_start.connect(self._on_step_start)
        self.signals.step_end.connect(self._on_step_end)
        self.signals.event.connect(self._on_event)
        self.signals.spectrum.connect(self._on_spectrum)
        self.signals.finished.connect(self._on_finished)
        self.signals.failed.connect(self._on_failed)

        self.state = "idle"
        self.info: RunInfo | None = None
        self.buffer: TraceBuffer | None = None
        self.run: SimulatedRun | None = None
        self.follower: FileFollower | None = None
        self.result: dict[str, Any] | None = None
        self.error = ""
        self.events: list[dict[str, Any]] = []
        self.steps_done: dict[int, dict[str, Any]] = {}
        self.step_row: dict[str, Any] | None = None  # the running step (live runs)
        self._step_first_t: dict[int, float] = {}
        self.spectra: deque[dict[str, Any]] = deque(maxlen=len(SPECTRUM_COLOURS))
        self.spectra_seen = 0
        self._drawn = -1
        self._redraw_started = 0.0
        self._markers: list[Any] = []

        panel_layout.build(self)  # the widgets, as attributes: title, buttons, plots, curves, log
        self.cycles_view.changed.connect(self._cycles_changed)
        self._impedance_axes(False)
        self.refresh_ms = refresh_ms
        self.timer = QTimer(self)
        self.timer.setInterval(refresh_ms)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()
        self._set_state("idle")

    # --- plot ranges ------------------------------------------------------------------------------
    def follow(self) -> None:
        """Auto-range every plot over all data (the view an unattended run needs); the current and
        pressure plots take their time range from the potential plot."""
        for widget in (self.plot_e_t, self.plot_e_q, self.plot_nyquist):
            widget.getPlotItem().enableAutoRange()
        for widget in (self.plot_j_t, self.plot_p_t):
            vb = widget.getPlotItem().getViewBox()
            vb.enableAutoRange(axis=pg.ViewBox.XAxis, enable=False)
            vb.enableAutoRange(axis=pg.ViewBox.YAxis, enable=True)
        self.sync_time_plots()

    def sync_time_plots(self, *_: Any) -> None:
        """Give the current and pressure plots the potential plot's time range, and settle their
        auto-ranged y axes at once (left to the paint, each would be painted twice)."""
        master = self.plot_e_t.getPlotItem().getViewBox()
        x0, x1 = master.viewRange()[0]
        for widget in (self.plot_j_t, self.plot_p_t):
            vb = widget.getPlotItem().getViewBox()
            if vb.viewRange()[0] != [x0, x1]:
                vb.setXRange(x0, x1, padding=0)
            vb.updateAutoRange()
        master.updateAutoRange()

    # --- state --------------------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        """A live run this window controls is in progress (closing would end it)."""
        return self.run is not None and self.run.is_alive()

    def _set_state(self, state: str) -> None:
        self.state = state
        live = self.run is not None and state in ("starting", "running", "pausing", "paused", "aborting")
        self.start_button.setEnabled(self.simulated and state in ("idle", "finished", "failed"))
        self.pause_button.setEnabled(live and state in ("running",))
        self.resume_button.setEnabled(live and state in ("paused", "pausing"))
        self.abort_button.setEnabled(live and state != "aborting")
        self.export_button.setEnabled(self.buffer is not None)
        text = {
            "idle": "idle",
            "starting": "starting...",
            "running": "running",
            "pausing": "pausing at step end",
            "paused": "PAUSED (cell at open circuit)",
            "aborting": "aborting...",
            "finished": "finished",
            "failed": "FAILED",
            "following": "following a live run file",
            "review": "review",
        }.get(state, state)
        if state == "finished" and self.result:
            text = f"finished: {self.result.get('outcome', '').replace('_', ' ')}"
        self.state_label.setText(f"<b>{text}</b>")
        self.state_changed.emit(state)

    def _reset(self) -> None:
        self.info, self.buffer, self.result, self.error = None, None, None, ""
        self.events, self.steps_done, self.step_row = [], {}, None
        self._step_first_t = {}
        self.spectra.clear()
        self.spectra_seen = 0
        self._drawn = -1
        for curve in (self.curve_e_t, self.curve_j_t, self.curve_p_t, self.curve_e_q):
            curve.setData([], [])
        for plot, marker in self._markers:
            plot.removeItem(marker)
        self._markers = []
        self.plot_nyquist.getPlotItem().clear()
        self.bode_mag.clear()
        self.bode_phase.clear()
        self._impedance_axes(False)
        self.cycles_view.clear()
        self.views.setTabText(1, "Cycles")
        self.log.setRowCount(0)

    def _impedance_axes(self, shown: bool) -> None:
        show_impedance_axes(self.plot_nyquist.getPlotItem(), self.bode_mag, self.bode_phase, shown)

    # --- run control --------------------------------------------------------------------------
    def start_dialog(self) -> None:
        from daq.gui.dialogs import StartDialog

        dialog = StartDialog(self, **self.start_defaults)
        if dialog.exec():
            self.start_run(**dialog.values())

    def start_run(
        self,
        protocol: str | Path,
        cell: str | Path | None = None,
        speed: float = 3600.0,
        out: str | Path | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> SimulatedRun:
        """Start ``protocol`` on this channel's simulated rig, ``speed`` times faster than real time.
        Loading, checking and running all happen in the worker thread; errors come back as ``failed``."""
        if self.is_running or self.follower is not None:
            raise RuntimeError(f"{self.name} is busy")
        self._reset()
        self.run = SimulatedRun(self.signals, protocol, cell, speed, out, overrides, name=self.name)
        self._set_state("starting")
        self.run.start()
        return self.run

    def open_file(self, path: str | Path, poll_interval: float = 0.5) -> FileFollower:
        """Show a run file: all of it if finished, following it while another process writes it."""
        self._reset()
        self.simulated = False
        self.follower = FileFollower(self.signals, path, poll_interval=poll_interval)
        self.title.setText(f"<b>{self.name}</b>: {Path(path).name} (opening...)")
        self._set_state("following")
        self.follower.start()
        return self.follower

    def pause(self, when: str = "now") -> None:
        if self.run is None or self.state != "running":
            return
        self.run.pause(when)
        self._set_state("pausing" if when == "step_end" else "running")

    def resume(self) -> None:
        if self.run is not None and self.state in ("paused", "pausing"):
            self.run.resume()
            if self.state == "pausing":
                self._set_state("running")

    def abort(self, confirm: bool = True) -> bool:
        """Abort the live run, after the operator confirms. Returns True if the abort was requested."""
        if not self.is_running:
            return False
        if confirm:
            answer = QMessageBox.question(
                self,
                "Abort the run?",
                f"Abort the run on {self.name}?\n\nThe current is switched off and the protocol ends here; "
                "the run file keeps everything recorded so far.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No,
            )
            if answer != QMessageBox.StandardButton.Yes:
                return False
        assert self.run is not None
        self.run.abort("aborted from the rig window")
        self._set_state("aborting")
        return True

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop reading (followers) and wait for an aborted run to switch off. Never writes a run file."""
        self.timer.stop()
        if self.follower is not None:
            self.follower.stop()
            self.follower.join(timeout)
        if self.run is not None and self.run.is_alive():
            self.run.abort("rig window closed")
            self.run.join(timeout)

    # --- export -------------------------------------------------------------------------------
    def export_dialog(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(self, "Export view as PNG", f"{self.name}.png", "PNG image (*.png)")
        if path:
            self.export_png(path)

    def export_png(self, path: str | Path) -> threading.Thread:
        """Save the panel as it is on screen (plots, status, log) as a PNG. The image is grabbed here
        and encoded and written in a worker thread; join the returned thread to wait for the file."""
        self.refresh()
        image = self.grab().toImage()
        thread = threading.Thread(target=image.save, args=(str(path), "PNG"), name="export-png", daemon=True)
        thread.start()
        return thread

    # --- incoming data (GUI thread) -------------------------------------------------------------
    def _on_started(self, info: RunInfo) -> None:
        self.info = info
        self.buffer = TraceBuffer(info.area, **self.buffer_options)
        e_name = "E_we" if info.three_electrode else "E_cell"
        self.plot_e_t.getPlotItem().setLabel("left", f"{e_name} (V)")
        self.plot_e_q.getPlotItem().setLabel("left", f"{e_name} (V)")
        j_plot = self.plot_j_t.getPlotItem()
        if info.area > 0:  # A -> mA/cm^2
            j_plot.getAxis("left").setScale(0.1 / info.area)
            j_plot.setLabel("left", "j (mA/cm^2)")
            j_plot.setTitle("Current density", size="9pt")
        else:  # an imported recording that states no electrode area (NaN): the current itself
            j_plot.getAxis("left").setScale(1e3)
            j_plot.setLabel("left", "I (mA)")
            j_plot.setTitle("Current", size="9pt")
        where = f"simulated at {info.speed:g}x real time" if info.live else Path(info.path).name
        ccd = f", predicted CCD {u.to_unit(info.ccd, 'mA/cm^2'):.2f} mA/cm^2" if info.ccd else ""
        self.title.setText(f"<b>{self.name}</b>: {info.protocol} on {info.cell_id} ({where}{ccd})")
        self.title.setToolTip(info.path)
        if info.live:
            self._set_state("running")
        elif info.status != "running":
            self._set_state("review")
        self.export_button.setEnabled(True)
        if info.live or info.status == "running":  # rows as cycles complete; a finished file has its table
            symmetric = info.extra.get("configuration", "" if info.three_electrode else "symmetric") == "symmetric"
            self.cycles_view.start_live(info.area, "E_cell" if symmetric else "E_we", last_steps_of(info.plan.steps))

    def _on_block(self, cols: dict[str, np.ndarray]) -> None:
        if self.buffer is None or not len(cols.get("t", ())):
            return
        step = np.asarray(cols["step"])
        for s, i in zip(*np.unique(step, return_index=True)):
            self._step_first_t.setdefault(int(s), float(cols["t"][i]))
        layout = self.buffer.layout_version
        self.buffer.append(cols)
        self.cycles_view.live_samples(cols)
        if self.buffer.layout_version != layout:
            self.refresh()  # rows moved under the plot items: redraw before anything repaints

    def _on_step_start(self, row: dict[str, Any]) -> None:
        self.step_row = row
        self._step_first_t.setdefault(int(row["index"]), float(row["t_start"]))

    def _on_step_end(self, row: dict[str, Any]) -> None:
        self.steps_done[int(row["index"])] = row
        self.cycles_view.live_step(row)

    def _on_event(self, ev: dict[str, Any]) -> None:
        self.events.append(ev)
        kind = str(ev.get("kind", ""))
        if kind == "paused" and self.run is not None:
            self._set_state("paused")
        elif kind == "resumed" and self.run is not None:
            self._set_state("running")
        self._log_event(ev)
        if kind in MARKER_COLOURS:
            data = ev.get("data") or {}
            self._mark(float(data.get("t_trip", ev["t"])), kind)
        if kind in ALARM_EVENTS:
            self.alarm.emit(kind)

    def _on_spectrum(self, sp: dict[str, Any]) -> None:
        self.spectra.append(sp)
        self.spectra_seen += 1
        self._draw_spectra()

    def _on_finished(self, result: dict[str, Any]) -> None:
        self.result = result
        if self.info is not None:
            self.info.status = result.get("status", "")
        self.refresh()
        self._set_state("finished" if self.run is not None else "review")
        path = result.get("path") or (self.info.path if self.info is not None else "")
        self.cycles_view.live_finish()
        if path:
            self.cycles_view.load(path)  # the stored table replaces the live rows

    def _cycles_changed(self, rows: int) -> None:
        self.views.setTabText(1, f"Cycles ({rows})" if rows else "Cycles")

    def _on_failed(self, message: str) -> None:
        self.error = message
        self._set_state("failed")
        self.step_label.setText(f"<span style='color:#a00000'><b>{message}</b></span>")

    # --- drawing ------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Redraw traces if new samples arrived, and the status line (timer).

        The timer slows down when redrawing gets expensive (long traces, a loaded machine) so that
        redraws never take more than about a fifth of the GUI thread: interaction stays smooth and
        new data show up a little later instead."""
        buf = self.buffer
        if buf is None or self.info is None:
            return
        if buf.version != self._drawn and len(buf):
            self._redraw_started = time.perf_counter()
            self._draw_traces(buf)
            QTimer.singleShot(0, self._redraw_done)  # runs after Qt has painted what the redraw changed
        self._update_status()

    def _redraw_done(self) -> None:
        cost = time.perf_counter() - self._redraw_started
        self.timer.setInterval(int(min(max(self.refresh_ms, 5_000 * cost), 1000)))

    def _draw_traces(self, buf: TraceBuffer) -> None:
        """Hand the buffer's filled rows to the plot items (views, no copies)."""
        assert self.info is not None
        t = buf.column("t")
        e = buf.column("E_we" if self.info.three_electrode else "E_cell")
        _show(self.curve_e_t, t, e)
        _show(self.curve_j_t, t, buf.column("I"))
        _show(self.curve_e_q, buf.column("capacity"), e)
        p = buf.column("pressure")
        if np.isfinite(p[-1]) or np.isfinite(p[0]):
            self.curve_p_t.setData(t, p)
        self._drawn = buf.version
        # Settle auto-ranges now: left to the paint, a range change schedules a second paint of each plot.
        self.plot_e_t.getPlotItem().getViewBox().updateAutoRange()
        self.plot_e_q.getPlotItem().getViewBox().updateAutoRange()
        self.sync_time_plots()

    @property
    def marked_events(self) -> int:
        """How many events (shorts, faults) are marked on the time plots."""
        return len(self._markers)

    def current_step(self) -> int:
        idx = int(self.buffer.last("step")) if self.buffer is not None and len(self.buffer) else -1
        if self.step_row is not None:
            idx = max(idx, int(self.step_row["index"]))
        return idx

    def _update_status(self) -> None:
        """Step, progress, time and readings lines from the buffer, the plan and the step rows."""
        info, buf = self.info, self.buffer
        assert info is not None and buf is not None
        t_now = buf.last("t") if len(buf) else 0.0
        idx = self.current_step()
        row = (
            self.step_row
            if self.step_row is not None and int(self.step_row["index"]) == idx
            else self.steps_done.get(idx)
        )
        if not self.error:
            self.step_label.setText(step_line(idx, info.plan, row, stopping_step(self.steps_done)))

        finished = self.result is not None or (info.status not in ("running", "") and self.run is None)
        if finished:
            remaining = 0.0
        else:
            t0 = self._step_first_t.get(idx, t_now)
            remaining = info.plan.remaining(idx, max(t_now - t0, 0.0))
        done = P.progress(t_now, remaining)
        if finished and self.result is not None and self.result.get("outcome") not in ("completed", None):
            done = P.progress(t_now, info.plan.remaining(idx, t_now - self._step_first_t.get(idx, t_now)))
        self.progress.setValue(int(round(1000 * done)))
        outcome = str((self.result or {}).get("outcome") or info.status) if finished else None
        self.time_label.setText(time_line(t_now, remaining, info, outcome))
        if len(buf):
            self.readings.setText(readings_line(info, buf))

    def _mark(self, t: float, kind: str) -> None:
        colour = MARKER_COLOURS[kind]
        for plot in (self.plot_e_t, self.plot_j_t, self.plot_p_t):
            label = kind.replace("_", " ") if plot is self.plot_e_t else None
            pen = pg.mkPen(colour, width=1.5, style=Qt.PenStyle.DashLine)
            line = pg.InfiniteLine(
                pos=t,
                angle=90,
                pen=pen,
                label=label,
                labelOpts={"position": 0.92, "color": colour, "fill": (255, 255, 255, 200)},
            )
            plot.addItem(line, ignoreBounds=True)
            self._markers.append((plot, line))

    def _log_event(self, ev: dict[str, Any]) -> None:
        append_event(self.log, ev)

    def _draw_spectra(self) -> None:
        draw_spectra(self.plot_nyquist.getPlotItem(), self.bode_mag, self.bode_phase, list(self.spectra))


def _show(curve: pg.PlotDataItem, x: np.ndarray, y: np.ndarray) -> None:
    """Hand a trace to a curve made for finite data (no per-paint finiteness scan): as it is when every
    point is finite (a run of the rig), its finite points when some are not (an imported recording
    without current, an area-less capacity), nothing when none is (NaN would make the axes' range NaN)."""
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.all():
        curve.setData(x, y)
    else:
        curve.setData(x[ok], y[ok])
