"""Gamry EXPLAIN recordings (.DTA text).

Layout: ``EXPLAIN``, ``TAG<TAB>name`` (the experiment script, e.g. CHRONOP, EISGALV), then header lines
``KEY<TAB>TYPE<TAB>VALUE...<TAB>label`` and tables ``NAME<TAB>TABLE[<TAB>rows]`` followed by a
column-name line, a unit line and tab-indented rows. Types read: LABEL, PSTAT (text), QUANT (number),
IQUANT and SELECTOR (integers), TOGGLE (T/F), POTEN (number + "vs Eoc" toggle), TWOPARAM (toggle + two
numbers), NOTES (a count of following free-text lines); unknown types are kept as raw text.

Tables: ``CURVE``/``CURVEn`` (chrono and sweep data, several are concatenated with a ``segment``
column), ``ZCURVE`` (impedance), ``OCVCURVE`` (open circuit before the test, kept in ``tables``).
Tables of type DTABLE (an eQCM resonator's ``QCMCurve``) are read like TABLE and kept in ``tables``.
A table holding fewer rows than its declared count is read as far as it goes and the recording is marked
``incomplete`` (the run stopped early, or the file was cut at a line end); a row cut mid-line is refused.
An aborted run keeps its planned count: bcliang/gamry-parser tests/test_data/squarewave_data.dta declares
251 rows (its CYCLES) and holds 10, then EXPERIMENTABORTED T.
PCs set to an EU locale write decimal commas; both are read. Files are Windows-1252 unless they decode
as UTF-8.
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
# Gamry's Virtual Front Panel writes the same layout under its own first line, with a ``VFPCURVE`` table
# of Voltage and Current and no time column: sample k is at k / FREQ (the header's acquisition
# frequency), as bcliang/gamry-parser gamry_parser/vfp600.py (``VFP600.get_curve_data``) reads it.
VFP_MAGIC = "VFP600"

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
# Electrochemical quartz-crystal microbalance scripts tag the technique ``<TAG>EQCM`` (DrSPE/Gamry-eQCM
# exampleFiles/QCM_RCV_Cu_calibration.DTA: TAG CVEQCM, TITLE "Cyclic Voltammetry") and append the resonator's
# header (QCMOFFSETTIME...) and a ``QCMCurve`` table of type DTABLE after the CURVEn tables; its T runs on the
# resonator's clock, QCMOFFSETTIME seconds ahead of the potentiostat's, which DrSPE/Gamry-eQCM
# cv_qcm_import_v8.py subtracts to put both on one time axis. Unconfirmed by a vendor document.
EQCM_SUFFIX = "EQCM"
TABLE_TYPES = ("TABLE", "DTABLE")
QCM_OFFSET_KEY = "QCMOFFSETTIME"

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
    "ACH": "aux",  # Framework 6 eQCM files spell it in capitals (DrSPE/Gamry-eQCM, as above)
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
    "V": "E_we",
    "I": "I",
    "Cycle": "cycle",
    "Voltage": "E_we",
    "Current": "I",
}

# The unit Gamry writes for each column (Gamry's own files; the unit line of a table says the same
# when it is readable). Used when the file's unit is not one the product can read ('\ufffd' where a
# PC wrote the degree sign in another code page) or names another dimension (time written "S").
EXPECTED_UNITS = {
    "T": "s",
    "Time": "s",
    "Freq": "Hz",
    "Zreal": "ohm",
    "Zimag": "ohm",
    "Zmod": "ohm",
    "Zphz": "deg",
    "Zsig": "V",
    "Vf": "V",
    "Vm": "V",
    "Vu": "V",
    "Sig": "V",
    "Ach": "V",
    "ACH": "V",
    "Vdc": "V",
    "V": "V",
    "Im": "A",
    "Idc": "A",
    "I": "A",
    "Q": "C",
    "Temp": "deg C",
    "Voltage": "V",
    "Current": "A",
}
_CURVE_RE = re.compile(r"^(?P<role>(?:VFP)?CURVE(?: [A-Z]+)?)\d*$")
# Bipotentiostat (rotating ring-disk) scripts tag their technique ``COLLECT<TAG>`` and write a ``CURVE GENERATOR``
# (the disk, running the technique) and a ``CURVE DETECTOR`` (the ring, held at VRING "Ring E"), each after its own
# PSTAT GENERATOR / PSTAT COLLECTOR header block: nomad-hzb/nomad-chemical-energy tests/data/3stepCACA.DTA (TITLE
# "3-step CA3 at WE1 and CA at WE2") and CVCA.DTA ("CV at WE1 and CA"). Unconfirmed by a vendor document.
COLLECT_PREFIX = "COLLECT"
GENERATOR_CURVE = "CURVE GENERATOR"

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
    "EOC": ("E_open_circuit", "V"),
    "ZGUESS": ("Z_estimate", "ohm"),
}
# Gamry writes EOC as a bare 0 when no open-circuit potential was measured before the test: every CV, LSV and
# CHRONOA file of nomad-hzb/nomad-chemical-energy tests/data (CV.DTA, LSV.DTA, CHRONOA.DTA) and
# miloszewiczek/gamry_post_processing_ input/CV_ECSA_#1.DTA says "EOC QUANT 0", while a measured one carries the
# reading's digits (input/HER_#1_#1.DTA: 0.4457435). A zero is therefore read as "not measured". Unconfirmed by
# a vendor document.
EOC_KEY = "EOC"
THERMOCOUPLE_MAX_K = 1372.0 + 273.15
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
    def __init__(self, name: str, names: list[str], units: list[str], rows: list[list[str]], line: int, declared=None):
        self.name, self.names, self.units, self.rows, self.line = name, names, units, rows, line
        self.declared: int | None = declared


def _parse(text: str, path: Path) -> tuple[str | None, dict[str, Any], list[_Table], list[str]]:
    lines = text.splitlines()
    if not lines or lines[0].strip() not in (MAGIC, VFP_MAGIC):
        raise fail(path, f"not a Gamry EXPLAIN file (first line is not '{MAGIC}' or '{VFP_MAGIC}')")
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
        elif typ in TABLE_TYPES:
            i = _table(lines, i, key, parts, path, tables)
            continue
        elif typ and key not in header:  # a repeated key (a second instrument's block) keeps the first
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
    out.append(_Table(name, names, units, rows, i + 1, declared))
    return j


def _unit(col: str, unit: str, table: str, notes: list[str]) -> tuple[float, float, str] | None:
    """SI conversion of a column's unit, checked against what Gamry writes for that column."""
    conv = si_conversion(unit)
    expected = EXPECTED_UNITS.get(col)
    if expected is None:
        return conv
    want = si_conversion(expected)
    assert want is not None
    if conv is not None and conv[2] == want[2]:
        return conv
    for variant in (unit.lower(), unit.upper()):
        alt = si_conversion(variant)
        if alt is not None and alt[2] == want[2]:
            notes.append(f"table {table}, column {col}: unit '{unit}' read as '{variant}'")
            return alt
    notes.append(f"table {table}, column {col}: unit '{unit}' not readable; Gamry's unit '{expected}' assumed")
    return want


def _physical_temperature(
    values: dict, units: dict, name: str, text: list[str], table: str, col: str, notes: list[str]
) -> bool:
    """Temperatures below absolute zero or above a thermocouple's range are no measurement (a channel with
    no probe: Gamry files show -327.6 deg C there, and ~1489 deg C from Interface 1010 instruments as in
    nomad-hzb/nomad-chemical-energy tests/data/CHRONOP.DTA; both unconfirmed by a vendor document). The
    bound is the top of type K, the widest base-metal type (1372 deg C, IEC 60584-1). A column of nothing
    else is left out, single such values become NaN; False when the column was left out."""
    bad = (values[name] < 0) | (values[name] > THERMOCOUPLE_MAX_K)
    if not bad.any():
        return True
    if bad.all():
        del values[name], units[name]
        notes.append(f"table {table}, column {col}: left out, every value ({text[0]}) is out of a probe's range")
        return False
    values[name] = np.where(bad, np.nan, values[name])
    notes.append(f"table {table}, column {col}: {int(bad.sum())} values out of a probe's range set to NaN")
    return True


def _columns(
    table: _Table, path: Path, notes: list[str]
) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, str]]:
    """SI columns of a table: values, units, and the vendor label each came from."""
    values: dict[str, np.ndarray] = {}
    units: dict[str, str] = {}
    sources: dict[str, str] = {}
    cols = list(zip(*table.rows))
    for k, (col, unit) in enumerate(zip(table.names, table.units)):
        name = unique_name(COLUMN_NAMES.get(col, col), values)
        label = f"{col} ({unit})" if unit else col
        text = list(cols[k])
        if col in ("Over", "Overload", "OlCtrl") or unit == "bits":  # flags, one character each, '.' = clear
            values[name] = np.array([any(ch not in ". " for ch in c) for c in text], dtype=np.int64)
            units[name] = "1"
        else:
            raw = to_float_array(text, path, f"table {table.name}, column '{col}'")
            conv = _unit(col, unit, table.name, notes)
            if conv is None:  # unknown unit: keep as written and say so
                values[name], units[name] = raw, unit or "1"
                notes.append(f"table {table.name}, column {col}: unit '{unit}' cannot be converted; kept as written")
            else:
                factor, offset, si = conv
                if si == "1" and np.all(np.isfinite(raw)) and np.all(raw == np.round(raw)):
                    values[name] = raw.astype(np.int64)
                else:
                    values[name] = raw * factor + offset
                units[name] = si
                if si == "K" and not _physical_temperature(values, units, name, text, table.name, col, notes):
                    continue
        sources[name] = label
    return values, units, sources


_COMMA_NUMBER = re.compile(r"^-?\d*,\d+(?:[Ee][+-]?\d+)?$")


def _decimal_comma(tables: list[_Table]) -> bool:
    """Whether the PC wrote decimal commas (any cell like 1,5 or 2,0E-003 in the first rows)."""
    return any(_COMMA_NUMBER.match(c) for t in tables for row in t.rows[:5] for c in row)


def _start_time(header: dict[str, Any], rec: Recording, comma: bool = False) -> None:
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
    elif b <= 12 and (sep == "-" or comma):
        # Windows short dates with dashes and the year last are day-first (nl-NL d-M-yyyy, da-DK); the US
        # default is M/d/yyyy. Same rule as bcliang/gamry-parser gamry_parser/gamryparser.py
        # (_convert_T_to_Timestamp: dayfirst when DATE matches d-d-yyyy). A PC that writes decimal commas
        # is set to a locale whose short date is day-first too (CLDR: fr, es, it, pt-BR dd/MM/y; de, ru
        # dd.MM.y; nl d-M-y): no decimal-comma locale writes month first.
        why = "the dashes" if sep == "-" else "the decimal commas"
        d, mo, y, order = a, b, c, f"day-month-year (assumed from {why})"
    elif b > 12:
        mo, d, y, order = a, b, c, "month-day-year"
    else:
        mo, d, y, order = a, b, c, "month-day-year (assumed: day and month both <= 12)"
    if y < 100:
        y += 2000
    # the hour may lack its leading zero (9:40:00) and carry AM/PM where the PC's locale says so
    hms = re.match(r"^(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?\s*([AaPp][Mm])?$", clock)
    if clock and not hms:
        return
    h, mi, sec, frac, half = hms.groups() if hms else ("0", "0", None, None, None)
    hour = int(h) % 12 + (12 if half and half.upper() == "PM" else 0) if half else int(h)
    try:
        t = _dt.time(hour, int(mi), int(sec or 0), int((frac or "0").ljust(6, "0")))
        when = _dt.datetime.combine(_dt.date(y, mo, d), t)
    except ValueError:
        return
    rec.set_meta("start_time", when.isoformat(timespec="milliseconds" if t.microsecond else "seconds"))
    rec.set_meta("date_order", order)


def _metadata(header: dict[str, Any], rec: Recording, comma: bool = False) -> None:
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
    if isinstance(version, float):  # written as a QUANT before Framework 7 ("6.25", "6,33")
        version = f"{version:.2f}"
    if isinstance(version, str) and version:
        rec.set_meta("software_version", version)
    _start_time(header, rec, comma)
    for key, (meta, unit) in HEADER_QUANTITIES.items():
        entry = header.get(key)
        if not entry:
            continue
        v = entry["value"]
        if isinstance(v, dict):
            v = v.get("value")
        if not isinstance(v, float) or not math.isfinite(v) or (key == EOC_KEY and v == 0.0):
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
    base = tag[len(COLLECT_PREFIX) :] if tag and tag.startswith(COLLECT_PREFIX) else tag
    if base and base.endswith(EQCM_SUFFIX) and len(base) > len(EQCM_SUFFIX):
        base = base[: -len(EQCM_SUFFIX)]
    technique = TECHNIQUE_TAGS.get(base or "", "unknown")
    rec = Recording(source=path, vendor="gamry", file_format="gamry-explain-dta", technique=technique)
    rec.header = {"tag": tag, "entries": header, "notes": notes}
    if tag:
        rec.set_meta("vendor_technique", tag)
    title = header.get("TITLE", {}).get("value")
    if isinstance(title, str):
        rec.set_meta("vendor_technique_name", title)
    _metadata(header, rec, _decimal_comma(tables))

    _status_and_reference(header, tables, rec)
    notes: list[str] = []
    groups = _groups(tables)
    if not groups:
        found = ", ".join(t.name for t in tables) or "none"
        raise fail(path, f"no data table found (tables in the file: {found}; expected CURVE..., ZCURVE or OCVCURVE)")
    for parts in groups.values():
        for t in parts:
            if not t.rows:
                raise fail(path, f"table {t.name} (line {t.line}) has no rows (empty table)")
    main_name = next(iter(groups))
    for name, parts in groups.items():
        values, units, sources = _concatenate([_columns(t, path, notes) for t in parts], parts)
        if name == main_name:
            for key in values:
                rec.add_column(key, values[key], units[key], sources[key])
        else:
            rec.tables[name] = values
            rec.table_units[name] = units
    rec.header["tables"] = [f"{t.name} ({len(t.rows)} rows, line {t.line})" for t in tables]
    _row_counts(tables, rec)
    rec.notes.extend(dict.fromkeys(notes))
    if "t" not in rec.timeseries:
        _time_from_rate(header, rec)
    if "t" not in rec.timeseries:
        raise fail(path, f"table {groups[main_name][0].name} has no time column (T or Time)")
    if "sample_period" not in rec.metadata and rec.n_samples > 1 and "freq" not in rec.timeseries:
        rec.set_meta("sample_period", float(np.median(np.diff(rec.timeseries["t"]))), "s")
    _qcm_time(header, rec)
    if "ZCURVE" in groups:
        z = rec.timeseries if main_name == "ZCURVE" else rec.tables["ZCURVE"]
        zu = rec.units if main_name == "ZCURVE" else rec.table_units["ZCURVE"]
        if all(k in z for k in ("freq", "Z_re", "Z_im")):
            rec.spectra.append(_spectrum(z, zu))
    return rec


def _qcm_time(header: dict[str, Any], rec: Recording) -> None:
    """Put a resonator table's times on the potentiostat's clock (see EQCM_SUFFIX)."""
    offset = header.get(QCM_OFFSET_KEY, {}).get("value")
    for name, table in rec.tables.items():
        if not name.upper().startswith("QCM") or "t" not in table:
            continue
        if isinstance(offset, float) and math.isfinite(offset):
            table["t"] = table["t"] - offset
            rec.set_meta("qcm_time_offset", offset, "s")
            rec.notes.append(f"table {name}: t is the resonator's T minus {QCM_OFFSET_KEY} ({offset:g} s)")
        else:
            rec.notes.append(f"table {name}: no {QCM_OFFSET_KEY}; t is the resonator's own clock")


def _time_from_rate(header: dict[str, Any], rec: Recording) -> None:
    """Times of a table without a time column (Virtual Front Panel files) from the acquisition frequency."""
    rate = header.get("FREQ", {}).get("value")
    if isinstance(rate, float) and math.isfinite(rate) and rate > 0 and rec.timeseries:
        n = len(next(iter(rec.timeseries.values())))
        rec.add_column("t", np.arange(n) / rate, "s", "point index / FREQ")
        rec.set_meta("sample_period", 1.0 / rate, "s")
        rec.notes.append(f"no time column: t is the point index over the acquisition frequency ({rate:g} Hz)")


def _row_counts(tables: list[_Table], rec: Recording) -> None:
    """Tables whose rows do not match their declared count: read as they are, and said so."""
    for t in tables:
        if t.declared is None or t.declared == len(t.rows):
            continue
        rec.notes.append(f"table {t.name} declares {t.declared} rows but holds {len(t.rows)}; those rows were read")
        if len(t.rows) < t.declared and rec.metadata.get("status") == "completed":
            rec.set_meta("status", "incomplete")


def _groups(tables: list[_Table]) -> dict[str, list[_Table]]:
    """Data tables by kind, in file order: each curve role (CURVE, CURVE DETECTOR, CURVE GENERATOR...)
    with its numbered parts, then ZCURVE, then OCVCURVE and other tables with rows of samples.

    The first group is the recording's main timeseries; the others go to ``tables``. Numbered parts of
    one role with the same columns are one curve in sequence (a ``segment`` column tells them apart).
    """
    out: dict[str, list[_Table]] = {}
    ordered = [t for t in tables if t.name.startswith(GENERATOR_CURVE)]
    ordered += [t for t in tables if _CURVE_RE.match(t.name) and t not in ordered]
    ordered += [t for t in tables if t.name == "ZCURVE"]
    ordered += [t for t in tables if t not in ordered]
    for t in ordered:
        m = _CURVE_RE.match(t.name)
        role = m.group("role") if m else t.name
        if role in out and out[role][0].names != t.names:
            role = t.name  # a part with other columns stands on its own
        out.setdefault(role, []).append(t)
    return out


def _concatenate(decoded: list, parts: list[_Table]) -> tuple[dict, dict, dict]:
    values = {k: np.concatenate([d[0][k] for d in decoded]) for k in decoded[0][0]}
    units, sources = decoded[0][1], decoded[0][2]
    if len(parts) > 1:
        values["segment"] = np.concatenate([np.full(len(t.rows), k, dtype=np.int64) for k, t in enumerate(parts)])
        units["segment"], sources["segment"] = "1", "table index"
    return values, units, sources


def _spectrum(values: dict[str, np.ndarray], units: dict[str, str]) -> Spectrum:
    fixed = {"freq", "Z_re", "Z_im", "t", "I_dc", "E_dc"}
    extra = {k: v for k, v in values.items() if k not in fixed}
    n = values["freq"].size
    return Spectrum(
        frequency=values["freq"],
        Z_re=values["Z_re"],
        Z_im=values["Z_im"],
        time=values["t"] if "t" in values else np.full(n, np.nan),
        I_dc=values.get("I_dc"),
        E_dc=values.get("E_dc"),
        extra=extra,
        units={k: units[k] for k in extra},
    )


def _status_and_reference(header: dict[str, Any], tables: list[_Table], rec: Recording) -> None:
    """An aborted experiment, and DC set-points written against the open-circuit potential.

    A POTEN entry with its toggle set is relative to Eoc: the applied potential is the value plus the
    EOC header entry (or, without one, the last potential of the OCVCURVE table).
    """
    aborted = header.get("EXPERIMENTABORTED", {}).get("value")
    rec.set_meta("status", "aborted" if aborted is True else "completed")
    if aborted is True:
        rec.notes.append("the instrument recorded the experiment as aborted (EXPERIMENTABORTED = T)")
    eoc = header.get(EOC_KEY, {}).get("value")
    if not isinstance(eoc, float) or eoc == 0.0:  # 0: not measured (see EOC_KEY)
        ocv = next((t for t in tables if t.name == "OCVCURVE" and t.rows and "Vf" in t.names), None)
        eoc = parse_number(ocv.rows[-1][ocv.names.index("Vf")]) if ocv else None
    for key, meta in (("VDC", "voltage_dc"), ("VINIT", "E_initial"), ("VFINAL", "E_final")):
        entry = header.get(key, {})
        v = entry.get("value")
        if entry.get("type") != "POTEN" or not isinstance(v, dict) or not isinstance(v.get("value"), float):
            continue
        if v.get("vs_eoc"):
            rec.set_meta(f"{meta}_vs_eoc", v["value"], "V")
            if eoc is not None:
                rec.set_meta(meta, v["value"] + eoc, "V")
                rec.set_meta(f"{meta}_reference", f"Eoc ({eoc:.6g} V) + {v['value']:.6g} V")
            else:
                why = "was not measured (EOC 0, no OCVCURVE)" if EOC_KEY in header else "is not stated in the file"
                rec.notes.append(f"{key} is set against Eoc, which {why}: applied value unknown")
        else:
            rec.set_meta(meta, v["value"], "V")
            rec.set_meta(f"{meta}_reference", "reference electrode")
