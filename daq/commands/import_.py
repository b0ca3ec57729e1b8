"""``daq import FILE [--out OUT.h5] [--area "0.785 mm^2"]``: a vendor recording as a run file.

Reads a Gamry .DTA or BioLogic .mpr/.mpt recording (daq.importers) and writes it in the product's run
layout (docs/hdf5-layout.md) through the store's writer, so analysis and plotting treat imported and
native runs alike: timeseries in SI with units, one /steps row per segment of the recording, spectra in
/eis, the instrument in /instruments, the electrode area in /cell, and the recording's settings
(sample period, set-points, limits) as SI JSON in /protocol/resolved. Vendor columns the layout has no
place for are kept under /imported (see docs/import.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daq.core import units as u
from daq.core.errors import ConfigError

if TYPE_CHECKING:  # numpy, HDF5 and the readers are imported where used: daq import --help needs none
    import numpy as np

    from daq.importers import Recording

_KIND_BY_TECHNIQUE = {
    "geis": "eis",
    "peis": "eis",
    "impedance": "eis",
    "constant_current": "galvanostatic",
    "chronopotentiometry": "galvanostatic",
    "galvanostatic_cycling": "galvanostatic",
    "chronoamperometry": "potentiostatic",
    "constant_voltage": "potentiostatic",
    "cyclic_voltammetry": "potentiostatic",
    "linear_sweep_voltammetry": "potentiostatic",
    "open_circuit": "rest",
    "wait": "rest",
}
_EC_LAB_MODE_KIND = {1: "galvanostatic", 2: "potentiostatic", 3: "rest"}
_RUN_SETTINGS = (
    "sample_period",
    "rest_sample_period",
    "rest_duration",
    "E_limit",
    "E_limit_min",
    "E_limit_max",
    "E_range_min",
    "E_range_max",
    "E_control_min",
    "E_control_max",
    "current_setpoints",
    "current_amplitudes",
    "step_durations",
    "frequency_initial",
    "frequency_final",
    "points_per_decade",
    "average_count",
    "repeat_count",
    "equilibration_time",
    "voltage_amplitude",
    "voltage_dc",
    "E_open_circuit",
    "electrode_area",
    "characteristic_mass",
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="convert a Gamry .DTA or BioLogic .mpr/.mpt recording into a run file",
        description="Read a vendor recording and write it as a run file (HDF5, SI units).",
    )
    p.add_argument("file", help="recording: Gamry .DTA, BioLogic .mpr or EC-Lab .mpt")
    p.add_argument("--out", help="run file to write (default: ./<file name>.h5)")
    p.add_argument(
        "--area",
        metavar="AREA",
        help='working electrode area, e.g. "0.785 mm^2" (default: the area the recording states)',
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    from daq.importers import read_recording

    area = u.parse(args.area, u.AREA, "--area") if args.area is not None else None
    if area is not None and not 0 < area <= 0.1:  # 0.1 m^2 = 1000 cm^2, beyond any cell
        raise ConfigError("--area", args.area, "must be a positive area of at most 1000 cm^2")
    rec = read_recording(args.file)
    out = Path(args.out) if args.out else Path.cwd() / (Path(args.file).stem + ".h5")
    write_run(rec, out, area=area, overwrite=args.force)
    t = rec.timeseries["t"]
    what = " ".join(str(rec.metadata[k]) for k in ("instrument_vendor", "instrument_model") if k in rec.metadata)
    what = f"{what}, {rec.technique}" if what else rec.technique
    area_used = area if area is not None else rec.metadata.get("electrode_area")
    area_text = f", working area {u.fmt(area_used, 'mm^2')}" if area_used else ""
    print(
        f"imported {Path(args.file).name} ({what}): {rec.n_samples} samples over "
        f"{float(t[-1] - t[0]):.6g} s, {len(rec.spectra)} spectra{area_text} -> {out}"
    )
    for note in rec.notes:  # columns kept as written, assumed units, an aborted experiment
        print(f"  note: {note}")
    if area is None and rec.vendor == "biologic" and math.isclose(area_used or 0.0, ECLAB_DEFAULT_AREA, rel_tol=1e-6):
        print("  note: the working area is EC-Lab's default (0.001 cm^2), most likely never set: per-area "
              "capacities use it; give the cell's area with --area")  # fmt: skip
    return 0


ECLAB_DEFAULT_AREA = 1e-7  # m^2: the 0.001 cm^2 EC-Lab writes when the experiment's area was left unset


# ------------------------------------------------------------------------------------------------ steps


def _segments(rec: Recording) -> list[tuple[int, int, str, dict[str, Any], dict[str, str]]]:
    """Split the samples into steps: (first row, end row, kind, parameters in SI, their units)."""
    ts, m = rec.timeseries, rec.metadata
    n = rec.n_samples
    default_kind = _KIND_BY_TECHNIQUE.get(rec.technique)
    if default_kind is None:
        default_kind = "galvanostatic" if "control_I" in ts else "potentiostatic" if "control_E" in ts else "rest"
    setpoints = m.get("current_setpoints") if isinstance(m.get("current_setpoints"), list) else []
    durations = m.get("step_durations") if isinstance(m.get("step_durations"), list) else []
    gamry_steps = rec.vendor == "gamry" and bool(setpoints) and len(durations) == len(setpoints)
    keys = _step_keys(rec, default_kind, durations if gamry_steps and default_kind != "eis" else None)
    starts = [0] + [i for i in range(1, n) if keys[i] != keys[i - 1]]
    out = []
    for a, b in zip(starts, starts[1:] + [n]):
        if gamry_steps:
            j = int(keys[a])
            kind = "rest" if default_kind == "galvanostatic" and setpoints[j] == 0.0 else default_kind
            params: dict[str, Any] = {"I": setpoints[j], "duration": durations[j]}
            punits = {"I": "A", "duration": "s"}
        else:
            kind, params, punits = _ec_lab_step(rec, a, default_kind)
        out.append((a, b, kind, params, punits))
    return out


def _step_keys(rec: Recording, default_kind: str, durations: list[float] | None) -> Any:
    """One key per sample, changing where a step changes. Gamry chrono tests (``durations`` given): the
    header gives each step's duration, the samples carry time only; EC-Lab: sequence Ns and the mode
    flag (rest / CC / CV)."""
    import numpy as np

    ts, n = rec.timeseries, rec.n_samples
    if durations is not None:
        ends = np.cumsum(durations)
        t = ts["t"] - ts["t"][0]
        return np.minimum(np.searchsorted(ends, t + 1e-9, side="right"), len(ends) - 1)
    if "step" in ts or "mode" in ts:
        ns = ts["step"] if "step" in ts else np.zeros(n, dtype=np.int64)
        mode = ts["mode"] if "mode" in ts and default_kind != "eis" else np.zeros(n, dtype=np.int64)
        return ns * 8 + mode
    return np.zeros(n, dtype=np.int64)


def _ec_lab_step(rec: Recording, a: int, kind: str) -> tuple[str, dict[str, Any], dict[str, str]]:
    """Kind, parameters (SI) and their units of the step starting at row ``a``, from its sequence
    number, mode flag and the per-sequence settings in the header."""
    ts, m = rec.timeseries, rec.metadata
    params: dict[str, Any] = {}
    punits: dict[str, str] = {}
    ns = int(ts["step"][a]) if "step" in ts else 0
    if "mode" in ts and kind != "eis":
        kind = _EC_LAB_MODE_KIND.get(int(ts["mode"][a]), kind)
    if kind == "rest":
        for key in ("rest_duration", "rest_sample_period"):
            if key in m:
                params[key.removeprefix("rest_")] = m[key]
                punits[key.removeprefix("rest_")] = rec.metadata_units[key]
    else:
        for key, name in (
            ("current_setpoints", "I"),
            ("step_durations", "duration"),
            ("current_amplitudes", "amplitude"),
        ):
            values = m.get(key)
            if isinstance(values, list) and ns < len(values):
                params[name if kind != "eis" or name != "I" else "I_dc"] = values[ns]
                punits[name if kind != "eis" or name != "I" else "I_dc"] = rec.metadata_units[key]
        for key in ("sample_period", "frequency_initial", "frequency_final", "points_per_decade"):
            if key in m:
                params[key] = m[key]
                if key in rec.metadata_units:
                    punits[key] = rec.metadata_units[key]
    params["sequence"] = ns
    return kind, params, punits


def _step_charge(rec: Recording, a: int, b: int) -> np.ndarray:
    """Charge since the start of the step (C): the recording's own Q if it has one, else ∫I dt."""
    import numpy as np

    ts = rec.timeseries
    if "Q" in ts:
        q = ts["Q"][a:b].astype(np.float64)
        return q - q[0]
    if "I" not in ts:
        return np.full(b - a, np.nan)
    t, i = ts["t"][a:b], ts["I"][a:b]
    q = np.zeros(b - a)
    if b - a > 1:
        q[1:] = np.cumsum(0.5 * (i[1:] + i[:-1]) * np.diff(t))
    return q


# ------------------------------------------------------------------------------------------------ writing


def _json_safe(value: Any) -> Any:
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _end_time(start: str, span: float) -> str:
    try:
        return (datetime.fromisoformat(start) + timedelta(seconds=span)).isoformat(timespec="milliseconds")
    except (ValueError, OverflowError):
        return ""


def write_run(rec: Recording, out: str | Path, *, area: float | None = None, overwrite: bool = False) -> Path:
    """Write ``rec`` as a run file at ``out``; ``area`` (m^2) overrides the recording's electrode area."""
    from daq.storage import layout as L
    from daq.storage.writer import refuse_existing

    final = Path(out)
    if final.exists() and not overwrite:
        refuse_existing(final)
    out = final.with_name(f".{final.name}.importing")  # written whole under this name, then renamed
    segments = _segments(rec)
    writer = _new_writer(rec, out, area, segments)
    try:
        writer.add_instrument("potentiostat", _instrument(rec))
        step_col, q_col = _write_steps_and_samples(writer, rec, segments)
        _write_spectra(writer, rec, step_col, q_col)
    except BaseException:
        writer.close(L.INTERRUPTED, "import failed")
        raise
    if rec.metadata.get("status") == "aborted":
        writer.close(L.INTERRUPTED, "aborted on the instrument (the recording says so); imported")
    elif rec.metadata.get("status") == "incomplete":
        writer.close(L.INTERRUPTED, "the recording stops short of its declared length; imported")
    else:
        writer.close(L.COMPLETED, "imported")
    _write_imported(rec, out, str(rec.metadata.get("start_time", "")))
    os.replace(out, final)
    return final


def _aux_columns(rec: Recording) -> list[str]:
    """Auxiliary columns worth a place in /timeseries. A Gamry 'Temp' column without a thermocouple
    reads nonsense (~1500 degC): only a plausible cell temperature; /imported keeps the column anyway."""
    import numpy as np

    from daq.storage import layout as L

    ts = rec.timeseries
    plausible = "temperature" in ts and bool(np.all((ts["temperature"] > 173.0) & (ts["temperature"] < 473.0)))
    return [c for c in L.AUX if c in ts and (c != "temperature" or plausible)]


def _new_writer(rec: Recording, out: Path, area: float | None, segments: list) -> Any:
    """The run file, created with what the recording says about its run, cell and settings."""
    from daq.storage.writer import RunWriter

    m, mu = rec.metadata, rec.metadata_units
    area_m2 = area if area is not None else m.get("electrode_area", math.nan)
    settings = {k: m[k] for k in _RUN_SETTINGS if k in m}
    resolved = {
        "imported_from": str(rec.source),
        "file_format": rec.file_format,
        "technique": rec.technique,
        "vendor_technique": m.get("vendor_technique", ""),
        "settings": settings,
        "settings_units": {k: mu[k] for k in settings if k in mu},
        "steps": [{"kind": kind, **params} for _, _, kind, params, _ in segments],
    }
    run_attrs = {
        "protocol": f"imported {m.get('vendor_technique', rec.technique)}",
        "cell_id": rec.source.stem,
        "rig": " ".join(str(m[k]) for k in ("instrument_vendor", "instrument_model") if k in m),
        "clock": "instrument",
        "start_time": str(m.get("start_time", "")),
        "imported_from": str(rec.source),
        "imported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source_format": rec.file_format,
        "technique": rec.technique,
        "time_zone": "local time of the acquisition PC (the recording states no zone)",
    }
    area_source = "--area" if area is not None else ("recording" if "electrode_area" in m else "unknown")
    cell_attrs = {
        "cell_id": rec.source.stem,
        "configuration": "",
        "notes": f"imported from {rec.source.name}",
        "electrodes.working_area": float(area_m2),
        "electrodes.working_area_source": area_source,
    }
    return RunWriter(
        out,
        cell_attrs=cell_attrs,
        cell_units={"electrodes.working_area": "m^2"},
        protocol_source="",
        protocol_path=str(rec.source),
        protocol_resolved=_json_safe(resolved),
        predictions={},
        run_attrs=run_attrs,
        aux_columns=_aux_columns(rec),
        overwrite=True,
    )


def _instrument(rec: Recording) -> dict[str, str]:
    m = rec.metadata
    instrument = {
        "vendor": str(m.get("instrument_vendor", rec.vendor)),
        "model": str(m.get("instrument_model", "")),
        "serial": str(m.get("instrument_serial", "")),
        "firmware": str(m.get("software_version", "")),
        "driver": f"import ({rec.file_format})",
        "resource": f"channel {m['channel']}" if "channel" in m else "",
    }
    for key in ("channel_serial", "instrument_name"):
        if key in m:
            instrument[key] = str(m[key])
    return instrument


def _write_steps_and_samples(writer: Any, rec: Recording, segments: list) -> tuple[np.ndarray, np.ndarray]:
    """One /steps row per segment, then every sample; returns the step and charge columns."""
    import numpy as np

    ts, n = rec.timeseries, rec.n_samples
    step_col = np.zeros(n, dtype=np.int32)
    q_col = np.full(n, np.nan)
    for k, (a, b, kind, params, punits) in enumerate(segments):
        step_col[a:b] = k
        q = _step_charge(rec, a, b)
        q_col[a:b] = q
        writer.add_step(
            {
                "index": k,
                "kind": kind,
                "label": f"{kind} {k}",
                "cycle": int(ts["cycle"][a]) if "cycle" in ts else 0,
                "t_start": float(ts["t"][a]),
                "t_end": float(ts["t"][b - 1]),
                "Q": float(q[-1]),
                "end_reason": "completed" if kind == "eis" else "time_reached",
                "parameters": _json_safe({**params, "units": punits}),
            }
        )
    flags = np.zeros(n, dtype=np.uint8)
    if "overload" in ts:
        flags |= (np.asarray(ts["overload"]) != 0).astype(np.uint8) * 2
    columns = {
        "t": ts["t"].astype(np.float64),
        "step": step_col,
        "cycle": ts["cycle"].astype(np.int32) if "cycle" in ts else np.zeros(n, dtype=np.int32),
        "E_we": ts["E_we"] if "E_we" in ts else np.full(n, np.nan),
        "E_cell": ts["E_we"] - ts["E_ce"] if "E_we" in ts and "E_ce" in ts else np.full(n, np.nan),
        "I": ts["I"] if "I" in ts else np.full(n, np.nan),
        "Q": q_col,
        "flags": flags,
    }
    columns.update({c: ts[c] for c in _aux_columns(rec)})
    writer.append(columns)
    return step_col, q_col


def _write_spectra(writer: Any, rec: Recording, step_col: np.ndarray, q_col: np.ndarray) -> None:
    """Every spectrum with its points, the step it was measured in and the charge passed by then."""
    import numpy as np

    from daq.storage import layout as L

    m, ts, n = rec.metadata, rec.timeseries, rec.n_samples
    galvanostatic = rec.technique == "geis"
    amps = m.get("current_amplitudes" if galvanostatic else "voltage_amplitude")
    for s in rec.spectra:
        row = int(np.clip(np.searchsorted(ts["t"], s.time[0]), 0, n - 1)) if np.isfinite(s.time[0]) else 0
        dc = s.metadata.get("I_dc_setpoint")
        if dc is None:
            dc_values = s.I_dc if galvanostatic else s.E_dc
            dc = float(np.median(dc_values)) if dc_values is not None else math.nan
        step_seq = s.metadata.get("step", 0)
        if isinstance(amps, list):
            amplitude = amps[step_seq] if step_seq < len(amps) else math.nan
        else:
            amplitude = amps if isinstance(amps, float) else math.nan
        points = np.zeros(len(s), dtype=L.POINTS)
        points["frequency"], points["z_real"], points["z_imag"] = s.frequency, s.Z_re, s.Z_im
        points["t"] = s.time
        points["E_dc"] = s.E_dc if s.E_dc is not None else np.nan
        points["I_dc"] = s.I_dc if s.I_dc is not None else np.nan
        points["ok"] = 1
        meta = {
            "t_start": float(np.nanmin(s.time)),
            "t_end": float(np.nanmax(s.time)),
            "step": int(step_col[row]),
            "cycle": int(s.metadata.get("cycle", 0)),
            "Q": float(q_col[row]),
            "mode": "galvanostatic" if galvanostatic else "potentiostatic",
            "dc": float(dc),
            "amplitude": float(amplitude),
        }
        writer.add_spectrum(meta, points)


def _write_imported(rec: Recording, out: Path, start: str) -> None:
    """The recording's own columns, tables, metadata and header, which the run layout has no place for."""
    import h5py

    with h5py.File(out, "a") as f:
        t = rec.timeseries["t"]
        end = _end_time(start, float(t[-1])) if start else ""
        f.attrs["end_time"] = end
        g = f.create_group("imported")
        g.attrs["source"] = str(rec.source)
        g.attrs["vendor"] = rec.vendor
        g.attrs["file_format"] = rec.file_format
        g.attrs["technique"] = rec.technique
        g.attrs["metadata"] = json.dumps(_json_safe(rec.metadata))
        g.attrs["metadata_units"] = json.dumps(rec.metadata_units)
        g.attrs["header"] = json.dumps(_json_safe(rec.header), default=str)
        g.attrs["notes"] = json.dumps(rec.notes)
        cols = g.create_group("timeseries")
        for name, values in rec.timeseries.items():
            ds = cols.create_dataset(name, data=values)
            ds.attrs["unit"] = rec.units[name]
            ds.attrs["source_column"] = rec.source_columns.get(name, "")
        for tname, table in rec.tables.items():
            tg = g.create_group(f"tables/{tname}")
            for name, values in table.items():
                ds = tg.create_dataset(name, data=values)
                ds.attrs["unit"] = rec.table_units[tname].get(name, "1")
