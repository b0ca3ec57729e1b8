"""Screenshot of the lab overview: simulated channels on two rigs publishing to one Mosquitto broker.

Three simulated channels (in this process, as ``daq gui --publish`` runs them) publish to a broker
started here on a free loopback port: rig "glovebox-1" runs the asymmetric cycling example on the
83 % dense electrolyte (it shorts after about six cycles) and on the 99 % dense one, rig "glovebox-2"
the CCD single-plating example. The lab overview subscribed to the same broker is grabbed (offscreen)
once the short circuit is shown.

    QT_QPA_PLATFORM=offscreen python scripts/screenshot_lab.py [--out docs/images/lab-overview.png]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
EXAMPLES = ROOT / "protocols" / "examples"
CHANNELS = [  # rig, protocol, cell
    ("glovebox-1", "asymmetric_cycling.toml", "li6ps5cl_83.toml"),
    ("glovebox-1", "asymmetric_cycling.toml", "li6ps5cl_99.toml"),
    ("glovebox-2", "ccd_single_plating.toml", "li6ps5cl_95.toml"),
]


def start_broker() -> tuple[subprocess.Popen, int]:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, "-p", str(port)], stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit(f"mosquitto did not start on port {port}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "lab-overview.png"))
    parser.add_argument("--speed", type=float, default=7200.0, help="x real time")
    parser.add_argument("--timeout", type=float, default=180.0, help="s of wall time to wait for the short")
    args = parser.parse_args()

    from PySide6.QtWidgets import QApplication

    from daq.engine.publish import Publisher, parse_url
    from daq.gui.lab import LabWindow
    from daq.gui.sources import SimulatedRun
    from daq.gui.window import RigWindow

    broker, port = start_broker()
    settings = parse_url(f"mqtt://127.0.0.1:{port}/glovebox-lab")
    rigs = {f"sim {i + 1}": rig for i, (rig, _, _) in enumerate(CHANNELS)}

    def publish(protocol, cell, name):
        context = {"cell": cell.cell_id, "protocol": protocol.name, "working_area": cell.electrodes.working_area}
        return [Publisher(settings, {**context, "rig": rigs[name], "channel": name.replace(" ", "-")})]

    SimulatedRun.extra_subscribers = publish
    app = QApplication([])
    lab = LabWindow(settings, interval=0.2)
    lab.resize(1000, 320)
    lab.show()
    rig = RigWindow(channels=len(CHANNELS))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i, (panel, (_, protocol, cell)) in enumerate(zip(rig.panels, CHANNELS)):
                out = Path(tmp) / f"{i}.h5"
                panel.start_run(EXAMPLES / protocol, EXAMPLES / "cells" / cell, args.speed, out)
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline and not any(t.alarm == "short_circuit" for t in lab.tiles.values()):
                app.processEvents()
                time.sleep(0.02)
            settle = time.monotonic() + 1.0
            while time.monotonic() < settle:
                app.processEvents()
                time.sleep(0.02)
            if not any(t.alarm == "short_circuit" for t in lab.tiles.values()):
                print("no short circuit shown", file=sys.stderr)
                return 1
            lab.grab().save(args.out)
            print(f"{args.out}: {len(lab.tiles)} channels, states {[t.state for t in lab.tiles.values()]}")
            for panel in rig.panels:
                panel.shutdown(timeout=10)
    finally:
        lab.close()
        broker.kill()
        broker.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
