"""The writer lock beside a run (``RUN.h5.lock``, flock-held while a process writes the run).

It tells readers whether a file whose end is not recorded still has a live writer, and keeps two
processes from writing one run.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from daq.core.errors import DataFileError


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


class WriterLock:
    """An flock on ``RUN.h5.lock`` held while a process writes the run."""

    def __init__(self, path: Path):
        self.path = lock_path(path)
        self._fh = open(self.path, "a+")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.close()
            raise DataFileError(f"{path}: another process is writing this run") from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(f"{socket.gethostname()} {os.getpid()}\n")
        self._fh.flush()

    def release(self) -> None:
        if not self._fh.closed:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self.path.unlink(missing_ok=True)


def writer_alive(path: Path) -> bool:
    """True while some process holds the run's writer lock."""
    lp = lock_path(path)
    if not lp.exists():
        return False
    with open(lp) as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False
