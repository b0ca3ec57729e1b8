"""Reading a run file for the window: every stored sample once, in order, whatever the read sizes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from daq.gui import qt_problem

if qt_problem():
    pytest.skip(qt_problem(), allow_module_level=True)

from daq.gui.sources import ChannelSignals, FileFollower
from daq.storage.reader import open_run
from tests.conftest import EXAMPLES, run_sim


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
