"""A closed run file read as plain arrays (h5py and numpy only).

What the analysis at the end of every run needs (the cell's attributes, the samples' columns, the
step and event tables) without pandas, so ``daq run`` does not pay pandas' import for a run that has
no spectrum to fit. The file is one this process has just finished writing (no live writer, no SWMR);
other files are read through ``daq.storage.reader.open_run``, which checks them first.

Memory stays flat with run length: the analysis reads columns a slice at a time and tables a block of
rows at a time (``table_blocks``), each once and in order, so the file is opened without HDF5's chunk
cache (which would otherwise keep the last chunks of every column read, 8 MiB each with HDF5 2.0).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from daq.storage.hdf5 import bound_metadata_cache, open_h5

# Chunk cache of a file opened for the analysis: none, every chunk is read once, in order.
READ_CACHE_BYTES = 0
# HDF5's metadata cache of that file: reading a table's strings loads the global heap that holds them,
# which the library's adaptive cache would keep whole (up to 32 MiB) for a long run.
READ_METADATA_BYTES = 2**19
# Rows of a table (steps, events) read at a time.
TABLE_ROWS = 4096


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _decoded(column: np.ndarray) -> np.ndarray:
    if column.dtype.kind in "OS":
        return np.array([str(_text(v)) for v in column], dtype=object)
    return column


def table_blocks(
    ds: h5py.Dataset, names: Sequence[str], rows: int = TABLE_ROWS
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """(first row, {name: column}) of the compound dataset ``ds``, ``rows`` rows at a time, reading
    only the fields ``names`` (text decoded to str): a long run's table is never held whole."""
    for lo in range(0, len(ds), rows):
        block = ds.fields(list(names))[lo : lo + rows]
        yield lo, {name: _decoded(block[name]) for name in names}


class Table:
    """The rows of a compound dataset or array; a column by ``table.name`` or ``table["name"]`` (text
    decoded to str)."""

    def __init__(self, rows: h5py.Dataset | np.ndarray):
        self._rows = rows[()]

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, name: str) -> np.ndarray:
        return _decoded(self._rows[name])

    def __getattr__(self, name: str) -> np.ndarray:
        if name.startswith("_") or name not in (self._rows.dtype.names or ()):
            raise AttributeError(name)
        return self[name]


class ClosedRun:
    """A finished run file: ``cell``, ``len``, ``column``, ``steps()``, ``events()`` and ``f`` (h5py)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.f = open_h5(self.path, "r", rdcc_nbytes=READ_CACHE_BYTES)
        bound_metadata_cache(self.f, READ_METADATA_BYTES)

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
