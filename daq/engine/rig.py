"""The rig file: which instrument serves which channel, which transducer reads which cell's press.

A rig file (TOML) names instruments and transducers once, then maps channels onto them::

    [rig]
    name = "glovebox A"

    [instruments.smu]                 # kind: one of drivers.registry.instrument_kinds()
    kind = "keithley2450"
    resource = "TCPIP::192.168.10.21::5025::SOCKET"

    [transducers.press_a]             # kind: one of drivers.registry.transducer_kinds()
    kind = "mark10"
    port = "/dev/ttyUSB0"
    calibration = { gain = 1.002, offset = "0.12 N", date = "2025-03-14" }

    [channels.A]
    instrument = "smu"
    channel = 1
    cell = "../cells/li6ps5cl_99.toml"  # relative to the rig file
    transducer = "press_a"

Everything is checked when the file is read, before any instrument is touched; a mistake is a
ConfigError naming the dotted field (``channels.A.instrument``). Driver modules are imported only when
a driver is built, so a rig without vendor instruments needs none of the vendor packages.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daq.core import units as u
from daq.core.capabilities import Calibration, Potentiostat, PressureSensor
from daq.core.clock import Clock
from daq.core.errors import ConfigError
from daq.core.tables import ConfigTable, read_toml
from daq.models.cell import Cell, load_cell
from drivers.registry import BuildContext, instrument_entry, transducer_entry

_REGISTER_KEYS = {
    "value",
    "value_type",
    "word_order",
    "decimals",
    "unit",
    "unit_codes",
    "fixed_unit",
    "fixed_decimals",
    "scale",
    "function",
    "device_id",
    "overflow",
}


@dataclass(frozen=True)
class InstrumentSpec:
    name: str
    kind: str
    resource: str
    options: dict[str, Any] = field(default_factory=dict)  # SI values (timeout in s ...)


@dataclass(frozen=True)
class TransducerSpec:
    name: str
    kind: str
    port: str
    pressed_area: float | None  # m^2; None: the cell's pressed area
    calibration: Calibration
    options: dict[str, Any] = field(default_factory=dict)
    registers: Any = None  # drivers.transducers.RegisterMap for Modbus


@dataclass(frozen=True)
class ChannelSpec:
    name: str
    instrument: str
    channel: int  # as numbered on the instrument (1 = first)
    cell_path: Path
    cell: Cell
    transducer: str | None = None


@dataclass(frozen=True)
class Rig:
    name: str
    path: Path | None
    instruments: dict[str, InstrumentSpec]
    transducers: dict[str, TransducerSpec]
    channels: dict[str, ChannelSpec]

    def channel_for(self, name: str | None = None, cell_id: str | None = None) -> ChannelSpec:
        """The channel called ``name``; without one, the only channel or the one holding ``cell_id``."""
        if name is not None:
            if name not in self.channels:
                raise ConfigError("channel", name, f"not in the rig; channels: {', '.join(self.channels)}")
            return self.channels[name]
        if len(self.channels) == 1:
            return next(iter(self.channels.values()))
        matching = [c for c in self.channels.values() if cell_id is not None and c.cell.cell_id == cell_id]
        if len(matching) == 1:
            return matching[0]
        raise ConfigError(
            "channel", None, f"the rig has channels {', '.join(self.channels)}; name one (RIG.toml#CHANNEL)"
        )

    def channels_of(self, instrument: str) -> list[ChannelSpec]:
        return [c for c in self.channels.values() if c.instrument == instrument]


# --- reading and checking ---------------------------------------------------------------------
MAX_IO_TIMEOUT = 600.0  # s: an instrument or transducer that needs longer to answer has failed


def _seconds(t: ConfigTable, key: str) -> float | None:
    return t.quantity(key, u.TIME, hi=MAX_IO_TIMEOUT, unit="s")


def load_rig(path: str | Path) -> Rig:
    """Read and check a rig file; cell files are resolved relative to it."""
    path = Path(path)
    _, doc = read_toml(path, "rig")
    try:
        return rig_from_dict(doc, path.parent, path)
    except ConfigError as exc:
        raise exc.located(str(path)) from None


def rig_from_dict(doc: dict[str, Any], base_dir: Path = Path("."), path: Path | None = None) -> Rig:
    root = ConfigTable(doc, "")
    root.unknown({"rig", "instruments", "transducers", "channels", "publish"})  # publish: daq.engine.publish
    meta = ConfigTable(doc.get("rig", {}), "rig")
    meta.unknown({"name", "description", "operator", "location"})
    name = meta.text("name", path.stem if path else "rig", nonempty=True)
    instruments = {
        key: _instrument(key, value)
        for key, value in ConfigTable(doc.get("instruments", {}), "instruments").data.items()
    }
    transducers = {
        key: _transducer(key, value)
        for key, value in ConfigTable(doc.get("transducers", {}), "transducers").data.items()
    }
    channels_table = ConfigTable(doc.get("channels", {}), "channels")
    if not channels_table.data:
        raise ConfigError("channels", None, "the rig has no channels; add [channels.NAME] with instrument and cell")
    channels = {
        key: _channel(key, value, instruments, transducers, base_dir) for key, value in channels_table.data.items()
    }
    seen: dict[tuple[str, int], str] = {}
    used: dict[str, str] = {}
    for ch in channels.values():
        slot = (ch.instrument, ch.channel)
        if slot in seen:
            raise ConfigError(
                f"channels.{ch.name}.channel",
                ch.channel,
                f"instrument '{ch.instrument}' channel {ch.channel} already serves channel '{seen[slot]}'",
            )
        seen[slot] = ch.name
        if ch.transducer is not None:
            if ch.transducer in used:
                raise ConfigError(
                    f"channels.{ch.name}.transducer",
                    ch.transducer,
                    f"already reads the press of channel '{used[ch.transducer]}'",
                )
            used[ch.transducer] = ch.name
    return Rig(name, path, instruments, transducers, channels)


def _instrument(name: str, data: object) -> InstrumentSpec:
    t = ConfigTable(data, f"instruments.{name}")
    kind = t.text("kind", nonempty=True)
    entry = _entry(instrument_entry, kind, t.at("kind"))
    t.unknown({"kind", "resource", "timeout", "description"} | {o.name for o in entry.options})
    if entry.resource_example is None:
        resource = t.data.get("resource", f"sim://{name}")
        if not isinstance(resource, str):
            raise ConfigError(t.at("resource"), resource, "must be text")
    else:
        resource = t.text("resource", nonempty=True)
        if not entry.resource_check(resource):
            raise ConfigError(t.at("resource"), resource, f"expected {entry.resource_example}")
    options: dict[str, Any] = {}
    for option in entry.options:
        if option.name in t.data:
            if option.kind == "integer":
                options[option.name] = t.integer(option.name, minimum=int(option.minimum or 0), maximum=10_000_000)
            elif option.kind == "time":
                options[option.name] = _seconds(t, option.name)
            else:
                options[option.name] = t.text(option.name, nonempty=True)
    timeout = _seconds(t, "timeout")
    if timeout is not None:
        options["timeout"] = timeout
    return InstrumentSpec(name, kind, resource, options)


def _entry(load: Any, kind: str, field_name: str) -> Any:
    """The registry's entry for ``kind``, its refusal naming the rig-file field."""
    try:
        return load(kind)
    except ConfigError as exc:
        raise ConfigError(field_name, kind, exc.problem) from None


def _transducer(name: str, data: object) -> TransducerSpec:
    t = ConfigTable(data, f"transducers.{name}")
    kind = t.text("kind", nonempty=True)
    entry = _entry(transducer_entry, kind, t.at("kind"))
    t.unknown({"kind", "port", "pressed_area", "calibration", "description"} | entry.keys)
    port = t.text("port", nonempty=True) if entry.needs_port else f"sim://{name}"
    pressed_area = t.quantity("pressed_area", u.AREA)
    options: dict[str, Any] = {}
    if "baudrate" in t.data:
        options["baudrate"] = t.integer("baudrate", minimum=50, maximum=4_000_000)
    if "timeout" in t.data:
        options["timeout"] = _seconds(t, "timeout")
    for key in ("parity",):
        if key in t.data:
            value = t.text(key, nonempty=True)
            if value not in ("N", "E", "O"):
                raise ConfigError(t.at(key), value, 'must be "N", "E" or "O"')
            options[key] = value
    if "stopbits" in t.data:
        options["stopbits"] = t.integer("stopbits", minimum=1, maximum=2)
    if "bytesize" in t.data:
        options["bytesize"] = t.integer("bytesize", minimum=5, maximum=8)
    if "unit" in t.data:
        from drivers.transducers import unit_factor

        options["unit"] = t.text("unit", nonempty=True)
        unit_factor(options["unit"], t.at("unit"))
    if "scale" in t.data:
        options["scale"] = t.number("scale", None)
        if not options["scale"]:
            raise ConfigError(t.at("scale"), t.data["scale"], "must be a non-zero number")
    if "recognition" in t.data:
        options["recognition"] = t.text("recognition", nonempty=True)
    if "capacity" in t.data:
        options["capacity"] = t.quantity("capacity", (u.FORCE, u.PRESSURE))
    if "ram_area" in t.data:
        options["ram_area"] = t.quantity("ram_area", u.AREA)
    if "noise" in t.data:
        options["noise"] = t.quantity("noise", u.PRESSURE, positive=False, lo=0.0, unit="Pa")
    registers = None
    if "registers" in entry.keys:
        registers = _registers(ConfigTable(t.data.get("registers", {}), t.at("registers")))
    calibration = _calibration(t, entry.measures(options))
    return TransducerSpec(name, kind, port, pressed_area, calibration, options, registers)


def _calibration(t: ConfigTable, measures: str) -> Calibration:
    if "calibration" not in t.data:
        return Calibration()
    c = ConfigTable(t.data["calibration"], t.at("calibration"))
    c.unknown({"gain", "offset", "date", "reference"})
    gain = c.number("gain", 1.0)
    if not gain or gain <= 0:
        raise ConfigError(c.at("gain"), c.data.get("gain"), "must be a positive number")
    offset = 0.0
    if "offset" in c.data:
        kind_ = u.FORCE if measures == "force" else u.PRESSURE
        raw = c.data["offset"]
        if raw == 0:
            offset = 0.0
        else:
            offset = u.parse(raw, kind_, c.at("offset"))
    date = c.data.get("date", "")
    if hasattr(date, "isoformat"):
        date = date.isoformat()  # a TOML date
    if not isinstance(date, str):
        raise ConfigError(c.at("date"), date, "must be a date, e.g. 2025-03-14")
    reference = c.data.get("reference", "")
    if not isinstance(reference, str):
        raise ConfigError(c.at("reference"), reference, "must be text")
    return Calibration(gain=gain, offset=offset, date=date, reference=reference)


def _registers(t: ConfigTable) -> Any:
    from drivers.transducers import RegisterMap

    t.unknown(_REGISTER_KEYS)
    kw: dict[str, Any] = {}
    for key in ("value", "decimals", "unit", "fixed_decimals", "device_id"):
        if key in t.data:
            kw[key] = t.integer(key, minimum=0, maximum=65535)
    for key in ("value_type", "word_order", "fixed_unit", "function"):
        if key in t.data:
            kw[key] = t.text(key, nonempty=True)
    if "scale" in t.data:
        kw["scale"] = t.number("scale", None)
    if "unit_codes" in t.data:
        codes = ConfigTable(t.data["unit_codes"], t.at("unit_codes"))
        parsed = {}
        for code, unit in codes.data.items():
            if not str(code).isdigit():
                raise ConfigError(codes.at(str(code)), unit, "unit codes are register values (0, 1, 2 ...)")
            if not isinstance(unit, str):
                raise ConfigError(codes.at(str(code)), unit, 'must be a unit, e.g. "bar"')
            parsed[int(code)] = unit
        kw["unit_codes"] = parsed
    if "overflow" in t.data:
        values = t.data["overflow"]
        if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise ConfigError(t.at("overflow"), values, "must be a list of whole numbers, e.g. [32767, -32768]")
        kw["overflow"] = tuple(values)
    if "unit" in kw and not kw.get("unit_codes"):
        raise ConfigError(t.at("unit_codes"), None, 'a unit register needs unit_codes, e.g. { 0 = "bar" }')
    try:
        return RegisterMap(**kw)
    except ConfigError as exc:
        field_name = exc.field.replace("registers.", "")
        raise ConfigError(t.at(field_name), exc.value, exc.problem) from None


def _channel(
    name: str,
    data: object,
    instruments: dict[str, InstrumentSpec],
    transducers: dict[str, TransducerSpec],
    base_dir: Path,
) -> ChannelSpec:
    t = ConfigTable(data, f"channels.{name}")
    t.unknown({"instrument", "channel", "cell", "transducer", "description"})
    instrument = t.text("instrument", nonempty=True)
    if instrument not in instruments:
        known = ", ".join(instruments) or "none defined"
        raise ConfigError(t.at("instrument"), instrument, f"no such instrument (instruments: {known})")
    channel = t.integer("channel", 1, minimum=1, maximum=256)
    spec = instruments[instrument]
    entry = instrument_entry(spec.kind)
    if entry.channels is not None and channel > entry.channels:
        has = "one channel (1)" if entry.channels == 1 else f"{entry.channels} channels"
        raise ConfigError(t.at("channel"), channel, f"{entry.title} has {has}")
    transducer = t.data.get("transducer")
    if transducer is not None:
        transducer = t.text("transducer", nonempty=True)
        if transducer not in transducers:
            known = ", ".join(transducers) or "none defined"
            raise ConfigError(t.at("transducer"), transducer, f"no such transducer (transducers: {known})")
    cell_path = Path(t.text("cell", nonempty=True))
    if not cell_path.is_absolute():
        cell_path = base_dir / cell_path
    try:
        cell = load_cell(cell_path)
    except ConfigError as exc:
        if exc.field == "cell" and exc.problem == "file not found":
            raise ConfigError(t.at("cell"), t.data["cell"], f"cell file not found ({cell_path})") from None
        raise
    return ChannelSpec(name, instrument, channel, cell_path, cell, transducer)


# --- building drivers -------------------------------------------------------------------------
_connections: dict[Any, Any] = {}  # per process: connections shared by the channels of one instrument


def _context(spec: InstrumentSpec | TransducerSpec, resource: str, channel: ChannelSpec, clock: Clock, shared: dict):
    return BuildContext(
        spec.name, resource, dict(spec.options), channel.channel, channel.cell, clock, shared, _connections
    )


def build_potentiostat(rig: Rig, channel: ChannelSpec, clock: Clock, shared: dict | None = None) -> Potentiostat:
    """The driver object for a channel (not connected). ``shared``: what the channel's parts share."""
    spec = rig.instruments[channel.instrument]
    return instrument_entry(spec.kind).build(
        _context(spec, spec.resource, channel, clock, {} if shared is None else shared)
    )


def build_transducer(rig: Rig, channel: ChannelSpec, clock: Clock, shared: dict | None = None) -> PressureSensor | None:
    """The transducer reading the channel's press (not connected), or None."""
    if channel.transducer is None:
        return None
    spec = rig.transducers[channel.transducer]
    ctx = _context(spec, spec.port, channel, clock, {} if shared is None else shared)
    ctx.pressed_area = spec.pressed_area if spec.pressed_area is not None else channel.cell.pressed_area
    ctx.calibration = spec.calibration
    if spec.registers is not None:
        ctx.options["registers"] = spec.registers
    return transducer_entry(spec.kind).build(ctx)


@dataclass
class ChannelHardware:
    channel: ChannelSpec
    potentiostat: Potentiostat
    transducer: PressureSensor | None
    sim_cell: Any = None  # the SimulatedCell behind a sim channel


def build_channel(rig: Rig, channel: ChannelSpec, clock: Clock, cell: Cell | None = None) -> ChannelHardware:
    """Drivers for one channel; a simulated instrument and a simulated press share one simulated cell.

    ``cell``: the cell as the run uses it (with command-line overrides); default the channel's cell file.
    """
    cell = cell or channel.cell
    if cell is not channel.cell:
        channel = dataclasses.replace(channel, cell=cell)
    shared: dict[str, Any] = {}
    potentiostat = build_potentiostat(rig, channel, clock, shared)
    transducer = build_transducer(rig, channel, clock, shared)
    return ChannelHardware(channel, potentiostat, transducer, shared.get("sim_cell"))
