"""Helpers shared by the importers: error wording, bounded binary reads, unit conversion of labels."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np

from daq.core.errors import DataFileError
from daq.core.units import from_unit, si_name


def fail(path: Path, what: str) -> DataFileError:
    """The one error every importer raises: the file, then what could not be read."""
    return DataFileError(f"{path}: {what}")


class ByteView:
    """Bounds-checked little-endian reads, so a damaged file gives a DataFileError, not struct.error."""

    def __init__(self, data: bytes, path: Path, where: str):
        self.data, self.path, self.where = data, path, where

    def __len__(self) -> int:
        return len(self.data)

    def _need(self, offset: int, size: int) -> None:
        if offset < 0 or offset + size > len(self.data):
            raise fail(
                self.path,
                f"{self.where} ends at byte {len(self.data)}, needed bytes "
                f"{offset}..{offset + size} (file truncated or damaged)",
            )

    def unpack(self, fmt: str, offset: int) -> tuple:
        size = struct.calcsize(fmt)
        self._need(offset, size)
        return struct.unpack_from(fmt, self.data, offset)

    def u1(self, offset: int) -> int:
        return self.unpack("<B", offset)[0]

    def u2(self, offset: int) -> int:
        return self.unpack("<H", offset)[0]

    def u4(self, offset: int) -> int:
        return self.unpack("<I", offset)[0]

    def f4(self, offset: int) -> float:
        return self.unpack("<f", offset)[0]

    def f8(self, offset: int) -> float:
        return self.unpack("<d", offset)[0]

    def has(self, offset: int, size: int) -> bool:
        return 0 <= offset and offset + size <= len(self.data)

    def pascal(self, offset: int) -> str | None:
        """A length-prefixed string, or None when it does not fit or is not text (optional fields)."""
        if not self.has(offset, 1):
            return None
        n = self.data[offset]
        if not self.has(offset + 1, n):
            return None
        raw = self.data[offset + 1 : offset + 1 + n]
        text = raw.decode("latin-1")
        if any(ord(c) < 32 and c not in "\t\r\n" for c in text):
            return None
        return text


# Unit labels vendors write that the product's unit parser does not read directly.
_UNIT_ALIASES = {
    "Ohm": "ohm",
    "ohms": "ohm",
    "Ω": "ohm",
    "mA.h": "mAh",
    "A.h": "Ah",
    "µA.h": "uAh",
    "W.h": "W h",
    "mW.h": "mW h",
    "µF": "uF",
    "μF": "uF",
    "µA": "uA",
    "μA": "uA",
    "µV": "uV",
    "μV": "uV",
    "V vs. Ref.": "V",
    "V vs. Ref": "V",
    "V vs. Eoc": "V",
    "rpm": "",
}


def si_conversion(unit: str) -> tuple[float, float, str] | None:
    """``(factor, offset, si_unit)`` turning values written in ``unit`` into SI, or None if unknown.

    Angles go to rad, temperatures to K, percentages to fractions; counters (``#``, ``bits``, empty)
    are dimensionless ``"1"``.
    """
    u = unit.strip()
    if u in ("", "#", "##", "bits", "1"):
        return 1.0, 0.0, "1"
    if u in ("deg", "°", "Deg", "degree", "degrees"):
        return math.pi / 180.0, 0.0, "rad"
    if u in ("deg C", "°C", "degC", "C°"):
        return 1.0, 273.15, "K"
    if u == "%":
        return 0.01, 0.0, "1"
    u = _UNIT_ALIASES.get(u, u)
    if u == "":
        return None
    try:
        factor = from_unit(1.0, u)
    except (ValueError, ZeroDivisionError):
        return None
    si = si_name(u)
    if si is None:
        return None
    return factor, 0.0, si


def parse_number(text: str) -> float:
    """A number as vendors write it, accepting a decimal comma (EU locale exports)."""
    t = text.strip()
    if "," in t and "." not in t:
        t = t.replace(",", ".")
    return float(t)


def scaled(value: float, factor: float) -> float:
    """``value * factor`` without binary noise in the last digits (50 uA -> 5e-05, not 4.9999999999999996e-05).

    For set-points typed by a person, never for measured columns.
    """
    x = value * factor
    return float(f"{x:.12g}") if math.isfinite(x) else x


def to_float_array(values: list[str], path: Path, where: str) -> np.ndarray:
    """Parse a text column; an unreadable cell is a DataFileError naming where it is."""
    out = np.empty(len(values), dtype=float)
    for i, v in enumerate(values):
        try:
            out[i] = parse_number(v)
        except ValueError:
            raise fail(path, f"{where}, row {i + 1}: '{v[:40]}' is not a number") from None
    return out


def unique_name(name: str, taken: dict) -> str:
    """``name``, or ``name_2``, ``name_3``... when a column of that name already exists."""
    if name not in taken:
        return name
    k = 2
    while f"{name}_{k}" in taken:
        k += 1
    return f"{name}_{k}"
