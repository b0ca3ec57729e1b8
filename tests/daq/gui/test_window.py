"""The rig window, driven offscreen: live simulated runs with pause/resume/abort, run files finished and
being written by another process, PNG export."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")
from daq.gui import qt_problem

if qt_problem():
    pytest.skip(qt_problem(), allow_module_level=True)

from PySide6.QtCore import QTimer
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QMessageBox

from daq.storage.reader import open_run
from tests.conftest import CELLS, EXAMPLES, ROOT, run_sim
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

LIVE = """
[protocol]
name = "GUI live test"
cell = "{cell}"
[defaults]
sample_period = "1 s"
[[steps]]
kind = "eis"
label = "impedance at rest"
mode = "potentiostatic"
f_start = "1 MHz"
f_end = "10 Hz"
points_per_decade = 4
amplitude = "5 mV"
dc = "ocv"
[[steps]]
kind = "rest"
label = "rest"
duration = "20 s"
[[steps]]
kind = "galvanostatic"
label = "plate"
direction = "plate"
current_density = "0.5 mA/cm^2"
duration = "3 h"
"""

RESTS = """
[protocol]
name = "GUI rests"
cell = "{cell}"
""" + "".join(
    f"""
[[steps]]
kind = "rest"
label = "rest {i}"
duration = "60 s"
"""
    for i in range(1, 41)
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text.format(cell=CELLS / "li6ps5cl_99.toml"))
    return path


def accept_next_question(answer=QMessageBox.StandardButton.Yes) -> None:
    """Click ``answer`` in the next modal message box (as the operator would)."""

    def click() -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            box.button(answer).click()
        else:
            QTimer.singleShot(10, click)

    QTimer.singleShot(0, click)


def test_live_run_pause_resume_abort(qtbot, window, tmp_path):
    w = window(channels=1)
    panel = w.panels[0]
    run = panel.start_run(write(tmp_path, "live.toml", LIVE), speed=600, out=tmp_path / "live.h5")

    # data arrive: buffers grow, plot items hold data, the spectrum is drawn with the status line
    qtbot.waitUntil(lambda: panel.buffer is not None and np.any(panel.buffer.column("I") != 0), timeout=20_000)
    qtbot.waitUntil(lambda: len(panel.buffer) > 100, timeout=30_000)
    assert panel.state == "running" and panel.is_running
    x, y = panel.curve_e_t.getData()
    assert x is not None and len(x) > 0 and np.all(np.isfinite(y))
    assert panel.curve_e_q.getData()[0] is not None
    assert panel.spectra_seen == 1 and panel.plot_nyquist.getPlotItem().listDataItems()
    qtbot.waitUntil(lambda: "plate" in panel.step_label.text(), timeout=30_000)  # the status line is timed
    assert "remaining" in panel.time_label.text()
    assert panel.progress.value() > 0

    # pause now: the cell goes to open circuit; nothing recorded while paused carries current
    panel.pause("now")
    qtbot.waitUntil(lambda: panel.state == "paused", timeout=30_000)
    t_pause = next(e["t"] for e in panel.events if e["kind"] == "paused")
    n_paused = panel.buffer.received
    qtbot.wait(400)  # 4 min of cell time
    assert np.all(panel.buffer.since("I", t_pause + 1e-9) == 0)
    assert panel.buffer.received - n_paused <= 1  # at most the sample the pause interrupted
    assert panel.resume_button.isEnabled() and not panel.pause_button.isEnabled()

    # resume: current flows again
    panel.resume()
    qtbot.waitUntil(lambda: panel.state == "running", timeout=30_000)
    t_resume = next(e["t"] for e in panel.events if e["kind"] == "resumed")
    qtbot.waitUntil(lambda: len(panel.buffer.since("I", t_resume)) > 20, timeout=30_000)
    assert np.all(panel.buffer.since("I", t_resume) < 0)

    # abort, confirmed in the dialog
    accept_next_question()
    assert panel.abort() is True
    qtbot.waitUntil(lambda: panel.result is not None, timeout=30_000)
    assert run.join(5)
    assert panel.result["outcome"] == "aborted" and panel.state == "finished"
    with open_run(tmp_path / "live.h5") as f:
        assert f.status == "completed" and len(f) >= panel.buffer.received - 1
        kinds = list(f.events()["kind"])
        assert "paused" in kinds and "resumed" in kinds


def test_abort_needs_confirmation_and_pause_at_step_end(qtbot, window, tmp_path):
    w = window(channels=1)
    panel = w.panels[0]
    panel.start_run(write(tmp_path, "rests.toml", RESTS), speed=600, out=tmp_path / "rests.h5")
    qtbot.waitUntil(
        lambda: panel.state == "running" and panel.buffer is not None and len(panel.buffer) > 0, timeout=20_000
    )

    accept_next_question(QMessageBox.StandardButton.No)  # the operator changes their mind
    assert panel.abort() is False and panel.is_running

    step = panel.current_step()
    panel.pause("step_end")
    assert panel.state == "pausing"
    qtbot.waitUntil(lambda: panel.state == "paused", timeout=30_000)
    paused = next(e for e in panel.events if e["kind"] == "paused")
    assert paused["data"]["when"] == "step_end"
    assert paused["step"] in (step, step + 1)  # between two steps, not inside one
    assert paused["step"] in panel.steps_done

    # closing the window asks too: "No" keeps it open and running, "Yes" aborts the run (cell off)
    accept_next_question(QMessageBox.StandardButton.No)
    assert w.close() is False and panel.is_running
    accept_next_question()
    assert w.close() is True
    assert not panel.is_running
    with open_run(tmp_path / "rests.h5") as f:
        assert f.status == "completed" and f.attrs["outcome"] == "aborted"


def test_start_dialog_values(qtbot, tmp_path):
    from daq.gui.dialogs import StartDialog

    dialog = StartDialog(protocol=EXAMPLES / "ccd_single_plating.toml", speed=500)
    qtbot.addWidget(dialog)
    assert dialog.values() == {
        "protocol": str(EXAMPLES / "ccd_single_plating.toml"),
        "cell": None,
        "speed": 500.0,
        "out": None,
    }
    dialog.cell.setText(str(CELLS / "li6ps5cl_83.toml"))
    dialog.out.setText(str(tmp_path / "x.h5"))
    assert dialog.values()["cell"].endswith("li6ps5cl_83.toml") and dialog.values()["out"].endswith("x.h5")


def test_a_bad_protocol_is_reported_not_run(qtbot, window, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(LIVE.format(cell=CELLS / "li6ps5cl_99.toml").replace('"0.5 mA/cm^2"', '"-0.5 mA/cm^2"'))
    panel = window(channels=1).panels[0]
    panel.start_run(bad, speed=600, out=tmp_path / "bad.h5")
    qtbot.waitUntil(lambda: panel.state == "failed", timeout=30_000)
    assert "must be positive" in panel.error and "must be positive" in panel.step_label.text()
    assert not (tmp_path / "bad.h5").exists() and panel.start_button.isEnabled()


def test_open_a_finished_run_and_export_png(qtbot, window, tmp_path):
    path = tmp_path / "short.h5"
    result = run_sim(EXAMPLES / "ccd_single_plating.toml", path, overrides={"current_density": "10 mA/cm^2"})
    assert result.outcome == "short_circuit"
    w = window(channels=0, files=[path])
    panel = w.panels[0]
    qtbot.waitUntil(lambda: panel.result is not None, timeout=20_000)
    with open_run(path) as f:
        n = len(f)
    assert panel.buffer.received == n and panel.state == "review"
    assert panel.result["status"] == "completed" and panel.result["outcome"] == "short_circuit"
    assert any(e["kind"] == "short_circuit" for e in panel.events)
    assert panel.marked_events, "the short circuit is marked on the time plots"
    assert panel.log.rowCount() == len(panel.events)
    assert "short circuit" in w.tabs.tabText(0) or w.tabs.tabText(0).startswith("\u26a0")
    assert not panel.start_button.isEnabled()  # a file is reviewed, not run

    png = tmp_path / "view.png"
    panel.export_png(png).join(10)
    image = QImage(str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.width() > 200 and image.height() > 200


FOLLOWED = """
[protocol]
name = "GUI followed"
cell = "{cell}"
[defaults]
sample_period = "1 s"
[[steps]]
kind = "rest"
duration = "5 s"
[[steps]]
kind = "galvanostatic"
direction = "plate"
current_density = "0.5 mA/cm^2"
duration = "900 s"
"""


# 905 s of run at 60x: about 15 s of writing, so that even a busy machine opens and closes the second
# window while the run is still being written (at 250x the run could end first)
FOLLOWED_SPEED = "60"


def test_follow_a_run_another_process_is_writing(qtbot, window, tmp_path):
    protocol = write(tmp_path, "followed.toml", FOLLOWED)
    path = tmp_path / "followed.h5"
    writer = subprocess.Popen(
        [sys.executable, "-m", "daq.cli", "run", str(protocol), "--sim", "--speed", FOLLOWED_SPEED, "--out", str(path)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,  # progress lines nobody reads must not fill a pipe and stall the writer
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(path.exists, what="the run file")
        w = window(channels=0)
        panel = w.open_file(path, poll_interval=0.1)
        qtbot.waitUntil(lambda: panel.buffer is not None and len(panel.buffer) > 0, timeout=20_000)
        assert panel.state == "following"
        first = panel.buffer.received
        qtbot.waitUntil(lambda: panel.buffer.received > first + 50, timeout=20_000)  # it grows as written

        # a second window on the same run, closed while the run is written: the run does not notice
        other = window(channels=0)
        other_panel = other.open_file(path, poll_interval=0.1)
        qtbot.waitUntil(lambda: other_panel.buffer is not None and len(other_panel.buffer) > 0, timeout=20_000)
        other.close()
        assert other_panel.follower is not None and other_panel.follower.join(5)
        assert writer.poll() is None, "the writer is still running"

        qtbot.waitUntil(lambda: panel.result is not None or bool(panel.error), timeout=60_000)
        assert not panel.error
        assert writer.wait(30) == 0, writer.stderr.read().decode()
    finally:
        if writer.poll() is None:
            writer.kill()
    with open_run(path) as f:
        assert f.status == "completed"
        n = len(f)
    assert panel.result["status"] == "completed" and panel.state == "review"
    assert panel.buffer.received == n, "every row read exactly once"
    assert panel.follower.rows == n


def test_daq_gui_refuses_a_missing_file(capsys):
    from daq.cli import main

    assert main(["gui", "/nonexistent/run.h5"]) == 2
    assert "no such run file" in capsys.readouterr().err
