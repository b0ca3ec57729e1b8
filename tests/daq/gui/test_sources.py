"""Reading a run file for the window: every stored sample once, in order, whatever the read sizes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from daq.gui import qt_problem

if qt_problem():
    pytest.skip(qt_problem(), allow_module_level=True)

from daq.gui.sources import ChannelSignals, FileFollower
from daq.storage.lock import WriterLock
from daq.storage.reader import open_run
from tests.conftest import EXAMPLES, ROOT, run_sim


def test_a_finished_file_is_read_in_a_small_first_block_then_chunks(qtbot, tmp_path):
    path = tmp_path / "ccd.h5"
    run_sim(EXAMPLES / "ccd_single_plating.toml", path)
    signals = ChannelSignals()
    blocks: list[dict[str, np.ndarray]] = []
    finished: list[dict] = []
    signals.block.connect(blocks.append)
    signals.finished.connect(finished.append)
    follower = FileFollower(signals, path, chunk=1000, first_chunk=100)
    follower.start()
    qtbot.waitUntil(lambda: bool(finished), timeout=30_000)  # delivered in this thread's event loop
    with open_run(path) as f:
        stored = {name: f.column(name) for name in f.columns()}
    assert [len(b["t"]) for b in blocks[:2]] == [100, 1000]
    assert sum(len(b["t"]) for b in blocks) == len(stored["t"]) > 1100
    for name, column in stored.items():
        assert np.array_equal(np.concatenate([b[name] for b in blocks]), column, equal_nan=True), name


# What a writer does last, in its own process (as a writer does): record the analysis outside SWMR.
RECORD_LAST = """
import sys
from daq.storage.hdf5 import open_h5
with open_h5(sys.argv[1], "a") as f:
    f.require_group("analysis").attrs["message"] = "recorded last"
"""


def test_a_followed_run_ends_only_when_its_writer_lets_go(qtbot, tmp_path):
    """A writer records the final status, then the analysis, with its lock held: a follower that took the
    status for the end would read a file still being changed and miss what is recorded last."""
    path = tmp_path / "ccd.h5"
    run_sim(EXAMPLES / "ccd_single_plating.toml", path)
    with open_run(path) as f:
        rows = len(f)
    lock = WriterLock(path)  # the writer is still recording the end of the run
    try:
        signals = ChannelSignals()
        finished: list[dict] = []
        failed: list[str] = []
        signals.finished.connect(finished.append)
        signals.failed.connect(failed.append)
        follower = FileFollower(signals, path, poll_interval=0.05)
        follower.start()
        qtbot.waitUntil(lambda: follower.rows == rows, timeout=30_000)
        qtbot.wait(500)  # many polls of a file whose status says completed
        assert not finished and not failed and follower.is_alive()
        subprocess.run([sys.executable, "-c", RECORD_LAST, str(path)], cwd=ROOT, check=True, timeout=60)
    finally:
        lock.release()
    qtbot.waitUntil(lambda: bool(finished or failed), timeout=30_000)
    assert not failed
    assert finished[0]["status"] == "completed" and finished[0]["message"] == "recorded last"
    assert follower.join(10) and follower.rows == rows
