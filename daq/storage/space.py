"""Disk space: what a protocol will need, what the disk has, and the words for a full disk.

A run is refused before any current flows if its file would not fit (``check_free_space``); while it
runs, the writer checks the free space before every write (``need_space``) so that a disk filled by
something else stops the run with the file intact, instead of the HDF5 library failing half-way through
a write of its metadata.
"""

from __future__ import annotations

import errno
import math
import os
from pathlib import Path

import numpy as np

from daq.core.errors import ConfigError, DataFileError
from daq.storage import layout as L
from protocols import steps as S

# Metadata of a new run file (groups, attributes, dataset headers, indexes) and of its final status
# update, plus a margin: measured at 120-180 KiB for the example protocols, kept at 512 KiB.
BASE_BYTES = 512 * 1024
# Kept free on the disk while writing samples, so that the fault event and the final status still fit.
RESERVE_BYTES = 256 * 1024
# Rows of /steps, /events and the transcript are small; an allowance per step and per sample block.
STEP_ROW_BYTES = 512
TRANSCRIPT_BYTES_PER_BLOCK = 64
BLOCK_SAMPLES = 256


def bytes_per_sample(aux_columns: tuple[str, ...] | list[str] = ()) -> int:
    """Bytes one sample takes in /timeseries (every column of the layout, plus the auxiliary ones)."""
    cols = list(L.TIMESERIES.values()) + [L.AUX[c] for c in aux_columns if c in L.AUX]
    return sum(int(np.dtype(dtype).itemsize) for dtype, _, _ in cols)


def spectrum_points(spec: S.EisSpec) -> int:
    decades = abs(math.log10(spec.f_start / spec.f_end)) if spec.f_start > 0 and spec.f_end > 0 else 0.0
    return int(math.ceil(decades * float(spec.points_per_decade))) + 1


def _step_counts(step: S.Step) -> tuple[float, float, float]:
    """(samples, spectrum points, step rows) of one step, loops multiplied out."""
    if isinstance(step, S.Loop):
        inner = [_step_counts(s) for s in step.steps]
        return tuple(step.cycles * sum(c[i] for c in inner) for i in range(3))  # type: ignore[return-value]
    if isinstance(step, S.Eis):
        return 0.0, float(spectrum_points(step.spec)), 1.0
    duration = getattr(step, "duration", None) or 0.0
    points = 0.0
    if isinstance(step, S.Galvanostatic):
        if step.capacity is not None and step.current_density > 0:
            t_cap = step.capacity / step.current_density
            duration = min(duration, t_cap) if duration else t_cap
        if step.operando_eis is not None and step.eis_every and step.capacity:
            points = math.floor(step.capacity / step.eis_every) * spectrum_points(step.operando_eis)
    period = getattr(step, "sample_period", 1.0) or 1.0
    return duration / period + 1.0, points, 1.0


def expected_samples(protocol: S.Protocol) -> int:
    """Samples the protocol records if every step runs to its stated end."""
    return int(min(sum(_step_counts(s)[0] for s in protocol.steps), 2**62))


def fastest_rate(protocol: S.Protocol) -> float:
    """Samples per second of the protocol's fastest-sampling step, in real time."""
    periods = [getattr(s, "sample_period", 0.0) or 0.0 for s in protocol.walk()]
    periods = [p for p in periods if p > 0]
    return 1.0 / min(periods) if periods else 1.0


def plan(
    protocol: S.Protocol,
    out: str | Path,
    aux_columns: tuple[str, ...] | list[str] = (),
    transcript: bool = True,
    virtual: bool = False,
) -> dict[str, float | int | None]:
    """Check the disk has room for the run (ConfigError with the figures, before any current) and
    return the writer's sizing: ``sample_rate`` (None when the run is computed as fast as possible) and
    ``expected_samples``."""
    check_free_space(out, estimate_bytes(protocol, aux_columns, transcript))
    return {"sample_rate": None if virtual else fastest_rate(protocol), "expected_samples": expected_samples(protocol)}


def estimate_bytes(protocol: S.Protocol, aux_columns: tuple[str, ...] | list[str] = (), transcript: bool = True) -> int:
    """Bytes the run file of ``protocol`` will take: samples x bytes per sample (from the steps'
    durations, capacities and sample periods), spectra x points x bytes per point, rows of /steps and
    the transcript, and the file's own metadata. Steps that end only on a condition count their stated
    duration (none: nothing)."""
    counts = [_step_counts(s) for s in protocol.steps]
    samples, points, rows = (sum(c[i] for c in counts) for i in range(3))
    total = samples * bytes_per_sample(aux_columns) + points * L.POINTS.itemsize
    total += rows * (STEP_ROW_BYTES + L.SPECTRA.itemsize)
    if transcript:
        total += (samples / BLOCK_SAMPLES + rows * 4 + points) * TRANSCRIPT_BYTES_PER_BLOCK
    total += BASE_BYTES
    return int(min(total, 2**62))


def free_bytes(path: str | Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding ``path`` (or its folder)."""
    where = Path(path)
    while not where.exists() and where != where.parent:
        where = where.parent
    st = os.statvfs(where)
    return int(st.f_bavail) * int(st.f_frsize)


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB" if n < 2**30 else f"{n / 2**30:.2f} GiB"


def check_free_space(path: str | Path, nbytes: int) -> None:
    """Refuse a run (ConfigError, before any current) whose file would not fit on the disk of ``path``."""
    free = free_bytes(path)
    need = nbytes + RESERVE_BYTES
    if free < need:
        raise ConfigError(
            "--out",
            str(path),
            f"the disk is too full for this run: it needs about {mib(need)} "
            f"({mib(nbytes)} of data and metadata, {mib(RESERVE_BYTES)} kept free) and "
            f"{mib(free)} are free; make space or choose another disk",
        )


class DiskFull(DataFileError):
    """A write refused or failed for lack of space on the disk."""


def disk_full(path: str | Path, free: int | None = None, need: int | None = None) -> DiskFull:
    """The one-line error a full disk gives, naming the disk and the figures where known."""
    where = Path(path).resolve().parent
    figures = f" ({mib(free)} free, {mib(need)} needed)" if free is not None and need is not None else ""
    return DiskFull(
        f"{path}: the disk holding {where} is full{figures}; the run was stopped and the file kept "
        f"up to the last write; free space or copy the file to a larger disk, then 'daq resume' it"
    )


def need_space(path: str | Path, nbytes: int, reserve: int = RESERVE_BYTES) -> None:
    """Raise the full-disk error unless ``nbytes`` plus ``reserve`` are free for ``path``."""
    free = free_bytes(path)
    if free < nbytes + reserve:
        raise disk_full(path, free, nbytes + reserve)


def is_disk_full(exc: BaseException) -> bool:
    """True for an OSError or HDF5 error caused by a full disk (or quota)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return "No space left" in text or "errno = 28" in text or "Disk quota" in text


# Chunk sizes in samples: large chunks make appends cheap (HDF5's cost is per chunk and per call), small
# ones keep a short run's file small (every chunk is allocated whole). See chunk_samples().
MIN_CHUNK, MAX_CHUNK = 1024, 65536
# A chunk holds what arrives in this many flush intervals (when samples come slower than a chunk per
# interval): a chunk is then written whole after a few part-chunk flushes, not rewritten at every one.
FLUSHES_PER_CHUNK = 4


def chunk_samples(sample_rate: float | None, flush_interval: float, expected_samples: int | None = None) -> int:
    """Samples per chunk: what arrives in a few flush intervals at ``sample_rate`` (samples per wall
    second; None: as fast as the run is computed), a power of two in [1024, 65536], no larger than the
    run's expected length."""
    per_flush = float("inf") if not sample_rate else sample_rate * max(flush_interval, 1e-3) * FLUSHES_PER_CHUNK
    if expected_samples is not None:
        per_flush = min(per_flush, float(expected_samples))
    if per_flush <= MIN_CHUNK:
        return MIN_CHUNK
    if per_flush >= MAX_CHUNK:
        return MAX_CHUNK
    return 1 << int(np.ceil(np.log2(per_flush)))
