"""Shared fixtures of the GUI tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def window(qtbot):
    """``window(**kwargs)`` opens a RigWindow (50 ms refresh); every one is closed after the test, its
    runs ended first (closing a window with a run in progress asks the operator)."""
    from daq.gui.window import RigWindow  # Qt only where a test asks for a window

    windows: list[RigWindow] = []

    def make(**kwargs) -> RigWindow:
        w = RigWindow(refresh_ms=50, **kwargs)
        w.show()
        windows.append(w)
        return w

    yield make
    for w in windows:
        for panel in w.panels:
            panel.shutdown(timeout=10)
        w.close()
        w.deleteLater()
