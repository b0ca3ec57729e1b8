"""SCPI message parsing shared by the emulated instruments: mnemonics, headers, arguments, errors.

A header element may be written in its long form (``CURRent``) or its short form (the capitals,
``CURR``), with an optional numeric suffix (``SOUR1``); optional nodes (``[:LEVel]``, ``[:IMMediate]``
...) may be left out. ``canonical`` reduces a header to the short form the emulators dispatch on.
"""

from __future__ import annotations

import re

import numpy as np

# Long forms of the mnemonics used; a header element may be written long or short (the capitals).
MNEMONICS = [
    "SOURce",
    "SENSe",
    "CURRent",
    "VOLTage",
    "FUNCtion",
    "VLIMit",
    "ILIMit",
    "TRIPped",
    "LEVel",
    "RANGe",
    "AUTO",
    "READ",
    "BACK",
    "OUTPut",
    "STATe",
    "SMODe",
    "TRACe",
    "MAKE",
    "DATA",
    "ACTual",
    "POINts",
    "CLEar",
    "DELete",
    "TRIGger",
    "LOAD",
    "INITiate",
    "IMMediate",
    "ABORt",
    "SYSTem",
    "ERRor",
    "NEXT",
    "COUNt",
    "RELative",
    "FORMat",
    "ASCii",
    "PRECision",
    "NPLCycles",
    "MODE",
    "AMPLitude",
    "BLOCk",
    "BUFFer",
    "DELay",
    "CONStant",
    "MEASure",
    "BRANch",
    "COUNter",
    "ALWays",
    "EVENt",
    "RESet",
    "NOP",
    "LIST",
]
_SHORT: dict[str, str] = {}
for _long in MNEMONICS:
    _short = "".join(c for c in _long if c.isupper())
    _SHORT[_long.upper()] = _short
    _SHORT[_short] = _short
_SHORT["NPLC"] = "NPLC"
_SHORT["NPLCYCLES"] = "NPLC"
# Optional nodes ([:LEVel], [:IMMediate], [:STATe] of OUTPut, [:MODE] of FUNCtion, [:AMPLitude]).
_OPTIONAL = {"LEV", "IMM", "AMPL"}


class ScpiError(Exception):
    """A command the instrument refuses: its error-queue code and message."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def canonical(header: str) -> str:
    """``:SOURce1:CURRent:VLIMit:LEVel:TRIPped?`` -> ``SOUR:CURR:VLIM:TRIP?``."""
    query = header.endswith("?")
    text = header.rstrip("?").lstrip(":").upper()
    if text.startswith("*"):
        return text + ("?" if query else "")
    parts = []
    for token in text.split(":"):
        token = re.sub(r"\d+$", "", token)  # SOUR1, OUTP1, TIM1 ...
        short = _SHORT.get(token)
        if short is None:
            raise ScpiError(-113, f"Undefined header {header}")
        if short in _OPTIONAL:
            continue
        parts.append(short)
    # Optional trailing nodes of a few subsystems.
    if parts[-1:] == ["STAT"] and parts[:1] == ["OUTP"]:
        parts.pop()
    if parts[-1:] == ["MODE"] and parts[-2:-1] == ["FUNC"]:
        parts.pop()
    if parts[-1:] == ["NEXT"] and parts[:2] == ["SYST", "ERR"]:
        parts.pop()
    return ":".join(parts) + ("?" if query else "")


def split_args(text: str) -> list[str]:
    """Comma-separated arguments; a quoted string stays one argument."""
    return [a.strip() for a in re.findall(r'"[^"]*"|\'[^\']*\'|[^,]+', text)] if text.strip() else []


def unquote(arg: str) -> str:
    return arg.strip().strip('"').strip("'")


def number(arg: str) -> float:
    try:
        value = float(arg)
    except ValueError:
        raise ScpiError(-104, f"Data type error: {arg!r}") from None
    if not np.isfinite(value):
        raise ScpiError(-222, "Data out of range")
    return value


def integer(arg: str) -> int:
    value = number(arg)
    if value != int(value):
        raise ScpiError(-104, f"Data type error: {arg!r} is not an integer")
    return int(value)


def boolean(arg: str) -> bool:
    a = arg.strip().upper()
    if a in ("1", "ON"):
        return True
    if a in ("0", "OFF"):
        return False
    raise ScpiError(-224, f"Illegal parameter value {arg!r}")


def need(args: list[str], n: int) -> None:
    if len(args) < n:
        raise ScpiError(-109, "Missing parameter")
