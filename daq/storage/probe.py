"""Check a run file before a command relies on it: its structure first, then a full read in a child.

``check_structure`` recognises the damage it can from the file's bytes (signature, superblock checksum,
length, root object header) without the HDF5 library. On other damaged metadata the library can loop
forever without releasing the interpreter, which no in-process watchdog can stop; so the file is then
read completely in a child process that can be timed out (one interpreter start-up, about 1 s). The
bound grows with the file: 15 s plus 1 s per 100 MiB.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from daq.core.errors import DataFileError
from daq.storage.lock import writer_alive
from daq.storage.recovery import check_structure

_PROBE = """
import sys
from daq.storage.reader import open_run
with open_run(sys.argv[1]) as run:
    run.status, run.attrs, run.cell, run.protocol_source, run.cell_source, run.protocol_overrides
    run.cell_overrides, run.resume_point(), run.steps(), run.events()
    for name in run.columns():
        run.column(name)
    spectra = run.spectra()
    for i in range(len(spectra)):
        run.spectrum(i)
"""


def probe_readable(path: Path, timeout: float | None = None, consequence: str = "nothing was changed") -> None:
    """Raise DataFileError if the file's structure is damaged, or reading the whole file hangs or crashes
    the HDF5 library; ``consequence`` tells the operator what was (not) done about it."""
    if not path.is_file():
        return  # the reader names the problem
    check_structure(path, live=writer_alive(path))
    if timeout is None:
        timeout = 15.0 + path.stat().st_size / (100 * 2**20)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE, str(path)], capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise DataFileError(
            f"{path}: reading every table and column of it (checked in a separate process before it is "
            f"used) did not finish within {timeout:.0f} s: the file is damaged in a way the HDF5 library "
            f"cannot report; {consequence}"
        ) from None
    if proc.returncode < 0:
        raise DataFileError(
            f"{path}: reading it crashed the HDF5 library (signal {-proc.returncode}): the file "
            f"is damaged; {consequence}"
        )
