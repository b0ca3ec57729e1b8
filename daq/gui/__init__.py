"""The live rig window (PySide6 + pyqtgraph): one panel per channel, run control, review of run files.

Only :mod:`daq.gui.buffers` and :mod:`daq.gui.plan` work without Qt; the rest needs the ``gui`` extra
(``pip install -e ".[gui]"``). See docs/gui.md.
"""

from __future__ import annotations

import sys

# PySide6 6.12.0 returns None/True/False from its C++ wrappers without taking a reference. Python 3.12+
# does not mind (those objects are immortal there); on 3.11 every signal emission and many paint calls
# drop a reference and the process aborts after a few hundred ("deallocating None"). pyproject excludes it.
BROKEN_QT = {"6.12.0"}


def qt_problem() -> str | None:
    """Why the installed Qt binding cannot run the window, or None if it can."""
    try:
        import PySide6
    except ImportError as exc:
        return f'needs the GUI extra ({exc.name} missing): pip install -e ".[gui]"'
    try:
        import pyqtgraph  # noqa: F401
    except ImportError:
        return 'needs pyqtgraph: pip install -e ".[gui]"'
    if PySide6.__version__ in BROKEN_QT and sys.version_info < (3, 12):
        return (
            f"PySide6 {PySide6.__version__} crashes on Python {sys.version_info.major}.{sys.version_info.minor} "
            '(reference-count bug): pip install "PySide6-Essentials!=6.12.0"'
        )
    return None


def main_window(**kwargs):
    """A :class:`daq.gui.window.RigWindow` (imports Qt on first use)."""
    from daq.gui.window import RigWindow

    return RigWindow(**kwargs)
