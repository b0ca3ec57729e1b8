"""The run file as other tools see it: valid from its first byte, openable by plain h5py and HDF5 1.10
tools, columns in the documented order, writes grouped per flush interval."""

import shutil
import signal
import subprocess
import sys
import threading
import time

import h5py
import numpy as np
import pytest

from daq.core.errors import DataFileError
from daq.storage import layout as L
from daq.storage.reader import open_run
from daq.storage.space import chunk_samples
from daq.storage.writer import RunWriter
from tests.conftest import EXAMPLES, ROOT, kill_run, run_sim
from tests.waiting import wait_until


def new_writer(path, **kwargs):
    return RunWriter(
        path,
        cell_attrs={"cell_id": "c1", "electrodes.working_area": 1e-6},
        cell_units={"electrodes.working_area": "m^2"},
        protocol_source="",
        protocol_path="",
        protocol_resolved={},
        predictions={},
        **kwargs,
    )


def block(t0, n, current=-9e-5):
    t = t0 + np.arange(n, dtype=float)
    return {
        "t": t,
        "step": np.zeros(n, np.int32),
        "cycle": np.zeros(n, np.int32),
        "E_we": np.full(n, -0.1),
        "E_cell": np.full(n, -0.2),
        "I": np.full(n, current),
        "Q": current * (t - t0 + 1),
        "flags": np.zeros(n, np.uint8),
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    path = tmp_path_factory.mktemp("run") / "ccd.h5"
    run_sim(EXAMPLES / "ccd_single_plating.toml", path, 99, {"capacity": "0.5 mAh/cm^2"})
    return path


@pytest.mark.skipif(shutil.which("h5dump") is None, reason="h5dump (Debian package hdf5-tools) is not installed")
def test_hdf5_110_tools_open_finished_and_killed_runs(finished, tmp_path):
    killed = kill_run(tmp_path / "killed.h5", "ccd_single_plating.toml", blocks=5)
    version = subprocess.run(["h5dump", "--version"], capture_output=True, text=True).stdout
    for path in (finished, killed):
        proc = subprocess.run(["h5dump", "-H", str(path)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, (version, proc.stderr)
        assert 'DATASET "t"' in proc.stdout and 'DATASET "events"' in proc.stdout
        assert "error" not in proc.stderr.lower()


def test_a_killed_run_opens_with_plain_h5py_and_says_it_is_unfinished(tmp_path):
    killed = kill_run(tmp_path / "killed.h5", "ccd_single_plating.toml", blocks=5)
    with h5py.File(killed, "r") as f:  # no swmr=True
        assert f.attrs["status"] == "interrupted"
        assert "interrupted" in f.attrs["status_note"]
        assert len(f["timeseries/t"]) >= 4 * 256
        assert isinstance(f.attrs["cell_id"], str)
        assert isinstance(f["protocol/source"].asstr()[()], str)


def test_open_run_and_plain_h5py_in_one_process(finished):
    with open_run(finished) as run, h5py.File(finished, "r") as f:
        assert len(run) == len(f["timeseries/t"]) > 0
    with h5py.File(finished, "r") as f, open_run(finished) as run:
        assert run.status == "completed" and f.attrs["status"] == "completed"


def test_timeseries_in_documented_order_with_current_density_and_areal_capacity(finished):
    with open_run(finished) as run, h5py.File(finished, "r") as f:
        ts = run.timeseries()
        area = float(f["cell"].attrs["electrodes.working_area"])
        q, i = f["timeseries/Q"][:], f["timeseries/I"][:]
    assert list(ts.columns) == [*L.TIMESERIES, "pressure", "force", "current_density", "areal_capacity"]
    # 1 mAh/cm^2 = 3.6 C per 1e-4 m^2 = 36000 C/m^2; 1 mA/cm^2 = 10 A/m^2
    np.testing.assert_allclose(ts.areal_capacity, np.abs(q) / area / 36000)
    np.testing.assert_allclose(ts.current_density, i / area / 10)
    assert ts.attrs["units"]["areal_capacity"] == "mAh/cm^2" and ts.attrs["units"]["Q"] == "C"
    assert abs(ts.areal_capacity.max() - 0.5) < 0.01  # the protocol's capacity


def test_a_wrong_argument_is_reported_as_such_not_as_a_damaged_file(finished):
    with open_run(finished) as run:
        with pytest.raises(TypeError, match="units"):
            run.units("E_we")


KILL_WHILE_CREATING = """
import os, signal, sys
sys.path.insert(0, {root!r})
from daq.storage import writer
real = writer.create_structure
def dies(f, *args, **kwargs):
    f.create_group("cell")
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
writer.create_structure = dies
from tests.daq.storage.test_run_file import new_writer
new_writer({path!r})
"""

KILL_BEFORE_FIRST_SAMPLE = """
import os, signal, sys
sys.path.insert(0, {root!r})
from tests.daq.storage.test_run_file import new_writer
w = new_writer({path!r})
w.start()
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_run_killed_while_creating_its_file_leaves_no_file_under_its_name(tmp_path):
    path = tmp_path / "run.h5"
    proc = subprocess.run([sys.executable, "-c", KILL_WHILE_CREATING.format(root=str(ROOT), path=str(path))])
    assert proc.returncode == -signal.SIGKILL
    assert not path.exists()
    w = new_writer(path)  # the same --out works at once
    w.close()
    assert [p.name for p in tmp_path.iterdir()] == ["run.h5"]


def test_a_run_killed_before_its_first_sample_is_named_with_a_way_on(tmp_path):
    path = tmp_path / "run.h5"
    proc = subprocess.run([sys.executable, "-c", KILL_BEFORE_FIRST_SAMPLE.format(root=str(ROOT), path=str(path))])
    assert proc.returncode == -signal.SIGKILL
    with pytest.raises(DataFileError, match="left by a run killed before it recorded anything; remove it"):
        new_writer(path)
    new_writer(path, overwrite=True).close()
    with pytest.raises(DataFileError, match="already exists"):  # a finished run is just there
        new_writer(path)


def test_chunk_sizes_follow_sample_rate_flush_interval_and_run_length():
    assert chunk_samples(None, 0.5) == 65536  # computed as fast as possible
    assert chunk_samples(None, 0.5, expected_samples=3800) == 4096
    assert chunk_samples(1.0, 0.5) == 1024  # 1 sample per second in real time
    assert chunk_samples(10_000.0, 0.5) == 32768  # 20,000 samples per append of 4 flush intervals
    assert chunk_samples(1e6, 0.5) == 65536


def test_writes_at_most_once_per_flush_interval_and_nothing_waits_longer(tmp_path, monkeypatch):
    flushes = []
    real = h5py.File.flush
    monkeypatch.setattr(h5py.File, "flush", lambda self: (flushes.append(time.monotonic()), real(self))[1])
    path = tmp_path / "run.h5"
    w = new_writer(path, flush_interval=0.2)
    w.start()
    flushes.clear()
    t0 = time.monotonic()
    k = 0
    while time.monotonic() - t0 < 1.0:  # samples, steps and events as fast as they come
        w.append(block(k * 10, 10))
        w.add_event(k * 10.0, "note", 0, f"event {k}")
        k += 1
    assert len(flushes) <= 1.0 / 0.2 + 1
    assert all(b - a >= 0.2 * 0.9 for a, b in zip(flushes, flushes[1:], strict=False))
    w.add_event(99.0, "last", 0, "the last record for a while")

    def last_event() -> str:
        with open_run(path) as run:
            return run.events().kind.iloc[-1]

    # no further record: the flush timer writes it by itself
    wait_until(lambda: last_event() == "last", what="the flush timer to write the last event")
    with open_run(path) as run:
        assert len(run) == 10 * k
    w.close()


def test_a_reader_thread_and_the_timer_never_tear_the_tables(tmp_path):
    path = tmp_path / "run.h5"
    w = new_writer(path, flush_interval=0.01)
    w.start()
    stop = threading.Event()
    seen = []

    def follow():
        while not stop.is_set():
            with open_run(path) as run:
                seen.append((len(run), len(run.events())))
            time.sleep(0.005)

    reader = threading.Thread(target=follow)
    reader.start()
    for k in range(200):
        w.append(block(k * 5, 5))
        w.add_event(k * 5.0, "note", 0, "x")
    stop.set()
    reader.join()
    w.close()
    with open_run(path) as run:
        assert len(run) == 1000 and len(run.events()) == 200
    assert seen and all(n % 5 == 0 for n, _ in seen)


def test_samples_read_back_exactly_whatever_the_block_sizes(tmp_path):
    """Whole chunks go to HDF5 directly, part chunks through ordinary writes: the columns are the same."""
    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 3000, 120)
    path = tmp_path / "run.h5"
    w = new_writer(path, expected_samples=2000, flush_interval=3600.0)  # 2048-sample chunks
    w.start()
    blocks, t0 = [], 0
    for k, n in enumerate(sizes):
        b = block(t0, int(n))
        b["E_we"] = rng.normal(size=int(n))
        blocks.append(b)
        w.append(b)
        t0 += int(n)
        if k % 17 == 0:
            w.flush()  # a durable flush leaves a part-filled chunk behind
    w.close()
    with h5py.File(path, "r") as f:
        assert f["timeseries/t"].chunks == (2048,)
        for name in ("t", "E_we", "step", "flags"):
            np.testing.assert_array_equal(f["timeseries"][name][:], np.concatenate([b[name] for b in blocks]))


def test_damage_recognised_from_the_structure_before_hdf5_reads(finished, tmp_path):
    from daq.storage.recovery import check_structure

    data = bytearray(finished.read_bytes())
    check_structure(finished)  # the undamaged file passes
    root = int.from_bytes(data[36:44], "little")  # superblock v3, 8-byte addresses: root header address
    cases = {
        "cut short": bytes(data[: len(data) // 2]),
        "superblock's checksum": bytes(data[:20]) + bytes([data[20] ^ 0x40]) + bytes(data[21:]),
        "root group's object header": bytes(data[: root + 12])
        + bytes([data[root + 12] ^ 0x01])
        + bytes(data[root + 13 :]),
    }
    for what, damaged in cases.items():
        path = tmp_path / f"{what.split()[0]}.h5"
        path.write_bytes(damaged)
        with pytest.raises(DataFileError, match=what):
            open_run(path)
