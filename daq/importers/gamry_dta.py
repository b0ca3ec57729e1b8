"""Gamry EXPLAIN recordings (.DTA text).

Layout: ``EXPLAIN``, ``TAG<TAB>name`` (the experiment script, e.g. CHRONOP, EISGALV), then header lines
``KEY<TAB>TYPE<TAB>VALUE...<TAB>label`` and tables ``NAME<TAB>TABLE[<TAB>rows]`` followed by a
column-name line, a unit line and tab-indented rows. Types read: LABEL, PSTAT (text), QUANT (number),
IQUANT and SELECTOR (integers), TOGGLE (T/F), POTEN (number + "vs Eoc" toggle), TWOPARAM (toggle + two
numbers), NOTES (a count of following free-text lines); unknown types are kept as raw text.

Tables: ``CURVE``/``CURVEn`` (chrono and sweep data, several are concatenated with a ``segment``
column), ``ZCURVE`` (impedance), ``OCVCURVE`` (open circuit before the test, kept in ``tables``).
A declared row count that the table does not reach means a truncated file. PCs set to an EU locale
write decimal commas; both are read. Files are Windows-1252 unless they decode as UTF-8.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from daq.importers._common import fail, parse_number, si_conversion, to_float_array, unique_name
from daq.importers.recording import Recording, Spectrum

MAGIC = "EXPLAIN"

TECHNIQUE_TAGS = {
    "CHRONOP": "chronopotentiometry",
    "CHRONOA": "chronoamperometry",
    "CHRONOC": "chronoamperometry",
    "EISPOT": "peis",
    "EISGALV": "geis",
    "GALVEIS": "geis",
    "CORPOT": "open_circuit",
    "CV": "cyclic_voltammetry",
    "LSV": "linear_sweep_voltammetry",
}

# Gamry column name -> neutral name (units come from the file's unit line).
COLUMN_NAMES = {
    "Pt": "point",
    "T": "t",
    "Time": "t",
    "Vf": "E_we",
    "Vm": "E_m",
    "Im": "I",
    "Vu": "E_uncomp",
    "Sig": "signal",
    "Ach": "aux",
    "IERange": "I_range_code",
    "Over": "overload",
    "Temp": "temperature",
    "Q": "Q",
    "Freq": "freq",
    "Zreal": "Z_re",
    "Zimag": "Z_im",
    "Zsig": "Z_sig",
    "Zmod": "Z_mod",
    "Zphz": "Z_phase",
    "Idc": "I_dc",
    "Vdc": "E_dc",
}

# Header keys that become SI metadata: key -> (metadata key, unit the value is written in).
# Gamry labels give units for most quantities ("Sample Period (s)"); currents carry none and are in A.
HEADER_QUANTITIES = {
    "SAMPLETIME": ("sample_period", "s"),
    "AREA": ("electrode_area", "cm^2"),
    "VLIMITLOWER": ("E_limit_min", "V"),
    "VLIMITUPPER": ("E_limit_max", "V"),
    "EQDELAY": ("equilibration_time", "s"),
    "FREQINIT": ("frequency_initial", "Hz"),
    "FREQFINAL": ("frequency_final", "Hz"),
    "IACREQ": ("current_amplitudes", "A"),
    "VACREQ": ("voltage_amplitude", "mV"),
    "VAC": ("voltage_amplitude", "mV"),
    "IDC": ("current_setpoints", "A"),
    "VDC": ("voltage_dc", "V"),
    "EOC": ("E_open_circuit", "V"),
    "ZGUESS": ("Z_estimate", "ohm"),
}
_STEP_RE = re.compile(r"^I(PRESTEP|STEP\d+)$")


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _toggle(text: str) -> bool | None:
    t = text.strip().upper()
    if t in ("T", "TRUE", "1"):
        return True
    if t in ("F", "FALSE", "0"):
        return False
    return None


def _value(typ: str, fields: list[str]) -> tuple[Any, str]:
    """Typed value and label of one header entry; raw text when the value does not parse."""

    def get(k: int) -> str:
        return fields[k].strip() if len(fields) > k else ""

    try:
        if typ in ("QUANT",):
            return parse_number(get(0)), get(1)
        if typ in ("IQUANT", "SELECTOR"):
            return int(parse_number(get(0))), get(1)
        if typ == "TOGGLE":
            return _toggle(get(0)), get(1)
        if typ == "POTEN":
            return {"value": parse_number(get(0)), "vs_eoc": _toggle(get(1))}, get(2)
        if typ == "TWOPARAM":
            return {"enabled": _toggle(get(0)), "values": [parse_number(get(1)), parse_number(get(2))]}, get(3)
    except ValueError:
        pass
    if typ in ("LABEL", "PSTAT"):
        return get(0), get(1)
    return [f.strip() for f in fields], ""


class _Table:
    def __init__(self, name: str, names: list[str], units: list[str], rows: list[list[str]], line: int):
        self.name, self.names, self.units, self.rows, self.line = name, names, units, rows, line


def _parse(text: str, path: Path) -> tuple[str | None, dict[str, Any], list[_Table], list[str]]:
    lines = text.splitlines()
    if not lines or lines[0].strip() != MAGIC:
        raise fail(path, f"not a Gamry EXPLAIN file (first line is not '{MAGIC}')")
    tag = None
    header: dict[str, Any] = {}
    tables: list[_Table] = []
    notes: list[str] = []
    i = 1
    while i < len(lines):
        line = lines[i]
        parts = line.split("\t")
        key = parts[0].strip()
        typ = parts[1].strip() if len(parts) > 1 else ""
        if not key:  # stray indented line outside a table
            i += 1
            continue
        if key == "TAG":
            tag = typ
        elif typ == "NOTES":
            try:
                count = int(parse_number(parts[2])) if len(parts) > 2 else 0
            except ValueError:
                count = 0
            count = max(0, min(count, len(lines) - i - 1))
            notes.extend(x.strip() for x in lines[i + 1 : i + 1 + count])
            i += count
        elif typ == "TABLE":
            i = _table(lines, i, key, parts, path, tables)
            continue
        elif typ:
            value, label = _value(typ, parts[2:])
            header[key] = {"type": typ, "value": value, "label": label}
        i += 1
    return tag, header, tables, notes


def _cells(line: str) -> list[str]:
    cells = line.split("\t")[1:]
    while cells and cells[-1].strip() == "":
        cells.pop()
    return [c.strip() for c in cells]


def _table(lines: list[str], i: int, name: str, parts: list[str], path: Path, out: list[_Table]) -> int:
    """Read one table starting at line ``i``; return the index of the first line after it."""
    declared = None
    if len(parts) > 2 and parts[2].strip():
        try:
            declared = int(parts[2].strip())
        except ValueError:
            raise fail(path, f"line {i + 1}: table {name} row count '{parts[2].strip()}' is not a number") from None
    if i + 2 >= len(lines):
        raise fail(path, f"table {name} (line {i + 1}) has no column-name and unit lines (file truncated)")
    names, units = _cells(lines[i + 1]), _cells(lines[i + 2])
    if not names or "" in names:
        raise fail(path, f"table {name}: line {i + 2} should list the column names")
    if len(units) < len(names):
        units += [""] * (len(names) - len(units))
    if len(units) != len(names):
        raise fail(path, f"table {name}: {len(names)} column names but {len(units)} units")
    rows = []
    j = i + 3
    while j < len(lines) and lines[j].startswith("\t") and lines[j].strip():
        cells = _cells(lines[j])
        if len(cells) != len(names):
            raise fail(
                path,
                f"table {name}, line {j + 1}: {len(cells)} values, expected {len(names)} (file truncated or damaged)",
            )
        rows.append(cells)
        j += 1
    if declared is not None and len(rows) != declared:
        raise fail(path, f"table {name} declares {declared} rows but holds {len(rows)} (file truncated or damaged)")
    out.append(_Table(name, names, units, rows, i + 1))
    return j


def _columns(table: _Table, path: Path) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, str]]:
    """SI columns of a table: values, units, and the vendor label each came from."""
    values: dict[str, np.ndarray] = {}
    units: dict[str, str] = {}
    sources: dict[str, str] = {}
    cols = list(zip(*table.rows))
    for k, (col, unit) in enumerate(zip(table.names, table.units)):
        name = unique_name(COLUMN_NAMES.get(col, col), values)
        label = f"{col} ({unit})" if unit else col
        text = list(cols[k])
        if col == "Over" or unit == "bits":  # overload flags: one character per condition, '.' = clear
            values[name] = np.array([any(ch not in ". " for ch in c) for c in text], dtype=np.int64)
            units[name] = "1"
        else:
            raw = to_float_array(text, path, f"table {table.name}, column '{col}'")
            conv = si_conversion(unit)
            if conv is None:  # unknown unit: keep as written and say so
                values[name], units[name] = raw, unit
            else:
                factor, offset, si = conv
                if si == "1" and np.all(np.isfinite(raw)) and np.all(raw == np.round(raw)):
                    values[name] = raw.astype(np.int64)
                else:
                    values[name] = raw * factor + offset
                units[name] = si
        sources[name] = label
    return values, units, sources


def _start_time(header: dict[str, Any], rec: Recording) -> None:
    date = str(header.get("DATE", {}).get("value", "")).strip()
    clock = str(header.get("TIME", {}).get("value", "")).strip()
    m = re.match(r"^(\d{1,4})([/.\-])(\d{1,2})\2(\d{1,4})$", date)
    if not m:
        return
    a, sep, b, c = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
    if a > 31:  # year first
        y, mo, d, order = a, b, c, "year-month-day"
    elif sep == "." or a > 12:
        d, mo, y, order = a, b, c, "day-month-year"
    elif b > 12:
        mo, d, y, order = a, b, c, "month-day-year"
    else:
        mo, d, y, order = a, b, c, "month-day-year (assumed: day and month both <= 12)"
    if y < 100:
        y += 2000
    try:
        t = _dt.time.fromisoformat(clock) if clock else _dt.time()
        when = _dt.datetime.combine(_dt.date(y, mo, d), t)
    except ValueError:
        return
    rec.set_meta("start_time", when.isoformat(timespec="milliseconds" if t.microsecond else "seconds"))
    rec.set_meta("date_order", order)


def _metadata(header: dict[str, Any], rec: Recording) -> None:
    rec.set_meta("instrument_vendor", "Gamry")
    section = header.get("PSTATSECTION", {}).get("value")
    if isinstance(section, str) and section:
        rec.set_meta("instrument_model", section.split("-")[0])
        rec.header["instrument_section"] = section
    serial = header.get("PSTATSERIALNO", {}).get("value")
    if isinstance(serial, str) and serial:
        rec.set_meta("instrument_serial", serial)
    elif isinstance(section, str) and "-" in section:
        rec.set_meta("instrument_serial", section.split("-", 1)[1])
    name = header.get("PSTAT", {}).get("value")
    if isinstance(name, str) and name:
        rec.set_meta("instrument_name", name)
    version = header.get("FRAMEWORKVERSION", {}).get("value")
    if isinstance(version, str) and version:
        rec.set_meta("software_version", version)
    _start_time(header, rec)
    for key, (meta, unit) in HEADER_QUANTITIES.items():
        entry = header.get(key)
        if not entry:
            continue
        v = entry["value"]
        if isinstance(v, dict):
            v = v.get("value")
        if not isinstance(v, float) or not math.isfinite(v):
            continue
        m = re.search(r"\(([^()]*)\)\s*$", entry["label"])
        conv = si_conversion(m.group(1)) if m else None
        if conv is None or conv[2] == "1":
            conv = si_conversion(unit)
        if conv is None:
            continue
        value = v * conv[0] + conv[1]
        # Set-points are lists (one per sequence) for every vendor; a Gamry test has one sequence.
        rec.set_meta(meta, [value] if meta in ("current_setpoints", "current_amplitudes") else value, conv[2])
    if "PTSPERDEC" in header and isinstance(header["PTSPERDEC"]["value"], float):
        rec.set_meta("points_per_decade", header["PTSPERDEC"]["value"])
    # Current steps (CHRONOP): IPRESTEP/TPRESTEP, ISTEP1/TSTEP1, ...; currents in A, times in s.
    steps = sorted((k for k in header if _STEP_RE.match(k)), key=lambda k: (k != "IPRESTEP", len(k), k))
    currents, durations = [], []
    for k in steps:
        i_val = header[k]["value"]
        t_val = header.get("T" + k[1:], {}).get("value")
        if isinstance(i_val, float) and isinstance(t_val, float):
            currents.append(i_val)
            durations.append(t_val)
    if currents:
        rec.set_meta("current_setpoints", currents, "A")
        rec.set_meta("step_durations", durations, "s")


def read_dta(path: str | Path) -> Recording:
    """Read a Gamry EXPLAIN .DTA file into a :class:`Recording` (SI units)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise fail(path, f"cannot be opened ({exc.strerror or exc})") from None
    tag, header, tables, notes = _parse(_decode(raw), path)
    technique = TECHNIQUE_TAGS.get(tag or "", "unknown")
    rec = Recording(source=path, vendor="gamry", file_format="gamry-explain-dta", technique=technique)
    rec.header = {"tag": tag, "entries": header, "notes": notes}
    if tag:
        rec.set_meta("vendor_technique", tag)
    title = header.get("TITLE", {}).get("value")
    if isinstance(title, str):
        rec.set_meta("vendor_technique_name", title)
    _metadata(header, rec)

    curves = [t for t in tables if re.fullmatch(r"CURVE\d*", t.name)]
    zcurve = [t for t in tables if t.name == "ZCURVE"]
    main = curves or zcurve
    if not main:
        raise fail(path, "no data table (CURVE or ZCURVE) found")
    for t in main:
        if not t.rows:
            raise fail(path, f"table {t.name} (line {t.line}) has no rows (empty table)")
    first_names = main[0].names
    parts = [t for t in main if t.names == first_names]
    decoded = [_columns(t, path) for t in parts]
    for key in decoded[0][0]:
        rec.add_column(key, np.concatenate([d[0][key] for d in decoded]), decoded[0][1][key], decoded[0][2][key])
    if len(parts) > 1:
        rec.add_column(
            "segment",
            np.concatenate([np.full(len(t.rows), k, dtype=np.int64) for k, t in enumerate(parts)]),
            "1",
            "table index",
        )
    for t in tables:
        if t in parts or not t.rows:
            continue
        values, units, _ = _columns(t, path)
        rec.tables[t.name] = values
        rec.table_units[t.name] = units
    if "t" not in rec.timeseries:
        raise fail(path, f"table {main[0].name} has no time column (T or Time)")
    if "sample_period" not in rec.metadata and rec.n_samples > 1 and "freq" not in rec.timeseries:
        rec.set_meta("sample_period", float(np.median(np.diff(rec.timeseries["t"]))), "s")

    z = zcurve[0] if zcurve and zcurve[0].rows else None
    if z is not None:
        values, units, _ = _columns(z, path) if z not in parts else (rec.timeseries, rec.units, None)
        if all(k in values for k in ("freq", "Z_re", "Z_im")):
            fixed = {"freq", "Z_re", "Z_im", "t", "I_dc", "E_dc"}
            extra = {k: v for k, v in values.items() if k not in fixed}
            rec.spectra.append(
                Spectrum(
                    frequency=values["freq"],
                    Z_re=values["Z_re"],
                    Z_im=values["Z_im"],
                    time=values["t"] if "t" in values else np.full(len(z.rows), np.nan),
                    I_dc=values.get("I_dc"),
                    E_dc=values.get("E_dc"),
                    extra=extra,
                    units={k: units[k] for k in extra},
                )
            )
    return rec
