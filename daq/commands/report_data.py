"""What the report reads from a run file, in bounded pieces so memory stays flat with run length.

- :func:`envelope_column`: min/max of a column per pixel column (the shape of a spike survives), read a
  block of samples at a time;
- :func:`cycle_ranges`: the sample range of every loop cycle, from one chunked pass over ``cycle``;
- :func:`spectrum_labels`: what each impedance spectrum was taken after (the capacity plated so far in
  the step it belongs to, or in the last current-carrying step before it, e.g. a post-short spectrum).
"""

from __future__ import annotations

import json
import math

import numpy as np

from daq.core import units as u

CHUNK = 1 << 20  # samples read at a time
BINS = 2000  # pixel columns of a time plot


def envelope_column(run, name: str, bins: int = BINS, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """(t, y) tracing the min and max of column ``name`` in ``bins`` slices of the samples; the whole
    column when it has no more than 2 * bins samples."""
    n = len(run)
    if n <= 2 * bins:
        return run.column("t"), run.column(name)
    per = math.ceil(n / bins)
    block = max(per, (chunk // per) * per)  # whole slices per read
    ts, lo, hi = [], [], []
    for start in range(0, n, block):
        y = run.column(name, start, min(n, start + block))
        t = run.column("t", start, min(n, start + block))
        edges = np.arange(0, len(y), per)
        lo.append(np.minimum.reduceat(y, edges))
        hi.append(np.maximum.reduceat(y, edges))
        ts.append(t[edges])
    t_all = np.repeat(np.concatenate(ts), 2)
    return t_all, np.column_stack([np.concatenate(lo), np.concatenate(hi)]).ravel()


def decimate(x: np.ndarray, y: np.ndarray, points: int = BINS) -> tuple[np.ndarray, np.ndarray]:
    """Min/max envelope of an in-memory curve (a cycle's half), at most about 2 * points points."""
    n = len(x)
    if n <= 2 * points:
        return x, y
    edges = np.linspace(0, n, points + 1).astype(int)[:-1]
    lo, hi = np.minimum.reduceat(y, edges), np.maximum.reduceat(y, edges)
    return np.repeat(x[edges], 2), np.column_stack([lo, hi]).ravel()


def value_ranges(run, column: str, chunk: int = CHUNK) -> dict[int, tuple[int, int]]:
    """{value: (first sample, one past the last)} of an integer column (``cycle``, ``step``), from one
    chunked pass; the values label contiguous runs of samples."""
    out: dict[int, tuple[int, int]] = {}
    n = len(run)
    for start in range(0, n, chunk):
        col = run.column(column, start, min(n, start + chunk))
        change = np.flatnonzero(np.diff(col, prepend=col[0] - 1) != 0)
        ends = np.append(change[1:], len(col))
        for a, b in zip(change, ends):
            v = int(col[a])
            first = out.get(v, (start + int(a), 0))[0]
            out[v] = (first, start + int(b))
    return out


def cycle_ranges(run, chunk: int = CHUNK) -> dict[int, tuple[int, int]]:
    """{cycle: (first sample, one past the last)} for every loop cycle (cycle > 0)."""
    return {c: r for c, r in value_ranges(run, "cycle", chunk).items() if c > 0}


def parse_cycles(text: str | None, available: list[int], default: int = 12) -> list[int]:
    """Cycles chosen with ``--cycles 1,10,50-60`` (those the run has), else ``default`` cycles spread
    evenly from the first to the last."""
    if not available:
        return []
    if not text:
        if len(available) <= default:
            return list(available)
        picks = np.unique(np.linspace(0, len(available) - 1, default).round().astype(int))
        return [available[i] for i in picks]
    from daq.core.errors import ConfigError

    chosen: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                a, b = (int(v) for v in part.split("-", 1))
                if b < a:
                    raise ValueError(part)
                chosen.update(range(a, b + 1))
            else:
                chosen.add(int(part))
        except ValueError:
            raise ConfigError("--cycles", text, "expected cycle numbers and ranges such as 1,10,50-60") from None
    have = sorted(chosen & set(available))
    if not have:
        raise ConfigError(
            "--cycles", text, f"none of these cycles is in the run (cycles {available[0]}-{available[-1]})"
        )
    return have


def spectrum_labels(run, area: float) -> list[tuple[float, str]]:
    """(areal capacity C/m^2, text) for every spectrum: the capacity passed in its own step if it was
    taken during plating or stripping, else in the last current-carrying step before it."""
    spectra, steps = run.spectra(), run.steps()
    t_short = _short_time(run)
    out = []
    for i in range(len(spectra)):
        q = abs(float(spectra.Q[i]))
        note = ""
        if q == 0.0:
            before = steps[(steps.t_end <= spectra.t_start[i] + 1e-9) & (steps.Q != 0)]
            if len(before):
                q = abs(float(before.Q.iloc[-1]))
                note = f" after {before.label.iloc[-1] or before.kind.iloc[-1]}"
        if t_short is not None and spectra.t_start[i] >= t_short:
            note += " (after the short)"
        cap = q / area
        if math.isfinite(cap):
            out.append((cap, f"#{i} {u.to_unit(cap, 'mAh/cm^2'):.2f} mAh/cm$^2${note}"))
        else:  # an imported recording without electrode area (or charge): the number alone
            out.append((0.0, f"#{i}{note}"))
    return out


def _short_time(run) -> float | None:
    events = run.events()
    shorts = events[events.kind == "short_circuit"]
    if not len(shorts):
        return None
    data = json.loads(shorts.data.iloc[0] or "{}")
    return float(data.get("t_trip", shorts.t.iloc[0]))


def short_info(run) -> dict | None:
    """Where and when a short happened: run time, cycle, step (row, label), capacity into the step."""
    t = _short_time(run)
    if t is None:
        return None
    events, steps = run.events(), run.steps()
    ev = events[events.kind == "short_circuit"].iloc[0]
    data = json.loads(ev.data or "{}")
    row = steps[steps["index"] == int(ev.step)]
    return {
        "t": t,
        "step": int(ev.step),
        "label": str(row.label.iloc[0]) if len(row) else "",
        "cycle": int(row.cycle.iloc[0]) if len(row) else 0,
        "capacity": float(data.get("capacity", math.nan)),  # C/m^2 into the step
    }
