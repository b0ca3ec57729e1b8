"""Per-cycle account of a plating/stripping run: the table a lab otherwise builds by hand every morning.

One row per loop cycle (the ``cycle`` column of /timeseries, 0 outside loops is skipped):

- plated and stripped charge (C) and areal capacity (C/m^2): the charge of each current-carrying step
  of the cycle (the last ``Q`` of the step, which the engine integrates and a resumed step continues);
  negative charge is plating, positive stripping;
- coulombic efficiency: stripped / plated charge (NaN for a cycle cut short before it stripped);
- mean, end and largest (by magnitude, signed) potential of each half cycle, over the samples whose
  current has the sign of that half (plating I < 0, stripping I > 0), so samples after a trip switched
  the current off do not count. The potential is E_we vs the reference on a three-electrode cell and
  E_cell on a symmetric cell (the attribute ``potential`` names it);
- start, end and duration: from the time of the sample before the cycle's first sample (the end of the
  step before) to the cycle's last sample;
- stop: why the cycle ended: the reason a step stopped the run (``short_circuit`` marks the cycle the
  cell shorted in), else why its last step ended.

The file is read in slices of CHUNK samples and the step table in blocks of rows, so memory stays
flat however long the run (what grows is the table itself: one row per cycle).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from daq.analysis.closed_run import table_blocks
from daq.storage.layout import STR

# Samples read at a time: the largest chunk a run file has (daq.storage.space.MAX_CHUNK), so that every
# slice covers whole chunks; about 4 MiB for the six columns read and what is computed from them.
CHUNK = 1 << 16

CYCLE_DTYPE = np.dtype(
    [
        ("cycle", "i4"),
        ("t_start", "f8"),
        ("t_end", "f8"),
        ("duration", "f8"),
        ("plate_charge", "f8"),
        ("strip_charge", "f8"),
        ("plate_capacity", "f8"),
        ("strip_capacity", "f8"),
        ("coulombic_efficiency", "f8"),
        ("plate_mean", "f8"),
        ("plate_end", "f8"),
        ("plate_extreme", "f8"),
        ("strip_mean", "f8"),
        ("strip_end", "f8"),
        ("strip_extreme", "f8"),
        ("plate_duration", "f8"),
        ("strip_duration", "f8"),
        ("stop", STR),
    ]
)
CYCLE_UNITS = {
    "t_start": "s",
    "t_end": "s",
    "duration": "s",
    "plate_charge": "C",
    "strip_charge": "C",
    "plate_capacity": "C/m^2",
    "strip_capacity": "C/m^2",
    "coulombic_efficiency": "1",
    "plate_mean": "V",
    "plate_end": "V",
    "plate_extreme": "V",
    "strip_mean": "V",
    "strip_end": "V",
    "strip_extreme": "V",
    "plate_duration": "s",
    "strip_duration": "s",
}
# Steps that carry no plating or stripping charge of their own (impedance excitation averages to zero).
_NOT_HALF_CYCLE = ("rest", "ocv", "geis", "peis", "eis")


_TERMINAL = ("short_circuit", "voltage_limit", "current_limit", "aborted", "fault", "interlock")


@dataclass(slots=True)
class _Half:
    """Running statistics of one half cycle's potential."""

    n: int = 0
    total: float = 0.0
    end: float = math.nan
    extreme: float = math.nan
    time: float = 0.0  # s with current of this sign

    def add(self, e: np.ndarray, dt: np.ndarray) -> None:
        if not len(e):
            return
        self.n += len(e)
        self.total += float(e.sum())
        self.end = float(e[-1])
        k = int(np.argmax(np.abs(e)))
        if math.isnan(self.extreme) or abs(e[k]) > abs(self.extreme):
            self.extreme = float(e[k])
        self.time += float(dt.sum())

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan


@dataclass(slots=True)
class _Cycle:
    t_start: float
    t_end: float = math.nan
    plate: _Half = field(default_factory=_Half)
    strip: _Half = field(default_factory=_Half)
    step_charge: dict[int, float] = field(default_factory=dict)  # last Q of each step


def potential_column(run) -> str:
    """E_we on a three-electrode cell, E_cell on a symmetric one (no reference there)."""
    return "E_cell" if run.cell.get("configuration") == "symmetric" else "E_we"


def _steps(run) -> tuple[set[int], dict[int, str]]:
    """From /steps, read in blocks: the steps that are no half cycle, and why each cycle ended (the
    first stop that ended the run, a short, a limit, a fault, names the cycle; after it come only the
    steps the engine runs on a stopped cell: rest, post-short spectrum)."""
    skipped: set[int] = set()
    stop_of: dict[int, str] = {}
    for _, block in table_blocks(run.f["steps"], ("index", "kind", "cycle", "end_reason")):
        for i, kind, c, reason in zip(block["index"], block["kind"], block["cycle"], block["end_reason"]):
            note_step(skipped, stop_of, int(i), kind, int(c), reason)
    return skipped, stop_of


def note_step(skipped: set[int], stop_of: dict[int, str], index: int, kind: str, cycle: int, reason: str) -> None:
    """Take one ended step (a /steps row, in order) into the steps that are no half cycle and the
    reason each cycle ended (a live view feeds its rows one at a time, as they end)."""
    if kind.lower() in _NOT_HALF_CYCLE:
        skipped.add(index)
    if stop_of.get(cycle) not in _TERMINAL:
        stop_of[cycle] = reason


def _scan(run, potential: str, skipped: set[int]) -> dict[int, _Cycle]:
    cycles: dict[int, _Cycle] = {}
    n = len(run)
    t_prev = 0.0
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        t = run.column("t", lo, hi)
        cyc, step = run.column("cycle", lo, hi), run.column("step", lo, hi)
        cur, q, e = run.column("I", lo, hi), run.column("Q", lo, hi), run.column(potential, lo, hi)
        scan_slice(cycles, t, cyc, step, cur, q, e, t_prev, skipped)
        t_prev = float(t[-1])
    return cycles


def scan_slice(cycles: dict, t, cyc, step, cur, q, e, t_prev: float, skipped: set[int]) -> None:
    """Add one slice of samples (t, cycle, step, I, Q, potential columns) to the running per-cycle
    account ``cycles`` (cycle number -> its sums; start from ``{}``). ``t_prev`` is the time of the
    sample before the slice (0 for the first). Slices cut at the same sample numbers give the same
    sums to the last bit, whoever cuts them (the stored table cuts at multiples of CHUNK)."""
    dt = np.diff(t, prepend=t_prev)
    before = np.concatenate([[t_prev], t[:-1]])
    for c in np.unique(cyc[cyc > 0]):
        sel = np.flatnonzero(cyc == c)
        entry = cycles.get(int(c))
        if entry is None:
            entry = cycles[int(c)] = _Cycle(t_start=float(before[sel[0]]))
        entry.t_end = float(t[sel[-1]])
        st = step[sel]
        half = ~np.isin(st, list(skipped)) if skipped else np.ones(len(sel), bool)
        ends = np.flatnonzero(np.diff(st, append=-1) != 0)  # last sample of each step in this slice
        for k in ends:
            if half[k]:
                entry.step_charge[int(st[k])] = float(q[sel[k]])
        i_sel = cur[sel]
        entry.plate.add(e[sel][half & (i_sel < 0)], dt[sel][half & (i_sel < 0)])
        entry.strip.add(e[sel][half & (i_sel > 0)], dt[sel][half & (i_sel > 0)])


def cycle_table(run) -> np.ndarray:
    """The /analysis/cycles table of an open run file (``daq.storage.reader.RunFile`` or
    ``daq.analysis.closed_run.ClosedRun``)."""
    area = float(run.cell["electrodes.working_area"])
    skipped, stop_of = _steps(run)
    cycles = _scan(run, potential_column(run), skipped)
    return cycle_rows(cycles, area, stop_of)


def cycle_rows(cycles: dict, area: float, stop_of: dict[int, str]) -> np.ndarray:
    """The table rows (CYCLE_DTYPE) of a per-cycle account built by :func:`scan_slice`."""
    rows = []
    for c in sorted(cycles):
        entry = cycles[c]
        charges = np.array(list(entry.step_charge.values()) or [0.0])
        plated, stripped = float(-charges[charges < 0].sum()), float(charges[charges > 0].sum())
        ce = stripped / plated if plated > 0 and entry.strip.n else math.nan  # undefined before stripping
        rows.append(
            (
                c,
                entry.t_start,
                entry.t_end,
                entry.t_end - entry.t_start,
                plated,
                stripped,
                plated / area,
                stripped / area,
                ce,
                entry.plate.mean,
                entry.plate.end,
                entry.plate.extreme,
                entry.strip.mean,
                entry.strip.end,
                entry.strip.extreme,
                entry.plate.time,
                entry.strip.time,
                stop_of.get(c, "interrupted"),
            )
        )
    return np.array(rows, dtype=CYCLE_DTYPE)


def store_cycles(group, table: np.ndarray, potential: str) -> None:
    """Write the table as /analysis/cycles (replacing an older one) with its units as attributes."""
    if "cycles" in group:
        del group["cycles"]
    ds = group.create_dataset("cycles", data=table)
    ds.attrs["units"] = json.dumps(CYCLE_UNITS)
    ds.attrs["potential"] = potential
    ds.attrs["description"] = (
        "one row per loop cycle; charge from /timeseries Q at each step's end; potentials over the "
        "samples with current of the half cycle's sign; coulombic_efficiency = strip_charge/plate_charge"
    )


def read_cycles(run):
    """The per-cycle table as a DataFrame (SI, units in ``df.attrs["units"]``); computed when the file
    has none stored (files written before the table existed, imported recordings)."""
    import pandas as pd

    stored = "analysis" in run.f and "cycles" in run.f["analysis"]
    table = run.f["analysis/cycles"][()] if stored else cycle_table(run)
    df = pd.DataFrame({name: table[name] for name in CYCLE_DTYPE.names})
    df["stop"] = [v.decode() if isinstance(v, bytes) else str(v) for v in df["stop"]]
    df.attrs["units"] = dict(CYCLE_UNITS)
    df.attrs["potential"] = str(run.f["analysis/cycles"].attrs["potential"]) if stored else potential_column(run)
    return df
