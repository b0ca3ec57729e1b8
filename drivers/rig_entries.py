"""How each instrument and transducer of this package is built from a rig-file entry.

Declarations only: what a rig file may say for each kind is data here, and a driver module (with the
vendor packages it needs) is imported only when a builder runs, so reading a rig file imports none.
The package's entry points (pyproject.toml) name these objects; the simulators declare theirs in
simulators/rig.py the same way.
"""

from __future__ import annotations

import importlib
from typing import Any

from drivers.registry import BuildContext, InstrumentEntry, Option, TransducerEntry


def _keithley2450(ctx: BuildContext) -> Any:
    from drivers.keithley2450 import Keithley2450

    return Keithley2450(ctx.resource, ctx.clock, name=ctx.name, deadman_s=ctx.deadman, **ctx.options)


def _gamry(ctx: BuildContext) -> Any:
    from drivers.gamry import GamryPotentiostat

    return GamryPotentiostat(ctx.resource, clock=ctx.clock, name=f"{ctx.name}:{ctx.channel}")


def _biologic(ctx: BuildContext) -> Any:
    """One connection per instrument, shared by its channels (one BL_Connect per device); EClib counts
    channels from 0."""
    from drivers.biologic import BiologicConnection, BiologicPotentiostat

    key = ("biologic", ctx.resource)
    if key not in ctx.connections:
        ctx.connections[key] = BiologicConnection(ctx.resource)
    return BiologicPotentiostat(
        ctx.connections[key], ctx.channel - 1, clock=ctx.clock, name=f"{ctx.name}:{ctx.channel}", deadman_s=ctx.deadman
    )


PROGRAMMED = "programmed into the instrument"
KEITHLEY2450 = InstrumentEntry(
    _keithley2450,
    options=(Option("buffer_size", "integer", minimum=10),),
    title="a Keithley 2450",
    channels=1,
    resource_example='a VISA resource, e.g. "TCPIP::192.168.1.50::5025::SOCKET"',
    resource_check=lambda resource: "::" in resource,
    deadman=PROGRAMMED,
)
GAMRY = InstrumentEntry(
    _gamry, title="a Gamry potentiostat", channels=1, resource_example='its section, e.g. "IFC1010-12345"'
)
BIOLOGIC = InstrumentEntry(
    _biologic, title="a BioLogic instrument", resource_example='an address, e.g. "USB0"', deadman=PROGRAMMED
)


# --- transducers ------------------------------------------------------------------------------
_SERIAL = frozenset({"baudrate", "timeout", "parity", "stopbits", "bytesize"})


def _transducer(module: str, class_name: str, keys: frozenset[str], measures: Any) -> TransducerEntry:
    def build(ctx: BuildContext) -> Any:
        cls = getattr(importlib.import_module(module), class_name)
        return cls(ctx.resource, ctx.pressed_area, ctx.calibration, ctx.clock, name=ctx.name, **ctx.options)

    return TransducerEntry(build, keys, measures)


def _unit_measures(options: dict[str, Any]) -> str:
    """What a reading in the configured unit is: "force" or "pressure"."""
    from drivers.transducers import unit_factor

    return unit_factor(options.get("unit", "N"))[1]


MARK10 = _transducer("drivers.transducers", "Mark10Gauge", _SERIAL | {"unit", "capacity"}, lambda options: "force")
DP41 = _transducer("drivers.transducers", "OmegaDP41", _SERIAL | {"unit", "capacity", "recognition"}, _unit_measures)
AED = _transducer("drivers.transducers", "HbmAed", _SERIAL | {"unit", "capacity", "scale"}, _unit_measures)
MODBUS = _transducer(
    "drivers.modbus_transducer",
    "ModbusTransmitter",
    frozenset({"baudrate", "timeout", "parity", "stopbits", "registers", "ram_area", "capacity"}),
    lambda options: "pressure",
)
