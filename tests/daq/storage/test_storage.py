"""The run file is readable while written, after a kill, and recoverable for writing."""

import h5py
import numpy as np
import pytest

from daq.core.errors import DataFileError
from daq.core.records import Samples
from daq.storage.reader import open_run
from daq.storage.recovery import clear_writer_flags, lookup3, writer_flag_set
from tests.conftest import EXAMPLES, kill_run, run_sim


def test_lookup3_reference_values():
    # Published test vectors of Bob Jenkins' hashlittle
    assert lookup3(b"", 0) == 0xDEADBEEF
    assert lookup3(b"Four score and seven years ago", 0) == 0x17770551
    assert lookup3(b"Four score and seven years ago", 1) == 0xCD628161


def test_reader_follows_a_live_run(tmp_path):
    """A second reader sees samples while the writer is still running."""
    seen = []
    path = tmp_path / "live.h5"

    def listener(record):
        if isinstance(record, Samples) and len(seen) < 3:
            with open_run(path) as run:
                seen.append((run.status, len(run)))

    run_sim(EXAMPLES / "ccd_single_plating.toml", path, 99, subscribers=[listener], flush_interval=0.0)
    assert seen and all(status == "running" for status, _ in seen)
    assert seen[-1][1] > 0


def test_killed_run_is_readable_and_marked_interrupted(tmp_path):
    out = kill_run(tmp_path / "killed.h5", "ccd_single_plating.toml", blocks=12)
    with h5py.File(out, "r") as f:  # a plain reader opens it and sees that it is unfinished
        assert f.attrs["status"] == "interrupted"
        assert len(f["timeseries/t"]) >= 11 * 256
    with open_run(out) as run:
        assert run.status == "interrupted"
        ts = run.timeseries()
        assert len(ts) >= 11 * 256  # everything up to the last flushed block
        assert np.all(np.diff(ts.t) > 0)
    assert not writer_flag_set(out)  # cleared after every flush: nothing to clear
    assert not clear_writer_flags(out)
    with h5py.File(out, "a") as f:  # writable again (resume, repair)
        f.attrs["status"] = "interrupted"


def test_not_a_run_file(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(DataFileError, match="junk.h5"):
        open_run(junk)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(DataFileError, match="not a run file"):
        open_run(tmp_path / "other.h5")


READER = """
import sys, time
sys.path.insert(0, {root!r})
from daq.storage.reader import open_run
run = open_run({path!r})
print("open", flush=True)
time.sleep(2.0)
run.close()
"""


def test_a_reader_in_another_process_never_blocks_the_run_from_finishing(tmp_path):
    """The GUI or a notebook may hold the file open while the run ends: the final status still lands."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    path = tmp_path / "followed.h5"
    readers = []

    def listener(record):
        if isinstance(record, Samples) and not readers:
            proc = subprocess.Popen(
                [sys.executable, "-c", READER.format(root=str(ROOT), path=str(path))], stdout=subprocess.PIPE, text=True
            )
            assert proc.stdout.readline().strip() == "open"
            readers.append(proc)

    res = run_sim(
        EXAMPLES / "ccd_single_plating.toml",
        path,
        99,
        {"capacity": "0.2 mAh/cm^2"},
        subscribers=[listener],
        flush_interval=0.0,
    )
    assert readers[0].poll() is None  # the reader still holds the file as the run closed
    readers[0].wait(timeout=30)
    with open_run(res.path) as run:
        assert run.status == "completed" and run.attrs["outcome"] == "completed"
