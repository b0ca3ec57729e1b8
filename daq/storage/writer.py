"""The run file writer: HDF5 in SWMR mode, flushed once per flush interval, never losing what it has.

Everything a run appends to (timeseries columns, steps, events, spectra) is created before SWMR starts,
because SWMR allows appending to existing datasets only. Static content (cell, protocol, predictions,
instruments) is written first, under a temporary name in the same folder; the file gets its name once
its structure is complete, so a run file is valid from its first byte. A lock file beside the run
(``RUN.h5.lock``, flock-held by the writer) tells readers whether a file still has a live writer.

The root attribute ``status`` reads "interrupted" until the writer records the end ("completed",
"failed"): a file whose writer was killed says so to any reader, and ``open_run`` reports "running"
while the writer's lock is held. After every flush the superblock's "open for write" flags are cleared,
so a killed run opens with plain ``h5py.File(path, "r")``.

Samples, steps, events, spectra and transcript rows are buffered and written together at most once per
flush interval (a timer writes what waits when no further record comes): a killed process loses at most
the last flush interval. Before every write the free space is checked, so a full disk stops the run
with the file intact (``daq.storage.space``).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from daq.core.errors import DataFileError
from daq.core.records import Event, Record, RunEnd, RunStart, Samples, Spectrum, StepEnd
from daq.storage import layout as L
from daq.storage import space
from daq.storage.hdf5 import LIBVER, abandon, bound_metadata_cache, close_quietly, open_h5
from daq.storage.lock import WriterLock, lock_path, writer_alive
from daq.storage.recovery import clear_writer_flags, refuse_existing
from daq.storage.space import chunk_samples
from daq.storage.structure import (
    TRANSCRIPT_COMMANDS,
    TRANSCRIPT_READS,
    append_chunks,
    append_rows,
    create_structure,
    plain,
    to_json,
    utc_now,
)

__all__ = ["RunWriter", "WriterLock", "lock_path", "refuse_existing", "utc_now", "writer_alive"]

# Bytes of metadata a flush may add (chunk index, object headers), for the free-space check.
FLUSH_METADATA_BYTES = 64 * 1024
# HDF5's metadata cache (chunk indexes, object headers, the heap of the tables' strings) may grow to
# this size; the library's own adaptive maximum (32 MiB) would let a long run's metadata pile up.
METADATA_CACHE_BYTES = 2**20
# Chunks of a table (steps, events, spectra, transcript) kept in HDF5's chunk cache: the one being
# filled by appends, and the one before it.
TABLE_CACHE_CHUNKS = 2
CACHE_SLOTS = 101  # hash slots of a table's chunk cache (a prime, well above TABLE_CACHE_CHUNKS)


def open_table(f: h5py.File, name: str) -> h5py.Dataset:
    """A table's handle with a chunk cache of TABLE_CACHE_CHUNKS chunks: the file's cache, sized for a
    column's chunk, would otherwise keep a long run's rows of every table in memory."""
    nbytes = TABLE_CACHE_CHUNKS * _chunk_bytes(f, name)
    dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
    dapl.set_chunk_cache(CACHE_SLOTS, nbytes, 1.0)  # HDF5 applies it if no other handle is open
    return h5py.Dataset(h5py.h5d.open(f.id, name.encode(), dapl))


def _chunk_bytes(f: h5py.File, name: str) -> int:
    ds = f[name]  # closed on return, so that open_table's own settings take effect
    return int(ds.chunks[0]) * ds.dtype.itemsize


def temp_path(path: Path) -> Path:
    """Where a run file is built before it gets its name (same folder, so the rename is atomic)."""
    return path.with_name(f".{path.name}.creating")


class RunWriter:
    """Creates a run file and appends to it. Use as a context manager or call close(status).

    ``sample_rate`` (samples per wall-clock second; None when the run is computed as fast as possible)
    and ``expected_samples`` size the chunks (chunk_samples); every failed write raises one
    DataFileError, a full disk naming the disk."""

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
        sample_rate: float | None = None,
        expected_samples: int | None = None,
    ):
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            refuse_existing(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = WriterLock(self.path)
        self.flush_interval = flush_interval
        self.chunk = chunk_samples(sample_rate, flush_interval, expected_samples)
        columns = list(L.TIMESERIES) + [c for c in L.AUX if c in set(aux_columns)]
        tmp = temp_path(self.path)
        try:
            space.need_space(self.path, space.BASE_BYTES)
            tmp.unlink(missing_ok=True)  # left by a run killed while creating (the lock says none is)
            f = open_h5(tmp, "w", libver=LIBVER, rdcc_nbytes=self._cache_bytes(), rdcc_w0=1.0)
        except (OSError, DataFileError) as exc:
            self.lock.release()
            raise self._as_error(exc, "cannot be created") from None
        try:
            create_structure(
                f,
                dict(run_attrs or {}),
                columns,
                self.chunk,
                cell=(cell_attrs, cell_units, cell_source, cell_overrides or {}),
                protocol=(protocol_source, protocol_path, protocol_resolved, protocol_overrides or {}),
                predictions=predictions,
                transcript=transcript,
            )
            f.flush()
            os.replace(tmp, self.path)  # the name appears once the structure is complete
        except BaseException as exc:
            close_quietly(f)
            tmp.unlink(missing_ok=True)
            self.lock.release()
            if isinstance(exc, Exception):
                raise self._as_error(exc, "cannot be created") from None
            raise
        self._attach(f)

    def _cache_bytes(self) -> int:
        """HDF5's chunk cache per dataset: the writer only appends, whole chunks directly (past the
        cache), so it needs the one chunk being filled; more would keep a long run's samples in memory."""
        return self.chunk * 8

    def _attach(self, f: h5py.File) -> None:
        self.f = f
        bound_metadata_cache(f, METADATA_CACHE_BYTES)
        self._instruments = f["instruments"]
        self._ts = dict(f["timeseries"].items())
        # Speed: dataset handles and row counts kept here, as an h5py lookup or len() costs tens of
        # microseconds and next_row() is asked on every block.
        self._datasets: dict[str, h5py.Dataset] = {
            name: open_table(f, name) for name in ("steps", "events", "eis/spectra", "eis/points") if name in f
        }
        self._rows = {name: len(ds) for name, ds in self._datasets.items()}
        self._stored = len(self._ts["t"])
        self._bps = sum(ds.dtype.itemsize for ds in self._ts.values())
        # Samples wait in one array per column of one chunk (allocated on the first samples), copied in
        # as blocks arrive and handed to HDF5 whole when full: the writer's memory is this, whatever the
        # run length, and the same few MiB are reused (fresh pages for a bigger buffer cost the kernel's
        # page faults and zeroing on every run, and the copies run from a cold cache).
        self._capacity = self.chunk
        self._columns: dict[str, np.ndarray] = {}
        self._buffered = 0
        self._tables: dict[str, list[np.ndarray]] = {name: [] for name in self._datasets}
        self._last_flush = time.monotonic()
        self._timer: threading.Timer | None = None
        self._mutex = threading.RLock()
        self._swmr = False
        self._failure: DataFileError | None = None  # a write failed: no more HDF5 writes
        self._disk_full = False
        self._intact = True  # after a failure: True if it was refused before writing (file as last flushed)
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
            with open_h5(path, "r") as f:
                self.chunk = int(f["timeseries/t"].chunks[0])
            f = open_h5(path, "a", libver=LIBVER, rdcc_nbytes=self._cache_bytes(), rdcc_w0=1.0)
            f.attrs["status"] = L.INTERRUPTED
            f.attrs["end_time"] = ""
        except (OSError, KeyError, DataFileError) as exc:
            self.lock.release()
            raise DataFileError(f"{path}: cannot be reopened for writing ({exc})") from None
        self._attach(f)
        return self

    def _as_error(self, exc: BaseException, what: str) -> DataFileError:
        """One DataFileError for a failed write: the full disk named, or the file and what failed."""
        if isinstance(exc, DataFileError):
            return exc
        if space.is_disk_full(exc):
            self._disk_full = True
            return space.disk_full(self.path)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return DataFileError(f"{self.path}: {what}: {first}")

    # --- static content that may arrive after creation but before SWMR ------------------------
    def add_instrument(self, role: str, info: dict[str, Any]) -> None:
        if self._swmr:
            raise RuntimeError("instruments must be recorded before acquisition starts")
        if role in self._instruments:  # a resumed run may be on another instrument: keep both
            role = f"{role}_{len(self._instruments)}"
        with self._writing("recording the instruments failed"):
            g = self._instruments.create_group(role)
            for key, value in info.items():
                g.attrs[key] = value

    def start(self) -> None:
        """Switch to SWMR: from now on readers may follow the file; only appends are allowed."""
        with self._writing("starting the recording failed"):
            self.f.swmr_mode = True
            self._swmr = True
        self.flush()

    # --- the engine's record stream: the writer is its required subscriber -----------------------
    def __call__(self, record: Record) -> None:
        match record:
            case Samples(columns):
                self.append(columns)
            case StepEnd():  # a shallow dict: dataclasses.asdict would deep-copy the parameters
                self.add_step({f.name: getattr(record, f.name) for f in dataclasses.fields(record)})
            case Event(t, kind, step, message, data):
                self.add_event(t, kind, step, message, data)
            case Spectrum(_, meta, points):
                self.add_spectrum(meta, points)
            case RunStart():
                self.start()
            case RunEnd(status, outcome, summary):
                self.close(status, outcome, summary)

    # --- appends: buffered, written at most once per flush interval ------------------------------
    def append(self, columns: dict[str, np.ndarray]) -> None:
        """Buffer one block of samples (every column of the layout, same length)."""
        with self._mutex:
            if self.closed:
                raise DataFileError(f"{self.path}: the run file is already closed")
            if self._failure is not None:
                raise self._failure
            n, done = len(columns["t"]), 0
            if self._buffered == 0 and self._stored % self.chunk == 0 and n >= self.chunk:
                done = self._write_through(columns, n - n % self.chunk)
            while done < n:
                if self._buffered == self._capacity:  # whole chunks out, the part-chunk stays
                    self.flush(durable=False)
                take = min(n - done, self._capacity - self._buffered)
                self._take(columns, done, done + take)
                done += take
            self._due()

    def _write_through(self, columns: dict[str, np.ndarray], n: int) -> int:
        """Hand the block's first ``n`` samples (whole chunks, nothing waiting before them) to HDF5 as
        they are, without copying them into the buffer first: an accelerated run's big blocks cost one
        copy less. Written as a flush without HDF5's flush writes them; returns ``n``."""
        with self._writing("writing failed"):
            space.need_space(self.path, n * self._bps + FLUSH_METADATA_BYTES, space.RESERVE_BYTES)
            for name, ds in self._ts.items():
                values = columns.get(name)
                column = np.full(n, np.nan, ds.dtype) if values is None else values[:n].astype(ds.dtype, copy=False)
                append_chunks(ds, column, self._stored, self.chunk)
        self._stored += n
        return n

    def _take(self, columns: dict[str, np.ndarray], start: int, stop: int) -> None:
        """Copy samples ``start:stop`` of a block behind the waiting ones (NaN for a column it lacks)."""
        if not self._columns:
            self._columns = {name: np.empty(self._capacity, ds.dtype) for name, ds in self._ts.items()}
        at, end = self._buffered, self._buffered + stop - start
        for name, column in self._columns.items():
            values = columns.get(name)
            np.copyto(column[at:end], np.nan if values is None else values[start:stop], casting="unsafe")
        self._buffered = end

    def _row(self, name: str, row: np.ndarray) -> None:
        with self._mutex:
            if self.closed:  # never accept a row that can no longer reach the file
                raise DataFileError(f"{self.path}: the run file is already closed")
            if self._failure is not None and not self._intact:
                raise self._failure
            self._tables[name].append(row)
            self._due()

    def add_step(self, row: dict[str, Any]) -> None:
        row = dict(row)
        row["parameters"] = to_json(row.get("parameters", {}))
        self._row("steps", np.array([tuple(plain(row[k]) for k in L.STEPS.names)], dtype=L.STEPS))

    def add_event(self, t: float, kind: str, step: int, message: str, data: dict[str, Any] | None = None) -> None:
        self._row("events", np.array([(t, str(kind), step, message, to_json(data or {}))], dtype=L.EVENTS))

    def add_spectrum(self, meta: dict[str, Any], points: np.ndarray) -> int:
        """Store one spectrum (``points`` with the POINTS dtype, spectrum field filled here)."""
        with self._mutex:
            index = self._pending("eis/spectra")
            points = points.copy()
            points["spectrum"] = index
            row = dict(meta, index=index, first_point=self._pending("eis/points"), n_points=len(points))
            self._tables["eis/points"].append(points)
            spectrum = np.array([tuple(plain(row[k]) for k in L.SPECTRA.names)], dtype=L.SPECTRA)
            self._row("eis/spectra", spectrum)
            return index

    def _pending(self, name: str) -> int:
        """Rows of table ``name`` once what is buffered is written."""
        return self._rows[name] + sum(len(r) for r in self._tables[name])

    def _due(self) -> None:
        """Flush once the flush interval has passed; write (without HDF5's flush) when a whole chunk
        waits; otherwise make sure a timer writes what waits by the end of the interval."""
        waited = time.monotonic() - self._last_flush
        if waited >= self.flush_interval:
            self.flush()
        elif self._buffered >= self.chunk:
            self.flush(durable=False)
        elif self._timer is None and self._swmr:
            self._timer = threading.Timer(self.flush_interval - waited, self._flush_on_time)
            self._timer.daemon = True
            self._timer.start()

    def _flush_on_time(self) -> None:
        with self._mutex:
            self._timer = None
            if self.closed or self._failure is not None:
                return
            if time.monotonic() - self._last_flush < self.flush_interval:  # a record flushed meanwhile
                if self._buffered or any(self._tables.values()):
                    self._due()
                return
            try:
                self.flush()
            except DataFileError:
                pass  # kept in self._failure: the engine's next record raises it

    def flush(self, durable: bool = True) -> None:
        """Write everything buffered, then (``durable``) make it durable with HDF5's flush."""
        with self._mutex:
            if self._failure is not None and not self._intact:
                raise self._failure
            samples_first = self._failure is None
            with self._writing("writing failed"):
                reserve = space.RESERVE_BYTES if samples_first else 0  # the reserve is for the end
                space.need_space(self.path, self._bytes_waiting(samples_first), reserve)
                if samples_first:
                    self._write_samples(whole_chunks_only=not durable)
                for name, rows in self._tables.items():
                    if rows:
                        append_rows(self._datasets[name], np.concatenate(rows))
                        self._rows[name] += sum(len(r) for r in rows)
                        self._tables[name] = []
                self._flush_transcript()
                if not durable:
                    return
                self.f.flush()
            self._last_flush = time.monotonic()
            if self._swmr:  # a killed writer leaves a file plain readers can open
                clear_writer_flags(self.path)

    def _write_samples(self, whole_chunks_only: bool = False) -> None:
        """Write the waiting samples; ``whole_chunks_only``: keep a trailing part-chunk waiting (it is
        written with the next append, or at the next flush)."""
        n = self._buffered
        if whole_chunks_only:
            n = (self._stored + n) // self.chunk * self.chunk - self._stored
        if n <= 0:
            return
        rest = self._buffered - n
        for name, ds in self._ts.items():
            column = self._columns[name]
            append_chunks(ds, column[:n], self._stored, self.chunk)
            if rest:
                column[:rest] = column[n : n + rest]  # numpy copies overlapping ranges safely
        self._stored += n
        self._buffered = rest

    def _bytes_waiting(self, samples: bool) -> int:
        """Bytes the next flush may take on disk: new chunks of every column, table rows, metadata."""
        new_chunks = -(-(self._stored + self._buffered) // self.chunk) - (-(-self._stored // self.chunk))
        rows = sum(sum(r.nbytes for r in rows) for rows in self._tables.values())
        return (new_chunks * self.chunk * self._bps if samples else 0) + rows * 4 + FLUSH_METADATA_BYTES

    def _writing(self, what: str) -> Any:
        return _WriteGuard(self, what)

    # --- instrument transcript: rows are buffered and written with the samples -------------------
    def _attach_transcript(self, f: h5py.File) -> None:
        self.transcript = "transcript" in f
        self._tx_commands: list[tuple] = []
        self._tx_reads: list[tuple] = []
        names = ("commands", "reads") if self.transcript else ()
        self._tx = {name: open_table(f, f"transcript/{name}") for name in names}
        self._tx_seq = sum(len(ds) for ds in self._tx.values())

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
        row = (t, method, to_json(arguments), outcome, error, latency)
        with self._mutex:  # the flush timer's thread takes these rows too
            if self.transcript and not self.closed:
                self._tx_commands.append((self._tx_seq, *row))
                self._tx_seq += 1

    def add_read(self, t: float, kind: str, first: int, n: int, latency: float = 0.0) -> None:
        """One data block: ``kind`` "samples" (rows ``first``.. of /timeseries) or "impedance" (rows of
        /eis/points)."""
        with self._mutex:
            if self.transcript and not self.closed:
                self._tx_reads.append((self._tx_seq, t, kind, first, n, latency))
                self._tx_seq += 1

    def next_row(self, kind: str) -> int:
        """Where the next block will be stored: row of /timeseries ("samples") or /eis/points ("impedance")."""
        with self._mutex:
            return self._stored + self._buffered if kind == "samples" else self._pending("eis/points")

    def _flush_transcript(self) -> None:
        if self._tx_commands:
            append_rows(self._tx["commands"], np.array(self._tx_commands, dtype=TRANSCRIPT_COMMANDS))
            self._tx_commands = []
        if self._tx_reads:
            append_rows(self._tx["reads"], np.array(self._tx_reads, dtype=TRANSCRIPT_READS))
            self._tx_reads = []

    # --- the end ----------------------------------------------------------------------------------
    def discard(self) -> None:
        """Remove a new run file that never recorded anything (the run was refused after connecting)."""
        if not self.closed:
            self._stop_timer()
            close_quietly(self.f)
            self.path.unlink(missing_ok=True)
            self.lock.release()

    def _stop_timer(self) -> None:
        with self._mutex:
            self.closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def close(self, status: str = L.COMPLETED, outcome: str = "", analysis: dict[str, Any] | None = None) -> None:
        """Flush, leave SWMR, then record the final status (and post-run analysis) as attributes.

        After a failed write the file is closed as it is; a run stopped by a full disk keeps the status
        "interrupted", so that ``daq resume`` completes it once space is made. Raises the failure only
        if it happened here (an earlier one has already stopped the run)."""
        if self.closed:
            return
        reported = self._failure
        self._stop_timer()
        try:
            if self._failure is None or self._intact:
                try:
                    self.flush()
                except DataFileError:
                    pass  # kept in self._failure
            if self._failure is not None and not self._intact:
                abandon(self.f)
            else:
                self.f.close()
                self._record_end(L.INTERRUPTED if self._disk_full else status, outcome, analysis)
        finally:
            self._columns = {}  # the sample buffers go back to the system before the post-run analysis
            self.lock.release()
        if self._failure is not None and self._failure is not reported:
            raise self._failure

    def _record_end(self, status: str, outcome: str, analysis: dict[str, Any] | None) -> None:
        try:
            space.need_space(self.path, FLUSH_METADATA_BYTES, reserve=0)
            with open_h5(self.path, "a") as f:
                f.attrs["status"] = str(status)
                f.attrs["outcome"] = str(outcome)
                f.attrs["end_time"] = utc_now()
                if analysis:
                    g = f.require_group("analysis")
                    for key, value in analysis.items():
                        g.attrs[key] = to_json(value) if isinstance(value, (dict, list)) else plain(value)
        except (OSError, RuntimeError, ValueError, DataFileError) as exc:
            self._intact = isinstance(exc, space.DiskFull)
            self._failure = self._as_error(exc, "recording the end of the run failed")

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(L.INTERRUPTED if exc[0] else L.COMPLETED)


class _WriteGuard:
    """Turns any failure of the writes inside it into the writer's one DataFileError, and remembers it:
    after a failure the HDF5 library is not asked to write samples again."""

    def __init__(self, writer: RunWriter, what: str):
        self.writer, self.what = writer, what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: object) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        w = self.writer
        error = w._as_error(exc, self.what)
        intact = isinstance(exc, space.DiskFull)  # refused before writing: the file is as last flushed
        w._intact = intact if w._failure is None else (w._intact and intact)
        w._disk_full = w._disk_full or isinstance(error, space.DiskFull)
        w._failure = error
        raise error from None
