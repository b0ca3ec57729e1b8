"""The lab overview (``daq gui --lab mqtt://HOST``): a tile per channel of every rig PC, and its detail.

The channels come from the lab's MQTT broker through :class:`daq.engine.labwatch.LabWatch`. A worker
thread copies what LabWatch holds (under its lock) every ``interval`` seconds and hands the copies to
the GUI thread through a Qt signal, so the GUI thread never waits for the network or for paho's
thread. A tile shows cell, protocol, step, progress, last event and state, its colour says the state,
and a short circuit or fault outlines it in red; clicking a tile opens the channel's detail (its
recent published data plotted, and its events) in a tab of its own.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QCloseEvent, QColor, QMouseEvent
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from daq.core.units import to_unit
from daq.engine.labwatch import LabWatch, row
from daq.engine.publish import PublishSettings

pg.setConfigOptions(background="w", foreground="k", antialias=False)

# state -> tile background; anything else (a state this version does not know) is light grey
STATE_COLOURS = {
    "starting": "#e6f4e1",
    "running": "#d5f0cc",
    "paused": "#fff0b3",
    "interlock": "#ffd9a8",
    "completed": "#d9e6f5",
    "aborted": "#e4e4e4",
    "lost": "#c8c8c8",
    "short_circuit": "#f6c4bd",
    "fault": "#f6c4bd",
    "voltage_limit": "#f9d7c2",
    "current_limit": "#f9d7c2",
}
UNKNOWN_COLOUR = "#eeeeee"
ALARM_BORDER = "#c0261b"
ALARM_STATES = {"short_circuit", "fault", "interlock", "voltage_limit", "current_limit", "lost"}
COLUMNS = 3


@dataclass
class ChannelCopy:
    """A channel as the GUI thread sees it: a copy, so paho's thread may go on filling the original."""

    key: str
    row: dict[str, str]
    status: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    data: dict[str, np.ndarray] = field(default_factory=dict)  # SI, as published
    units: dict[str, str] = field(default_factory=dict)
    messages: int = 0
    progress: float | None = None  # fraction of the current step done, as last published

    @property
    def alarm(self) -> str:
        """Why the tile is outlined in red ("" when it is not)."""
        if self.row["alarm"]:
            return self.row["alarm"]
        return self.row["state"] if self.row["state"] in ALARM_STATES else ""


def latest_progress(status: dict[str, Any], progress: dict[str, Any]) -> float | None:
    """The step's progress from whichever message was sent last (a new step's status resets it to 0)."""
    newest = max((status, progress), key=lambda m: m.get("time") or 0.0)
    value = newest.get("progress", status.get("progress"))
    return float(value) if isinstance(value, (int, float)) else None


class LabFeed(QObject):
    """Copies LabWatch's channels in a worker thread and emits them (``updated``) to the GUI thread."""

    updated = Signal(object)  # list[ChannelCopy], sorted by "rig/channel"; only channels that changed
    connection = Signal(bool)  # the broker connection came up (True) or went down (False)

    def __init__(self, watch: LabWatch, interval: float = 0.5, parent: QObject | None = None):
        super().__init__(parent)
        self.watch, self.interval = watch, interval
        self._seen: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lab feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self.watch.close()

    def poll(self) -> list[ChannelCopy]:
        """Copies of the channels with new messages since the last poll."""
        changed = []
        with self.watch.lock:
            for key in sorted(self.watch.channels):
                view = self.watch.channels[key]
                count = sum(view.messages.values())
                if self._seen.get(key) == count:
                    continue
                self._seen[key] = count
                changed.append(
                    ChannelCopy(
                        key,
                        row(view),
                        dict(view.status),
                        list(view.events),
                        {k: np.asarray(v, dtype=float) for k, v in view.data.items()},
                        dict(view.units),
                        count,
                        latest_progress(view.status, view.progress),
                    )
                )
        return changed

    def _loop(self) -> None:
        connected = None
        while not self._stop.wait(self.interval):
            try:
                now = self.watch.connected.is_set()
                if now != connected:
                    connected = now
                    self.connection.emit(now)
                changed = self.poll()
                if changed:
                    self.updated.emit(changed)
            except RuntimeError:  # the window (and this object's C++ side) is gone
                return


class LabTile(QFrame):
    """One channel: cell, protocol, step, progress, last event, state; red outline on an alarm."""

    clicked = Signal(str)

    def __init__(self, key: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.key = key
        self.state = ""
        self.alarm = ""
        self.colour = UNKNOWN_COLOUR
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setMinimumSize(300, 170)
        self.title = QLabel(f"<b>{key}</b>")
        self.cell, self.protocol, self.step = QLabel(), QLabel(), QLabel()
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setFormat("step %p %")
        self.event = QLabel()
        self.event.setWordWrap(True)
        self.state_label = QLabel()
        self.alarm_label = QLabel()
        self.alarm_label.setStyleSheet(f"color: {ALARM_BORDER}; font-weight: bold;")
        self.alarm_label.hide()
        layout = QVBoxLayout(self)
        layout.setSpacing(2)
        for widget in (self.title, self.state_label, self.alarm_label, self.cell, self.protocol, self.step):
            layout.addWidget(widget)
        layout.addWidget(self.progress)
        layout.addWidget(self.event)
        layout.addStretch(1)

    def show_channel(self, channel: ChannelCopy) -> None:
        r = channel.row
        self.state, self.alarm = r["state"], channel.alarm
        self.colour = STATE_COLOURS.get(self.state, UNKNOWN_COLOUR)
        self.cell.setText(f"cell: {r['cell']}")
        self.protocol.setText(f"protocol: {r['protocol']}")
        self.step.setText(f"step: {r['step']}")
        self.state_label.setText(f"state: <b>{self.state.replace('_', ' ')}</b>")
        self.event.setText(f"last event: {r['event']}")
        progress = channel.progress
        self.progress.setValue(round(100 * progress) if isinstance(progress, (int, float)) else 0)
        self.progress.setTextVisible(isinstance(progress, (int, float)))
        self.alarm_label.setText(f"\u26a0 {self.alarm.replace('_', ' ').upper()}")
        self.alarm_label.setVisible(bool(self.alarm))
        border = f"3px solid {ALARM_BORDER}" if self.alarm else "1px solid #9a9a9a"
        self.setStyleSheet(
            f"LabTile {{ background: {self.colour}; border: {border}; border-radius: 6px; }}"
            " QLabel { background: transparent; border: none; }"
        )

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit(self.key)
        super().mousePressEvent(event)


class ChannelDetail(QWidget):
    """A channel's recent published data (E and I against time) and its events."""

    def __init__(self, key: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.key = key
        self.header = QLabel(f"<b>{key}</b>")
        self.header.setWordWrap(True)
        self.plots = pg.GraphicsLayoutWidget()
        self.plot_e = self.plots.addPlot(row=0, col=0)
        self.plot_i = self.plots.addPlot(row=1, col=0)
        self.plot_i.setXLink(self.plot_e)
        for item, label in ((self.plot_e, "E_we (V)"), (self.plot_i, "I (mA)")):
            item.setLabel("left", label)
            item.setLabel("bottom", "time (h)")
            item.showGrid(x=True, y=True, alpha=0.3)
        self.curve_e = self.plot_e.plot(pen=pg.mkPen("#1f5fbf", width=1.5))
        self.curve_i = self.plot_i.plot(pen=pg.mkPen("#b8430f", width=1.5))
        self.events = QTableWidget(0, 4)
        self.events.setHorizontalHeaderLabels(["time (h)", "kind", "step", "message"])
        self.events.horizontalHeader().setStretchLastSection(True)
        self.events.verticalHeader().hide()
        self.events.setMaximumHeight(180)
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addWidget(self.plots, 1)
        layout.addWidget(self.events)

    def show_channel(self, channel: ChannelCopy) -> None:
        r = channel.row
        alarm = (
            f" &nbsp; <span style='color:{ALARM_BORDER}'><b>\u26a0 {channel.alarm}</b></span>" if channel.alarm else ""
        )
        self.header.setText(
            f"<b>{channel.key}</b> &nbsp; cell {r['cell']} &nbsp; protocol {r['protocol']} &nbsp; step {r['step']}"
            f" &nbsp; progress {r['progress']} &nbsp; state <b>{r['state']}</b>{alarm}"
        )
        data = channel.data
        if "t" in data and len(data["t"]):
            t = to_unit(1.0, "h") * data["t"]
            if "E_we" in data:
                self.curve_e.setData(t, data["E_we"], connect="finite")
            if "I" in data:
                self.curve_i.setData(t, data["I"] * to_unit(1.0, "mA"), connect="finite")
        self.events.setRowCount(len(channel.events))
        for i, ev in enumerate(channel.events):
            t = ev.get("t")
            cells = [f"{to_unit(t, 'h'):.3f}" if isinstance(t, (int, float)) else "-", str(ev.get("kind", ""))]
            cells += [str(ev.get("step", "")), str(ev.get("message", ""))]
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if ev.get("kind") in ALARM_STATES:
                    item.setForeground(QColor(ALARM_BORDER))
                self.events.setItem(i, j, item)
        if channel.events:
            self.events.scrollToBottom()

    def curves(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """What is plotted (time in h; E_we in V, I in mA), for exports and checks."""
        return {"E_we": self.curve_e.getData(), "I": self.curve_i.getData()}


class LabWindow(QMainWindow):
    """The lab overview: a tile per channel publishing to ``settings``' broker, details in tabs."""

    def __init__(self, settings: PublishSettings, *, interval: float = 0.5, watch: LabWatch | None = None):
        super().__init__()
        self.settings = settings
        self.setWindowTitle(f"sse-rig lab: {settings.lab} on {settings.host}:{settings.port}")
        self.tiles: dict[str, LabTile] = {}
        self.details: dict[str, ChannelDetail] = {}
        self.channels: dict[str, ChannelCopy] = {}
        self.tabs = QTabWidget()
        self.tabs.setTabsClosable(True)
        self.tabs.tabCloseRequested.connect(self._close_tab)
        self.grid_widget = QWidget()
        self.grid = QGridLayout(self.grid_widget)
        self.grid.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.empty = QLabel("no channel has published yet")
        self.grid.addWidget(self.empty, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.grid_widget)
        self.tabs.addTab(scroll, "Lab overview")
        self.tabs.tabBar().setTabButton(0, self.tabs.tabBar().ButtonPosition.RightSide, None)
        self.setCentralWidget(self.tabs)
        self.statusBar().showMessage(f"connecting to {settings.host}:{settings.port} ...")
        self.feed = LabFeed(watch or LabWatch(settings), interval, self)
        self.feed.updated.connect(self.show_channels)
        self.feed.connection.connect(self._on_connection)
        self.feed.start()
        self.resize(1000, 640)

    def show_channels(self, channels: list[ChannelCopy]) -> None:
        """New copies from the feed: tiles added or refreshed, open details redrawn."""
        for channel in channels:
            self.channels[channel.key] = channel
            tile = self.tiles.get(channel.key)
            if tile is None:
                tile = self._add_tile(channel.key)
            tile.show_channel(channel)
            if channel.key in self.details:
                self.details[channel.key].show_channel(channel)
        alarms = sum(1 for t in self.tiles.values() if t.alarm)
        self.tabs.setTabText(0, "Lab overview" + (f" \u26a0 {alarms}" if alarms else ""))

    def _add_tile(self, key: str) -> LabTile:
        self.empty.hide()
        tile = LabTile(key)
        tile.clicked.connect(self.open_detail)
        self.tiles[key] = tile
        for i, k in enumerate(sorted(self.tiles)):  # keep the tiles in rig/channel order
            self.grid.addWidget(self.tiles[k], i // COLUMNS, i % COLUMNS)
        return tile

    def open_detail(self, key: str) -> ChannelDetail:
        """The channel's detail tab (opened once, then brought to the front)."""
        detail = self.details.get(key)
        if detail is None:
            detail = ChannelDetail(key)
            self.details[key] = detail
            self.tabs.addTab(detail, key)
            if key in self.channels:
                detail.show_channel(self.channels[key])
        self.tabs.setCurrentWidget(detail)
        return detail

    def _close_tab(self, index: int) -> None:
        widget = self.tabs.widget(index)
        if isinstance(widget, ChannelDetail):
            self.details.pop(widget.key, None)
            self.tabs.removeTab(index)
            widget.deleteLater()

    def _on_connection(self, up: bool) -> None:
        where = f"{self.settings.host}:{self.settings.port}, lab '{self.settings.lab}'"
        self.statusBar().showMessage(f"connected to {where}" if up else f"not connected to {where} (retrying)")

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing the view only unsubscribes: the runs it shows go on."""
        self.feed.stop()
        event.accept()
