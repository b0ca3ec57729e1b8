"""Protocol files (TOML, units written out) -> validated Protocol. docs/protocol-files.md has the format.

Every error names the field as a path a user can find in the file (``steps.2.current_density``) and
the offending value, and is raised before anything touches an instrument.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from daq.core import units as u
from daq.core.errors import ConfigError
from daq.core.tables import ConfigTable, parse_toml, read_user_file, suggest
from protocols import limits as L
from protocols.steps import (
    CURRENT_LIMIT,
    PLATE,
    SHORT_CIRCUIT,
    STRIP,
    VOLTAGE_LIMIT,
    Eis,
    EisSpec,
    Galvanostatic,
    InterlockSpec,
    Loop,
    Potentiostatic,
    Protocol,
    Rest,
    ShortCircuitCriteria,
    Step,
)

STEP_KINDS = ("rest", "galvanostatic", "potentiostatic", "eis", "loop")
STOP_CONDITIONS = (SHORT_CIRCUIT, VOLTAGE_LIMIT, CURRENT_LIMIT)
# Every field a step table can hold (for "did you mean" on --set names).
STEP_FIELDS = frozenset(
    "kind label sample_period duration direction current_density capacity v_min v_max eis_every operando_eis "
    "stop_on potential i_limit mode f_start f_end points_per_decade amplitude dc cycles steps until".split()
)


def _eis_spec(t: ConfigTable, mode: str | None = None) -> EisSpec:
    mode = mode or t.choice("mode", ("galvanostatic", "potentiostatic"))
    band = {"lo": L.MIN_FREQUENCY, "hi": L.MAX_FREQUENCY, "unit": "Hz"}
    f_start = t.quantity("f_start", u.FREQUENCY, required=True, **band)
    f_end = t.quantity("f_end", u.FREQUENCY, required=True, **band)
    if not f_start > f_end:
        raise ConfigError(
            t.at("f_end"),
            t.data.get("f_end"),
            f"frequency range reversed: sweeps run from high to low, f_start ({t.data.get('f_start')})"
            " must be above f_end",
        )
    ppd = t.integer("points_per_decade", 10, maximum=L.MAX_POINTS_PER_DECADE)
    cd = {"unit": "mA/cm^2"}
    if mode == "galvanostatic":
        amplitude = t.quantity("amplitude", u.CURRENT_DENSITY, required=True, hi=L.MAX_EIS_CURRENT_AMPLITUDE, **cd)
        dc = t.quantity(
            "dc", u.CURRENT_DENSITY, 0.0, positive=False, lo=-L.MAX_CURRENT_DENSITY, hi=L.MAX_CURRENT_DENSITY, **cd
        )
    else:
        amplitude = t.quantity("amplitude", u.VOLTAGE, required=True, hi=L.MAX_EIS_POTENTIAL_AMPLITUDE, unit="mV")
        dc = None
        if t.data.get("dc") not in (None, "ocv", "OCV"):
            dc = t.quantity("dc", u.VOLTAGE, positive=False, lo=-L.MAX_POTENTIAL, hi=L.MAX_POTENTIAL, unit="V")
        t.used.add("dc")
    spec = EisSpec(mode, f_start, f_end, ppd, amplitude, dc)  # type: ignore[arg-type]
    points = _sweep_points(f_start, f_end, ppd)  # type: ignore[arg-type]
    if points > L.MAX_SWEEP_POINTS:
        raise ConfigError(
            t.at("points_per_decade"), ppd, f"makes a sweep of {points} frequencies, more than {L.MAX_SWEEP_POINTS}"
        )
    return spec


def _sweep_points(f_start: float, f_end: float, ppd: int) -> int:
    """Frequencies in a sweep, computed as EisSpec.frequencies() does, without building the array."""
    return max(round(abs(np.log10(f_end / f_start)) * ppd) + 1, 2)


def _check_samples(t: ConfigTable, key: str, duration: float | None, period: float) -> None:
    """Refuse a step that would record more samples than a run file is meant to hold."""
    if duration is not None and duration / period > L.MAX_SAMPLES_PER_STEP:
        raise ConfigError(
            t.at(key),
            t.data.get(key),
            f"makes {duration / period:.3g} samples at {u.fmt(period, 's')} per sample, more than "
            f"{L.MAX_SAMPLES_PER_STEP:.0e}; lengthen sample_period or shorten the step",
        )


def _stop_on(t: ConfigTable, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = t.raw("stop_on")
    if raw is None:
        return default
    if not isinstance(raw, list) or any(c not in STOP_CONDITIONS for c in raw):
        raise ConfigError(t.at("stop_on"), raw, f"must be a list drawn from {', '.join(STOP_CONDITIONS)}")
    return tuple(raw)


_SPAN = {"hi": L.MAX_DURATION, "unit": "d"}
_VOLTS = {"positive": False, "lo": -L.MAX_POTENTIAL, "hi": L.MAX_POTENTIAL, "unit": "V"}


def _step(data: Any, path: str, defaults: dict[str, float]) -> Step:
    t = ConfigTable(data, path)
    t.refuse_unknown(STEP_FIELDS)
    kind = t.raw("kind")
    if kind not in STEP_KINDS:
        if kind is None:
            raise t.missing("kind", f"missing; give the step kind, one of {', '.join(STEP_KINDS)}")
        hint = suggest(kind, STEP_KINDS)
        raise ConfigError(t.at("kind"), kind, f"unknown step kind{hint or ';'} expected one of {', '.join(STEP_KINDS)}")
    label = t.text("label", kind)
    period = t.quantity(
        "sample_period", u.TIME, defaults["sample_period"], lo=L.MIN_SAMPLE_PERIOD, hi=L.MAX_SAMPLE_PERIOD, unit="s"
    )
    step = _STEP_READERS[kind](t, label, period, path, defaults)
    t.finish()
    return step


def _rest(t: ConfigTable, label: str, period: float, path: str, defaults: dict[str, float]) -> Rest:
    step = Rest(label, t.quantity("duration", u.TIME, required=True, **_SPAN), period)
    _check_samples(t, "duration", step.duration, period)
    return step


def _galvanostatic(t: ConfigTable, label: str, period: float, path: str, defaults: dict[str, float]) -> Galvanostatic:
    direction = t.choice("direction", (PLATE, STRIP))
    cd_raw = t.data.get("current_density")
    cd = t.quantity(
        "current_density", u.CURRENT_DENSITY, required=True, positive=False, hi=L.MAX_CURRENT_DENSITY, unit="mA/cm^2"
    )
    if not cd > 0:
        raise ConfigError(
            t.at("current_density"), cd_raw, 'must be positive; the sign comes from direction = "plate" or "strip"'
        )
    capacity = t.quantity("capacity", u.AREAL_CAPACITY, hi=L.MAX_AREAL_CAPACITY, unit="mAh/cm^2")
    duration = t.quantity("duration", u.TIME, **_SPAN)
    if capacity is None and duration is None:
        raise t.missing("capacity", 'give a capacity (e.g. "8 mAh/cm^2") or a duration')
    _check_samples(t, "duration", duration, period)  # a capacity's duration: protocols.binding
    v_min = t.quantity("v_min", u.VOLTAGE, -2.0, **_VOLTS)
    v_max = t.quantity("v_max", u.VOLTAGE, 2.0, **_VOLTS)
    if not v_min < v_max:  # type: ignore[operator]
        raise ConfigError(t.at("v_min"), t.data.get("v_min"), "must be below v_max")
    every = t.quantity("eis_every", u.AREAL_CAPACITY, hi=L.MAX_AREAL_CAPACITY, unit="mAh/cm^2")
    return Galvanostatic(
        label,
        direction,
        cd,
        capacity,
        duration,
        v_min,
        v_max,
        period,  # type: ignore[arg-type]
        _stop_on(t, (SHORT_CIRCUIT, VOLTAGE_LIMIT)),
        _operando(t, every),
        every,
    )


def _operando(t: ConfigTable, every: float | None) -> EisSpec | None:
    """The [operando_eis] sweep of a galvanostatic step: it and eis_every come together or not at all."""
    if not t.has("operando_eis") and every is None:
        return None
    if every is None or not t.has("operando_eis"):
        raise ConfigError(
            t.at("eis_every"), t.data.get("eis_every"), "operando EIS needs both eis_every and an [operando_eis] table"
        )
    t.used.add("operando_eis")
    ot = ConfigTable(t.data["operando_eis"], t.at("operando_eis"))
    spec = _eis_spec(ot, "galvanostatic")
    ot.used.add("mode")
    ot.finish()
    return spec


def _potentiostatic(t: ConfigTable, label: str, period: float, path: str, defaults: dict[str, float]) -> Potentiostatic:
    step = Potentiostatic(
        label,
        t.quantity("potential", u.VOLTAGE, required=True, **_VOLTS),
        t.quantity("duration", u.TIME, required=True, **_SPAN),
        t.quantity("i_limit", u.CURRENT_DENSITY, 100.0, hi=L.MAX_CURRENT_DENSITY, unit="mA/cm^2"),
        period,
        _stop_on(t, (SHORT_CIRCUIT, CURRENT_LIMIT)),
    )
    _check_samples(t, "duration", step.duration, period)
    return step


def _eis(t: ConfigTable, label: str, period: float, path: str, defaults: dict[str, float]) -> Eis:
    return Eis(label, _eis_spec(t))


def _loop(t: ConfigTable, label: str, period: float, path: str, defaults: dict[str, float]) -> Loop:
    cycles = t.integer("cycles", maximum=L.MAX_CYCLES)
    children = t.raw("steps")
    if not isinstance(children, list) or not children:
        raise ConfigError(t.at("steps"), children, "a loop needs a non-empty list of [[...steps]]")
    until = t.raw("until") or []
    if not isinstance(until, list) or any(c not in STOP_CONDITIONS for c in until):
        raise ConfigError(t.at("until"), until, f"must be a list drawn from {', '.join(STOP_CONDITIONS)}")
    steps = tuple(_step(c, f"{path}.steps.{i}", defaults) for i, c in enumerate(children, 1))
    return Loop(label, steps, cycles, tuple(until))


_STEP_READERS = {
    "rest": _rest,
    "galvanostatic": _galvanostatic,
    "potentiostatic": _potentiostatic,
    "eis": _eis,
    "loop": _loop,
}

_INTERLOCK_KINDS = {"pressure": u.PRESSURE, "temperature": u.TEMPERATURE, "overload": None}
_INTERLOCK_RANGE = {
    "pressure": (0.0, L.MAX_PRESSURE, "MPa"),
    "temperature": (L.MIN_TEMPERATURE, L.MAX_TEMPERATURE, "degC"),
}


def _interlocks(t: ConfigTable) -> tuple[InterlockSpec, ...]:
    """``[interlocks.pressure]`` min/max window, ``[interlocks.temperature]``, ``[interlocks.overload]``,
    each with optional clear_wait and timeout."""
    specs = []
    for kind, data in t.data.items():
        t.used.add(kind)
        if kind not in _INTERLOCK_KINDS:
            raise ConfigError(t.at(kind), None, f"unknown interlock; expected one of {', '.join(_INTERLOCK_KINDS)}")
        it = ConfigTable(data, t.at(kind))
        quantity = _INTERLOCK_KINDS[kind]
        low, high = -np.inf, np.inf
        if quantity is not None:
            lo, hi, unit = _INTERLOCK_RANGE[kind]
            low = it.quantity("min", quantity, -np.inf, positive=False, lo=lo, hi=hi, unit=unit)
            high = it.quantity("max", quantity, np.inf, positive=False, lo=lo, hi=hi, unit=unit)
            if not low < high:
                raise ConfigError(it.at("min"), it.data.get("min"), "must be below max")
            if low == -np.inf and high == np.inf:
                raise ConfigError(it.at("min"), None, "give min and/or max")
        spec = InterlockSpec(
            kind,
            low,
            high,
            it.quantity("clear_wait", u.TIME, 60.0, positive=False, hi=L.MAX_CLEAR_WAIT, unit="h"),
            it.quantity("timeout", u.TIME, 3600.0, hi=L.MAX_INTERLOCK_TIMEOUT, unit="d"),
        )
        it.finish()
        specs.append(spec)
    t.finish()
    return tuple(specs)


def apply_overrides(doc: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any]:
    """Apply ``--set KEY=VALUE``: KEY is a path (``steps.2.current_density``) or a field name that
    exactly one step has (``current_density``)."""
    doc = copy.deepcopy(doc)
    for key, value in overrides.items():
        parts = key.split(".")
        if len(parts) == 1:
            holders = [s for s in _all_step_tables(doc.get("steps", [])) if key in s]
            if not holders:
                known = {k for s in _all_step_tables(doc.get("steps", [])) for k in s} | STEP_FIELDS
                hint = suggest(key, known)
                if hint:
                    raise ConfigError(f"--set {key}", value, f"no step has it{hint}")
            if len(holders) != 1:
                where = "no step has it" if not holders else f"{len(holders)} steps have it"
                raise ConfigError(f"--set {key}", value, f"{where}; name the step, e.g. steps.2.{key}")
            holders[0][key] = value
            continue
        node: Any = doc
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list):
                if not part.isdigit() or not 1 <= int(part) <= len(node):
                    raise ConfigError(f"--set {key}", value, f"'{'.'.join(parts[: i + 1])}' is not a step number")
                node = node[int(part) - 1]
            elif isinstance(node, dict) and part in node:
                node = node[part]
            else:
                raise ConfigError(f"--set {key}", value, f"'{'.'.join(parts[: i + 1])}' is not in the protocol")
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}", value, "does not name a field")
        node[parts[-1]] = value
    return doc


def _all_step_tables(steps: Any) -> list[dict[str, Any]]:
    out = []
    for s in steps if isinstance(steps, list) else []:
        if isinstance(s, dict):
            out.append(s)
            out += _all_step_tables(s.get("steps"))
    return out


def protocol_from_text(text: str, source: str = "<protocol>", overrides: dict[str, str] | None = None) -> Protocol:
    doc = parse_toml(text, "protocol", source)
    try:
        doc = apply_overrides(doc, overrides or {})
        root = ConfigTable(doc, "")
        meta = ConfigTable(root.raw("protocol") or {}, "protocol")
        name = meta.text("name", Path(source).stem)
        description = meta.text("description", "")
        cell = meta.raw("cell")
        if cell is not None and not isinstance(cell, str):
            raise ConfigError("protocol.cell", cell, "must be a path to a cell file")
        meta.finish()
        dt = ConfigTable(root.raw("defaults") or {}, "defaults")
        defaults = {
            "sample_period": dt.quantity(
                "sample_period", u.TIME, 1.0, lo=L.MIN_SAMPLE_PERIOD, hi=L.MAX_SAMPLE_PERIOD, unit="s"
            )
        }
        dt.finish()
        sc = ConfigTable(root.raw("short_circuit") or {}, "short_circuit")
        criteria = ShortCircuitCriteria(
            enabled=sc.flag("enabled", True),
            collapse_fraction=sc.number("collapse_fraction", 0.5, 0.0, 1.0),
            window=sc.quantity("window", u.TIME, 10.0, hi=L.DAY, unit="h"),
            min_drop=sc.quantity("min_drop", u.VOLTAGE, 0.005, hi=L.MAX_POTENTIAL, unit="V"),
        )
        sc.finish()
        interlocks = _interlocks(ConfigTable(root.raw("interlocks") or {}, "interlocks"))
        raw_steps = root.raw("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            raise ConfigError("steps", raw_steps, "the protocol needs at least one [[steps]] table")
        steps = tuple(_step(s, f"steps.{i}", defaults) for i, s in enumerate(raw_steps, 1))
        root.finish()
    except ConfigError as exc:
        raise exc.located(source) from None
    return Protocol(
        name, steps, description, text, source, cell, criteria, tuple((overrides or {}).items()), interlocks
    )


def load_protocol(path: str | Path, overrides: dict[str, str] | None = None) -> Protocol:
    path = Path(path)
    text = read_user_file(path, "protocol")
    protocol = protocol_from_text(text, str(path), overrides)
    if protocol.cell_path is not None:
        protocol = dataclasses.replace(protocol, cell_path=str((path.parent / protocol.cell_path).resolve()))
    return protocol
