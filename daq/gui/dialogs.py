"""Dialogs of the rig window: starting a protocol on a simulated channel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "protocols" / "examples"


def default_protocol() -> Path:
    for name in ("asymmetric_cycling.toml", "ccd_single_plating.toml"):
        if (EXAMPLES / name).exists():
            return EXAMPLES / name
    return EXAMPLES


class StartDialog(QDialog):
    """Protocol file, cell file (default: the protocol's own), speed factor and run file."""

    def __init__(
        self,
        parent: QWidget | None = None,
        protocol: str | Path | None = None,
        cell: str | Path | None = None,
        speed: float = 3600.0,
    ):
        super().__init__(parent)
        self.setWindowTitle("Start a protocol (simulated cell)")
        form = QFormLayout(self)
        self.protocol = QLineEdit(str(protocol or default_protocol()))
        self.cell = QLineEdit(str(cell or ""))
        self.cell.setPlaceholderText("the protocol's own cell")
        self.speed = QDoubleSpinBox()
        self.speed.setRange(1.0, 1e6)
        self.speed.setDecimals(0)
        self.speed.setValue(speed)
        self.speed.setSuffix(" x real time")
        self.speed.setToolTip(
            "The simulated cell runs this many times faster than the wall clock (3600 x: one hour per second)"
        )
        self.out = QLineEdit()
        self.out.setPlaceholderText("runs/<protocol>-<cell>-<time>.h5")
        form.addRow("Protocol", self._with_browse(self.protocol, "Protocol file", "Protocol (*.toml)"))
        form.addRow("Cell", self._with_browse(self.cell, "Cell file", "Cell (*.toml)"))
        form.addRow("Speed", self.speed)
        form.addRow("Run file", self._with_browse(self.out, "Run file", "Run file (*.h5)", save=True))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Start")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _with_browse(self, edit: QLineEdit, title: str, pattern: str, save: bool = False) -> QWidget:
        row = QWidget()
        lay = QHBoxLayout(row)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(edit, 1)
        button = QPushButton("Browse...")

        def browse() -> None:
            start = edit.text() or str(EXAMPLES)
            if save:
                path, _ = QFileDialog.getSaveFileName(self, title, start, pattern)
            else:
                path, _ = QFileDialog.getOpenFileName(self, title, start, pattern)
            if path:
                edit.setText(path)

        button.clicked.connect(browse)
        lay.addWidget(button)
        return row

    def values(self) -> dict[str, Any]:
        """Keyword arguments for ChannelPanel.start_run."""
        return {
            "protocol": self.protocol.text().strip(),
            "cell": self.cell.text().strip() or None,
            "speed": float(self.speed.value()),
            "out": self.out.text().strip() or None,
        }
