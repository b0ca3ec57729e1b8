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
from typing import Any, Protocol

from daq.core import units as u
from daq.core.capabilities import Calibration, Potentiostat, PressureSensor
from daq.core.clock import Clock
from daq.core.errors import ConfigError
from daq.core.tables import ConfigTable, read_toml
from daq.models.cell import Cell, load_cell
from daq.models.dummy_cell import DummyCellSpec, dummy_cell_from_table
from drivers.registry import BuildContext, instrument_entry, transducer_entry

DEFAULT_DEADMAN = 60.0  # s: rig-file ``deadman`` when not given

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
    deadman: float = DEFAULT_DEADMAN  # s the instrument sources without the engine re-arming it
    emulate: bool = False  # built by the application's Emulation around a simulated cell


@dataclass(frozen=True)
class TransducerSpec:
    name: str
    kind: str
    port: str
    pressed_area: float | None  # m^2; None: the cell's pressed area
    calibration: Calibration
    options: dict[str, Any] = field(default_factory=dict)
    registers: Any = None  # drivers.modbus_transducer.RegisterMap for Modbus
    emulate: bool = False


@dataclass(frozen=True)
class ChannelSpec:
    name: str
    instrument: str
    channel: int  # as numbered on the instrument (1 = first)
    cell_path: Path
    cell: Cell
    transducer: str | None = None
    dummy_cell: str | None = None  # the dummy cell its self test runs on
    on_dummy: bool = False  # wired to that dummy cell instead of a cell


class Emulation(Protocol):
    """What builds emulated instruments (``emulate = true``): supplied by the application, since the engine
    imports no simulator. ``dummy``: the dummy cell the channel is wired to, if any."""

    def instrument(self, spec: InstrumentSpec, ctx: BuildContext, dummy: DummyCellSpec | None) -> Potentiostat: ...

    def transducer(self, spec: TransducerSpec, ctx: BuildContext, dummy: DummyCellSpec | None) -> PressureSensor: ...


@dataclass(frozen=True)
class Rig:
    name: str
    path: Path | None
    instruments: dict[str, InstrumentSpec]
    transducers: dict[str, TransducerSpec]
    channels: dict[str, ChannelSpec]
    dummy_cells: dict[str, DummyCellSpec] = field(default_factory=dict)
    emulation: Emulation | None = field(default=None, compare=False, repr=False)

    def channel_for(self, name: str | None = None, cell_id: str | None = None) -> ChannelSpec:
        """The channel called ``name``; without one, the rig's only channel. ``cell_id`` is kept for callers
        but never picks a channel of a rig of several."""
        if name is not None:
            if name not in self.channels:
                raise ConfigError("channel", name, f"not in the rig; channels: {', '.join(self.channels)}")
            return self.channels[name]
        if len(self.channels) == 1:
            return next(iter(self.channels.values()))
        # Never guessed, not even from the cell: a wrong channel sends current into another cell.
        listing = ", ".join(f"{c.name} ({c.instrument}, cell {c.cell.cell_id})" for c in self.channels.values())
        raise ConfigError("channel", None, f"the rig has channels {listing}; name one as RIG.toml#CHANNEL")

    def channels_of(self, instrument: str) -> list[ChannelSpec]:
        return [c for c in self.channels.values() if c.instrument == instrument]

    def emulated(self, channel: ChannelSpec) -> bool:
        """Whether every part of the channel is emulated or simulated (it may then run in virtual time)."""
        parts: list[Any] = [self.instruments[channel.instrument]]
        if channel.transducer is not None:
            parts.append(self.transducers[channel.transducer])
        return all(p.emulate or p.kind == "sim" for p in parts)


# --- reading and checking ---------------------------------------------------------------------
MAX_IO_TIMEOUT = 600.0  # s: an instrument or transducer that needs longer to answer has failed


def _seconds(t: ConfigTable, key: str) -> float | None:
    return t.quantity(key, u.TIME, hi=MAX_IO_TIMEOUT, unit="s")


def load_rig(path: str | Path, emulation: Emulation | None = None) -> Rig:
    """Read and check a rig file; cell files are resolved relative to it. ``emulation``: what builds the
    entries marked ``emulate = true`` (without one, such entries are refused when built)."""
    path = Path(path)
    _, doc = read_toml(path, "rig")
    try:
        return rig_from_dict(doc, path.parent, path, emulation)
    except ConfigError as exc:
        raise exc.located(str(path)) from None


def rig_from_dict(
    doc: dict[str, Any], base_dir: Path = Path("."), path: Path | None = None, emulation: Emulation | None = None
) -> Rig:
    root = ConfigTable(doc, "")
    root.unknown(
        {"rig", "instruments", "transducers", "channels", "dummy_cells", "publish"}
    )  # publish: daq.engine.publish
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
    dummies = {
        key: dummy_cell_from_table(key, value, f"dummy_cells.{key}")
        for key, value in ConfigTable(doc.get("dummy_cells", {}), "dummy_cells").data.items()
    }
    channels_table = ConfigTable(doc.get("channels", {}), "channels")
    if not channels_table.data:
        raise ConfigError("channels", None, "the rig has no channels; add [channels.NAME] with instrument and cell")
    channels = {
        key: _channel(key, value, instruments, transducers, base_dir, dummies)
        for key, value in channels_table.data.items()
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
    return Rig(name, path, instruments, transducers, channels, dummies, emulation)


def _instrument(name: str, data: object) -> InstrumentSpec:
    t = ConfigTable(data, f"instruments.{name}")
    kind = t.text("kind", nonempty=True)
    entry = _entry(instrument_entry, kind, t.at("kind"))
    emulate = t.flag("emulate", False)
    emulation_keys = {"model", "fault"} if emulate else set()
    t.unknown(
        {"kind", "resource", "timeout", "description", "deadman", "emulate"}
        | emulation_keys
        | {o.name for o in entry.options}
    )
    if entry.resource_example is None or (emulate and "resource" not in t.data):
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
    for key in sorted(emulation_keys & set(t.data)):  # what to emulate: the model, a fault to rehearse
        options[key] = t.text(key, nonempty=True)
    deadman = t.quantity("deadman", u.TIME, lo=1.0, hi=86400.0, unit="s")
    deadman = DEFAULT_DEADMAN if deadman is None else deadman
    return InstrumentSpec(name, kind, resource, options, deadman=deadman, emulate=emulate)


def deadman_note(spec: InstrumentSpec) -> tuple[float, str]:
    """(dead-man time in s, what backs it) for ``daq instruments`` and the run file."""
    return spec.deadman, instrument_entry(spec.kind).deadman


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
    emulate = t.flag("emulate", False)
    t.unknown({"kind", "port", "pressed_area", "calibration", "description", "emulate"} | entry.keys)
    needs_port = entry.needs_port and not (emulate and "port" not in t.data)
    port = t.text("port", nonempty=True) if needs_port else f"sim://{name}"
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
    return TransducerSpec(name, kind, port, pressed_area, calibration, options, registers, emulate)


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
    from drivers.modbus_transducer import RegisterMap

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
    dummies: dict[str, DummyCellSpec],
) -> ChannelSpec:
    t = ConfigTable(data, f"channels.{name}")
    t.unknown({"instrument", "channel", "cell", "transducer", "description", "dummy_cell", "on_dummy"})
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
    dummy = t.text("dummy_cell", required=False, nonempty=True)
    if dummy is not None and dummy not in dummies:
        known = ", ".join(dummies) or "none defined"
        raise ConfigError(t.at("dummy_cell"), dummy, f"no such dummy cell (dummy_cells: {known})")
    on_dummy = t.flag("on_dummy", False)
    if on_dummy and dummy is None:
        raise ConfigError(t.at("on_dummy"), True, "name the dummy cell it is wired to: dummy_cell = NAME")
    return ChannelSpec(name, instrument, channel, cell_path, cell, transducer, dummy, on_dummy)


# --- building drivers -------------------------------------------------------------------------
_connections: dict[Any, Any] = {}  # per process: connections shared by the channels of one instrument


def _context(spec: InstrumentSpec | TransducerSpec, resource: str, channel: ChannelSpec, clock: Clock, shared: dict):
    ctx = BuildContext(
        spec.name, resource, dict(spec.options), channel.channel, channel.cell, clock, shared, _connections
    )
    if isinstance(spec, InstrumentSpec):
        ctx.deadman = spec.deadman
    return ctx


def build_potentiostat(rig: Rig, channel: ChannelSpec, clock: Clock, shared: dict | None = None) -> Potentiostat:
    """The driver object for a channel (not connected). ``shared``: what the channel's parts share."""
    spec = rig.instruments[channel.instrument]
    ctx = _context(spec, spec.resource, channel, clock, {} if shared is None else shared)
    if spec.emulate:
        return _emulation(rig, f"instruments.{spec.name}").instrument(spec, ctx, _wired_dummy(rig, channel))
    return instrument_entry(spec.kind).build(ctx)


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
    if spec.emulate:
        return _emulation(rig, f"transducers.{spec.name}").transducer(spec, ctx, _wired_dummy(rig, channel))
    return transducer_entry(spec.kind).build(ctx)


def _emulation(rig: Rig, where: str) -> Emulation:
    if rig.emulation is None:
        raise ConfigError(f"{where}.emulate", True, "this command cannot use emulated instruments")
    return rig.emulation


def _wired_dummy(rig: Rig, channel: ChannelSpec) -> DummyCellSpec | None:
    return rig.dummy_cells[channel.dummy_cell] if channel.on_dummy and channel.dummy_cell else None


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
