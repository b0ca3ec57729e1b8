"""The run file writer: HDF5 in SWMR mode, flushed at least every second, never losing what it has.

Everything a run appends to (timeseries columns, steps, events, spectra) is created before SWMR starts,
because SWMR allows appending to existing datasets only. Static content (cell, protocol, predictions,
instruments) is written first. A lock file beside the run (``RUN.h5.lock``, flock-held by the writer)
tells readers whether a "running" file still has a live writer; if not, the run was interrupted.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from h5py import h5s

import daq
from daq.core.errors import DataFileError
from daq.core.records import Event, Record, RunEnd, RunStart, Samples, Spectrum, StepEnd
from daq.storage import layout as L
from daq.storage.hdf5 import open_h5
from daq.storage.recovery import clear_writer_flags

CHUNK = 8192  # samples per chunk: 64 kB per float column
# Samples buffered before a write even within flush_interval (reached in accelerated time only): each
# append then covers whole chunks, and h5py's fixed cost per call (~0.1 ms per column) is paid a
# quarter as often as at one chunk per write.
FLUSH_SAMPLES = 4 * CHUNK
# Chunk cache per dataset of the writing file. The writer only appends, so it needs the chunk being
# filled and little else; HDF5 2.0's default (8 MiB per dataset) kept up to a million samples of every
# column in memory, so a long run's memory grew with its length.
CHUNK_CACHE = 4 * CHUNK * 8


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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


def _plain(value: Any) -> Any:
    """StrEnum members as plain str: h5py stores str subclasses as fixed-width unicode, which it cannot."""
    return str(value) if isinstance(value, str) else value


def _json(value: Any) -> str:
    return json.dumps(value, default=lambda o: o.__dict__ if hasattr(o, "__dict__") else str(o))


def _appendable(group: h5py.Group, name: str, dtype: Any, chunk: int, attrs: dict[str, str]) -> h5py.Dataset:
    ds = group.create_dataset(name, (0,), maxshape=(None,), chunks=(chunk,), dtype=dtype)
    for key, value in attrs.items():
        ds.attrs[key] = value
    return ds


def _append(ds: h5py.Dataset, rows: np.ndarray) -> None:
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


def _create_transcript(f: h5py.File) -> None:
    g = f.create_group("transcript")
    _appendable(g, "commands", TRANSCRIPT_COMMANDS, 64, {"units": _json(TRANSCRIPT_UNITS)})
    _appendable(g, "reads", TRANSCRIPT_READS, 1024, {"units": _json(TRANSCRIPT_UNITS)})


class RunWriter:
    """Creates a run file and appends to it. Use as a context manager or call close(status)."""

    def __init__(
        self,
        path: str | Path,
        *,
        cell_attrs: dict[str, Any],
        cell_units: dict[str, str],
        protocol_source: str,
        protocol_path: str,
        protocol_resolved: dict[str, Any],
        predictions: dict[str, dict[str, Any]],
        run_attrs: dict[str, Any] | None = None,
        aux_columns: Iterable[str] = (),
        flush_interval: float = 0.5,
        overwrite: bool = False,
        cell_source: str = "",
        protocol_overrides: dict[str, Any] | None = None,
        cell_overrides: dict[str, Any] | None = None,
        transcript: bool = False,
    ):
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise DataFileError(f"{self.path}: already exists; choose another --out or remove it first")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = WriterLock(self.path)
        self.flush_interval = flush_interval
        columns = list(L.TIMESERIES) + [c for c in L.AUX if c in set(aux_columns)]
        f = open_h5(self.path, "w", libver="latest", rdcc_nbytes=CHUNK_CACHE)
        root_attrs = {
            "schema_version": L.SCHEMA_VERSION,
            "software": f"sse-rig {daq.__version__}",
            "status": L.RUNNING,
            "start_time": utc_now(),
            "end_time": "",
            "outcome": "",
            "host": socket.gethostname(),
        }
        root_attrs.update(run_attrs or {})
        for key, value in root_attrs.items():
            f.attrs[key] = value
        cell = f.create_group("cell")
        for key, value in cell_attrs.items():
            cell.attrs[key] = value
        cell.attrs["units"] = _json(cell_units)
        cell.attrs["overrides"] = _json(cell_overrides or {})
        cell.create_dataset("source", data=cell_source, dtype=L.STR)
        f.create_group("instruments")
        proto = f.create_group("protocol")
        proto.create_dataset("source", data=protocol_source, dtype=L.STR)
        proto.create_dataset("resolved", data=_json(protocol_resolved), dtype=L.STR)
        proto.attrs["path"] = protocol_path
        proto.attrs["overrides"] = _json(protocol_overrides or {})
        pred = f.create_group("predictions")
        for name, attrs in predictions.items():
            g = pred.create_group(name)
            for key, value in attrs.items():
                g.attrs[key] = _json(value) if isinstance(value, dict) else value
        ts = f.create_group("timeseries")
        for name in columns:
            dtype, unit, desc = {**L.TIMESERIES, **L.AUX}[name]
            _appendable(ts, name, dtype, CHUNK, {"unit": unit, "description": desc})
        _appendable(f, "steps", L.STEPS, 64, {"units": _json(L.STEP_UNITS)})
        _appendable(f, "events", L.EVENTS, 64, {"units": _json(L.EVENT_UNITS)})
        eis = f.create_group("eis")
        _appendable(eis, "spectra", L.SPECTRA, 64, {"units": _json(L.SPECTRA_UNITS)})
        _appendable(eis, "points", L.POINTS, 1024, {"units": _json(L.POINT_UNITS)})
        if transcript:
            _create_transcript(f)
        self._attach(f)

    def _attach(self, f: h5py.File) -> None:
        self.f = f
        self._instruments = f["instruments"]
        self._ts = dict(f["timeseries"].items())
        # Speed: rows in /timeseries and dataset handles kept here, as next_row() and the transcript ask
        # for them on every block and an h5py lookup or len() costs tens of microseconds.
        self._stored = len(self._ts["t"])
        self._datasets: dict[str, h5py.Dataset] = {}
        self._buffer: list[dict[str, np.ndarray]] = []
        self._buffered = 0
        self._last_flush = time.monotonic()
        self._swmr = False
        self.closed = False
        self._attach_transcript(f)

    @classmethod
    def reopen(cls, path: str | Path, flush_interval: float = 0.5) -> RunWriter:
        """Continue writing an interrupted run in the same file (clears a dead writer's flags)."""
        path = Path(path)
        self = cls.__new__(cls)
        self.path, self.flush_interval = path, flush_interval
        self.lock = WriterLock(path)  # refuses if another process still writes it
        try:
            clear_writer_flags(path)
            f = open_h5(path, "a", libver="latest", rdcc_nbytes=CHUNK_CACHE)
        except OSError as exc:
            self.lock.release()
            raise DataFileError(f"{path}: cannot be reopened for writing ({exc})") from None
        f.attrs["status"] = L.RUNNING
        f.attrs["end_time"] = ""
        self._attach(f)
        return self

    # --- static content that may arrive after creation but before SWMR ------------------------
    def add_instrument(self, role: str, info: dict[str, Any]) -> None:
        if self._swmr:
            raise RuntimeError("instruments must be recorded before acquisition starts")
        if role in self._instruments:  # a resumed run may be on another instrument: keep both
            role = f"{role}_{len(self._instruments)}"
        g = self._instruments.create_group(role)
        for key, value in info.items():
            g.attrs[key] = value

    def start(self) -> None:
        """Switch to SWMR: from now on readers may follow the file; only appends are allowed."""
        self.f.swmr_mode = True
        self._swmr = True
        self.f.flush()

    # --- the engine's record stream: the writer is its required subscriber -----------------------
    def __call__(self, record: Record) -> None:
        match record:
            case Samples(columns):
                self.append(columns)
            case StepEnd():
                self.add_step(dataclasses.asdict(record))
            case Event(t, kind, step, message, data):
                self.add_event(t, kind, step, message, data)
            case Spectrum(_, meta, points):
                self.add_spectrum(meta, points)
            case RunStart():
                self.start()
            case RunEnd(status, outcome, summary):
                self.close(status, outcome, summary)

    # --- appends --------------------------------------------------------------------------------
    def append(self, columns: dict[str, np.ndarray]) -> None:
        """Buffer one block of samples (every column of the layout, same length)."""
        n = len(columns["t"])
        if n:
            self._buffer.append(columns)
            self._buffered += n
        if self._buffered >= FLUSH_SAMPLES or time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()

    def add_step(self, row: dict[str, Any]) -> None:
        row = dict(row)
        row["parameters"] = _json(row.get("parameters", {}))
        _append(self.f["steps"], np.array([tuple(row[k] for k in L.STEPS.names)], dtype=L.STEPS))
        self.flush()

    def add_event(self, t: float, kind: str, step: int, message: str, data: dict[str, Any] | None = None) -> None:
        _append(self.f["events"], np.array([(t, kind, step, message, _json(data or {}))], dtype=L.EVENTS))
        self.flush()

    def add_spectrum(self, meta: dict[str, Any], points: np.ndarray) -> int:
        """Store one spectrum (``points`` with the POINTS dtype, spectrum field filled here)."""
        spectra, pts = self.f["eis/spectra"], self.f["eis/points"]
        index = len(spectra)
        points = points.copy()
        points["spectrum"] = index
        row = dict(meta, index=index, first_point=len(pts), n_points=len(points))
        _append(pts, points)
        _append(spectra, np.array([tuple(row[k] for k in L.SPECTRA.names)], dtype=L.SPECTRA))
        self.flush()
        return index

    def flush(self) -> None:
        if self._buffer:
            for name, ds in self._ts.items():
                parts = [b[name] if name in b else np.full(len(b["t"]), np.nan) for b in self._buffer]
                _append(ds, np.concatenate(parts).astype(ds.dtype, copy=False))
            self._buffer, self._buffered = [], 0
            self._stored = len(self._ts["t"])
        self._flush_transcript()
        self.f.flush()
        self._last_flush = time.monotonic()

    # --- instrument transcript: rows are buffered and written with the samples -------------------
    def _attach_transcript(self, f: h5py.File) -> None:
        self.transcript = "transcript" in f
        self._tx_commands: list[tuple] = []
        self._tx_reads: list[tuple] = []
        self._tx_seq = len(f["transcript/commands"]) + len(f["transcript/reads"]) if self.transcript else 0

    def add_command(
        self,
        t: float,
        method: str,
        arguments: dict[str, Any],
        outcome: str = "ok",
        error: str = "",
        latency: float = 0.0,
    ) -> None:
        """One command sent to the potentiostat (run time ``t``, s; ``latency``: wall time of the call, s)."""
        if self.transcript and not self.closed:
            self._tx_commands.append((self._tx_seq, t, method, _json(arguments), outcome, error, latency))
            self._tx_seq += 1

    def add_read(self, t: float, kind: str, first: int, n: int, latency: float = 0.0) -> None:
        """One data block: ``kind`` "samples" (rows ``first``.. of /timeseries) or "impedance" (rows of
        /eis/points)."""
        if self.transcript and not self.closed:
            self._tx_reads.append((self._tx_seq, t, kind, first, n, latency))
            self._tx_seq += 1

    def next_row(self, kind: str) -> int:
        """Where the next block will be stored: row of /timeseries ("samples") or /eis/points ("impedance")."""
        return self._stored + self._buffered if kind == "samples" else len(self._dataset("eis/points"))

    def _dataset(self, name: str) -> h5py.Dataset:
        """``self.f[name]``, looked up once."""
        if name not in self._datasets:
            self._datasets[name] = self.f[name]
        return self._datasets[name]

    def _flush_transcript(self) -> None:
        if self._tx_commands:
            _append(self._dataset("transcript/commands"), np.array(self._tx_commands, dtype=TRANSCRIPT_COMMANDS))
            self._tx_commands = []
        if self._tx_reads:
            _append(self._dataset("transcript/reads"), np.array(self._tx_reads, dtype=TRANSCRIPT_READS))
            self._tx_reads = []

    def discard(self) -> None:
        """Remove a new run file that never recorded anything (the run was refused after connecting)."""
        if not self.closed:
            self.closed = True
            self.f.close()
            self.path.unlink(missing_ok=True)
            self.lock.release()

    def close(self, status: str = L.COMPLETED, outcome: str = "", analysis: dict[str, Any] | None = None) -> None:
        """Flush, leave SWMR, then record the final status (and post-run analysis) as attributes."""
        if self.closed:
            return
        self.closed = True
        try:
            self.flush()
        finally:
            self.f.close()
        try:
            with open_h5(self.path, "a") as f:
                f.attrs["status"] = str(status)
                f.attrs["outcome"] = str(outcome)
                f.attrs["end_time"] = utc_now()
                if analysis:
                    g = f.require_group("analysis")
                    for key, value in analysis.items():
                        g.attrs[key] = _json(value) if isinstance(value, (dict, list)) else _plain(value)
        finally:
            self.lock.release()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(L.INTERRUPTED if exc[0] else L.COMPLETED)
