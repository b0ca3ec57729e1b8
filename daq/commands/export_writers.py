"""The file layouts of ``daq export`` (see :mod:`daq.commands.export` and docs/export.md)."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from daq.analysis.cycles import read_cycles
from daq.core import units as u
from daq.importers import ECLAB_TECHNIQUES
from daq.storage.reader import RunFile, open_run

BLOCK = 1 << 18  # samples per block written
MAH = u.from_unit(1.0, "mAh")  # C per mAh

# run column -> (EC-Lab label, factor from SI); E_cell is the working vs counter electrode, EC-Lab's Ewe-Ece
MPT_TIMESERIES = {
    "t": ("time/s", 1.0),
    "E_we": ("Ewe/V", 1.0),
    "E_cell": ("Ewe-Ece/V", 1.0),
    "I": ("I/mA", 1e3),
    "Q": ("(Q-Qo)/mA.h", 1.0 / MAH),
    "cycle": ("cycle number", 1.0),
    "step": ("Ns", 1.0),
}
# neutral technique -> EC-Lab's title line, which the EC-Lab text reader maps back to the technique
MPT_TITLES: dict[str, str] = {}
for _tech, _, _title in ECLAB_TECHNIQUES.values():
    if _tech != "unknown":
        MPT_TITLES.setdefault(_tech, _title)
# run column -> (Gamry column name, unit row text, factor from SI)
DTA_TIMESERIES = {
    "t": ("T", "s", 1.0),
    "E_we": ("Vf", "V vs. Ref.", 1.0),
    "I": ("Im", "A", 1.0),
    "Q": ("Q", "C", 1.0),
    "E_cell": ("Vcell", "V", 1.0),
    "cycle": ("Cycle", "#", 1.0),
    "step": ("Step", "#", 1.0),
}


def labelled(name: str, unit: str | None) -> str:
    """A column name with its unit: ``E_we (V)``; counters and flags (unit "1") keep their bare name."""
    return name if unit in (None, "", "1") else f"{name} ({unit})"


def _blocks(run: RunFile) -> Iterator[pd.DataFrame]:
    n = len(run)
    for start in range(0, max(n, 1), BLOCK):
        yield run.timeseries(start, min(n, start + BLOCK))


def _ordered(df: pd.DataFrame) -> pd.DataFrame:
    first = [c for c in ("t", "step", "cycle", "E_we", "E_cell", "I", "Q", "flags") if c in df.columns]
    return df[first + sorted(c for c in df.columns if c not in first)]


def _table(run: RunFile, what: str) -> pd.DataFrame:
    """steps, cycles or spectra as one DataFrame with units in df.attrs["units"]."""
    if what == "steps":
        return run.steps()
    if what == "cycles":
        return read_cycles(run)
    spectra, parts = run.spectra(), []
    for i in range(len(spectra)):
        s = run.spectrum(i)
        s.insert(0, "spectrum", i)
        parts.append(s)
    points = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["spectrum"])
    points.attrs["units"] = run.spectrum(0).attrs.get("units", {}) if parts else {}
    return points


def export(path: str | Path, out: str | Path, fmt: str, what: str) -> int:
    """Write table ``what`` of the run file at ``path`` to ``out`` in format ``fmt``; returns the rows."""
    out = Path(out)
    with open_run(path) as run:
        if fmt == "csv":
            return _csv(run, out, what)
        if fmt == "parquet":
            return _parquet(run, out, what)
        if fmt == "mpt":
            return _mpt(run, out, what)
        return _dta(run, out)


def _csv(run: RunFile, out: Path, what: str) -> int:
    rows = 0
    with open(out, "w", newline="") as fh:
        if what == "timeseries":
            for k, block in enumerate(_blocks(run)):
                block = _ordered(block)
                units = run.units()
                block.columns = [labelled(c, units.get(c)) for c in block.columns]
                block.to_csv(fh, index=False, header=k == 0, float_format="%.17g")
                rows += len(block)
            return rows
        df = _table(run, what)
        units = df.attrs.get("units", {})
        df.columns = [labelled(c, units.get(c)) for c in df.columns]
        df.to_csv(fh, index=False, float_format="%.17g", quoting=csv.QUOTE_MINIMAL)
        return len(df)


def _parquet(run: RunFile, out: Path, what: str) -> int:
    if what == "timeseries":
        import pyarrow as pa
        import pyarrow.parquet as pq

        writer, rows = None, 0
        for block in _blocks(run):
            block = _ordered(block)
            units = run.units()
            block.columns = [labelled(c, units.get(c)) for c in block.columns]
            table = pa.Table.from_pandas(block, preserve_index=False)
            writer = writer or pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
            rows += len(block)
        if writer is not None:
            writer.close()
        return rows
    df = _table(run, what)
    units = df.attrs.get("units", {})
    df.columns = [labelled(c, units.get(c)) for c in df.columns]
    df.to_parquet(out, index=False)
    return len(df)


def _number(x: float) -> str:
    return f"{x:.10E}"


def _measured(run: RunFile, names: list[str]) -> set[str]:
    """The columns among ``names`` with at least one finite value (one not measured is left out); each
    column is read a block at a time only until its first finite value."""
    n = len(run)
    return {
        name
        for name in names
        if any(np.isfinite(np.asarray(run.column(name, a, a + BLOCK), dtype=float)).any() for a in range(0, n, BLOCK))
    }


def _mpt(run: RunFile, out: Path, what: str) -> int:
    cell, attrs = run.cell, run.attrs
    area_cm2 = u.to_unit(float(cell["electrodes.working_area"]), "cm^2")
    technique = str(attrs.get("technique", ""))
    if what == "timeseries":
        present = [k for k in MPT_TIMESERIES if k in run.columns()]
        measured = _measured(run, present)
        cols = {k: MPT_TIMESERIES[k] for k in present if k in measured}
        # a run of the rig states no technique: its steps are galvanostatic
        title = MPT_TITLES.get(technique) if technique else "Chronopotentiometry"
    else:
        cols = {
            "frequency": ("freq/Hz", 1.0),
            "z_real": ("Re(Z)/Ohm", 1.0),
            "z_imag": ("-Im(Z)/Ohm", -1.0),
            "t": ("time/s", 1.0),
            "E_dc": ("<Ewe>/V", 1.0),
            "I_dc": ("<I>/mA", 1e3),
            "spectrum": ("cycle number", 1.0),
        }
        title = MPT_TITLES["peis" if technique == "peis" else "geis"]
    header = [
        "EC-Lab ASCII FILE",
        "",  # "Nb header lines : N", filled in below
        "",
        *([title, ""] if title else []),  # no title line: the reader leaves the technique unknown
        f"Acquisition started on : {_mpt_time(attrs.get('start_time', ''))}",
        f"Comments : {attrs.get('protocol', '')} on {cell.get('cell_id', '')}, exported by {attrs.get('software', '')}",
        *([f"Electrode surface area : {area_cm2:.6g} cm²"] if np.isfinite(area_cm2) else []),
        "",
    ]
    labels = [label for label, _ in cols.values()]
    header[1] = f"Nb header lines : {len(header) + 1}"  # the label line is the last header line
    rows = 0
    with open(out, "w", encoding="cp1252", newline="\r\n") as fh:
        fh.write("\n".join(header) + "\n" + "\t".join(labels) + "\t\n")
        for block in _blocks(run) if what == "timeseries" else [_table(run, "spectra")]:
            arrays = [np.asarray(block[name], dtype=float) * factor for name, (_, factor) in cols.items()]
            counters = {"cycle number", "Ns"}
            for values in zip(*arrays):
                cells = [
                    str(int(v)) if label in counters else _number(v) for (label, _), v in zip(cols.values(), values)
                ]
                fh.write("\t".join(cells) + "\t\n")
            rows += len(block)
    return rows


def _mpt_time(iso: str) -> str:
    try:
        t = dt.datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return t.strftime("%m/%d/%Y %H:%M:%S.") + f"{t.microsecond // 1000:03d}"


def _dta(run: RunFile, out: Path) -> int:
    cell, attrs = run.cell, run.attrs
    cols = {k: v for k, v in DTA_TIMESERIES.items() if k in run.columns()}
    n = len(run)
    area_cm2 = u.to_unit(float(cell["electrodes.working_area"]), "cm^2")
    start = attrs.get("start_time", "")
    try:
        t0 = dt.datetime.fromisoformat(start)
        date, time = t0.strftime("%m/%d/%Y"), t0.strftime("%H:%M:%S")
    except ValueError:
        date = time = ""
    lines = [
        "EXPLAIN",
        "TAG\tCHRONOP",
        f"TITLE\tLABEL\t{attrs.get('protocol', 'run')}\tTest Identifier",
        f"DATE\tLABEL\t{date}\tDate",
        f"TIME\tLABEL\t{time}\tTime",
        f"AREA\tQUANT\t{area_cm2:.5E}\tSample Area (cm^2)",
        "NOTES\tNOTES\t1\tNotes...",
        f"\t{cell.get('cell_id', '')}, exported by {attrs.get('software', '')}",
        f"CURVE\tTABLE\t{n}",
        "\tPt\t" + "\t".join(name for name, _, _ in cols.values()),
        "\t#\t" + "\t".join(unit for _, unit, _ in cols.values()),
    ]
    rows = 0
    with open(out, "w", encoding="cp1252", newline="\r\n") as fh:
        fh.write("\n".join(lines) + "\n")
        for block in _blocks(run):
            arrays = [np.asarray(block[k], dtype=float) * f for k, (_, _, f) in cols.items()]
            for i, values in enumerate(zip(*arrays)):
                cells = [str(int(v)) if unit == "#" else f"{v:.10E}" for (_, unit, _), v in zip(cols.values(), values)]
                fh.write(f"\t{rows + i}\t" + "\t".join(cells) + "\n")
            rows += len(block)
    return rows
