"""Physical quantities at the user's edge: the one place where text like ``"9 mA/cm^2"`` becomes SI.

Inside the code every number is SI (A, V, s, m, Pa, C, ohm, ...). Users write units out in protocol and
cell files and on the command line; this module parses those strings into SI floats, checks the
dimension against what the field expects, and formats SI values back for display.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from daq.core.errors import ConfigError

# Dimension vectors: exponents of (m, kg, s, A, K, mol).
_DIM_NAMES = ("m", "kg", "s", "A", "K", "mol")
Dim = tuple[float, float, float, float, float, float]

_NONE: Dim = (0, 0, 0, 0, 0, 0)


def _d(m=0, kg=0, s=0, A=0, K=0, mol=0) -> Dim:
    return (m, kg, s, A, K, mol)


# Base units (no prefix): symbol -> (SI factor, dimension).
_BASE: dict[str, tuple[float, Dim]] = {
    "m": (1.0, _d(m=1)),
    "g": (1e-3, _d(kg=1)),
    "s": (1.0, _d(s=1)),
    "min": (60.0, _d(s=1)),
    "h": (3600.0, _d(s=1)),
    "d": (86400.0, _d(s=1)),
    "A": (1.0, _d(A=1)),
    "K": (1.0, _d(K=1)),
    "mol": (1.0, _d(mol=1)),
    "Ah": (3600.0, _d(s=1, A=1)),
    "C": (1.0, _d(s=1, A=1)),
    "V": (1.0, _d(m=2, kg=1, s=-3, A=-1)),
    "ohm": (1.0, _d(m=2, kg=1, s=-3, A=-2)),
    "Ohm": (1.0, _d(m=2, kg=1, s=-3, A=-2)),
    "Ω": (1.0, _d(m=2, kg=1, s=-3, A=-2)),
    "S": (1.0, _d(m=-2, kg=-1, s=3, A=2)),
    "F": (1.0, _d(m=-2, kg=-1, s=4, A=2)),
    "Hz": (1.0, _d(s=-1)),
    "Pa": (1.0, _d(m=-1, kg=1, s=-2)),
    "bar": (1e5, _d(m=-1, kg=1, s=-2)),
    "N": (1.0, _d(m=1, kg=1, s=-2)),
    "J": (1.0, _d(m=2, kg=1, s=-2)),
    "W": (1.0, _d(m=2, kg=1, s=-3)),
    "L": (1e-3, _d(m=3)),
}
_PREFIX = {
    "T": 1e12,
    "G": 1e9,
    "M": 1e6,
    "k": 1e3,
    "c": 1e-2,
    "m": 1e-3,
    "u": 1e-6,
    "µ": 1e-6,
    "μ": 1e-6,
    "n": 1e-9,
    "p": 1e-12,
}


@dataclass(frozen=True)
class Kind:
    """A physical kind of quantity a field expects, with an example for error messages."""

    name: str
    dim: Dim
    example: str
    display: str  # the unit used to show values of this kind to users


CURRENT_DENSITY = Kind("current density", _d(m=-2, A=1), "9 mA/cm^2", "mA/cm^2")
AREAL_CAPACITY = Kind("areal capacity", _d(m=-2, s=1, A=1), "8 mAh/cm^2", "mAh/cm^2")
CURRENT = Kind("current", _d(A=1), "70 uA", "uA")
CHARGE = Kind("charge", _d(s=1, A=1), "1 mAh", "C")
VOLTAGE = Kind("voltage", _d(m=2, kg=1, s=-3, A=-1), "-2 V", "V")
TIME = Kind("time", _d(s=1), "1 h", "s")
LENGTH = Kind("length", _d(m=1), "1 mm", "um")
AREA = Kind("area", _d(m=2), "0.785 mm^2", "cm^2")
PRESSURE = Kind("pressure", _d(m=-1, kg=1, s=-2), "7 MPa", "MPa")
FREQUENCY = Kind("frequency", _d(s=-1), "1 MHz", "Hz")
RESISTANCE = Kind("resistance", _d(m=2, kg=1, s=-3, A=-2), "300 ohm", "ohm")
AREA_SPECIFIC_RESISTANCE = Kind("area-specific resistance", _d(m=4, kg=1, s=-3, A=-2), "10 ohm cm^2", "ohm cm^2")
CONDUCTIVITY = Kind("conductivity", _d(m=-3, kg=-1, s=3, A=2), "2.5 mS/cm", "mS/cm")
TEMPERATURE = Kind("temperature", _d(K=1), "25 degC", "K")
FRACTURE_TOUGHNESS = Kind("fracture toughness", _d(m=-0.5, kg=1, s=-2), "0.23 MPa m^0.5", "MPa m^0.5")
FRACTION = Kind("fraction", _NONE, "99 %", "%")
FORCE = Kind("force", _d(m=1, kg=1, s=-2), "100 N", "N")
VELOCITY = Kind("velocity", _d(m=1, s=-1), "1 um/s", "um/s")

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_QUANTITY_RE = re.compile(rf"^\s*(?P<num>{_NUMBER})\s*(?P<unit>.*?)\s*$")
# A symbol with an optional power: ``cm^2``, ``cm2``, ``cm^-2`` or the papers' ``cm-2`` (and ``cm⁻²``,
# whose superscripts are made plain first).
_TOKEN_RE = re.compile(r"^(?P<sym>[A-Za-zµμΩ]+)(?:\^?(?P<exp>[-+]?\d+(?:\.\d+)?))?$")
_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")


def _unit_factor(unit: str) -> tuple[float, Dim]:
    """SI factor and dimension of a unit expression such as ``mA/cm^2`` or ``MPa m^0.5``."""
    unit = unit.strip().translate(_SUPERSCRIPTS).replace("·", " ").replace("*", " ").replace("⋅", " ")
    if unit in ("", "1"):
        return 1.0, _NONE
    if unit == "%":
        return 0.01, _NONE
    if unit == "ppm":
        return 1e-6, _NONE
    factor, dim = 1.0, [0.0] * 6
    numerator, *denominators = unit.split("/")
    parts = [(tok, 1) for tok in numerator.split()]
    for den in denominators:
        parts += [(tok, -1) for tok in den.split()]
    for token, sign in parts:
        f, d = _token(token)
        factor *= f**sign
        for i in range(6):
            dim[i] += sign * d[i]
    return factor, tuple(dim)  # type: ignore[return-value]


def _token(token: str) -> tuple[float, Dim]:
    m = _TOKEN_RE.match(token)
    if not m:
        raise ValueError(token)
    sym = m["sym"]
    exp = float(m["exp"]) if m["exp"] else 1.0
    if sym in _BASE:
        f, d = _BASE[sym]
    elif sym[0] in _PREFIX and sym[1:] in _BASE:
        f, d = _BASE[sym[1:]]
        f *= _PREFIX[sym[0]]
    else:
        raise ValueError(token)
    return f**exp, tuple(x * exp for x in d)  # type: ignore[return-value]


def _same_dim(a: Dim, b: Dim) -> bool:
    return all(math.isclose(x, y, abs_tol=1e-9) for x, y in zip(a, b))


def parse(text: object, kind: Kind, field: str) -> float:
    """Parse a quantity written with its unit (``"9 mA/cm^2"``) into SI, checking its dimension.

    Raises ConfigError naming ``field`` and the offending text when the number or unit is unreadable or
    the unit is not a ``kind``.
    """
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ConfigError(field, text, f'expected a {kind.name} with its unit, e.g. "{kind.example}"')
    if isinstance(text, (int, float)):
        if kind.dim == _NONE:
            return float(text)
        raise ConfigError(field, text, f'a {kind.name} needs its unit, e.g. "{kind.example}"')
    m = _QUANTITY_RE.match(text)
    if not m:
        raise ConfigError(field, text, f'not a number with a unit; expected e.g. "{kind.example}"')
    value = float(m["num"])
    unit = m["unit"]
    if kind is TEMPERATURE and unit in ("degC", "°C", "C"):
        return value + 273.15
    try:
        factor, dim = _unit_factor(unit)
    except ValueError as exc:
        raise ConfigError(
            field, text, f"unknown unit '{exc.args[0]}'; expected a {kind.name} such as \"{kind.example}\""
        ) from None
    if not unit and kind.dim != _NONE:
        raise ConfigError(field, text, f'a {kind.name} needs its unit, e.g. "{kind.example}"')
    if not _same_dim(dim, kind.dim):
        raise ConfigError(field, text, f"'{unit}' is not a unit of {kind.name}; expected e.g. \"{kind.example}\"")
    if not math.isfinite(value) or not math.isfinite(value * factor):
        raise ConfigError(field, text, "not a finite number")
    return value * factor


def is_unit(text: str) -> bool:
    """Whether ``text`` reads as a unit alone (``mA/cm^2``): a value whose unit was left unquoted."""
    try:
        _unit_factor(text)
    except (ValueError, OverflowError):
        return False
    return bool(text.strip()) and not text.strip().isdigit()


def to_unit(value_si: float, unit: str) -> float:
    """Convert an SI value to ``unit`` (e.g. ``to_unit(90.0, "mA/cm^2") == 9.0``)."""
    if unit in ("degC", "°C"):
        return value_si - 273.15
    factor, _ = _unit_factor(unit)
    return value_si / factor


def from_unit(value: float, unit: str) -> float:
    """Convert ``value`` given in ``unit`` to SI (the inverse of :func:`to_unit`)."""
    if unit in ("degC", "°C"):
        return value + 273.15
    factor, _ = _unit_factor(unit)
    return value * factor


def fmt(value_si: float, unit: str, digits: int = 4) -> str:
    """Format an SI value in a display unit: ``fmt(90.0, "mA/cm^2") == "9 mA/cm^2"``."""
    return f"{to_unit(value_si, unit):.{digits}g} {unit}"


def si_unit(kind: Kind) -> str:
    """The SI unit string stored in HDF5 attrs for a kind (e.g. ``A/m^2``)."""
    num, den = [], []
    for name, e in zip(_DIM_NAMES, kind.dim):
        if e:
            token = name if abs(e) == 1 else f"{name}^{abs(e):g}"
            (num if e > 0 else den).append(token)
    text = " ".join(num) or "1"
    return text + ("/" + " ".join(den) if den else "")


_SI_NAMES = ("s", "V", "A", "C", "ohm", "Hz", "W", "J", "F", "S", "m^2", "m", "kg", "Pa", "N", "K")


def si_name(unit: str) -> str | None:
    """The SI unit a unit expression measures ("mA" -> "A", "kOhm" -> "ohm"; "1" if dimensionless), or
    None when it cannot be parsed."""
    try:
        _, dim = _unit_factor(unit)
    except ValueError:
        return None
    for name in _SI_NAMES:
        if _same_dim(dim, _unit_factor(name)[1]):
            return name
    return "1" if _same_dim(dim, _NONE) else None
