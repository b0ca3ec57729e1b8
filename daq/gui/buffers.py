"""Sample buffers behind the live plots: preallocated, growing, and bounded in memory.

A 42-day cycling run sampled every second has 3.6 million samples per trace, more with faster sampling
or several channels, and the window must stay smooth while it grows. :class:`TraceBuffer` therefore

- appends each block into preallocated numpy columns (capacity doubles as needed, so an append is a
  memcpy and plot items can be given zero-copy views of the filled rows);
- keeps the newest ``full_cap`` samples at full resolution and folds older ones into a min/max
  envelope: every ``factor`` samples become the few samples holding the minimum and maximum of each
  envelope column (potentials, current, pressure), in time order. Spikes, collapses and steps stay
  visible however old they are; only the wiggles between extremes of old data are lost;
- when the envelope reaches ``envelope_cap`` rows, its older half is folded again (4 envelope groups
  into 1), so resolution falls off gently with age and memory never exceeds
  ``(full_cap + envelope_cap)`` rows (400,000 rows, about 14 MiB per channel, with the defaults).

Why a bound, and why this one: pyqtgraph's peak downsampling and clip-to-view make panning cheap, but
every data update re-reduces all rows of a trace, so the cost of a redraw grows with the rows held
(about 80 ms per trace at 10 million rows: the window would stutter). A screen shows ~2,000 points
across, so 400,000 rows are still 200 rows per pixel for a whole-run view, while a redraw stays at a
few milliseconds per trace. The newest 200,000 samples (2.3 days at 1 s) stay exact for zooming in on
what is happening now; older history keeps its extremes. Measured in benchmarks/bench_gui.py.

The envelope rows and the full-resolution rows live in the same arrays (envelope first), so time and
capacity stay monotonic and one view serves both plots. Everything is SI: t in s, capacity in C/m^2
(charge throughput per working-electrode area), potentials in V, current in A, pressure in Pa.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

COLUMNS: dict[str, np.dtype] = {
    "t": np.dtype("f8"),
    "capacity": np.dtype("f8"),  # C/m^2: cumulative |charge| per working-electrode area
    "E_we": np.dtype("f4"),
    "E_cell": np.dtype("f4"),
    "I": np.dtype("f4"),
    "pressure": np.dtype("f4"),
    "step": np.dtype("i4"),
    "cycle": np.dtype("i4"),
}
ENVELOPE = ("E_we", "E_cell", "I", "pressure")


class TraceBuffer:
    """One channel's samples for display. Not thread-safe: the GUI thread alone appends and reads."""

    def __init__(
        self, area: float, full_cap: int = 200_000, envelope_cap: int = 200_000, factor: int = 64, initial: int = 65_536
    ):
        k = 2 * len(ENVELOPE)
        if factor < 2 * k:
            raise ValueError(f"factor must be at least {2 * k} (it keeps {k} rows per group)")
        if full_cap < 4 * factor or envelope_cap < max(full_cap // 4, 8 * k):
            raise ValueError("full_cap must hold a few groups and envelope_cap at least full_cap / 4")
        self.area = float(area)
        self.full_cap, self.envelope_cap, self.factor = int(full_cap), int(envelope_cap), int(factor)
        self._group_rows = k  # rows one group keeps
        self._max_rows = self.full_cap + self.envelope_cap
        size = min(initial, self._max_rows)
        self._cols = {name: np.empty(size, dtype) for name, dtype in COLUMNS.items()}
        self.n = 0  # rows filled
        self.n_envelope = 0  # rows [0, n_envelope) are envelope, the rest full resolution
        self.received = 0  # samples appended since creation
        self.version = 0  # bumped on every change (plots redraw when it moved)
        self.layout_version = 0  # bumped when filled rows move (folding): views given out are stale
        self._q_last = 0.0
        self._step_last: int | None = None
        self._cap_last = 0.0
        self._t_last = 0.0

    # --- reading ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.n

    def column(self, name: str) -> np.ndarray:
        """The filled rows of a column, as a view (valid until the next append)."""
        return self._cols[name][: self.n]

    def last(self, name: str) -> float:
        return float(self._cols[name][self.n - 1]) if self.n else float("nan")

    def since(self, name: str, t: float) -> np.ndarray:
        """Values of full-resolution samples with time >= t (a copy)."""
        start = self.n_envelope + int(np.searchsorted(self.column("t")[self.n_envelope :], t))
        return self._cols[name][start : self.n].copy()

    @property
    def nbytes(self) -> int:
        """Memory held now (allocated capacity, not just filled rows)."""
        return sum(a.nbytes for a in self._cols.values())

    @property
    def max_nbytes(self) -> int:
        """The most memory this buffer can ever hold."""
        return self._max_rows * sum(d.itemsize for d in COLUMNS.values())

    # --- appending ----------------------------------------------------------------------------
    def append(self, block: Mapping[str, np.ndarray]) -> int:
        """Append a block of samples (engine or run-file columns, SI). Returns the samples taken."""
        t = np.asarray(block["t"], dtype=float)
        n = len(t)
        if n == 0:
            return 0
        rows = {"t": t, "capacity": self._capacity(block, t)}
        for name in ("E_we", "E_cell", "I", "pressure", "step", "cycle"):
            value = block.get(name)
            rows[name] = np.asarray(value) if value is not None else np.full(n, np.nan if name == "pressure" else 0)
        limit = max(self.full_cap // 2, 1)
        for start in range(0, n, limit):  # huge blocks (a finished file read in chunks) in halves of full_cap
            self._append_rows({k: v[start : start + limit] for k, v in rows.items()})
        self.received += n
        self.version += 1
        return n

    def _capacity(self, block: Mapping[str, np.ndarray], t: np.ndarray) -> np.ndarray:
        """Charge throughput per area (C/m^2): |dQ| summed within steps, |Q| at the start of a step."""
        if "Q" in block and "step" in block:
            q = np.asarray(block["Q"], dtype=float)
            step = np.asarray(block["step"])
            prev_q = np.concatenate(([self._q_last], q[:-1]))
            prev_step = np.concatenate(([self._step_last if self._step_last is not None else step[0]], step[:-1]))
            same = step == prev_step
            if self._step_last is None:
                same[0] = False
            dq = np.where(same, np.abs(q - prev_q), np.abs(q))
            self._q_last, self._step_last = float(q[-1]), int(step[-1])
        else:  # no per-step charge: integrate |I| dt
            i = np.abs(np.asarray(block["I"], dtype=float))
            dq = i * np.diff(t, prepend=self._t_last if self.n else t[0])
        self._t_last = float(t[-1])
        cap = self._cap_last + np.cumsum(dq) / self.area
        self._cap_last = float(cap[-1])
        return cap

    def _append_rows(self, rows: dict[str, np.ndarray]) -> None:
        k = len(rows["t"])
        while self.n - self.n_envelope + k > self.full_cap:
            self._fold_full_resolution()
        if self.n + k > len(self._cols["t"]):
            self._grow(self.n + k)
        for name, arr in self._cols.items():
            arr[self.n : self.n + k] = rows[name]
        self.n += k

    def _grow(self, need: int) -> None:
        size = len(self._cols["t"])
        while size < need:
            size *= 2
        size = min(size, self._max_rows)
        for name, arr in self._cols.items():
            new = np.empty(size, arr.dtype)
            new[: self.n] = arr[: self.n]
            self._cols[name] = new

    def _fold_full_resolution(self) -> None:
        """Fold the older half of the full-resolution rows into the envelope."""
        m = ((self.n - self.n_envelope) // 2) // self.factor * self.factor
        new_rows = m // self.factor * self._group_rows
        while self.n_envelope + new_rows > self.envelope_cap:
            self._fold_envelope()
        self.n_envelope += self._decimate(self.n_envelope, m, self.factor)

    def _fold_envelope(self) -> None:
        """Fold the older half of the envelope again, four groups into one."""
        group = 4 * self._group_rows
        m = (self.n_envelope // 2) // group * group
        if m == 0:
            raise RuntimeError("envelope cannot shrink further")  # parameters are checked in __init__
        kept = self._decimate(0, m, group)
        self.n_envelope -= m - kept

    def _decimate(self, start: int, count: int, group: int) -> int:
        """Replace rows [start, start + count) (whole groups) by each group's extreme rows, in time
        order; later rows move up. Returns the number of rows kept."""
        g = count // group
        stop = start + g * group
        picks = []
        for name in ENVELOPE:
            v = self._cols[name][start:stop].reshape(g, group)
            nan = np.isnan(v)
            if nan.any():
                lo, hi = np.where(nan, np.inf, v), np.where(nan, -np.inf, v)
            else:
                lo = hi = v
            picks += [lo.argmin(axis=1), hi.argmax(axis=1)]
        idx = np.sort(np.stack(picks, axis=1), axis=1)
        idx += (start + group * np.arange(g))[:, None]
        idx = idx.ravel()
        kept = len(idx)
        for arr in self._cols.values():
            arr[start : start + kept] = arr[idx]
            arr[start + kept : self.n - (stop - start) + kept] = arr[stop : self.n]
        self.n -= (stop - start) - kept
        self.version += 1
        self.layout_version += 1
        return kept
