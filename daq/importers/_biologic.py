"""What the EC-Lab binary (.mpr) and text (.mpt) readers share: column meanings, technique codes,
and how impedance rows become spectra.

The column table maps EC-Lab's numeric column ids (binary files) and column labels (text exports) to
one neutral name in SI. The ids follow the numbering EC-Lab 11.x writes; where the public descriptions
disagree (ids 174, 211/467, 441), the choice was checked against physics on real files: e.g. id 467
integrates the recorded current in mA·h, so it cannot be a charge in coulombs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from daq.importers._common import si_conversion
from daq.importers.recording import Recording, Spectrum

_MAH = 3.6  # 1 mA·h in C
_WH = 3600.0  # 1 W·h in J
_DEG = math.pi / 180.0


@dataclass(frozen=True)
class Column:
    """One EC-Lab column: binary dtype, the label EC-Lab prints, neutral name, SI unit and conversion."""

    label: str
    dtype: str
    name: str
    unit: str
    factor: float = 1.0
    offset: float = 0.0


# Bits of the shared flags byte: id -> (neutral name, EC-Lab label, mask).
FLAG_COLUMNS: dict[int, tuple[str, str, int]] = {
    1: ("mode", "mode", 0x03),
    2: ("ox_red", "ox/red", 0x04),
    3: ("error", "error", 0x08),
    21: ("control_changes", "control changes", 0x10),
    31: ("Ns_changes", "Ns changes", 0x20),
    65: ("counter_inc", "counter inc.", 0x80),
}


def _c(label: str, dtype: str, name: str, unit: str, factor: float = 1.0, offset: float = 0.0) -> Column:
    return Column(label, dtype, name, unit, factor, offset)


COLUMNS: dict[int, Column] = {
    4: _c("time/s", "<f8", "t", "s"),
    5: _c("control/V/mA", "<f4", "control", "?"),  # resolved per technique, see control_column()
    6: _c("Ewe/V", "<f4", "E_we", "V"),
    7: _c("dq/mA.h", "<f8", "dq", "C", _MAH),
    8: _c("I/mA", "<f4", "I", "A", 1e-3),
    9: _c("Ece/V", "<f4", "E_ce", "V"),
    11: _c("<I>/mA", "<f8", "I_avg", "A", 1e-3),
    13: _c("(Q-Qo)/mA.h", "<f8", "Q", "C", _MAH),
    16: _c("Analog IN 1/V", "<f4", "analog_in_1", "V"),
    17: _c("Analog IN 2/V", "<f4", "analog_in_2", "V"),
    19: _c("control/V", "<f4", "control_E", "V"),
    20: _c("control/mA", "<f4", "control_I", "A", 1e-3),
    23: _c("dQ/mA.h", "<f8", "dQ", "C", _MAH),
    24: _c("cycle number", "<f8", "cycle", "1"),
    26: _c("Rapp/Ohm", "<f4", "R_app", "ohm"),
    27: _c("Ewe-Ece/V", "<f4", "E_we_ce", "V"),
    32: _c("freq/Hz", "<f4", "freq", "Hz"),
    33: _c("|Ewe|/V", "<f4", "E_we_amp", "V"),
    34: _c("|I|/A", "<f4", "I_amp", "A"),
    35: _c("Phase(Z)/deg", "<f4", "Z_phase", "rad", _DEG),
    36: _c("|Z|/Ohm", "<f4", "Z_mod", "ohm"),
    37: _c("Re(Z)/Ohm", "<f4", "Z_re", "ohm"),
    38: _c("-Im(Z)/Ohm", "<f4", "Z_im", "ohm", -1.0),
    39: _c("I Range", "<u2", "I_range_code", "1"),
    69: _c("R/Ohm", "<f4", "R", "ohm"),
    70: _c("P/W", "<f4", "P", "W"),
    74: _c("|Energy|/W.h", "<f8", "energy", "J", _WH),
    75: _c("Analog OUT/V", "<f4", "analog_out", "V"),
    76: _c("<I>/mA", "<f4", "I_avg", "A", 1e-3),
    77: _c("<Ewe>/V", "<f4", "E_we_avg", "V"),
    78: _c("Cs-2/µF-2", "<f4", "Cs_inv2", "F^-2", 1e12),
    96: _c("|Ece|/V", "<f4", "E_ce_amp", "V"),
    98: _c("Phase(Zce)/deg", "<f4", "Zce_phase", "rad", _DEG),
    99: _c("|Zce|/Ohm", "<f4", "Zce_mod", "ohm"),
    100: _c("Re(Zce)/Ohm", "<f4", "Zce_re", "ohm"),
    101: _c("-Im(Zce)/Ohm", "<f4", "Zce_im", "ohm", -1.0),
    123: _c("Energy charge/W.h", "<f8", "energy_charge", "J", _WH),
    124: _c("Energy discharge/W.h", "<f8", "energy_discharge", "J", _WH),
    125: _c("Capacitance charge/µF", "<f8", "capacitance_charge", "F", 1e-6),
    126: _c("Capacitance discharge/µF", "<f8", "capacitance_discharge", "F", 1e-6),
    131: _c("Ns", "<u2", "step", "1"),
    163: _c("|Estack|/V", "<f4", "E_stack_amp", "V"),
    168: _c("Rcmp/Ohm", "<f4", "R_cmp", "ohm"),
    169: _c("Cs/µF", "<f4", "Cs", "F", 1e-6),
    172: _c("Cp/µF", "<f4", "Cp", "F", 1e-6),
    173: _c("Cp-2/µF-2", "<f4", "Cp_inv2", "F^-2", 1e12),
    174: _c("<Ewe>/V", "<f4", "E_we_avg", "V"),
    178: _c("(Q-Qo)/C", "<f4", "Q", "C"),
    179: _c("dQ/C", "<f4", "dQ", "C"),
    182: _c("step time/s", "<f8", "t_step", "s"),
    211: _c("Q charge/discharge/mA.h", "<f8", "Q_charge_discharge", "C", _MAH),
    212: _c("half cycle", "<u4", "half_cycle", "1"),
    213: _c("z cycle", "<u4", "z_cycle", "1"),
    217: _c("THD Ewe/%", "<f4", "THD_E_we", "1", 0.01),
    218: _c("THD I/%", "<f4", "THD_I", "1", 0.01),
    220: _c("NSD Ewe/%", "<f4", "NSD_E_we", "1", 0.01),
    221: _c("NSD I/%", "<f4", "NSD_I", "1", 0.01),
    223: _c("NSR Ewe/%", "<f4", "NSR_E_we", "1", 0.01),
    224: _c("NSR I/%", "<f4", "NSR_I", "1", 0.01),
    430: _c("Phase(Zwe-ce)/deg", "<f4", "Zwece_phase", "rad", _DEG),
    431: _c("|Zwe-ce|/Ohm", "<f4", "Zwece_mod", "ohm"),
    432: _c("Re(Zwe-ce)/Ohm", "<f4", "Zwece_re", "ohm"),
    433: _c("-Im(Zwe-ce)/Ohm", "<f4", "Zwece_im", "ohm", -1.0),
    434: _c("(Q-Qo)/C", "<f4", "Q", "C"),
    435: _c("dQ/C", "<f4", "dQ", "C"),
    438: _c("step time/s", "<f8", "t_step", "s"),
    462: _c("Temperature/°C", "<f4", "temperature", "K", 1.0, 273.15),
    467: _c("Q charge/discharge/mA.h", "<f8", "Q_charge_discharge", "C", _MAH),
    468: _c("half cycle", "<u4", "half_cycle", "1"),
    469: _c("z cycle", "<u4", "z_cycle", "1"),
    471: _c("<Ece>/V", "<f4", "E_ce_avg", "V"),
    473: _c("THD Ewe/%", "<f4", "THD_E_we", "1", 0.01),
    474: _c("THD I/%", "<f4", "THD_I", "1", 0.01),
    475: _c("THD Ece/%", "<f4", "THD_E_ce", "1", 0.01),
    476: _c("NSD Ewe/%", "<f4", "NSD_E_we", "1", 0.01),
    477: _c("NSD I/%", "<f4", "NSD_I", "1", 0.01),
    478: _c("NSD Ece/%", "<f4", "NSD_E_ce", "1", 0.01),
    479: _c("NSR Ewe/%", "<f4", "NSR_E_we", "1", 0.01),
    480: _c("NSR I/%", "<f4", "NSR_I", "1", 0.01),
    481: _c("NSR Ece/%", "<f4", "NSR_E_ce", "1", 0.01),
}

# Text exports name columns by label; several ids share a label, the first id wins (same meaning).
COLUMNS_BY_LABEL: dict[str, Column] = {}
for _col in COLUMNS.values():
    COLUMNS_BY_LABEL.setdefault(_col.label, _col)
# Labels only seen in text exports (derived by EC-Lab on export).
for _col in (
    _c("Capacity/mA.h", "", "capacity", "C", _MAH),
    _c("Q charge/mA.h", "", "Q_charge", "C", _MAH),
    _c("Q discharge/mA.h", "", "Q_discharge", "C", _MAH),
    _c("Efficiency/%", "", "efficiency", "1", 0.01),
    _c("x", "", "x", "1"),
    _c("Ece/V", "", "E_ce", "V"),
):
    COLUMNS_BY_LABEL.setdefault(_col.label, _col)

# Quantity names (label before the unit) -> neutral name, for labels not listed above. Averaged
# quantities are written ``<X>/unit`` or ``<X/unit>``; both give ``X_avg``.
_BASE_NAMES = {
    "time": "t",
    "Ewe": "E_we",
    "Ece": "E_ce",
    "I": "I",
    "Ewe-Ece": "E_we_ce",
    "Estack": "E_stack",
    "Ecell": "E_cell",
    "freq": "freq",
    "Pwe": "P",
    "Pce": "P_ce",
    "Pwe-ce": "P_we_ce",
    "Rwe": "R",
    "Rce": "R_ce",
    "Rwe-ce": "R_we_ce",
    "Ecv": "E_cv",
}
_AVERAGED = re.compile(r"^<(?P<name>[^<>/]+)(?:/(?P<inner>[^<>]+))?>(?:/(?P<outer>.+))?$")


# EC-Lab's compound units, written with ``.`` for a product and per-length (the derived EIS columns
# Re(Resistivity)/Ohm.cm, Re(Conductivity)/mS/cm, Conductivity/S.cm-1): factor to SI and the SI unit.
# Source: yadg, src/yadg/extractors/eclab/mpt_columns.py (dgbowl/yadg), which reads them as Ω·cm, mS/cm
# and S/cm.
_COMPOUND_UNITS = {"Ohm.cm": (1e-2, "ohm m"), "mS/cm": (0.1, "S/m"), "S.cm-1": (100.0, "S/m")}


def _unit_conversion(unit: str) -> tuple[float, float, str] | None:
    unit = unit.replace("\u03bc", "\u00b5").strip()
    if unit in _COMPOUND_UNITS:
        factor, si = _COMPOUND_UNITS[unit]
        return factor, 0.0, si
    return si_conversion(unit)


def _name_and_unit(label: str) -> tuple[str, str, bool] | None:
    """Split an EC-Lab label into (quantity, unit text, averaged); None for a label with no quantity.

    The unit follows the first ``/`` after which the rest reads as a unit: units may hold a ``/``
    (``Re(Conductivity)/mS/cm``) and so may names (``Q charge/discharge/mA.h``). A label whose tail
    is no known unit splits at its last ``/`` and is kept as written by the caller.
    """
    m = _AVERAGED.match(label)
    if m:
        unit = m.group("inner") or m.group("outer") or ""
        return m.group("name").strip(), unit.strip(), True
    if "/" not in label:
        return (label.strip(), "", False) if label.strip() else None
    parts = label.split("/")
    for k in range(1, len(parts)):
        unit = "/".join(parts[k:]).strip()
        if unit and _unit_conversion(unit) is not None:
            return "/".join(parts[:k]).strip(), unit, False
    name, _, unit = label.rpartition("/")
    return name.strip(), unit.strip(), False


def label_column(label: str) -> Column | None:
    """The neutral column for an EC-Lab label (binary id tables and text exports alike).

    Known labels come from :data:`COLUMNS_BY_LABEL`; others follow the rule ``name/unit`` (or an
    averaged ``<name>/unit``, ``<name/unit>``) with the unit converted to SI. None when the unit is not
    one the product can convert: the caller keeps such a column as written and says so.
    """
    label = label.replace("\u03bc", "\u00b5").strip()
    known = COLUMNS_BY_LABEL.get(label)
    if known is not None:
        return known
    parts = _name_and_unit(label)
    if parts is None:
        return None
    name, unit_text, averaged = parts
    canonical = f"<{name}>/{unit_text}" if averaged else None
    if canonical and canonical in COLUMNS_BY_LABEL:
        return COLUMNS_BY_LABEL[canonical]
    conv = _unit_conversion(unit_text) if unit_text else (1.0, 0.0, "1")
    if conv is None:
        return None
    factor, offset, unit = conv
    neutral = _BASE_NAMES.get(name, name)
    if name.startswith("-Im("):
        neutral = name[1:]
    if averaged:
        neutral = f"{neutral}_avg"
    if name.startswith("-Im("):  # EC-Lab writes -Im(...): store Im(...) with its mathematical sign
        factor = -factor
    return Column(label, "", neutral, unit, factor, offset)


# Galvanostatic techniques control the current, so EC-Lab's shared control column is a current.
_GALVANOSTATIC = {"constant_current", "chronopotentiometry", "geis"}


def control_column(technique: str) -> tuple[str, str, float]:
    """Neutral name, SI unit and factor of EC-Lab's 'control/V/mA' column for this technique."""
    if technique in _GALVANOSTATIC:
        return "control_I", "A", 1e-3
    if technique in {
        "constant_voltage",
        "chronoamperometry",
        "peis",
        "cyclic_voltammetry",
        "linear_sweep_voltammetry",
        "open_circuit",
    }:
        return "control_E", "V", 1.0
    return "control_raw", "1", 1.0  # mixed control (GCPL, MB, ...): split by mode, see split_control()


# Technique byte in the settings module -> (neutral technique, EC-Lab abbreviation, full name).
TECHNIQUE_CODES: dict[int, tuple[str, str, str]] = {
    0x04: ("galvanostatic_cycling", "GCPL", "Galvanostatic Cycling with Potential Limitation"),
    0x06: ("cyclic_voltammetry", "CV", "Cyclic Voltammetry"),
    0x0B: ("open_circuit", "OCV", "Open Circuit Voltage"),
    0x18: ("chronoamperometry", "CA", "Chronoamperometry / Chronocoulometry"),
    0x19: ("chronopotentiometry", "CP", "Chronopotentiometry"),
    0x1C: ("wait", "WAIT", "Wait"),
    0x1D: ("peis", "PEIS", "Potentio Electrochemical Impedance Spectroscopy"),
    0x1E: ("geis", "GEIS", "Galvano Electrochemical Impedance Spectroscopy"),
    0x30: ("cyclic_voltammetry", "CV", "Cyclic Voltammetry"),
    # 0x32, 0x33, 0x88: yadg, src/yadg/extractors/eclab/techniques.py (technique_params_dtypes) names
    # them ZIR "IR compensation (PEIS)", CVA "Cyclic Voltammetry Advanced", BCD "Battery Capacity
    # Determination"; ZIR measures Z at one frequency under potential control.
    0x32: ("peis", "ZIR", "IR compensation (PEIS)"),
    0x33: ("cyclic_voltammetry", "CVA", "Cyclic Voltammetry Advanced"),
    0x6C: ("linear_sweep_voltammetry", "LSV", "Linear Sweep Voltammetry"),
    0x75: ("constant_voltage", "CstV", "Constant Voltage"),
    0x76: ("constant_current", "CstC", "Constant Current"),
    0x77: ("galvanostatic_cycling", "GCPL", "Galvanostatic Cycling with Potential Limitation"),
    0x7F: ("modulo_bat", "MB", "Modulo Bat"),
    0x88: ("unknown", "BCD", "Battery Capacity Determination"),
}
TECHNIQUE_BY_NAME: dict[str, str] = {full: tech for tech, _, full in TECHNIQUE_CODES.values()}
TECHNIQUE_BY_NAME.update(
    {
        "Constant Current": "constant_current",
        "Constant Voltage": "constant_voltage",
        "Chronoamperometry": "chronoamperometry",
    }
)

# Unit codes in technique parameters. Verified on real files: current 2 = µA, frequency 1 = kHz and
# 2 = Hz; the neighbouring codes follow the order EC-Lab's drop-down lists show.
CURRENT_UNIT_CODES = {0: 1.0, 1: 1e-3, 2: 1e-6, 3: 1e-9, 4: 1e-12}
FREQUENCY_UNIT_CODES = {0: 1e6, 1: 1e3, 2: 1.0, 3: 1e-3, 4: 1e-6}
CURRENT_UNIT_TEXT = {"A": 1.0, "mA": 1e-3, "µA": 1e-6, "uA": 1e-6, "nA": 1e-9, "pA": 1e-12}
FREQUENCY_UNIT_TEXT = {"MHz": 1e6, "kHz": 1e3, "Hz": 1.0, "mHz": 1e-3, "µHz": 1e-6, "uHz": 1e-6}


def finish_columns(rec: Recording) -> None:
    """Use an averaged column as the main one when the file has no instantaneous one.

    EC-Lab records either Ewe or <Ewe> (likewise I, Ece), rarely both; downstream code wants ``E_we``
    and ``I``. ``source_columns`` still says ``<Ewe>/V`` so the averaging stays visible. Two-electrode
    battery cyclers (BT-Lab, BCS series) record the cell voltage ``Ecell/V`` instead of Ewe; it is the
    working-electrode potential against the counter electrode (unconfirmed: inferred from these
    instruments having two electrode leads), so it becomes ``E_we`` (source column
    ``Ecell/V``). A file that records no current at all (GCPL and MB .mpr files) gets ``I`` from the
    control column, see :func:`split_control`.
    """
    for main, alternative in (("E_we", "E_we_avg"), ("I", "I_avg"), ("E_ce", "E_ce_avg"), ("E_we", "E_cell")):
        if main not in rec.timeseries and alternative in rec.timeseries:
            rename = {alternative: main}
            rec.timeseries = {rename.get(k, k): v for k, v in rec.timeseries.items()}
            rec.units = {rename.get(k, k): v for k, v in rec.units.items()}
            rec.source_columns = {rename.get(k, k): v for k, v in rec.source_columns.items()}
    split_control(rec)
    cycles_from_half_cycles(rec)
    quality_indicators_not_computed(rec)


_QUALITY_INDICATORS = tuple(f"{q}_{s}" for q in ("THD", "NSD", "NSR") for s in ("E_we", "I", "E_ce"))


def quality_indicators_not_computed(rec: Recording) -> None:
    """EIS quality indicators EC-Lab did not compute become NaN instead of a negative ratio.

    THD, NSD and NSR are amplitude ratios (BioLogic Application Note 65, "EIS quality indicators THD"),
    so never negative. EC-Lab writes -1 % where it computed none: at the highest frequencies of
    dgbowl/yadg tests/test_x_eclab/peis.issue_149.mpt and geis.issue_149.mpt, where every harmonic
    amplitude |Ewe hN|, |I hN| is 0 (unconfirmed as a documented marker; inferred from those rows).
    """
    for name in _QUALITY_INDICATORS:
        values = rec.timeseries.get(name)
        if values is None or values.dtype.kind != "f":
            continue
        bad = values < 0
        if np.any(bad):
            rec.timeseries[name] = np.where(bad, np.nan, values)
            rec.notes.append(f"{name}: {int(bad.sum())} rows without a computed quality indicator (NaN)")


def cycles_from_half_cycles(rec: Recording) -> None:
    """A ``cycle`` column from EC-Lab's ``half cycle`` counter where the file has no ``cycle number``
    (most .mpr files): two half cycles per cycle, counted from 0. EC-Lab's own text export states the
    rule: every public .mpt with both columns has cycle number = half cycle // 2 (dgbowl/yadg
    tests/test_x_eclab/gcpl.issue_149.mpt, cp.issue_149.mpt; the .mpr files of the same runs hold the
    half cycle only); navani (repository be-smith/navani, src/navani/echem.py) also counts a
    full cycle per two half cycles."""
    half = rec.timeseries.get("half_cycle")
    if half is None or "cycle" in rec.timeseries:
        return
    rec.add_column("cycle", np.asarray(half, dtype=np.int64) // 2, "1", "half cycle // 2")
    rec.notes.append("cycle derived from the half cycle counter (two half cycles per cycle)")


def split_control(rec: Recording) -> None:
    """Resolve EC-Lab's shared 'control/V/mA' column by each row's mode flag.

    In techniques that switch between current and potential control (GCPL, MB, ...) the column holds
    mA where the mode is 1 (galvanostatic) or 3 (rest) and V where it is 2 (potentiostatic), the rule
    yadg applies (``split_control`` in src/yadg/extractors/eclab/techniques.py, dgbowl/yadg). Without
    a recorded current, ``I`` is the controlled current where the cell is under current control and 0
    at rest; rows under potential control have no known current (NaN) and are counted in a note.
    """
    ts = rec.timeseries
    if "control_raw" not in ts or "mode" not in ts:
        return
    raw = ts.pop("control_raw").astype(np.float64)
    label = rec.source_columns.pop("control_raw")
    rec.units.pop("control_raw")
    mode = np.asarray(ts["mode"])
    potentio = mode == 2
    if np.any(potentio) and "control_E" not in ts:
        rec.add_column("control_E", np.where(potentio, raw, np.nan), "V", f"{label} (rows in mode 2)")
    if not np.all(potentio) and "control_I" not in ts:
        rec.add_column("control_I", np.where(potentio, np.nan, raw * 1e-3), "A", f"{label} (rows in mode 1, 3)")
    if "I" not in ts:
        current = np.where(mode == 1, raw * 1e-3, np.where(mode == 3, 0.0, np.nan))
        rec.add_column("I", current, "A", f"{label}: controlled current (the file records no measured current)")
        if np.any(potentio):
            rec.notes.append(f"I: {int(np.sum(potentio))} rows under potential control have no recorded current (NaN)")


_SPECTRUM_FIXED = {"freq", "Z_re", "Z_im", "t", "I", "E_we"}


def _frequency_runs(freq: np.ndarray, idx: np.ndarray) -> list[np.ndarray]:
    """Cut row indexes where the frequency turns back against the run's direction (a new sweep).

    The direction is set by a run's first two points; a relative step under 1e-6 is not a turn.
    """
    runs: list[np.ndarray] = []
    start, sign = 0, 0.0
    for j in range(1, idx.size):
        step = (freq[idx[j]] - freq[idx[j - 1]]) / freq[idx[j - 1]]
        if abs(step) < 1e-6:
            continue
        if sign == 0.0:
            sign = math.copysign(1.0, step)
        elif math.copysign(1.0, step) != sign:
            runs.append(idx[start:j])
            start, sign = j, 0.0
    if idx.size:
        runs.append(idx[start:])
    return runs


def build_spectra(rec: Recording) -> list[Spectrum]:
    """Split impedance rows into sweeps, one per sequence (Ns), cycle, loop or frequency run.

    A sweep starts where Ns or the cycle number changes, at each loop start the header lists
    (``rec.header["loop_starts"]``), and where the frequency turns back against the sweep's direction:
    a technique repeated with ``goto Ns'`` / ``nr cycles`` and ``inc. cycle 0`` keeps Ns and the cycle
    number (unconfirmed: no public file seen), and without Ns/cycle columns that is the only sign.
    Rows without a positive frequency (time-series points recorded during a wait) are not spectra.
    """
    ts = rec.timeseries
    if not all(k in ts for k in ("freq", "Z_re", "Z_im")):
        return []
    freq = ts["freq"]
    n = freq.size
    keys = [ts[k] for k in ("step", "cycle") if k in ts]
    loops = {int(i) for i in rec.header.get("loop_starts", []) if 0 < int(i) < n}
    starts = [0]
    for i in range(1, n):
        if i in loops or any(k[i] != k[i - 1] for k in keys):
            starts.append(i)
    segments = []
    for a, b in zip(starts, starts[1:] + [n]):
        idx = np.arange(a, b)
        idx = idx[np.isfinite(freq[idx]) & (freq[idx] > 0)]
        segments.extend(_frequency_runs(freq, idx))
    spectra = []
    setpoints = rec.metadata.get("current_setpoints")
    for idx in segments:
        extra = {k: v[idx] for k, v in ts.items() if k not in _SPECTRUM_FIXED}
        meta: dict[str, Any] = {}
        meta_units: dict[str, str] = {}
        if "step" in ts:
            step = int(ts["step"][idx[0]])
            meta["step"] = step
            if isinstance(setpoints, list) and 0 <= step < len(setpoints) and rec.technique == "geis":
                meta["I_dc_setpoint"] = setpoints[step]
                meta_units["I_dc_setpoint"] = "A"
        if "cycle" in ts:
            meta["cycle"] = int(ts["cycle"][idx[0]])
        spectra.append(
            Spectrum(
                frequency=freq[idx],
                Z_re=ts["Z_re"][idx],
                Z_im=ts["Z_im"][idx],
                time=ts["t"][idx] if "t" in ts else np.full(idx.size, np.nan),
                I_dc=ts["I"][idx] if "I" in ts else None,
                E_dc=ts["E_we"][idx] if "E_we" in ts else None,
                extra=extra,
                units={k: rec.units[k] for k in extra},
                metadata=meta,
                metadata_units=meta_units,
            )
        )
    return spectra
