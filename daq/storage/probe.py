"""Read a run file in a child process before a command relies on it.

On some damaged metadata the HDF5 library loops forever without releasing the interpreter, which no
in-process watchdog can stop; a child process can be timed out. Costs one interpreter start-up.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from daq.core.errors import DataFileError

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


def probe_readable(path: Path, timeout: float = 60.0, consequence: str = "nothing was changed") -> None:
    """Raise DataFileError if reading the whole file hangs or crashes the HDF5 library; ``consequence``
    tells the operator what was (not) done about it."""
    if not path.is_file():
        return  # the reader names the problem
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE, str(path)], capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise DataFileError(
            f"{path}: reading it did not finish within {timeout:g} s: the file is damaged in a way "
            f"the HDF5 library cannot report; {consequence}"
        ) from None
    if proc.returncode < 0:
        raise DataFileError(
            f"{path}: reading it crashed the HDF5 library (signal {-proc.returncode}): the file "
            f"is damaged; {consequence}"
        )
