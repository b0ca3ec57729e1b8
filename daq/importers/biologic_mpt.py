"""BioLogic EC-Lab text exports (.mpt).

Layout: ``EC-Lab ASCII FILE``, ``Nb header lines : N``, then N-3 header lines (technique name,
``key : value`` settings, the technique parameter table in 20-character columns, loop indexes), the
tab-separated column-label line (line N), and tab-separated data rows. Exports from EU-locale PCs
write decimal commas; files are Windows-1252 (``cm²``, ``µA``) unless they decode as UTF-8.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from pathlib import Path

import numpy as np

from daq.importers._biologic import (
    COLUMNS_BY_LABEL,
    CURRENT_UNIT_TEXT,
    FLAG_COLUMNS,
    FREQUENCY_UNIT_TEXT,
    TECHNIQUE_BY_NAME,
    TECHNIQUE_CODES,
    build_spectra,
    control_column,
    finish_columns,
    label_column,
)
from daq.importers._common import fail, parse_number, scaled, si_conversion, to_float_array, unique_name
from daq.importers.recording import Recording

MAGIC = "EC-Lab ASCII FILE"
_FLAG_LABELS = {label: name for name, label, _ in FLAG_COLUMNS.values()}
_PARAM_WIDTH = 20


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _hms(text: str) -> float:
    """EC-Lab durations: ``h:m:s`` (``0:01:00.0000``) or plain seconds."""
    parts = text.strip().split(":")
    if len(parts) > 3:
        raise ValueError(text)
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60.0 + parse_number(p)
    return seconds


def _num(text: str) -> float | None:
    try:
        v = parse_number(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


_SOFTWARE = "EC-Lab for windows "


def _settings(lines: list[str]) -> tuple[str | None, dict[str, str], dict[str, list[str]]]:
    """Technique name, ``key : value`` settings and the technique parameter table (name -> per Ns)."""
    technique = None
    settings: dict[str, str] = {}
    params: dict[str, list[str]] = {}
    in_params = False
    previous = ""
    for line in lines:
        if not line.strip():
            if in_params and params:
                in_params = False
            continue
        if in_params:
            if line.startswith("Number of loops") or line.startswith("Loop "):
                in_params = False
                continue
            name = " ".join(line[:_PARAM_WIDTH].split())  # 'unit  Ia' == 'unit Ia'
            rest = line[_PARAM_WIDTH:]
            values = [rest[i : i + _PARAM_WIDTH].strip() for i in range(0, len(rest), _PARAM_WIDTH)]
            values = [v for v in values if v != ""]
            if name == "vs.":
                name = f"{previous} vs."
            previous = name
            params.setdefault(name, values)
            continue
        if " : " in line or line.rstrip().endswith(" :"):
            key, _, value = line.partition(" :")
            key = key.strip()
            settings.setdefault(key, value.strip())
            if key == "Cycle Definition":
                in_params = True
            continue
        if technique is None and not line.startswith(("\t", " ")):
            technique = line.strip()
        elif line.lower().startswith(_SOFTWARE.lower()):
            # 'EC-Lab for windows v11.52 (software)', a line without ' : ' (dgbowl/yadg
            # tests/test_x_eclab/cv.issue_217.mpt, tests/test_eclab/ca.mpt); other versions write
            # 'EC-LAB for windows v11.61 (software)' (dgbowl/yadg tests/test_x_eclab/gcpl.issue_226.CxN.mpt,
            # liuchzzyy/echemistpy examples/echem/Biologic_EIS.mpt)
            settings.setdefault(_SOFTWARE.strip(), line[len(_SOFTWARE) :].strip())
    return technique, settings, params


_LOOP = re.compile(r"^Loop\s+\d+\s+from point number\s+(\d+)\s+to\s+\d+\s*$")


def _loop_starts(lines: list[str]) -> list[int]:
    """First data row (0-based) of each loop: ``Number of loops : 4`` then ``Loop 1 from point number
    21 to 41`` lines (dgbowl/yadg src/yadg/extractors/eclab/mpt.py reads them as loop start indexes;
    dgbowl/yadg tests/test_x_eclab/peis.issue_149.mpt holds four 21-point sweeps so)."""
    return [int(m.group(1)) for m in map(_LOOP.match, lines) if m]


def _start_time(text: str) -> str | None:
    for fmt in (
        "%m/%d/%Y %H:%M:%S.%f",
        "%m/%d/%Y %H:%M:%S",
        "%m.%d.%Y %H:%M:%S.%f",
        "%m.%d.%Y %H:%M:%S",
        "%m-%d-%Y %H:%M:%S.%f",
        "%m-%d-%Y %H:%M:%S",
    ):
        try:
            return _dt.datetime.strptime(text.strip(), fmt).isoformat(timespec="milliseconds")
        except ValueError:
            continue
    return None


_DATETIME = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})\s+(\d{1,2}):(\d{2}):(\d{1,2}(?:[.,]\d*)?)$")


def _datetime(text: str, day_first: bool) -> _dt.datetime | None:
    """``12/12/2025 13:45:46.2109`` (month first unless ``day_first``); None if not a date-time."""
    m = _DATETIME.match(text.strip())
    if not m:
        return None
    a, b, year, hour, minute, sec = m.groups()
    month, day = (b, a) if day_first else (a, b)
    try:
        base = _dt.datetime(int(year), int(month), int(day), int(hour), int(minute))
    except ValueError:
        return None
    return base + _dt.timedelta(seconds=float(sec.replace(",", ".")))


def _absolute_times(rows: list[list[str]], labels: list[str], rec: Recording, path: Path) -> None:
    """Absolute time stamps in the time column, made seconds since the acquisition start.

    EC-Lab's text export can write ``time/s`` as date-times; the header then says so in a ``Text
    export`` block (``Time format : Absolute MMDDYYYY``; liuchzzyy/echemistpy
    docs/examples/XAS/Echem/Operando2/Cell3_Buffers/HAC_NH3_01_02_GCPL_C04.mpt). Seconds since
    ``Acquisition started on`` are what the relative export holds: in that file the first row's stamp
    minus the acquisition start equals its ``step time/s`` (4608.507 s). A day-first format
    (``DDMMYYYY``) is read day first (unconfirmed: no public file seen); without an acquisition start
    the times count from the first row, and a note says so.
    """
    if "time/s" not in labels or not rows:
        return
    k = labels.index("time/s")
    if _num(rows[0][k]) is not None:
        return
    fmt = rec.header.get("settings", {}).get("Time format", "")
    day_first = "DDMM" in fmt.replace(" ", "").upper()
    stamps = []
    for i, row in enumerate(rows):
        stamp = _datetime(row[k], day_first)
        if stamp is None:
            raise fail(
                path, f"column {k + 1} 'time/s', row {i + 1}: '{row[k][:40]}' is neither seconds nor a date-time"
            )
        stamps.append(stamp)
    start = rec.metadata.get("start_time")
    origin = _dt.datetime.fromisoformat(start) if isinstance(start, str) else stamps[0]
    for row, stamp in zip(rows, stamps):
        row[k] = repr((stamp - origin).total_seconds())
    since = "the acquisition start" if isinstance(start, str) else "the first row (no acquisition start)"
    rec.notes.append(f"time/s holds date-times ({fmt or 'absolute'}): read as seconds since {since}")


def _quantity(text: str) -> tuple[float, str] | None:
    """``0.001 cm²`` -> (1e-7, "m^2"); None if not a number with a known unit."""
    m = re.match(r"^\s*([-+]?[\d.,]+(?:[eE][-+]?\d+)?)\s*(.*?)\s*$", text)
    if not m:
        return None
    value = _num(m.group(1))
    conv = si_conversion(m.group(2))
    if value is None or conv is None:
        return None
    factor, offset, unit = conv
    return value * factor + offset, unit


def _apply_settings(rec: Recording, settings: dict[str, str]) -> None:
    if "Acquisition started on" in settings:
        start = _start_time(settings["Acquisition started on"])
        if start:
            rec.set_meta("start_time", start)
    m = re.match(r"^(.*?)\s*\(SN\s*(\w+)\)", settings.get("Device", ""))
    if m:
        rec.set_meta("instrument_model", m.group(1).strip())
        rec.set_meta("instrument_serial", m.group(2))
    m = re.match(r"^(\d+)\s*(?:\(SN\s*(\w+)\))?", settings.get("Run on channel", ""))
    if m:
        rec.set_meta("channel", int(m.group(1)))
        if m.group(2):
            rec.set_meta("channel_serial", m.group(2))
    for key, meta in (("Electrode surface area", "electrode_area"), ("Characteristic mass", "characteristic_mass")):
        q = _quantity(settings.get(key, ""))
        if q and q[0] > 0:
            rec.set_meta(meta, q[0], q[1])
    m = re.match(r"^min\s*=\s*(\S+)\s*V,\s*max\s*=\s*(\S+)\s*V", settings.get("Ewe ctrl range", ""))
    if m and _num(m.group(1)) is not None and _num(m.group(2)) is not None:
        rec.set_meta("E_control_min", _num(m.group(1)), "V")
        rec.set_meta("E_control_max", _num(m.group(2)), "V")
    m = re.match(r"^v([\w.]+)", settings.get(_SOFTWARE.strip(), ""))
    if m:
        rec.set_meta("software_version", m.group(1))


def _scaled(params: dict[str, list[str]], key: str, unit_key: str, table: dict[str, float]) -> list[float] | None:
    if key not in params:
        return None
    values = params[key]
    units = params.get(unit_key, [])
    out = []
    for i, v in enumerate(values):
        x = _num(v)
        u = units[i] if i < len(units) else ""
        out.append(scaled(x, table[u]) if x is not None and u in table else math.nan)
    return out


def _apply_params(rec: Recording, params: dict[str, list[str]]) -> None:
    """SI metadata from the parameter table, by parameter name, whatever the technique."""
    rec.header["technique_parameters"] = params
    cur = _scaled(params, "Is", "unit Is", CURRENT_UNIT_TEXT)
    if cur:
        rec.set_meta("current_setpoints", cur, "A")
    amp = _scaled(params, "Ia", "unit Ia", CURRENT_UNIT_TEXT)
    if amp:
        rec.set_meta("current_amplitudes", amp, "A")
    for key, unit_key, meta in (("fi", "unit fi", "frequency_initial"), ("ff", "unit ff", "frequency_final")):
        f = _scaled(params, key, unit_key, FREQUENCY_UNIT_TEXT)
        if f:
            rec.set_meta(meta, f[0], "Hz")
    for key, meta in (("ts (h:m:s)", "step_durations"),):
        if key in params:
            try:
                rec.set_meta(meta, [_hms(v) for v in params[key]], "s")
            except ValueError:
                pass
    for key, meta in (
        ("tR (h:m:s)", "rest_duration"),
        ("dts (s)", "sample_period"),
        ("dtR (s)", "rest_sample_period"),
        ("E range min (V)", "E_range_min"),
        ("E range max (V)", "E_range_max"),
    ):
        if key in params and params[key]:
            try:
                value = _hms(params[key][0]) if "h:m:s" in key else parse_number(params[key][0])
            except ValueError:
                continue
            rec.set_meta(meta, value, "s" if "(s)" in key or "h:m:s" in key else "V")
    limits = [v for v in (_num(x) for x in params.get("EM (V)", [])) if v is not None]
    if limits:
        rec.set_meta("E_limit", limits, "V")
    for key, meta in (("Nd", "points_per_decade"), ("Na", "average_count"), ("nc cycles", "repeat_count")):
        if key in params and params[key] and _num(params[key][0]) is not None:
            rec.set_meta(meta, int(_num(params[key][0]) or 0))
    n_seq = max((len(v) for v in params.values()), default=0)
    if n_seq:
        rec.set_meta("sequence_count", n_seq)


def _add_columns(rec: Recording, labels: list[str], rows: list[list[str]], path: Path) -> None:
    cols = list(zip(*rows))
    for k, label in enumerate(labels):
        where = f"column {k + 1} '{label}'"
        values = to_float_array(list(cols[k]), path, where)
        if label in _FLAG_LABELS or label in ("Ns", "I Range", "cycle number", "half cycle", "z cycle"):
            col = COLUMNS_BY_LABEL.get(label)
            name = _FLAG_LABELS.get(label) or (col.name if col else label)
            out = values.astype(np.int64) if np.all(np.isfinite(values)) else values
            rec.add_column(unique_name(name, rec.timeseries), out, "1", label)
            continue
        if label == "control/V/mA":
            name, unit, factor = control_column(rec.technique)
            rec.add_column(unique_name(name, rec.timeseries), values * factor, unit, label)
            continue
        col = label_column(label) if label else None
        if col is None:  # no label, or a unit the product cannot convert: kept as written, and said so
            name = label or f"column_{k + 1}"
            unit = label.rpartition("/")[2] if "/" in label else "1"
            rec.notes.append(
                f"column {k + 1} '{label}' kept as written: "
                + ("it has no label" if not label else f"unit '{unit}' cannot be converted to SI")
            )
            rec.add_column(unique_name(name, rec.timeseries), values, unit, label or f"(no label, column {k + 1})")
            continue
        rec.add_column(unique_name(col.name, rec.timeseries), values * col.factor + col.offset, col.unit, label)


def _labels(line: str, width: int, n_header: int, path: Path, rec_notes: list[str]) -> list[str]:
    """The column labels, one per data column.

    Labels past the width of the data rows are dropped with a note when an empty label ends the data
    columns (EC-Lab writes an empty label and a label without data after the last column in some
    exports); otherwise the rows are short and the file is refused. A repeated label is an error.
    """
    labels = [x.strip() for x in line.split("\t")]
    while labels and labels[-1] == "" and len(labels) > width:
        labels.pop()
    if len(labels) > width:
        extra = labels[width:]
        if extra[0]:  # no empty label ends the data columns: the rows are short, not the labels long
            raise fail(
                path, f"line {n_header + 1} has {width} values, expected {len(labels)} (file truncated or damaged)"
            )
        rec_notes.append(f"line {n_header}: labels without data columns ignored: {extra}")
        labels = labels[:width]
    if not any(labels):
        raise fail(path, f"line {n_header} should hold the tab-separated column labels")
    named = [x for x in labels if x]
    if len(set(named)) != len(named):
        dup = sorted({x for x in named if named.count(x) > 1})
        raise fail(path, f"line {n_header}: column labels repeat: {', '.join(dup)}")
    return labels


def read_mpt(path: str | Path) -> Recording:
    """Read a BioLogic EC-Lab .mpt text export into a :class:`Recording` (SI units)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise fail(path, f"cannot be opened ({exc.strerror or exc})") from None
    lines = _decode(raw).splitlines()
    n_header = _header_length(lines, path)
    technique_name, settings, params = _settings(lines[2 : n_header - 1])
    label_line = lines[n_header - 1]
    rows = _data_rows(lines, n_header, len(label_line.rstrip("\t ").split("\t")), path)
    notes: list[str] = []
    labels = _labels(label_line, len(rows[0]), n_header, path, notes)

    technique = TECHNIQUE_BY_NAME.get(technique_name or "", "unknown")
    rec = Recording(source=path, vendor="biologic", file_format="biologic-mpt", technique=technique)
    rec.set_meta("instrument_vendor", "BioLogic")
    if technique_name:
        rec.set_meta("vendor_technique_name", technique_name)
        short = {full: abbr for _, abbr, full in TECHNIQUE_CODES.values()}.get(technique_name)
        if short:
            rec.set_meta("vendor_technique", short)
    rec.header["settings"] = settings
    rec.header["loop_starts"] = _loop_starts(lines[2 : n_header - 1])
    rec.notes.extend(notes)
    _apply_settings(rec, settings)
    if params:
        _apply_params(rec, params)
    _absolute_times(rows, labels, rec, path)
    _add_columns(rec, labels, rows, path)
    finish_columns(rec)
    if "t" not in rec.timeseries:
        raise fail(path, "no 'time/s' column")
    t = rec.timeseries["t"]
    if t.size > 1 and "sample_period" not in rec.metadata and "freq" not in rec.timeseries:
        rec.set_meta("sample_period", float(np.median(np.diff(t))), "s")
    rec.spectra = build_spectra(rec)
    return rec


def _header_length(lines: list[str], path: Path) -> int:
    """The header's declared length (its last line holds the column labels), checked against the file."""
    if not lines or lines[0].strip() != MAGIC:
        raise fail(path, f"not an EC-Lab text export (first line is not '{MAGIC}')")
    m = re.match(r"^Nb header lines\s*:\s*(\d+)\s*$", lines[1] if len(lines) > 1 else "")
    if not m:
        raise fail(path, "line 2 should be 'Nb header lines : N'")
    n_header = int(m.group(1))
    if n_header < 3:
        raise fail(path, f"'Nb header lines : {n_header}' is too small (at least 3)")
    if len(lines) < n_header:
        raise fail(path, f"header declares {n_header} lines but the file has {len(lines)} (file truncated)")
    return n_header


def _data_rows(lines: list[str], n_header: int, n_labels: int, path: Path) -> list[list[str]]:
    """The data rows as text cells; every row as long as the first and no longer than the labels."""
    rows: list[list[str]] = []
    for i, line in enumerate(lines[n_header:], start=n_header + 1):
        if not line.strip():
            continue
        cells = line.split("\t")
        while cells and cells[-1].strip() == "":
            cells.pop()
        rows.append(cells)
        if len(cells) != len(rows[0]) or len(cells) > n_labels:
            raise fail(
                path,
                f"line {i} has {len(cells)} values, expected {min(len(rows[0]), n_labels)} (file truncated or damaged)",
            )
    if not rows:
        raise fail(path, "no data rows after the column labels (empty table)")
    return rows
