"""The lab overview against a real Mosquitto broker: tiles for every publishing channel, their state,
progress and alarms, a channel's detail from its published data, and ``daq gui --publish``."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")
pytest.importorskip("paho.mqtt")
from daq.gui import qt_problem

if qt_problem():
    pytest.skip(qt_problem(), allow_module_level=True)

from PySide6.QtCore import Qt

from daq.commands.gui import publishers
from daq.core.records import Event, Outcome, RunEnd, RunStart, RunStatus, Samples, StepStart
from daq.engine.publish import Publisher, parse_url
from daq.gui.lab import ALARM_BORDER, STATE_COLOURS, LabWindow
from daq.gui.sources import SimulatedRun
from daq.gui.window import RigWindow
from tests.conftest import CELLS
from tests.daq.engine.broker import broker  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(120)

AREA = 1e-4  # m^2


@pytest.fixture
def lab(qtbot, broker):  # noqa: F811
    window = LabWindow(parse_url(f"{broker.url}/glovebox"), interval=0.1)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: "connected to" in window.statusBar().currentMessage(), timeout=10_000)
    yield window
    window.close()


def publisher(broker, rig: str, channel: str, cell: str) -> Publisher:  # noqa: F811
    context = {"cell": cell, "protocol": "CCD ramp", "working_area": AREA, "rig": rig, "channel": channel}
    return Publisher(parse_url(f"{broker.url}/glovebox"), context)


def test_two_rigs_one_running_one_shorted(qtbot, lab, broker):  # noqa: F811
    running = publisher(broker, "pc1", "A", "LPSCl-99-01")
    running(RunStart(0.0))
    running(StepStart(1, "rest", "open-circuit rest", 0, 0.0, {"duration": 1000.0}))
    t = np.arange(0.0, 401.0)  # 400 s of a 1000 s rest: 40 %
    running(Samples({"t": t, "E_we": 0.01 + 0 * t, "I": 0 * t, "Q": 0 * t, "step": 1 + 0 * t}))

    shorted = publisher(broker, "pc2", "B", "LPSCl-83-02")
    shorted(RunStart(0.0))
    shorted(StepStart(2, "galvanostatic", "plate", 0, 0.0, {"capacity": 1800.0, "duration": None}))
    t = np.arange(0.0, 100.0)  # 1 mA on 1 cm^2 for 99 s: 0.099 C of 1800 C/m^2 x 1 cm^2 = 0.18 C, 55 %
    e = np.where(t < 90, -0.2, -0.001)
    shorted(Samples({"t": t, "E_we": e, "I": -1e-3 + 0 * t, "Q": -1e-3 * t, "step": 2 + 0 * t}))
    shorted(Event(95.0, "short_circuit", 2, "short circuit: voltage collapsed by 99 %"))
    shorted(RunEnd(RunStatus.COMPLETED, Outcome.SHORT_CIRCUIT, {}))
    running.close()
    shorted.close()
    assert running.dropped == shorted.dropped == 0

    qtbot.waitUntil(lambda: set(lab.tiles) == {"pc1/A", "pc2/B"}, timeout=10_000)
    qtbot.waitUntil(lambda: lab.tiles["pc2/B"].state == "short_circuit", timeout=10_000)
    a, b = lab.tiles["pc1/A"], lab.tiles["pc2/B"]
    assert (a.state, a.alarm, a.progress.value()) == ("running", "", 40)
    assert a.colour == STATE_COLOURS["running"] and a.alarm_label.isHidden()
    assert a.cell.text() == "cell: LPSCl-99-01" and a.step.text() == "step: 1 open-circuit rest"
    assert (b.alarm, b.progress.value(), b.colour) == ("short_circuit", 55, STATE_COLOURS["short_circuit"])
    assert not b.alarm_label.isHidden() and b.alarm_label.text() == "\u26a0 SHORT CIRCUIT"
    assert ALARM_BORDER in b.styleSheet() and ALARM_BORDER not in a.styleSheet()
    assert b.event.text() == "last event: short_circuit: short circuit: voltage collapsed by 99 %"
    assert lab.tabs.tabText(0) == "Lab overview \u26a0 1"

    qtbot.mouseClick(b, Qt.MouseButton.LeftButton)  # the shorted channel's detail
    detail = lab.details["pc2/B"]
    assert lab.tabs.currentWidget() is detail
    hours, volts = detail.curves()["E_we"]
    assert len(hours) == 50 and hours[-1] == pytest.approx(99 / 3600) and volts[-1] == pytest.approx(-0.001)
    _, milliamps = detail.curves()["I"]
    assert np.allclose(milliamps, -1.0)
    assert detail.events.rowCount() == 1
    assert [detail.events.item(0, j).text() for j in range(3)] == [f"{95 / 3600:.3f}", "short_circuit", "2"]


def test_gui_publish_shows_its_simulated_run_in_the_lab(qtbot, lab, broker, tmp_path, monkeypatch):  # noqa: F811
    protocol = tmp_path / "rests.toml"
    protocol.write_text(
        f'[protocol]\nname = "Two rests"\ncell = "{CELLS / "li6ps5cl_99.toml"}"\n'
        '[[steps]]\nkind = "rest"\nlabel = "first"\nduration = "60 s"\n'
        '[[steps]]\nkind = "rest"\nlabel = "second"\nduration = "60 s"\n'
    )
    args = argparse.Namespace(publish=f"{broker.url}/glovebox/rigA", rig=None)
    monkeypatch.setattr(SimulatedRun, "extra_subscribers", publishers(args, channels=1))
    rig = RigWindow(channels=1, refresh_ms=50)
    qtbot.addWidget(rig)
    panel = rig.panels[0]
    panel.start_run(protocol, speed=600, out=tmp_path / "run.h5")
    qtbot.waitUntil(lambda: panel.result is not None, timeout=30_000)
    qtbot.waitUntil(lambda: "rigA/sim-1" in lab.tiles and lab.tiles["rigA/sim-1"].state == "completed", timeout=10_000)
    tile = lab.tiles["rigA/sim-1"]
    assert tile.cell.text() == "cell: LPSCl-99-01" and tile.protocol.text() == "protocol: Two rests"
    assert tile.step.text() == "step: 1 second" and tile.progress.value() == 100 and tile.alarm == ""
    rig.close()
