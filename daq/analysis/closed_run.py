"""A closed run file read as plain arrays (h5py and numpy only).

What the analysis at the end of every run needs (the cell's attributes, the samples' columns, the
step and event tables) without pandas, so ``daq run`` does not pay pandas' import for a run that has
no spectrum to fit. The file is one this process has just finished writing (no live writer, no SWMR);
other files are read through ``daq.storage.reader.open_run``, which checks them first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from daq.storage.hdf5 import open_h5


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


class Table:
    """The rows of a compound dataset or array; a column by ``table.name`` or ``table["name"]`` (text
    decoded to str)."""

    def __init__(self, rows: h5py.Dataset | np.ndarray):
        self._rows = rows[()]

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, name: str) -> np.ndarray:
        column = self._rows[name]
        if column.dtype.kind in "OS":
            return np.array([str(_text(v)) for v in column], dtype=object)
        return column

    def __getattr__(self, name: str) -> np.ndarray:
        if name.startswith("_") or name not in (self._rows.dtype.names or ()):
            raise AttributeError(name)
        return self[name]


class ClosedRun:
    """A finished run file: ``cell``, ``len``, ``column``, ``steps()``, ``events()`` and ``f`` (h5py)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.f = open_h5(self.path, "r")

    def __enter__(self) -> ClosedRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()

    @property
    def cell(self) -> dict[str, Any]:
        return {k: _text(v) for k, v in self.f["cell"].attrs.items() if k != "units"}

    def __len__(self) -> int:
        return len(self.f["timeseries/t"])

    def column(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        return self.f["timeseries"][name][start:stop]

    def steps(self) -> Table:
        return Table(self.f["steps"])

    def events(self) -> Table:
        return Table(self.f["events"])

    def spectra_count(self) -> int:
        return len(self.f["eis/spectra"]) if "eis/spectra" in self.f else 0
