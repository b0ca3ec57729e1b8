"""The rig window: a tab per channel (simulated rigs or run files), menus for run control and export."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMainWindow, QMessageBox, QTabWidget

from daq.gui.panel import ChannelPanel

pg.setConfigOptions(background="w", foreground="k", antialias=False)


class RigWindow(QMainWindow):
    """One window per rig. ``channels`` simulated channels, then one tab per run file in ``files``."""

    def __init__(
        self,
        channels: int = 1,
        files: Iterable[str | Path] = (),
        *,
        start_defaults: dict[str, Any] | None = None,
        refresh_ms: int = 100,
        buffer_options: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.setWindowTitle("sse-rig")
        self.start_defaults = start_defaults or {}
        self.refresh_ms, self.buffer_options = refresh_ms, buffer_options
        self.tabs = QTabWidget()
        self.setCentralWidget(self.tabs)
        self.panels: list[ChannelPanel] = []
        self._sim_count = 0
        for _ in range(channels):
            self.add_channel()
        for path in files:
            self.open_file(path)
        self._menus()
        self.fit_screen()

    def fit_screen(self, width: int = 1500, height: int = 950) -> None:
        """Open at ``width`` x ``height``, or the screen's free area where that is smaller (a laptop's
        1366 x 768): every control and plot stays on the screen."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is not None:
            free = screen.availableGeometry()
            width, height = min(width, free.width()), min(height, free.height())
        self.resize(width, height)

    # --- channels -----------------------------------------------------------------------------
    def _add(self, panel: ChannelPanel, title: str) -> ChannelPanel:
        self.panels.append(panel)
        self.tabs.addTab(panel, title)
        panel.state_changed.connect(lambda state, p=panel: self._retitle(p))
        panel.alarm.connect(lambda kind, p=panel: self._retitle(p, alarm=kind))
        return panel

    def add_channel(self) -> ChannelPanel:
        """A simulated channel (one cell + protocol)."""
        self._sim_count += 1
        name = f"sim {self._sim_count}"
        panel = ChannelPanel(
            name,
            simulated=True,
            refresh_ms=self.refresh_ms,
            buffer_options=self.buffer_options,
            start_defaults=self.start_defaults,
        )
        return self._add(panel, name)

    def open_file(self, path: str | Path, poll_interval: float = 0.5) -> ChannelPanel:
        """A tab showing a run file; a run another process is writing is followed as it grows."""
        name = Path(path).name
        panel = ChannelPanel(name, simulated=False, refresh_ms=self.refresh_ms, buffer_options=self.buffer_options)
        self._add(panel, name)
        self._draw_first_block(panel)
        panel.open_file(path, poll_interval=poll_interval)
        self.tabs.setCurrentWidget(panel)
        return panel

    @staticmethod
    def _draw_first_block(panel: ChannelPanel) -> None:
        """Draw a file's first samples as soon as they arrive (not at the panel's next timer tick): the
        first picture of a long run comes while the rest is still being read."""

        def first(_: object) -> None:
            panel.signals.block.disconnect(first)
            QTimer.singleShot(0, panel.refresh)  # after the panel has taken the block

        panel.signals.block.connect(first)

    def current(self) -> ChannelPanel | None:
        widget = self.tabs.currentWidget()
        return widget if isinstance(widget, ChannelPanel) else None

    def _retitle(self, panel: ChannelPanel, alarm: str | None = None) -> None:
        i = self.tabs.indexOf(panel)
        if i < 0:
            return
        marks = {"running": " \u25b6", "paused": " \u23f8", "pausing": " \u25b6", "following": " \u21bb"}
        title = panel.name + marks.get(panel.state, "")
        if alarm or any(e.get("kind") == "short_circuit" for e in panel.events):
            title = "\u26a0 " + title
        self.tabs.setTabText(i, title)

    # --- menus --------------------------------------------------------------------------------
    def _menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self._action(file_menu, "&Open run file...", self._open_dialog, QKeySequence.StandardKey.Open)
        self._action(file_menu, "&Export view as PNG...", self._export_dialog, "Ctrl+E")
        file_menu.addSeparator()
        self._action(file_menu, "&Close", self.close, QKeySequence.StandardKey.Close)
        run_menu = bar.addMenu("&Run")
        self._action(run_menu, "&Start protocol...", lambda: self._on_current(lambda p: p.start_dialog()))
        self._action(run_menu, "&Pause now", lambda: self._on_current(lambda p: p.pause("now")))
        self._action(run_menu, "Pause at step &end", lambda: self._on_current(lambda p: p.pause("step_end")))
        self._action(run_menu, "&Resume", lambda: self._on_current(lambda p: p.resume()))
        self._action(run_menu, "&Abort...", lambda: self._on_current(lambda p: p.abort()))
        channel_menu = bar.addMenu("&Channel")
        self._action(channel_menu, "&Add simulated channel", lambda: self.tabs.setCurrentWidget(self.add_channel()))

    def _action(self, menu: Any, text: str, slot: Any, shortcut: Any = None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(shortcut)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _on_current(self, fn: Any) -> None:
        panel = self.current()
        if panel is not None:
            fn(panel)

    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open run file", "runs", "Run files (*.h5)")
        if path:
            self.open_file(path)

    def _export_dialog(self) -> None:
        self._on_current(lambda p: p.export_dialog())

    # --- closing ------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        """Runs this window controls end with it (after confirmation); followed files are only closed."""
        running = [p for p in self.panels if p.is_running]
        if running:
            names = ", ".join(p.name for p in running)
            answer = QMessageBox.question(
                self,
                "Runs in progress",
                f"{len(running)} run(s) in progress ({names}).\n\nClosing the window aborts them: the current is "
                "switched off and the run files keep what was recorded. Close anyway?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No,
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        for panel in self.panels:
            panel.shutdown()
        event.accept()
