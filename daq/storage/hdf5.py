"""Every run-file open goes through here: one locking mode and one set of library-version bounds.

Locking: HDF5's own default, the mode a plain ``h5py.File(path)`` uses, because HDF5 refuses to open
one file twice in a process with different locking flags (a notebook using ``open_run`` and
``h5py.File`` side by side). The reader opens a file in SWMR mode whenever a writer holds it
(RUN.h5.lock). A reader in another process, which holds a shared lock, must not stop a run from
recording its end: a write open that finds the file locked by a reader is made without HDF5's lock,
the run's own writer lock (RUN.h5.lock) keeping writers apart.
``HDF5_USE_FILE_LOCKING=FALSE`` in the environment turns locks off for every open alike.

Library-version bounds: objects are written in the HDF5 1.10 formats (the lowest that has SWMR), so
any HDF5 1.10 or later tool (h5dump, HDFView, MATLAB, Igor) opens the files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py

LIBVER = ("v110", "v110")


def open_h5(path: str | Path, mode: str, **kwargs: Any) -> h5py.File:
    """Open with HDF5's default locking; objects written in the HDF5 1.10 formats."""
    if mode == "r":
        return h5py.File(path, mode, **kwargs)
    kwargs.setdefault("libver", LIBVER)
    try:
        return h5py.File(path, mode, **kwargs)
    except OSError as exc:
        if "unable to lock file" not in str(exc):
            raise
        return h5py.File(path, mode, locking=False, **kwargs)


def bound_metadata_cache(f: h5py.File, nbytes: int) -> None:
    """Cap HDF5's metadata cache of ``f`` (chunk indexes, object headers, the heap of the tables'
    strings) at ``nbytes``: the library's adaptive maximum, 32 MiB, lets it grow with a long run."""
    config = f.id.get_mdc_config()
    config.max_size = nbytes
    config.initial_size = min(config.initial_size, nbytes)
    config.min_size = min(config.min_size, config.initial_size)
    f.id.set_mdc_config(config)


def file_access() -> h5py.h5p.PropFAID:
    """A file-access property list for low-level opens, with the same (default) locking as open_h5."""
    return h5py.h5p.create(h5py.h5p.FILE_ACCESS)


def abandon(f: h5py.File) -> None:
    """Close a file whose write failed, without letting HDF5 write to it again: after a failed write
    (a full disk) the library retries its cached metadata at every close and, failing again, crashes the
    process when it exits. Its descriptor is pointed at /dev/null first, so the file on disk stays as
    it was after the last write that succeeded, and the close completes."""
    try:
        fd = f.id.get_vfd_handle()
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, fd)
        os.close(null)
    except Exception:  # noqa: BLE001 - not the POSIX driver: an ordinary close, best effort
        pass
    close_quietly(f)


def close_quietly(f: h5py.File) -> None:
    """Close a file after a failed write; HDF5 may fail again flushing its cache, which changes nothing."""
    try:
        f.close()
    except Exception:  # noqa: BLE001 - the write failure has been reported; closing is best effort
        pass
