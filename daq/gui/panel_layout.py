"""The widgets of a channel panel (daq.gui.panel): control bar, status line, time and capacity plots,
impedance plots, views and event log, built in that order onto the panel.

Each builder sets the panel's widget attributes it names (``panel.title``, ``panel.plot_e_t``, ...), so
the panel's code and its tests read them as before. Axes show user units by scaling their tick labels;
no array is converted for display.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from daq.core import units as u
from daq.gui.cycles_view import CyclesView
from daq.gui.panel_status import PER_HOUR, make_event_log

if TYPE_CHECKING:
    from daq.gui.panel import ChannelPanel


def make_plot(title: str, x_label: str, y_label: str, x_scale: float = 1.0, y_scale: float = 1.0) -> pg.PlotWidget:
    """A plot whose axes show ``scale`` times the stored SI values, without SI prefixes."""
    widget = pg.PlotWidget()
    item = widget.getPlotItem()
    item.setTitle(title, size="9pt")
    for side, label, scale in (("bottom", x_label, x_scale), ("left", y_label, y_scale)):
        axis = item.getAxis(side)
        axis.enableAutoSIPrefix(False)
        axis.setScale(scale)
        item.setLabel(side, label)
    major_grid(item)
    item.setMenuEnabled(True)
    return widget


def major_grid(item: pg.PlotItem) -> None:
    """Grid lines at major ticks only: a full grid costs more than everything else in a repaint."""
    item.showGrid(x=True, y=True, alpha=0.3)
    for side in ("bottom", "left"):
        item.getAxis(side).setStyle(maxTickLevel=0)


def make_curve(widget: pg.PlotWidget, colour: str, finite: bool = True) -> pg.PlotDataItem:
    """A trace for millions of points: peak downsampling, clip to view, no per-update finiteness scan."""
    curve = widget.getPlotItem().plot(pen=pg.mkPen(colour, width=1))
    curve.setDownsampling(auto=True, method="peak")
    curve.setClipToView(True)
    if finite:
        curve.setData(connect="all", skipFiniteCheck=True)
    return curve


def build(panel: ChannelPanel) -> None:
    """The whole panel: control bar and status line above, plots (tabbed with cycles) over the log."""
    outer = QVBoxLayout(panel)
    outer.setContentsMargins(4, 4, 4, 4)
    outer.addLayout(control_bar(panel))
    outer.addLayout(status_line(panel))
    panel.readings = QLabel(" ")
    outer.addWidget(panel.readings)
    for label in (panel.title, panel.step_label, panel.time_label, panel.readings):  # long text is cut, never
        label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # widens the window

    split = QSplitter(Qt.Orientation.Vertical)
    split.addWidget(views(panel))
    panel.log = make_event_log()
    split.addWidget(panel.log)
    split.setStretchFactor(0, 5)
    split.setStretchFactor(1, 1)
    split.setSizes([700, 160])
    outer.addWidget(split, 1)


def control_bar(panel: ChannelPanel) -> QHBoxLayout:
    """Title, state and the run-control buttons (start, pause menu, resume, abort, export)."""
    bar = QHBoxLayout()
    panel.title = QLabel(f"<b>{panel.name}</b>: no run")
    panel.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    bar.addWidget(panel.title, 1)
    panel.state_label = QLabel()
    bar.addWidget(panel.state_label)
    panel.start_button = QPushButton("Start...")
    panel.start_button.clicked.connect(panel.start_dialog)
    panel.pause_button = QToolButton()
    panel.pause_button.setText("Pause")
    panel.pause_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
    menu = QMenu(panel.pause_button)
    panel.pause_now_action = QAction("Pause now (current off at once)", panel)
    panel.pause_now_action.triggered.connect(lambda: panel.pause("now"))
    panel.pause_step_end_action = QAction("Pause at the end of the step", panel)
    panel.pause_step_end_action.triggered.connect(lambda: panel.pause("step_end"))
    menu.addAction(panel.pause_now_action)
    menu.addAction(panel.pause_step_end_action)
    panel.pause_button.setMenu(menu)
    panel.resume_button = QPushButton("Resume")
    panel.resume_button.clicked.connect(panel.resume)
    panel.abort_button = QPushButton("Abort...")
    panel.abort_button.clicked.connect(lambda: panel.abort())
    panel.export_button = QPushButton("Export PNG...")
    panel.export_button.clicked.connect(panel.export_dialog)
    for w in (panel.start_button, panel.pause_button, panel.resume_button, panel.abort_button, panel.export_button):
        bar.addWidget(w)
    return bar


def status_line(panel: ChannelPanel) -> QHBoxLayout:
    """Current step, progress bar, elapsed and remaining time."""
    status = QHBoxLayout()
    panel.step_label = QLabel("step: -")
    status.addWidget(panel.step_label, 2)
    panel.progress = QProgressBar()
    panel.progress.setRange(0, 1000)
    panel.progress.setFormat("%p %")
    panel.progress.setMaximumWidth(260)
    status.addWidget(panel.progress, 1)
    panel.time_label = QLabel("elapsed -  remaining -")
    status.addWidget(panel.time_label, 2)
    return status


def time_plots(panel: ChannelPanel) -> None:
    """Potential, current density and stack pressure vs time, and potential vs capacity, with traces.

    The current and pressure plots follow the potential plot's time range one way: pyqtgraph's two-way
    x-link maps ranges through screen geometry and, with auto-range on, the views can keep re-setting
    each other."""
    panel.plot_e_t = make_plot("Potential", "time (h)", "E (V)", x_scale=PER_HOUR)
    panel.plot_j_t = make_plot("Current density", "time (h)", "j (mA/cm^2)", x_scale=PER_HOUR)
    panel.plot_p_t = make_plot("Stack pressure", "time (h)", "P (MPa)", x_scale=PER_HOUR, y_scale=u.to_unit(1.0, "MPa"))
    panel.plot_e_q = make_plot(
        "Potential vs capacity (charge throughput)",
        "capacity (mAh/cm^2)",
        "E (V)",
        x_scale=u.to_unit(1.0, "mAh/cm^2"),
    )
    for widget in (panel.plot_e_t, panel.plot_j_t, panel.plot_p_t):
        widget.getPlotItem().getAxis("left").setWidth(64)  # same plot width: the time axes line up
    for widget in (panel.plot_j_t, panel.plot_p_t):
        widget.getPlotItem().setMouseEnabled(x=False, y=True)
    panel.curve_e_t = make_curve(panel.plot_e_t, "#1f4e9c")
    panel.curve_j_t = make_curve(panel.plot_j_t, "#2a7a2a")
    panel.curve_p_t = make_curve(panel.plot_p_t, "#7a2a7a", finite=False)
    panel.curve_e_q = make_curve(panel.plot_e_q, "#1f4e9c")


def impedance_plots(panel: ChannelPanel) -> None:
    """Nyquist plot (equal axes) and Bode magnitude and phase on a log frequency axis."""
    panel.plot_nyquist = make_plot("Impedance (Nyquist)", "Z' (ohm)", "-Z'' (ohm)")
    panel.plot_nyquist.getPlotItem().setAspectLocked(True)
    panel.plot_bode = pg.GraphicsLayoutWidget()
    panel.bode_mag = panel.plot_bode.addPlot()
    panel.bode_phase = panel.plot_bode.addPlot()
    for item, label, title in (
        (panel.bode_mag, "|Z| (ohm)", "Bode |Z|"),
        (panel.bode_phase, "-phase (deg)", "Bode phase"),
    ):
        item.setTitle(title, size="9pt")
        item.setLabel("bottom", "frequency (Hz)")
        item.setLabel("left", label)
        major_grid(item)
        item.getAxis("left").enableAutoSIPrefix(False)
        item.getAxis("bottom").enableAutoSIPrefix(False)
    panel.bode_mag.setLogMode(x=True, y=False)  # |Z| of one cell spans less than a decade: linear reads better
    panel.bode_phase.setLogMode(x=True, y=False)


def views(panel: ChannelPanel) -> QTabWidget:
    """The plots on a grid (time plots left, capacity and impedance right) and the cycles table, as tabs."""
    plots = QWidget()
    grid = QGridLayout(plots)
    grid.setContentsMargins(0, 0, 0, 0)
    grid.setSpacing(2)
    time_plots(panel)
    impedance_plots(panel)
    panel.plot_e_t.getPlotItem().getViewBox().sigXRangeChanged.connect(panel.sync_time_plots)
    panel.follow()
    grid.addWidget(panel.plot_e_t, 0, 0)
    grid.addWidget(panel.plot_j_t, 1, 0)
    grid.addWidget(panel.plot_p_t, 2, 0)
    grid.addWidget(panel.plot_e_q, 0, 1)
    grid.addWidget(panel.plot_nyquist, 1, 1)
    grid.addWidget(panel.plot_bode, 2, 1)
    for row, stretch in enumerate((3, 2, 2)):
        grid.setRowStretch(row, stretch)
    grid.setColumnStretch(0, 3)
    grid.setColumnStretch(1, 2)
    panel.views = QTabWidget()
    panel.views.setDocumentMode(True)
    panel.views.addTab(plots, "Traces")
    panel.cycles_view = CyclesView()
    panel.views.addTab(panel.cycles_view, "Cycles")
    return panel.views
