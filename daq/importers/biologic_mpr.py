"""BioLogic EC-Lab binary recordings (.mpr).

An .mpr file is a 52-byte file header followed by modules, each ``MODULE`` + a header (short name,
long name, length, version, date) + ``length`` bytes. Modules read here:

- ``VMP Set``: technique code, comments, electrode area, and the technique's parameter table
  (decoded for the techniques whose layout was checked against recorded data: Constant Current and
  GEIS as written by EC-Lab 11.x).
- ``VMP data``: point count, the column ids (which fix each record's binary layout), then fixed-size
  little-endian records. An unknown column id makes the record size unknowable, so it is an error.
- ``VMP LOG``: acquisition start (an OLE date), channel, serial numbers, software versions.

Byte offsets inside modules are those EC-Lab 11.x writes (module version 10/11, the header with the
``0xFFFFFFFF`` marker); the older layouts (versions 0, 2, 3) are read as publicly described but were
not checked against files here.
"""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path
from typing import Any

import numpy as np

from daq.importers._biologic import (
    COLUMNS,
    CURRENT_UNIT_CODES,
    FLAG_COLUMNS,
    FREQUENCY_UNIT_CODES,
    TECHNIQUE_CODES,
    Column,
    build_spectra,
    control_column,
    finish_columns,
    label_column,
)
from daq.importers._common import ByteView, fail, scaled, unique_name
from daq.importers.eclab_column_ids import CONFLICTS, public_column
from daq.importers.recording import Recording

MAGIC = b"BIO-LOGIC MODULAR FILE\x1a" + b" " * 25 + b"\x00\x00\x00\x00"
FILE_HEADER_SIZE = len(MAGIC)  # 0x34
_NEW_HEADER_MARK = 0xFFFFFFFF

# Data module layouts: module version -> (column-count format, id size, first id offset, first record).
_DATA_LAYOUTS = {
    0: ("<B", 1, 5, 100),
    2: ("<B", 2, 5, 0x195),
    3: ("<B", 2, 5, 0x196),
    10: ("<H", 2, 6, 0x3EF),
    11: ("<H", 2, 6, 0x3EF),
}

# Settings module offsets (EC-Lab 11.x).
_SET_TECHNIQUE = 0x0000
_SET_COMMENTS = 0x0007
_SET_ELECTRODE_MATERIAL = 0x011E
_SET_ELECTROLYTE = 0x01C0
_SET_AREA = 0x0211  # f4, cm²
_SET_REFERENCE = 0x0215
_SET_CHAR_MASS = 0x024C  # f4, g
_PARAM_TABLE_OFFSETS = (0x0572, 0x1845, 0x1846, 0x1847)  # where "ns, n_params, params..." may start

# Log module offsets.
_LOG_CHANNEL = 0x0009
_LOG_CHANNEL_SN = 0x00AB
_LOG_EWE_CTRL_MIN = 0x01F8
_LOG_EWE_CTRL_MAX = 0x01FC
_LOG_OLE_DATE = (0x0249, 465, 469, 473, 585)
_LOG_STRINGS = {
    0x0251: "saved_as",
    0x0351: "host",
    0x0384: "instrument_address",
    0x03B7: "software_version",
    0x03BE: "firmware_version",
    0x03C5: "interpreter_version",
    0x03CF: "instrument_serial",
}

# Technique parameter layouts (one record per sequence Ns), as EC-Lab 11.x writes them.
_LIMITS = [
    f
    for i in range(1, 7)
    for f in ((f"lim{i}_type", "u1"), (f"lim{i}_comp", "u1"), (f"lim{i}_value", "<f4"), (f"lim{i}_unit", "u1"))
]
_PARAM_LAYOUTS: dict[int, np.dtype] = {
    0x76: np.dtype(
        [  # Constant Current
            ("tR", "<f4"),
            ("dER_dt", "<f4"),
            ("dER", "<f4"),
            ("dtR", "<f4"),
            ("Is", "<f4"),
            ("Is_unit", "u1"),
            ("Is_vs", "<u4"),
            ("ts", "<f4"),
            ("EM", "<f4"),
            ("dQM", "<f4"),
            ("dQM_unit", "u1"),
            ("record", "u1"),
            ("dEs", "<f4"),
            ("dts", "<f4"),
            ("E_range_min", "<f4"),
            ("E_range_max", "<f4"),
            ("I_range", "u1"),
            ("bandwidth", "u1"),
            ("goto_Ns", "<u4"),
            ("nc_cycles", "<u4"),
        ]
    ),
    0x1E: np.dtype(
        [  # GEIS
            ("mode", "u1"),
            ("Is", "<f4"),
            ("Is_unit", "u1"),
            ("Is_vs", "<u4"),
            ("tIs", "<f4"),
            ("record", "u1"),
            ("dE", "<f4"),
            ("dt", "<f4"),
            ("fi", "<f4"),
            ("fi_unit", "u1"),
            ("ff", "<f4"),
            ("ff_unit", "u1"),
            ("Nd", "<u4"),
            ("points", "u1"),
            ("spacing", "u1"),
            ("Ia_Va", "u1"),
            ("Ia", "<f4"),
            ("Ia_unit", "u1"),
            ("va_pct", "<f4"),
            ("pw", "<f4"),
            ("Na", "<u4"),
            ("corr", "u1"),
            ("lim_nb", "u1"),
            *_LIMITS,
            ("E_range_min", "<f4"),
            ("E_range_max", "<f4"),
            ("I_range", "u1"),
            ("bandwidth", "u1"),
            ("nc_cycles", "<u4"),
            ("goto_Ns", "<u4"),
            ("nr_cycles", "<u4"),
            ("inc_cycle", "u1"),
        ]
    ),
}


class _Module:
    def __init__(self, name: str, long_name: str, version: int, date: str, data: bytes, offset: int):
        self.name, self.long_name, self.version, self.date = name, long_name, version, date
        self.data, self.offset = data, offset


def _modules(raw: bytes, path: Path) -> list[_Module]:
    """Split the file into modules, checking each header and length against the file size."""
    if len(raw) < FILE_HEADER_SIZE or raw[:FILE_HEADER_SIZE] != MAGIC:
        raise fail(path, "not a BioLogic .mpr file (file header 'BIO-LOGIC MODULAR FILE' missing or damaged)")
    view = ByteView(raw, path, "file")
    modules: list[_Module] = []
    pos = FILE_HEADER_SIZE
    while pos < len(raw):
        if raw[pos : pos + 6] != b"MODULE":
            raise fail(
                path, f"expected a module at byte {pos}, found {raw[pos : pos + 6]!r} (file truncated or damaged)"
            )
        p = pos + 6
        name = view.unpack("10s", p)[0].decode("latin-1").strip()
        long_name = view.unpack("25s", p + 10)[0].decode("latin-1").strip()
        first = view.u4(p + 35)
        if first == _NEW_HEADER_MARK:
            length, old_version, version = view.unpack("<III", p + 39)
            date_raw = view.unpack("8s", p + 51)[0]
            start = p + 59
            version = version + old_version
        else:
            length, version = first, view.u4(p + 39)
            date_raw = view.unpack("8s", p + 43)[0]
            start = p + 51
        if start + length > len(raw):
            raise fail(
                path,
                f"module '{name}' declares {length} bytes but the file ends "
                f"{len(raw) - start} bytes after its header (file truncated)",
            )
        date = date_raw.decode("latin-1", errors="replace").strip("\x00 ")
        modules.append(_Module(name, long_name, version, date, raw[start : start + length], pos))
        pos = start + length
    return modules


def _one(modules: list[_Module], name: str, path: Path, required: bool) -> _Module | None:
    found = [m for m in modules if m.name == name]
    if len(found) > 1:
        raise fail(path, f"{len(found)} '{name}' modules; expected one")
    if not found and required:
        raise fail(path, f"no '{name}' module (file truncated or not a data file)")
    return found[0] if found else None


def _read_data(mod: _Module, path: Path, technique: str, rec: Recording) -> None:
    """Decode the data module's records into SI columns on ``rec``."""
    layout = _DATA_LAYOUTS.get(mod.version)
    if layout is None:
        raise fail(path, f"'VMP data' module version {mod.version} is not supported (known: {sorted(_DATA_LAYOUTS)})")
    count_fmt, id_size, ids_at, first_record = layout
    view = ByteView(mod.data, path, "'VMP data' module")
    n_points = view.u4(0)
    n_cols = view.unpack(count_fmt, 4)[0]
    if n_cols == 0:
        raise fail(path, "'VMP data' module lists no columns")
    if ids_at + id_size * n_cols > first_record:
        raise fail(path, f"'VMP data' module lists {n_cols} columns, more than its header can hold")
    ids = view.unpack(f"<{n_cols}{'B' if id_size == 1 else 'H'}", ids_at)
    dtype, plan, flags = _record_layout(ids, path)
    if n_points == 0:
        raise fail(path, "'VMP data' module holds no data points (empty table)")
    need = first_record + n_points * dtype.itemsize
    if len(mod.data) != need:
        raise fail(
            path,
            f"'VMP data' module has {len(mod.data)} bytes, but {n_points} records of "
            f"{dtype.itemsize} bytes need {need} (file truncated or damaged)",
        )
    records = np.frombuffer(mod.data, dtype=dtype, count=n_points, offset=first_record)
    _add_flag_columns(rec, records, flags)
    for col, fname in plan:
        _add_column(rec, col, records[fname], technique)
    finish_columns(rec)
    if "t" not in rec.timeseries:
        raise fail(path, "'VMP data' module has no time column")


def _record_layout(ids: tuple[int, ...], path: Path) -> tuple[np.dtype, list[tuple[Column, str]], list[int]]:
    """The record dtype the column ids describe, which record field holds which column, and the flag
    columns (bits of one shared byte). An unknown id is refused: its size, and so every later field's
    offset, is unknown."""
    fields: list[tuple[str, str]] = []
    plan: list[tuple[Column, str]] = []  # (column, record field)
    flags: list[int] = []
    for k, cid in enumerate(ids):
        if cid in FLAG_COLUMNS:
            if "flags" not in dict(fields):
                fields.append(("flags", "u1"))
            flags.append(cid)
            continue
        col = _column(cid, ids)
        if col is None:
            raise fail(
                path,
                f"'VMP data' module: unknown data column id {cid} (column {k + 1} of {len(ids)}); "
                "its size is unknown, so the records cannot be read",
            )
        fname = f"c{k}"
        fields.append((fname, col.dtype))
        plan.append((col, fname))
    return np.dtype(fields), plan, flags


def _add_flag_columns(rec: Recording, records: np.ndarray, flags: list[int]) -> None:
    """One integer column per flag bit field of the shared flags byte."""
    if not flags:
        return
    byte = records["flags"]
    for cid in flags:
        name, label, mask = FLAG_COLUMNS[cid]
        shift = (mask & -mask).bit_length() - 1
        rec.add_column(name, ((byte & mask) >> shift).astype(np.int64), "1", label)


def _add_column(rec: Recording, col: Column, values: np.ndarray, technique: str) -> None:
    """One column in SI (counters as integers); a unit the product cannot convert is kept and noted."""
    name, unit, factor = col.name, col.unit, col.factor
    if col.label == "control/V/mA":
        name, unit, factor = control_column(technique)
    if unit == "?":  # no SI unit known for this label: kept as written, and said so
        unit = col.label.rpartition("/")[2] if "/" in col.label else "1"
        rec.notes.append(f"column '{col.label}' has a unit the product cannot convert; kept as written")
    name = unique_name(name, rec.timeseries)
    if values.dtype.kind in "ui":
        out = values.astype(np.int64)
    elif unit == "1" and factor == 1.0 and _whole(values):
        out = values.astype(np.int64)  # counters EC-Lab stores as floats (cycle number)
    else:
        with np.errstate(invalid="ignore", over="ignore"):  # damaged values stay NaN/inf, as recorded
            out = values.astype(np.float64) * factor + col.offset
    rec.add_column(name, out, unit, col.label)


def _column(cid: int, ids: tuple[int, ...]) -> Column | None:
    """What a data column id holds: checked ids first, then the public tables (eclab_column_ids.py)."""
    public = public_column(cid, ids)
    if cid in COLUMNS and not (cid in CONFLICTS and public and public[0] != COLUMNS[cid].label):
        return COLUMNS[cid]
    if public is None:
        return None
    label, dtype = public
    col = label_column(label)
    if col is None:
        return Column(label, dtype, label, "?")
    return Column(label, dtype, col.name, col.unit, col.factor, col.offset)


def _whole(values: np.ndarray) -> bool:
    v = values.astype(np.float64)
    return bool(np.all(np.isfinite(v)) and np.all(np.abs(v) < 2**53) and np.all(v == np.round(v)))


def _params(mod: _Module, code: int, path: Path) -> list[dict[str, Any]] | None:
    """The technique parameter records (one per sequence), if this technique's layout is known."""
    dtype = _PARAM_LAYOUTS.get(code)
    if dtype is None:
        return None
    view = ByteView(mod.data, path, "'VMP Set' module")
    n_fields = len(dtype.names or ())
    for off in _PARAM_TABLE_OFFSETS:
        if not view.has(off, 4):
            continue
        ns, n_params = view.unpack("<HH", off)
        if n_params == n_fields and 1 <= ns <= 100 and view.has(off + 4, ns * dtype.itemsize):
            table = np.frombuffer(mod.data, dtype=dtype, count=ns, offset=off + 4)
            return [{k: _plain(table[k][i]) for k in dtype.names} for i in range(ns)]
    return None


def _plain(x: np.generic) -> Any:
    """A Python number; float32 values keep the digits EC-Lab showed (10.0, not 10.000000953674316)."""
    if isinstance(x, np.float32):
        return float(str(x))
    return x.item()


def _finite(x: float) -> bool:
    return isinstance(x, float) and math.isfinite(x)


def _apply_params(rec: Recording, code: int, params: list[dict[str, Any]]) -> None:
    """Turn decoded parameters into SI metadata (set-points, durations, sample periods, ranges)."""
    rec.header["technique_parameters"] = params
    rec.set_meta("sequence_count", len(params))
    first = params[0]
    if _finite(first.get("E_range_min")) and _finite(first.get("E_range_max")):
        rec.set_meta("E_range_min", first["E_range_min"], "V")
        rec.set_meta("E_range_max", first["E_range_max"], "V")
    if code == 0x76:
        cur = [scaled(p["Is"], CURRENT_UNIT_CODES.get(p["Is_unit"], math.nan)) for p in params]
        rec.set_meta("current_setpoints", cur, "A")
        rec.set_meta("step_durations", [p["ts"] for p in params], "s")
        rec.set_meta("sample_period", first["dts"], "s")
        rec.set_meta("rest_duration", first["tR"], "s")
        rec.set_meta("rest_sample_period", first["dtR"], "s")
        limits = [p["EM"] for p in params if _finite(p["EM"])]
        if limits:
            rec.set_meta("E_limit", limits, "V")
    elif code == 0x1E:
        cur = [scaled(p["Is"], CURRENT_UNIT_CODES.get(p["Is_unit"], math.nan)) for p in params]
        amp = [scaled(p["Ia"], CURRENT_UNIT_CODES.get(p["Ia_unit"], math.nan)) for p in params]
        rec.set_meta("current_setpoints", cur, "A")
        rec.set_meta("current_amplitudes", amp, "A")
        for key, unit_key, meta in (("fi", "fi_unit", "frequency_initial"), ("ff", "ff_unit", "frequency_final")):
            rec.set_meta(meta, scaled(first[key], FREQUENCY_UNIT_CODES.get(first[unit_key], math.nan)), "Hz")
        rec.set_meta("points_per_decade", int(first["Nd"]))
        rec.set_meta("average_count", int(first["Na"]))
        rec.set_meta("repeat_count", int(first["nc_cycles"]))


def _read_settings(mod: _Module, path: Path, rec: Recording) -> int:
    view = ByteView(mod.data, path, "'VMP Set' module")
    code = view.u1(_SET_TECHNIQUE)
    technique, short, full = TECHNIQUE_CODES.get(code, ("unknown", f"code 0x{code:02X}", "unknown"))
    rec.technique = technique
    rec.set_meta("vendor_technique", short)
    rec.set_meta("vendor_technique_name", full)
    for off, key in (
        (_SET_COMMENTS, "comments"),
        (_SET_ELECTRODE_MATERIAL, "electrode_material"),
        (_SET_ELECTROLYTE, "electrolyte"),
        (_SET_REFERENCE, "reference_electrode"),
    ):
        text = view.pascal(off)
        if text:
            rec.header[key] = text
    if view.has(_SET_AREA, 4):
        area = _plain(np.float32(view.f4(_SET_AREA)))
        if math.isfinite(area) and area > 0:
            rec.set_meta("electrode_area", area * 1e-4, "m^2")  # EC-Lab stores cm²
    if view.has(_SET_CHAR_MASS, 4):
        mass = _plain(np.float32(view.f4(_SET_CHAR_MASS)))
        if math.isfinite(mass) and mass > 0:
            rec.set_meta("characteristic_mass", mass * 1e-3, "kg")
    params = _params(mod, code, path)
    if params:
        _apply_params(rec, code, params)
    return code


def _module_date(text: str) -> _dt.date | None:
    for fmt in ("%m/%d/%y", "%m-%d-%y", "%m.%d.%y"):
        try:
            return _dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def _read_log(mod: _Module, path: Path, rec: Recording) -> None:
    view = ByteView(mod.data, path, "'VMP LOG' module")
    if view.has(_LOG_CHANNEL, 1):
        rec.set_meta("channel", view.u1(_LOG_CHANNEL) + 1)  # stored zero-based; EC-Lab shows 1-based
    if view.has(_LOG_CHANNEL_SN, 2):
        rec.set_meta("channel_serial", str(view.u2(_LOG_CHANNEL_SN)))
    if view.has(_LOG_EWE_CTRL_MAX, 4):
        lo, hi = view.f4(_LOG_EWE_CTRL_MIN), view.f4(_LOG_EWE_CTRL_MAX)
        if math.isfinite(lo) and math.isfinite(hi) and lo < hi:
            rec.set_meta("E_control_min", lo, "V")
            rec.set_meta("E_control_max", hi, "V")
    for off, key in _LOG_STRINGS.items():
        text = view.pascal(off)
        if text and text.isprintable():
            (rec.metadata if key in ("instrument_serial", "software_version") else rec.header)[key] = text
    expected = _module_date(mod.date)
    for off in _LOG_OLE_DATE:
        if not view.has(off, 8):
            continue
        days = view.f8(off)
        if not (math.isfinite(days) and 36526.0 < days < 73051.0):  # 2000 .. 2100
            continue
        when = _dt.datetime(1899, 12, 30) + _dt.timedelta(days=days)
        if expected is not None and when.date() != expected:
            continue
        rec.set_meta("start_time", when.isoformat(timespec="milliseconds"))
        break


def read_mpr(path: str | Path) -> Recording:
    """Read a BioLogic EC-Lab .mpr file into a :class:`Recording` (SI units, see recording.py)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise fail(path, f"cannot be opened ({exc.strerror or exc})") from None
    modules = _modules(raw, path)
    settings = _one(modules, "VMP Set", path, required=True)
    data = _one(modules, "VMP data", path, required=True)
    log = _one(modules, "VMP LOG", path, required=False)
    assert settings is not None and data is not None
    rec = Recording(source=path, vendor="biologic", file_format="biologic-mpr", technique="unknown")
    rec.set_meta("instrument_vendor", "BioLogic")
    rec.header["modules"] = [f"{m.name} (v{m.version}, {m.date})" for m in modules]
    _read_settings(settings, path, rec)
    if log is not None:
        _read_log(log, path, rec)
    _read_data(data, path, rec.technique, rec)
    t = rec.timeseries["t"]
    if t.size > 1 and "sample_period" not in rec.metadata and "freq" not in rec.timeseries:
        rec.set_meta("sample_period", float(np.median(np.diff(t))), "s")
    rec.spectra = build_spectra(rec)
    return rec
