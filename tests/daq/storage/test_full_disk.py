"""Runs on a real small filesystem (tmpfs, mounted by the test as root): refused before current, or
stopped with the current off, the file intact and resumable once copied to a larger disk."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from daq.core.errors import ConfigError
from daq.storage import space
from daq.storage.reader import open_run
from protocols.loader import load_protocol
from tests.conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("mount") is None,
    reason="mounting a small tmpfs needs root (the full-disk tests make a real 1 MiB and 4 MiB filesystem)",
)


@pytest.fixture
def small_disk(tmp_path):
    made = []

    def mount(size: str) -> Path:
        where = tmp_path / f"disk-{size}"
        where.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
        made.append(where)
        return where

    yield mount
    for where in made:
        subprocess.run(["umount", "-l", str(where)], check=False)


def daq(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "daq.cli", *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )


@pytest.mark.parametrize("size", ["1m", "4m"])
def test_a_run_too_large_for_the_disk_is_refused_before_current_with_the_figures(small_disk, size):
    disk = small_disk(size)
    proc = daq("run", "--sim", str(EXAMPLES / "asymmetric_cycling.toml"), "--out", str(disk / "run.h5"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "disk is too full" in lines[0] and "MiB are free" in lines[0]
    assert not any(disk.iterdir())  # no file: nothing was created, the instrument was not driven


def test_estimate_is_close_to_the_file_a_run_makes(tmp_path):
    protocol = load_protocol(EXAMPLES / "ccd_single_plating.toml")
    proc = daq("run", "--sim", str(EXAMPLES / "ccd_single_plating.toml"), "--out", str(tmp_path / "r.h5"))
    assert proc.returncode == 0, proc.stderr
    size = (tmp_path / "r.h5").stat().st_size
    estimate = space.estimate_bytes(protocol, ["pressure", "force"])
    assert size <= estimate <= 4 * size + space.BASE_BYTES
    with pytest.raises(ConfigError, match="GiB are free"):
        space.check_free_space(tmp_path / "r.h5", 2**62)


FILL_AFTER = """
import sys
sys.path.insert(0, {root!r})
from pathlib import Path
from daq.core.records import Samples
blocks = []
def fill(record):
    if isinstance(record, Samples):
        blocks.append(len(record.columns["t"]))
        if len(blocks) == 4:  # another process fills the disk, leaving only a little
            free = __import__("daq.storage.space", fromlist=["x"]).free_bytes({disk!r})
            Path({disk!r}, "filler").write_bytes(b"x" * max(0, free - 100_000))
from tests.conftest import run_sim, EXAMPLES
cell_source = (EXAMPLES / "cells" / "li6ps5cl_99.toml").read_text()
result = run_sim(
    EXAMPLES / "ccd_single_plating.toml", Path({out!r}), subscribers=[fill], flush_interval=0.0, cell_source=cell_source
)
print(result.status, "|", result.outcome, "|", result.message)
"""


def test_a_disk_filled_mid_run_stops_it_with_current_off_and_the_file_resumable(small_disk, tmp_path):
    disk = small_disk("4m")
    out = disk / "run.h5"
    code = FILL_AFTER.format(root=str(ROOT), disk=str(disk), out=str(out))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    status, outcome, message = (s.strip() for s in proc.stdout.strip().splitlines()[-1].split("|"))
    assert (status, outcome) == ("failed", "fault")
    assert "is full" in message and str(disk) in message
    # plain h5py opens it, and it says it is unfinished
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "interrupted"
        events = f["events"][:]
    faults = [e for e in events if e["kind"] == b"fault"]
    assert len(faults) == 1 and b"is full" in faults[0]["message"]
    with open_run(out) as run:
        assert run.status == "interrupted"
        stored = len(run)
        t = run.column("t")
        assert stored > 0 and np.all(np.diff(t) > 0)
    # copied to a larger disk, resume completes it
    bigger = tmp_path / "bigger.h5"
    shutil.copy(out, bigger)
    proc = daq("resume", str(bigger), "--sim")
    assert proc.returncode == 0, proc.stderr
    with open_run(bigger) as run:
        assert run.status == "completed"
        assert len(run) > stored
        kinds = list(run.events().kind)
        assert "fault" in kinds and "resumed_run" in kinds


def test_a_failing_hdf5_write_is_one_error_naming_the_disk_and_no_crash(small_disk):
    """With the free-space check bypassed, the HDF5 library itself meets the full disk."""
    disk = small_disk("1m")
    out = disk / "run.h5"
    code = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from daq.storage import space
real = space.need_space
space.need_space = lambda path, n, reserve=0: None  # as if the disk filled between check and write
space.check_free_space = lambda path, n: None
from tests.conftest import run_sim, EXAMPLES
result = run_sim(EXAMPLES / "ccd_single_plating.toml", Path({str(out)!r}), flush_interval=0.0,
                 overrides={{"capacity": "40 mAh/cm^2"}})
print(result.status, "|", result.outcome, "|", result.message)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 2), (proc.returncode, proc.stderr[-2000:])  # never a signal (segfault)
    assert "Traceback" not in proc.stderr
    line = proc.stdout.strip().splitlines()[-1]
    assert "fault" in line and "is full" in line
    with open_run(out) as run:  # readable, and not claiming to be complete
        assert run.status == "interrupted"
        assert len(run) > 0
