"""The cycles view during a run: rows as each cycle completes (a simulated channel, a followed run file),
equal to the stored /analysis/cycles rows that replace them when the run ends."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")
from daq.gui import qt_problem

if qt_problem():
    pytest.skip(qt_problem(), allow_module_level=True)

from daq.analysis.cycles import CYCLE_DTYPE
from daq.storage.reader import open_run
from tests.conftest import EXAMPLES, ROOT
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(180)

PROTOCOL = EXAMPLES / "asymmetric_cycling.toml"
CYCLES = 4


def watch(panel, going=None) -> list[tuple[int, bool]]:
    """(rows shown, run still going) at every change of the cycles view."""
    seen: list[tuple[int, bool]] = []
    going = going or (lambda: panel.result is None)
    panel.cycles_view.changed.connect(lambda rows: seen.append((rows, going())))
    return seen


def assert_equal_rows(live_rows, path):
    with open_run(path) as run:
        stored = run.f["analysis/cycles"][()]
    assert len(live_rows) == len(stored) == CYCLES
    for name in CYCLE_DTYPE.names:
        if name == "stop":
            assert [str(s) for s in live_rows[name]] == [s.decode() for s in stored[name]]
        else:
            assert np.array_equal(live_rows[name], stored[name], equal_nan=True), name
    return stored


def test_simulated_run_grows_then_shows_the_stored_table(qtbot, window, tmp_path):
    w = window(channels=1)
    panel = w.panels[0]
    seen = watch(panel)
    out = tmp_path / "cycling.h5"
    # one cycle is 36,200 s of cell time: at 100,000x a cycle takes about 0.4 s
    panel.start_run(PROTOCOL, speed=100_000, out=out, overrides={"cycles": CYCLES})
    qtbot.waitUntil(lambda: panel.result is not None, timeout=120_000)
    assert panel.result["outcome"] == "completed"

    during = [rows for rows, running in seen if running]
    assert during[: CYCLES - 1] == list(range(1, CYCLES)), seen  # one row per completed cycle, in the run
    assert seen[-1] == (CYCLES, False)  # the stored table, after the run
    view = panel.cycles_view
    stored = assert_equal_rows(view.live.rows, out)
    assert view.rows == CYCLES and view.table.rowCount() == CYCLES
    assert panel.views.tabText(1) == f"Cycles ({CYCLES})"
    assert view.table.item(CYCLES - 1, 1).text() == f"{stored['plate_capacity'][-1] / 36000:.3f}"
    assert "live" not in view.message.text()


def test_a_followed_run_file_grows_as_written(qtbot, window, tmp_path):
    out = tmp_path / "followed.h5"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daq.cli",
            "run",
            str(PROTOCOL),
            "--sim",
            "--speed",
            "20000",
            "--out",
            str(out),
            "--set",
            f"cycles={CYCLES}",
        ],  # fmt: skip
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(out.exists, what="the run file")
        w = window(channels=0)
        panel = w.open_file(out, poll_interval=0.1)
        seen = watch(panel, going=lambda: writer.poll() is None and panel.result is None)
        qtbot.waitUntil(lambda: panel.result is not None or bool(panel.error), timeout=120_000)
        assert not panel.error
        assert writer.wait(30) == 0, writer.stderr.read().decode()
    finally:
        if writer.poll() is None:
            writer.kill()
    assert [rows for rows, running in seen if running][:1] == [1], seen  # rows came while the writer was writing
    assert seen[-1] == (CYCLES, False)
    assert panel.cycles_view.live.held == 0
    assert_equal_rows(panel.cycles_view.live.rows, out)
