"""The Keithley 2450's SCPI vocabulary as the driver uses it: capabilities, command lists, reply parsers.

Pure functions, no I/O: what is sent for a step and how replies are read, so both can be pinned by
wire-level tests. Command syntax: Keithley 2450/2461 reference manuals (SOURce, SENSe, OUTPut, TRACe,
TRIGger subsystems); see docs/drivers.md for the sources and what is unconfirmed.
"""

from __future__ import annotations

import re

import numpy as np

from daq.core.capabilities import Capabilities, InstrumentInfo
from daq.core.errors import InstrumentError
from drivers.scpi_link import BadReply, clip

KEITHLEY2450_CAPABILITIES = Capabilities(
    max_current=1.05,  # A, 1 A range (105 % overrange)
    current_resolution=5e-13,  # A, source resolution on the 10 nA range
    max_voltage=210.0,  # V (21 V above 105 mA)
    min_sample_period=5e-3,  # s, delay + a fast measurement in the trigger model
    galvanostatic=True,
    potentiostatic=True,  # holds the two-terminal cell voltage, not E_we vs a reference
    eis_galvanostatic=False,
    eis_potentiostatic=False,
    reference_electrode=False,
    hardware_voltage_limit=True,
)

CURRENT_RANGES = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # A
VOLTAGE_RANGES = (0.02, 0.2, 2.0, 20.0, 200.0)  # V


def deadman_blocks(buffer: str, period: float, deadman_count: int, count: int) -> list[str]:
    """The trigger model of one measurement loop (TRIGger:BLOCk subsystem).

    Output on; then ``count`` times a delay and a reading; a ``*TRG`` (the COMMand event) seen since
    the last pass resets the dead-man counter, which otherwise ends the loop after ``deadman_count``
    readings; the last block switches the output off.
    """
    return [
        ':TRIG:LOAD "Empty"',
        f':TRIG:BLOC:BUFF:CLE 1, "{buffer}"',
        ":TRIG:BLOC:SOUR:STAT 2, ON",
        f":TRIG:BLOC:DEL:CONS 3, {period!r}",
        f':TRIG:BLOC:MEAS 4, "{buffer}"',
        ":TRIG:BLOC:BRAN:EVEN 5, COMM, 8",
        f":TRIG:BLOC:BRAN:COUN 6, {deadman_count}, 9",
        ":TRIG:BLOC:BRAN:ALW 7, 10",
        ":TRIG:BLOC:BRAN:COUN:RES 8, 6",
        f":TRIG:BLOC:BRAN:COUN 9, {count}, 3",
        ":TRIG:BLOC:SOUR:STAT 10, OFF",
    ]


def source_commands(function: str, level: float, limit: float) -> list[str]:
    """Source ``function`` (CURR or VOLT) at ``level`` with its limit; sense the other quantity."""
    sense = "CURR" if function == "VOLT" else "VOLT"
    ranges = CURRENT_RANGES if function == "CURR" else VOLTAGE_RANGES
    limit_name = "VLIM" if function == "CURR" else "ILIM"
    return [
        f":SOUR:FUNC {function}",
        f":OUTP:{function}:SMOD HIMP",
        f":SOUR:{function}:RANG {pick_range(abs(level), ranges):.6g}",
        f":SOUR:{function} {level!r}",
        f":SOUR:{function}:{limit_name} {limit!r}",
        f":SOUR:{function}:READ:BACK ON",
        f':SENS:FUNC "{sense}"',
        f":SENS:{sense}:RANG:AUTO ON",
    ]


def pick_range(value: float, ranges: tuple[float, ...]) -> float:
    """The smallest range holding ``value`` (105 % overrange)."""
    for r in ranges:
        if value <= r * 1.05:
            return r
    return ranges[-1]


def parse_idn(name: str, resource: str, idn: str) -> InstrumentInfo:
    fields = [f.strip() for f in idn.split(",")]
    if len(fields) < 4 or "KEITHLEY" not in fields[0].upper():
        raise BadReply(f"unreadable reply {idn!r} to '*IDN?'; is this a Keithley 2450?")
    model = fields[1].upper().replace("MODEL", "").strip()
    if model != "2450":
        raise InstrumentError(
            f"{name}: {resource} is a Keithley {model}, not a 2450; this driver only knows the 2450's ranges"
        )
    return InstrumentInfo("Keithley", model, fields[2], fields[3], "drivers.keithley2450", resource)


def parse_error(reply: str) -> tuple[int, str]:
    """``-222,"Data out of range;1;0"`` -> (-222, "Data out of range")."""
    m = re.match(r'\s*([-+]?\d+)\s*,\s*"?([^";]*)', reply)
    if not m:
        raise BadReply(f"unreadable reply {reply!r} to ':SYST:ERR?'")
    return int(m[1]), m[2].strip()


def to_int(reply: str, cmd: str) -> int:
    try:
        return int(float(reply))
    except ValueError:
        raise BadReply(f"unreadable reply {reply!r} to {cmd!r}") from None


def to_floats(reply: str, cmd: str, n: int) -> np.ndarray:
    try:
        values = np.array([float(x) for x in reply.split(",")])
    except ValueError:
        raise BadReply(f"unreadable reply {clip(reply)!r} to {cmd!r}") from None
    if len(values) != n or not np.all(np.isfinite(values)):
        raise BadReply(f"reply {clip(reply)!r} to {cmd!r} has {len(values)} values, expected {n}")
    return values
