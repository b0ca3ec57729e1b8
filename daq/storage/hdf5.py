"""Every run-file open goes through here: one locking mode and one set of library-version bounds.

HDF5 locks a whole file per open, so a reader following a run (the GUI, another process, a user's
notebook) would block the writer's final status update and fail the run's close. Run files are guarded
by their own writer lock instead (RUN.h5.lock, daq.storage.lock.WriterLock), and SWMR keeps readers
consistent while the writer appends. HDF5 refuses to open one file twice in a process with different
locking flags, so the product turns HDF5's file locks off for the whole process
(``HDF5_USE_FILE_LOCKING=FALSE``, read by the library at every open, and taking precedence over the
flag a caller passes): a user's plain ``h5py.File(path)`` beside ``open_run(path)`` then matches.

Library-version bounds: objects are written in the HDF5 1.10 formats (the lowest that has SWMR), so
any HDF5 1.10 or later tool (h5dump, HDFView, MATLAB, Igor) opens the files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py

os.environ["HDF5_USE_FILE_LOCKING"] = "FALSE"

LIBVER = ("v110", "v110")


def open_h5(path: str | Path, mode: str, **kwargs: Any) -> h5py.File:
    return h5py.File(path, mode, locking=False, **kwargs)


def file_access_without_locks() -> h5py.h5p.PropFAID:
    """A file-access property list for low-level opens, with HDF5 file locking off."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_file_locking(False, True)
    return fapl
