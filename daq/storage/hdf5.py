"""Every run-file open goes through here, without HDF5's own file locks.

HDF5 locks a whole file per open, so a reader following a run (the GUI, another process, a user's
notebook) would block the writer's final status update and fail the run's close. Run files are guarded
by their own writer lock instead (RUN.h5.lock, daq.storage.writer.WriterLock), and SWMR keeps readers
consistent while the writer appends. Opening a file twice in one process needs the same locking flag
on both opens, which this one function also guarantees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py


def open_h5(path: str | Path, mode: str, **kwargs: Any) -> h5py.File:
    return h5py.File(path, mode, locking=False, **kwargs)


def file_access_without_locks() -> h5py.h5p.PropFAID:
    """A file-access property list for low-level opens, with HDF5 file locking off."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_file_locking(False, True)
    return fapl
