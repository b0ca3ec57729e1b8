"""The run writer's memory is bounded by its declared constants, whatever the run length and block sizes."""

from __future__ import annotations

import h5py
import numpy as np

from daq.storage.writer import METADATA_CACHE_BYTES
from tests.daq.storage.test_run_file import block, new_writer


def test_samples_waiting_never_exceed_the_buffer_and_large_blocks_arrive_whole(tmp_path):
    path = tmp_path / "run.h5"
    w = new_writer(path, expected_samples=2000, flush_interval=3600.0, aux_columns=("pressure",))  # 2048-sample chunks
    w.start()
    bound = w.chunk  # one chunk per column waits at most
    rng = np.random.default_rng(7)
    sizes = [1, 50_000, 3, bound, bound - 1, 9_000, 2 * bound + 5, 17]
    blocks, t0 = [], 0
    for k, n in enumerate(sizes):
        b = block(t0, n)
        b["E_we"] = rng.normal(size=n)
        if k % 2:  # the pressure column only in some blocks: NaN in the others
            b["pressure"] = rng.uniform(1e6, 2e6, n)
        blocks.append(b)
        w.append(b)
        t0 += n
        assert w.next_row("samples") == t0
        assert 0 <= t0 - w.f["timeseries/t"].shape[0] <= bound, k  # what waits in memory
    assert w.f.id.get_mdc_config().max_size == METADATA_CACHE_BYTES
    w.close()
    with h5py.File(path, "r") as f:
        for name in ("t", "E_we", "step", "flags"):
            np.testing.assert_array_equal(f["timeseries"][name][:], np.concatenate([b[name] for b in blocks]))
        pressure = np.concatenate([b.get("pressure", np.full(len(b["t"]), np.nan)) for b in blocks])
        np.testing.assert_array_equal(f["timeseries/pressure"][:], pressure)


def test_steps_and_events_of_a_long_run_read_back_in_order(tmp_path):
    path = tmp_path / "run.h5"
    w = new_writer(path, flush_interval=3600.0)
    w.start()
    for k in range(3000):  # many chunks of the tables (64 rows each) through a cache of two
        w.add_event(float(k), "note", k, f"event {k}", {"k": k})
        if k % 500 == 0:
            w.flush()
    w.close()
    with h5py.File(path, "r") as f:
        events = f["events"][()]
    assert list(events["step"]) == list(range(3000))
    assert [m.decode() for m in events["message"][::999]] == ["event 0", "event 999", "event 1998", "event 2997"]


def test_whole_chunks_of_a_big_block_are_written_through_and_read_back_exactly(tmp_path):
    # Nothing waiting and the file on a chunk boundary: a block's whole chunks go to HDF5 at once (no
    # copy into the buffer), the rest waits; a column the block lacks is NaN, other dtypes converted.
    path = tmp_path / "run.h5"
    w = new_writer(path, expected_samples=2000, flush_interval=3600.0, aux_columns=("pressure",))
    w.start()
    chunk, rng, blocks, t0 = w.chunk, np.random.default_rng(3), [], 0
    for k, n in enumerate((2 * chunk, chunk + 5, 3, chunk - 8, 3 * chunk)):
        b = block(t0, n)
        b["E_we"] = rng.normal(size=n).astype(np.float32) if k == 0 else rng.normal(size=n)
        if k == 1:
            b["pressure"] = rng.uniform(1e6, 2e6, n)
        blocks.append(b)
        w.append(b)
        t0 += n
        written = w.f["timeseries/t"].shape[0]
        assert written == {0: 2 * chunk, 1: 3 * chunk, 2: 3 * chunk, 3: 4 * chunk, 4: 7 * chunk}[k], k
    w.close()
    with h5py.File(path, "r") as f:
        for name in ("t", "E_we", "step", "cycle", "flags", "Q"):
            expected = np.concatenate([b[name] for b in blocks]).astype(f["timeseries"][name].dtype)
            np.testing.assert_array_equal(f["timeseries"][name][:], expected)
        pressure = np.concatenate([b.get("pressure", np.full(len(b["t"]), np.nan)) for b in blocks])
        np.testing.assert_array_equal(f["timeseries/pressure"][:], pressure)
