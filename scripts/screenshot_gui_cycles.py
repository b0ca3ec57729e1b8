"""Screenshot of the rig window at 1366 x 768 (a laptop screen) showing the cycles view of a cycling run.

The asymmetric cycling example (9 mA/cm^2 plating, 0.5 mA/cm^2 stripping, 0.5 mAh/cm^2 per half cycle)
is simulated on the 95 % dense electrolyte, which cycles eight times and shorts in the ninth plating;
the run file is opened in the window and its Cycles tab grabbed. Uses Qt's offscreen platform (no X
server needed).

    python scripts/screenshot_gui_cycles.py [--out docs/images/gui-cycles-1366x768.png]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EXAMPLES = ROOT / "protocols" / "examples"
SIZE = (1366, 768)
OVERRIDES = {"cycles": 30, "steps.2.steps.2.current_density": "0.5 mA/cm^2"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "gui-cycles-1366x768.png"))
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from daq.gui.window import RigWindow
    from tests.conftest import run_sim

    app = QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cycling-95.h5"
        result = run_sim(EXAMPLES / "asymmetric_cycling.toml", path, 95, overrides=OVERRIDES)
        window = RigWindow(channels=0, files=[path])
        window.resize(*SIZE)
        window.show()
        panel = window.panels[0]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (panel.result is None or not panel.cycles_view.rows):
            app.processEvents()
            time.sleep(0.02)
        panel.views.setCurrentIndex(1)
        settle = time.monotonic() + 1.0
        while time.monotonic() < settle:
            app.processEvents()
            time.sleep(0.02)
        image = window.grab()
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if not image.save(str(out), "PNG"):
            print(f"could not write {out}", file=sys.stderr)
            return 1
        print(f"{out}: {image.width()}x{image.height()}; {panel.cycles_view.rows} cycles; {result.message}")
        panel.shutdown(timeout=10)
        window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
