"""The structure of a new run file: groups, appendable datasets, static content (docs/hdf5-layout.md).

Everything a run appends to is created here, before SWMR starts (SWMR allows appends to existing
datasets only).
"""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime
from typing import Any

import h5py
import numpy as np
from h5py import h5s

import daq
from daq.storage import layout as L


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def plain(value: Any) -> Any:
    """StrEnum members as plain str: h5py stores str subclasses as fixed-width unicode, which it cannot."""
    return str(value) if isinstance(value, str) else value


def to_json(value: Any) -> str:
    return json.dumps(value, default=lambda o: o.__dict__ if hasattr(o, "__dict__") else str(o))


def appendable(group: h5py.Group, name: str, dtype: Any, chunk: int, attrs: dict[str, str]) -> h5py.Dataset:
    ds = group.create_dataset(name, (0,), maxshape=(None,), chunks=(chunk,), dtype=dtype)
    for key, value in attrs.items():
        ds.attrs[key] = value
    return ds


def append_rows(ds: h5py.Dataset, rows: np.ndarray) -> None:
    """Append ``rows`` (the dataset's dtype) at the end of a 1-D dataset.

    Written through h5py's low-level calls: ``ds[n:] = rows`` spends longer in h5py's selection
    machinery than HDF5 takes to write a 32768-sample column, and runs append ten columns at a time.
    """
    m = len(rows)
    if not m:
        return
    n = ds.id.get_space().shape[0]
    ds.id.set_extent((n + m,))
    file_space = ds.id.get_space()
    file_space.select_hyperslab((n,), (m,))
    ds.id.write(h5s.create_simple((m,)), file_space, np.ascontiguousarray(rows))


def append_chunks(ds: h5py.Dataset, column: np.ndarray, stored: int, chunk: int) -> None:
    """Append ``column`` to a 1-D dataset of ``stored`` rows chunked by ``chunk``: whole chunks are
    handed to HDF5 as they are (direct chunk writes: no chunk cache, no conversion, no selection), the
    rest (the end of a part-filled chunk, a trailing part-chunk) through an ordinary write."""
    m = len(column)
    head = min(m, (-stored) % chunk)  # rows that fill the part-filled last chunk
    whole = (m - head) // chunk
    if head:
        append_rows(ds, column[:head])
    if whole:
        start = stored + head
        ds.id.set_extent((start + whole * chunk,))
        for k in range(whole):
            piece = column[head + k * chunk : head + (k + 1) * chunk]
            ds.id.write_direct_chunk((start + k * chunk,), memoryview(np.ascontiguousarray(piece)).cast("B"))
    if head + whole * chunk < m:
        append_rows(ds, column[head + whole * chunk :])


# --- instrument transcript (/transcript, docs/hdf5-layout.md) ------------------------------------
# Every command sent to the potentiostat and every data block it returned, in call order (``seq`` runs
# across both tables), so a run can be replayed against the recording (simulators/replay.py).
TRANSCRIPT_COMMANDS = np.dtype(
    [
        ("seq", "i8"),
        ("t", "f8"),
        ("method", L.STR),
        ("arguments", L.STR),
        ("outcome", L.STR),
        ("error", L.STR),
        ("latency", "f8"),
    ]
)
TRANSCRIPT_READS = np.dtype(
    [("seq", "i8"), ("t", "f8"), ("kind", L.STR), ("first", "i8"), ("n", "i8"), ("latency", "f8")]
)
TRANSCRIPT_UNITS = {"t": "s", "latency": "s", "arguments": "JSON, SI units"}


def create_transcript(f: h5py.File) -> None:
    g = f.create_group("transcript")
    appendable(g, "commands", TRANSCRIPT_COMMANDS, 64, {"units": to_json(TRANSCRIPT_UNITS)})
    appendable(g, "reads", TRANSCRIPT_READS, 1024, {"units": to_json(TRANSCRIPT_UNITS)})


def create_structure(
    f: h5py.File,
    run_attrs: dict[str, Any],
    columns: list[str],
    chunk: int,
    *,
    cell: tuple[dict[str, Any], dict[str, str], str, dict[str, Any]],
    protocol: tuple[str, str, dict[str, Any], dict[str, Any]],
    predictions: dict[str, dict[str, Any]],
    transcript: bool,
) -> None:
    """Everything of a new run file but its samples, tables' rows and instruments."""
    root_attrs = {
        "schema_version": L.SCHEMA_VERSION,
        "software": f"sse-rig {daq.__version__}",
        "status": L.INTERRUPTED,
        "status_note": L.STATUS_NOTE,
        "start_time": utc_now(),
        "end_time": "",
        "outcome": "",
        "host": socket.gethostname(),
    }
    root_attrs.update(run_attrs)
    for key, value in root_attrs.items():
        f.attrs[key] = plain(value)
    cell_attrs, cell_units, cell_source, cell_overrides = cell
    g = f.create_group("cell")
    for key, value in cell_attrs.items():
        g.attrs[key] = plain(value)
    g.attrs["units"] = to_json(cell_units)
    g.attrs["overrides"] = to_json(cell_overrides)
    g.create_dataset("source", data=cell_source, dtype=L.STR)
    f.create_group("instruments")
    source, path, resolved, overrides = protocol
    proto = f.create_group("protocol")
    proto.create_dataset("source", data=source, dtype=L.STR)
    proto.create_dataset("resolved", data=to_json(resolved), dtype=L.STR)
    proto.attrs["path"] = path
    proto.attrs["overrides"] = to_json(overrides)
    pred = f.create_group("predictions")
    for name, attrs in predictions.items():
        g = pred.create_group(name)
        for key, value in attrs.items():
            g.attrs[key] = to_json(value) if isinstance(value, dict) else plain(value)
    ts = f.create_group("timeseries")
    for name in columns:
        dtype, unit, desc = {**L.TIMESERIES, **L.AUX}[name]
        appendable(ts, name, dtype, chunk, {"unit": unit, "description": desc})
    appendable(f, "steps", L.STEPS, 64, {"units": to_json(L.STEP_UNITS)})
    appendable(f, "events", L.EVENTS, 64, {"units": to_json(L.EVENT_UNITS)})
    eis = f.create_group("eis")
    appendable(eis, "spectra", L.SPECTRA, 64, {"units": to_json(L.SPECTRA_UNITS)})
    appendable(eis, "points", L.POINTS, 1024, {"units": to_json(L.POINT_UNITS)})
    if transcript:
        create_transcript(f)
