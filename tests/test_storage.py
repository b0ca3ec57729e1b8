"""The run file is readable while written, after a kill, and recoverable for writing."""


import h5py
import numpy as np
import pytest

from daq.errors import DataFileError
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

    def listener(kind, payload):
        if kind == "block" and len(seen) < 3:
            with open_run(path) as run:
                seen.append((run.status, len(run)))

    run_sim(EXAMPLES / "ccd_single_plating.toml", path, 99, listeners=[listener], flush_interval=0.0)
    assert seen and all(status == "running" for status, _ in seen)
    assert seen[-1][1] > 0


def test_killed_run_is_readable_and_marked_interrupted(tmp_path):
    out = kill_run(tmp_path / "killed.h5", "ccd_single_plating.toml", blocks=12)
    assert writer_flag_set(out)
    with open_run(out) as run:
        assert run.status == "interrupted"
        ts = run.timeseries()
        assert len(ts) >= 11 * 256  # everything up to the last flushed block
        assert np.all(np.diff(ts.t) > 0)
    assert clear_writer_flags(out)
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
