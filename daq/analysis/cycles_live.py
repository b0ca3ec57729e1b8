"""The per-cycle table of a run while it is recorded: a row as soon as a cycle is complete.

Fed the samples and the ended steps in the order a live view receives them (the engine's records, or a
followed run file read a block at a time), it holds only the samples of the cycles not yet complete
and computes each completed cycle with the same code as the stored /analysis/cycles table
(daq.analysis.cycles.scan_slice, cut at the same sample numbers, multiples of CHUNK), so the live rows
equal the stored ones to the last bit. Memory stays flat however long the run: one cycle of samples
and one row per cycle.

A cycle is complete once its last step has ended and all its samples have arrived: either the plan
says which step is its last (``last_steps``) and samples up to that step's end have come, or samples
of the next cycle (or of steps after the loop) have come. Cycles still running when the run ends are
computed by :meth:`LiveCycles.finish`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from daq.analysis.cycles import CHUNK, CYCLE_DTYPE, cycle_rows, note_step, scan_slice

COLUMNS = ("t", "cycle", "step", "I", "Q")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class LiveCycles:
    """Per-cycle rows of a run being recorded (SI, CYCLE_DTYPE), grown one completed cycle at a time."""

    def __init__(self, area: float, potential: str, last_steps: Mapping[int, int] | None = None):
        self.area, self.potential = float(area), potential
        self.last_steps = dict(last_steps or {})  # cycle -> index of its last step, from the plan
        self.rows = np.zeros(0, dtype=CYCLE_DTYPE)
        self.received = 0  # samples seen
        self._names = (*COLUMNS, potential)
        self._pending: list[dict[str, np.ndarray]] = []  # samples from self._base on
        self._base = 0  # sample number of the first pending sample
        self._t_before = 0.0  # time of the sample before it
        self._skipped: set[int] = set()
        self._stop_of: dict[int, str] = {}
        self._ended: dict[int, float] = {}  # step index -> t_end of the steps that have ended
        self._done: set[int] = set()
        self._last_cycle = -1

    @property
    def held(self) -> int:
        """Samples held for cycles not yet complete."""
        return sum(len(block["t"]) for block in self._pending)

    def add_samples(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        """Take a block of samples; returns the rows of the cycles it completed (often none)."""
        n = len(cols["t"])
        if not n:
            return self.rows[:0]
        block = {name: np.asarray(cols[name]) for name in self._names}
        self._pending.append(block)
        self.received += n
        cyc = block["cycle"]
        # Only a block that changes cycle, or samples outside any open cycle (dropped at once), or the
        # samples a planned last step's end waits for, can complete a cycle.
        changed = bool(cyc[0] != self._last_cycle or np.any(cyc != cyc[0]) or cyc[0] <= 0 or cyc[0] in self._done)
        self._last_cycle = int(cyc[-1])
        planned = self.last_steps.get(self._last_cycle)
        return self._advance() if changed or planned in self._ended else self.rows[:0]

    def add_step(self, row: Mapping[str, Any]) -> np.ndarray:
        """Take an ended step (a /steps row: index, kind, cycle, end_reason, t_end); returns the rows
        of the cycles it completed."""
        index = int(row["index"])
        note_step(self._skipped, self._stop_of, index, _text(row["kind"]), int(row["cycle"]), _text(row["end_reason"]))
        self._ended[index] = float(row["t_end"])
        return self._advance()

    def finish(self) -> np.ndarray:
        """The run has ended: the rows of the cycles still open (cut short, or the last one)."""
        return self._advance(final=True)

    def _advance(self, final: bool = False) -> np.ndarray:
        """Compute every cycle at the head of the pending samples that is complete."""
        if not self._pending:
            return self.rows[:0]
        cols = {name: np.concatenate([b[name] for b in self._pending]) for name in self._names}
        new: list[np.ndarray] = []
        while len(cols["t"]):
            cyc = cols["cycle"]
            open_ = np.flatnonzero((cyc > 0) & ~np.isin(cyc, list(self._done)))
            lo = int(open_[0]) if len(open_) else len(cyc)  # samples before it belong to no open cycle
            cols = self._drop(cols, lo)
            if not len(open_):
                break
            c = int(cols["cycle"][0])
            after = np.flatnonzero(cols["cycle"] != c)
            hi = int(after[0]) if len(after) else len(cols["t"])
            if not (final or self._complete(c, cols, hi, bool(len(after)))):
                break
            new.append(self._compute(c, {name: col[:hi] for name, col in cols.items()}))
            self._done.add(c)
            cols = self._drop(cols, hi)
        self._pending = [cols] if len(cols["t"]) else []
        if not new:
            return self.rows[:0]
        added = np.concatenate(new)
        self.rows = np.concatenate([self.rows, added])
        return added

    def _complete(self, c: int, cols: dict[str, np.ndarray], hi: int, followed: bool) -> bool:
        last_step = int(cols["step"][hi - 1])
        if followed:  # samples after the cycle: complete once its last step's row has come
            return last_step in self._ended
        planned = self.last_steps.get(c)
        return planned is not None and planned in self._ended and float(cols["t"][hi - 1]) >= self._ended[planned]

    def _drop(self, cols: dict[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
        if k:
            self._t_before = float(cols["t"][k - 1])
            self._base += k
        return {name: col[k:] for name, col in cols.items()} if k else cols

    def _compute(self, c: int, cols: dict[str, np.ndarray]) -> np.ndarray:
        """One cycle's row from its samples, sliced where the stored table slices the file."""
        cycles: dict = {}
        t_prev, lo, n = self._t_before, 0, len(cols["t"])
        while lo < n:
            hi = min(n, (self._base + lo) // CHUNK * CHUNK + CHUNK - self._base)
            s = slice(lo, hi)
            scan_slice(
                cycles,
                cols["t"][s],
                cols["cycle"][s],
                cols["step"][s],
                cols["I"][s],
                cols["Q"][s],
                cols[self.potential][s],
                t_prev,
                self._skipped,
            )
            t_prev, lo = float(cols["t"][hi - 1]), hi
        return cycle_rows(cycles, self.area, self._stop_of)


def last_steps_of(plan_steps) -> dict[int, int]:
    """cycle -> index of its last step, from planned steps (``index`` and ``cycle`` attributes, loops
    unrolled); cycles of different loops share numbers, so only a protocol with one loop gives a plan."""
    last: dict[int, int] = {}
    for step in plan_steps:
        if step.cycle > 0:
            last[int(step.cycle)] = max(last.get(int(step.cycle), -1), int(step.index))
    return last
