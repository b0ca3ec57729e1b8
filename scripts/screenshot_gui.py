"""Screenshot of the rig window during a simulated cycling test that ends in a short circuit.

Two simulated channels run the asymmetric cycling example (9 mA/cm^2 plating, 0.05 mA/cm^2 stripping,
0.5 mAh/cm^2 per half cycle): channel 1 on the 83 % dense electrolyte, which shorts after about six
cycles, channel 2 on the 99 % dense one, which keeps cycling. The window is grabbed from the X server
once channel 1 has recorded its short (and the spectrum measured after it).

Needs an X display; without one it starts Xvfb itself (apt-get install xvfb).

    python scripts/screenshot_gui.py [--out docs/images/gui-cycling-short.png] [--speed 7200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EXAMPLES = ROOT / "protocols" / "examples"
SIZE = (1600, 1000)


def start_xvfb() -> subprocess.Popen | None:
    """A virtual X server when there is no display (CI, servers)."""
    if os.environ.get("DISPLAY"):
        return None
    if shutil.which("Xvfb") is None:
        sys.exit("no X display and no Xvfb (apt-get install xvfb)")
    display = ":97"
    proc = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", f"{SIZE[0]}x{SIZE[1]}x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.environ["DISPLAY"] = display
    time.sleep(1.0)
    return proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "gui-cycling-short.png"))
    parser.add_argument("--speed", type=float, default=7200.0, help="x real time (7200: 2 h of cell time per s)")
    parser.add_argument("--timeout", type=float, default=180.0, help="s of wall time to wait for the short")
    args = parser.parse_args()

    xvfb = start_xvfb()
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    try:
        from PySide6.QtWidgets import QApplication

        from daq.gui.window import RigWindow

        app = QApplication([])
        window = RigWindow(channels=2)
        window.resize(*SIZE)
        window.move(0, 0)
        window.show()
        protocol = EXAMPLES / "asymmetric_cycling.toml"
        with tempfile.TemporaryDirectory() as tmp:
            shorted, cycling = window.panels
            shorted.start_run(protocol, EXAMPLES / "cells" / "li6ps5cl_83.toml", args.speed, Path(tmp) / "83.h5")
            cycling.start_run(protocol, EXAMPLES / "cells" / "li6ps5cl_99.toml", args.speed, Path(tmp) / "99.h5")
            window.tabs.setCurrentWidget(shorted)
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline and shorted.result is None and not shorted.error:
                app.processEvents()
                time.sleep(0.02)
            if shorted.error or not any(e["kind"] == "short_circuit" for e in shorted.events):
                print(f"no short circuit recorded: {shorted.error or shorted.result}", file=sys.stderr)
                return 1
            settle = time.monotonic() + 1.5  # let the last redraw and the event log scroll happen
            while time.monotonic() < settle:
                app.processEvents()
                time.sleep(0.02)
            image = app.primaryScreen().grabWindow(window.winId())
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            if not image.save(str(out), "PNG"):
                print(f"could not write {out}", file=sys.stderr)
                return 1
            print(f"{out}: {image.width()}x{image.height()}; {shorted.result['message']}")
            for panel in window.panels:
                panel.shutdown(timeout=10)
            window.close()
        return 0
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(5)


if __name__ == "__main__":
    sys.exit(main())
