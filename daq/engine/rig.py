"""The rig file: which instrument serves which channel, which transducer reads which cell's press.

A rig file (TOML) names instruments and transducers once, then maps channels onto them::

    [rig]
    name = "glovebox A"

    [instruments.smu]                 # kind: sim | gamry | biologic | keithley2450
    kind = "keithley2450"
    resource = "TCPIP::192.168.10.21::5025::SOCKET"

    [transducers.press_a]             # kind: mark10 | dp41 | aed | modbus | sim
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
import importlib
import inspect
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daq.core import units as u
from daq.core.capabilities import Calibration, Potentiostat, PressureSensor
from daq.core.clock import Clock
from daq.core.errors import ConfigError
from daq.models.cell import Cell, load_cell

DEFAULT_DEADMAN = 60.0  # s: rig-file ``deadman`` when not given

# kind -> (module, class); imported lazily by name.
POTENTIOSTAT_KINDS: dict[str, tuple[str, str]] = {
    "sim": ("simulators.potentiostat", "SimulatedPotentiostat"),
    "gamry": ("drivers.gamry", "GamryPotentiostat"),
    "biologic": ("drivers.biologic", "BiologicPotentiostat"),
    "keithley2450": ("drivers.keithley2450", "Keithley2450"),
}
TRANSDUCER_KINDS = ("mark10", "dp41", "aed", "modbus", "sim")
_SERIAL_KEYS = {"baudrate", "timeout", "parity", "stopbits", "bytesize"}
_TRANSDUCER_KEYS = {
    "mark10": _SERIAL_KEYS | {"unit", "capacity"},
    "dp41": _SERIAL_KEYS | {"unit", "capacity", "recognition"},
    "aed": _SERIAL_KEYS | {"unit", "capacity", "scale"},
    "modbus": {"baudrate", "timeout", "parity", "stopbits", "registers", "ram_area", "capacity"},
    "sim": {"noise"},
}
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


# --- reading and checking ---------------------------------------------------------------------
class _Table:
    def __init__(self, data: object, name: str):
        if not isinstance(data, dict):
            raise ConfigError(name, data if not isinstance(data, (list, tuple)) else None, "must be a table")
        self.data, self.name = data, name

    def path(self, key: str) -> str:
        return f"{self.name}.{key}"

    def unknown(self, allowed: set[str]) -> None:
        for key in self.data:
            if key not in allowed:
                raise ConfigError(
                    self.path(key), self.data[key], f"unknown field; expected one of {', '.join(sorted(allowed))}"
                )

    def text(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key, default)
        if value is None:
            raise ConfigError(self.path(key), None, "missing")
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(self.path(key), value, "must be non-empty text")
        return value

    def integer(self, key: str, default: int | None = None, minimum: int | None = None) -> int:
        value = self.data.get(key, default)
        if value is None:
            raise ConfigError(self.path(key), None, "missing")
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(self.path(key), value, "must be a whole number")
        if minimum is not None and value < minimum:
            raise ConfigError(self.path(key), value, f"must be at least {minimum}")
        return value

    def number(self, key: str, default: float | None = None) -> float | None:
        value = self.data.get(key, default)
        if value is None:
            return None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(self.path(key), value, "must be a number")
        return float(value)

    def quantity(self, key: str, *kinds: u.Kind, zero_ok: bool = False) -> float | None:
        if key not in self.data:
            return None
        value = self.data[key]
        error = None
        for kind in kinds:
            try:
                parsed = u.parse(value, kind, self.path(key))
            except ConfigError as exc:
                error = error or exc
                continue
            if parsed < 0 or (parsed == 0 and not zero_ok):
                raise ConfigError(self.path(key), value, f"must be a positive {kind.name}")
            return parsed
        if len(kinds) > 1:
            raise ConfigError(
                self.path(key),
                value,
                f'expected a {" or ".join(k.name for k in kinds)} with its unit, e.g. "{kinds[0].example}"',
            )
        raise error  # type: ignore[misc]


def load_rig(path: str | Path) -> Rig:
    """Read and check a rig file; cell files are resolved relative to it."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("rig", str(path), "file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError("rig", str(path), f"not valid TOML: {exc}") from None
    try:
        return rig_from_dict(doc, path.parent, path)
    except ConfigError as exc:
        raise exc.located(str(path)) from None


def rig_from_dict(doc: dict[str, Any], base_dir: Path = Path("."), path: Path | None = None) -> Rig:
    root = _Table(doc, "rig file")
    root.unknown({"rig", "instruments", "transducers", "channels"})
    meta = _Table(doc.get("rig", {}), "rig")
    meta.unknown({"name", "description", "operator", "location"})
    name = meta.text("name", path.stem if path else "rig")
    instruments = {
        key: _instrument(key, value) for key, value in _Table(doc.get("instruments", {}), "instruments").data.items()
    }
    transducers = {
        key: _transducer(key, value) for key, value in _Table(doc.get("transducers", {}), "transducers").data.items()
    }
    channels_table = _Table(doc.get("channels", {}), "channels")
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
    t = _Table(data, f"instruments.{name}")
    kind = t.text("kind")
    if kind not in POTENTIOSTAT_KINDS:
        raise ConfigError(
            t.path("kind"), kind, f"unknown instrument kind; expected one of {', '.join(POTENTIOSTAT_KINDS)}"
        )
    allowed = {"kind", "resource", "timeout", "description", "deadman"}
    if kind == "keithley2450":
        allowed |= {"buffer_size"}
    t.unknown(allowed)
    options: dict[str, Any] = {}
    if kind == "sim":
        resource = t.data.get("resource", f"sim://{name}")
    else:
        resource = t.text("resource")
    if not isinstance(resource, str):
        raise ConfigError(t.path("resource"), resource, "must be text")
    if kind == "keithley2450":
        if "::" not in resource:
            raise ConfigError(
                t.path("resource"), resource, 'expected a VISA resource, e.g. "TCPIP::192.168.1.50::5025::SOCKET"'
            )
        if "buffer_size" in t.data:
            options["buffer_size"] = t.integer("buffer_size", minimum=10)
    timeout = t.quantity("timeout", u.TIME)
    if timeout is not None:
        options["timeout"] = timeout
    deadman = t.quantity("deadman", u.TIME)
    if deadman is not None and not 1.0 <= deadman <= 86400.0:
        raise ConfigError(t.path("deadman"), t.data["deadman"], "must be between 1 s and 24 h")
    return InstrumentSpec(name, kind, resource, options, DEFAULT_DEADMAN if deadman is None else deadman)


def accepts_deadman(cls: type) -> bool:
    """Whether a driver class takes a ``deadman_s`` constructor argument (its own dead-man time)."""
    try:
        return "deadman_s" in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


def deadman_note(spec: InstrumentSpec) -> tuple[float, str]:
    """(dead-man time in s, what backs it) for ``daq instruments`` and the run file."""
    if spec.kind == "sim":
        return spec.deadman, "simulated instrument"
    try:
        cls = driver_class(spec.kind)
    except ConfigError as exc:  # a missing vendor package: say so, do not fail the listing
        return spec.deadman, f"driver not loadable ({type(exc).__name__})"
    if not accepts_deadman(cls):
        return spec.deadman, "not guaranteed: the driver does not program a dead-man time"
    if getattr(cls, "deadman_guaranteed", True) is False:
        return spec.deadman, "not guaranteed by this instrument (see docs/drivers.md)"
    return spec.deadman, "programmed into the instrument"


def _transducer(name: str, data: object) -> TransducerSpec:
    t = _Table(data, f"transducers.{name}")
    kind = t.text("kind")
    if kind not in TRANSDUCER_KINDS:
        raise ConfigError(
            t.path("kind"), kind, f"unknown transducer kind; expected one of {', '.join(TRANSDUCER_KINDS)}"
        )
    t.unknown({"kind", "port", "pressed_area", "calibration", "description"} | _TRANSDUCER_KEYS[kind])
    port = f"sim://{name}" if kind == "sim" else t.text("port")
    pressed_area = t.quantity("pressed_area", u.AREA)
    options: dict[str, Any] = {}
    if "baudrate" in t.data:
        options["baudrate"] = t.integer("baudrate", minimum=50)
    if "timeout" in t.data:
        options["timeout"] = t.quantity("timeout", u.TIME)
    for key in ("parity",):
        if key in t.data:
            value = t.text(key)
            if value not in ("N", "E", "O"):
                raise ConfigError(t.path(key), value, 'must be "N", "E" or "O"')
            options[key] = value
    if "stopbits" in t.data:
        options["stopbits"] = t.integer("stopbits", minimum=1)
    if "bytesize" in t.data:
        options["bytesize"] = t.integer("bytesize", minimum=5)
    if "unit" in t.data:
        from drivers.transducers import unit_factor

        options["unit"] = t.text("unit")
        unit_factor(options["unit"], t.path("unit"))
    if "scale" in t.data:
        options["scale"] = t.number("scale")
        if not options["scale"]:
            raise ConfigError(t.path("scale"), t.data["scale"], "must be a non-zero number")
    if "recognition" in t.data:
        options["recognition"] = t.text("recognition")
    if "capacity" in t.data:
        options["capacity"] = t.quantity("capacity", u.FORCE, u.PRESSURE)
    if "ram_area" in t.data:
        options["ram_area"] = t.quantity("ram_area", u.AREA)
    if "noise" in t.data:
        options["noise"] = t.quantity("noise", u.PRESSURE, zero_ok=True)
    registers = None
    if kind == "modbus":
        registers = _registers(_Table(t.data.get("registers", {}), t.path("registers")))
    calibration = _calibration(t, kind, options)
    return TransducerSpec(name, kind, port, pressed_area, calibration, options, registers)


def _measures(kind: str, options: dict[str, Any]) -> str:
    """'force' or 'pressure': what the transducer's reading is, to check the calibration offset."""
    if kind == "mark10":
        return "force"
    if kind in ("modbus", "sim"):
        return "pressure"
    from drivers.transducers import unit_factor

    return unit_factor(options.get("unit", "N"))[1]


def _calibration(t: _Table, kind: str, options: dict[str, Any]) -> Calibration:
    if "calibration" not in t.data:
        return Calibration()
    c = _Table(t.data["calibration"], t.path("calibration"))
    c.unknown({"gain", "offset", "date", "reference"})
    gain = c.number("gain", 1.0)
    if not gain or gain <= 0:
        raise ConfigError(c.path("gain"), c.data.get("gain"), "must be a positive number")
    offset = 0.0
    if "offset" in c.data:
        kind_ = u.FORCE if _measures(kind, options) == "force" else u.PRESSURE
        raw = c.data["offset"]
        if raw == 0:
            offset = 0.0
        else:
            offset = u.parse(raw, kind_, c.path("offset"))
    date = c.data.get("date", "")
    if hasattr(date, "isoformat"):
        date = date.isoformat()  # a TOML date
    if not isinstance(date, str):
        raise ConfigError(c.path("date"), date, "must be a date, e.g. 2025-03-14")
    reference = c.data.get("reference", "")
    if not isinstance(reference, str):
        raise ConfigError(c.path("reference"), reference, "must be text")
    return Calibration(gain=gain, offset=offset, date=date, reference=reference)


def _registers(t: _Table) -> Any:
    from drivers.transducers import RegisterMap

    t.unknown(_REGISTER_KEYS)
    kw: dict[str, Any] = {}
    for key in ("value", "decimals", "unit", "fixed_decimals", "device_id"):
        if key in t.data:
            kw[key] = t.integer(key, minimum=0)
    for key in ("value_type", "word_order", "fixed_unit", "function"):
        if key in t.data:
            kw[key] = t.text(key)
    if "scale" in t.data:
        kw["scale"] = t.number("scale")
    if "unit_codes" in t.data:
        codes = _Table(t.data["unit_codes"], t.path("unit_codes"))
        parsed = {}
        for code, unit in codes.data.items():
            if not str(code).isdigit():
                raise ConfigError(codes.path(str(code)), unit, "unit codes are register values (0, 1, 2 ...)")
            if not isinstance(unit, str):
                raise ConfigError(codes.path(str(code)), unit, 'must be a unit, e.g. "bar"')
            parsed[int(code)] = unit
        kw["unit_codes"] = parsed
    if "overflow" in t.data:
        values = t.data["overflow"]
        if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise ConfigError(t.path("overflow"), values, "must be a list of whole numbers, e.g. [32767, -32768]")
        kw["overflow"] = tuple(values)
    if "unit" in kw and not kw.get("unit_codes"):
        raise ConfigError(t.path("unit_codes"), None, 'a unit register needs unit_codes, e.g. { 0 = "bar" }')
    try:
        return RegisterMap(**kw)
    except ConfigError as exc:
        field_name = exc.field.replace("registers.", "")
        raise ConfigError(t.path(field_name), exc.value, exc.problem) from None


def _channel(
    name: str,
    data: object,
    instruments: dict[str, InstrumentSpec],
    transducers: dict[str, TransducerSpec],
    base_dir: Path,
) -> ChannelSpec:
    t = _Table(data, f"channels.{name}")
    t.unknown({"instrument", "channel", "cell", "transducer", "description"})
    instrument = t.text("instrument")
    if instrument not in instruments:
        known = ", ".join(instruments) or "none defined"
        raise ConfigError(t.path("instrument"), instrument, f"no such instrument (instruments: {known})")
    channel = t.integer("channel", 1, minimum=1)
    single = {"keithley2450": "a Keithley 2450", "gamry": "a Gamry potentiostat"}
    if instruments[instrument].kind in single and channel != 1:
        raise ConfigError(t.path("channel"), channel, f"{single[instruments[instrument].kind]} has one channel (1)")
    transducer = t.data.get("transducer")
    if transducer is not None:
        transducer = t.text("transducer")
        if transducer not in transducers:
            known = ", ".join(transducers) or "none defined"
            raise ConfigError(t.path("transducer"), transducer, f"no such transducer (transducers: {known})")
    cell_path = Path(t.text("cell"))
    if not cell_path.is_absolute():
        cell_path = base_dir / cell_path
    try:
        cell = load_cell(cell_path)
    except ConfigError as exc:
        if exc.field == "cell" and exc.problem == "file not found":
            raise ConfigError(t.path("cell"), t.data["cell"], f"cell file not found ({cell_path})") from None
        raise
    return ChannelSpec(name, instrument, channel, cell_path, cell, transducer)


# --- building drivers -------------------------------------------------------------------------
def driver_class(kind: str) -> type:
    """The driver class for an instrument kind, imported by name only now."""
    module_name, class_name = POTENTIOSTAT_KINDS[kind]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError("kind", kind, f"driver module {module_name} cannot be imported: {exc}") from None
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise ConfigError("kind", kind, f"{module_name} has no {class_name}") from None


_shared_connections: dict[tuple[str, str], Any] = {}


def build_potentiostat(rig: Rig, channel: ChannelSpec, clock: Clock, sim_cell: Any = None) -> Potentiostat:
    """The driver object for a channel (not connected). ``sim_cell``: the SimulatedCell of a sim channel."""
    spec = rig.instruments[channel.instrument]
    if spec.kind == "sim":
        from simulators.cell import SimulatedCell
        from simulators.potentiostat import SimulatedPotentiostat

        return SimulatedPotentiostat(
            sim_cell if sim_cell is not None else SimulatedCell(channel.cell),
            clock,
            name=f"{spec.name}:{channel.channel}",
        )
    cls = driver_class(spec.kind)
    if spec.kind == "keithley2450":
        extra = {"deadman_s": spec.deadman} if accepts_deadman(cls) else {}
        return cls(spec.resource, clock, name=spec.name, **spec.options, **extra)
    resource: Any = spec.resource
    if spec.kind == "biologic":
        # One connection per instrument, shared by its channels (one BL_Connect per device).
        module = importlib.import_module(cls.__module__)
        connection_cls = getattr(module, "BiologicConnection", None)
        if connection_cls is not None:
            key = (spec.kind, spec.resource)
            if key not in _shared_connections:
                _shared_connections[key] = connection_cls(spec.resource)
            resource = _shared_connections[key]
    return _construct(cls, spec, resource, channel, clock)


def _construct(cls: type, spec: InstrumentSpec, resource: Any, channel: ChannelSpec, clock: Clock) -> Potentiostat:
    """Call a vendor driver's constructor by parameter name: resource/section/address/connection,
    channel (0-based where the driver counts from 0, as BioLogic's EClib does), clock, timeout."""
    params = inspect.signature(cls).parameters
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    names = list(params)
    for pname in names:
        p = params[pname]
        if pname in ("resource", "section", "address", "connection", "device", "resource_name"):
            value: Any = resource
        elif pname == "channel":
            value = channel.channel - 1 if spec.kind == "biologic" else channel.channel
        elif pname == "clock":
            value = clock
        elif pname == "timeout" and "timeout" in spec.options:
            value = spec.options["timeout"]
        elif pname == "name":
            value = f"{spec.name}:{channel.channel}"
        elif pname == "deadman_s":
            value = spec.deadman
        else:
            continue
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty:
            args.append(value)
        else:
            kwargs[pname] = value
    try:
        return cls(*args, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"instruments.{spec.name}", spec.kind, f"cannot build the driver: {exc}") from None


def build_transducer(rig: Rig, channel: ChannelSpec, clock: Clock, sim_cell: Any = None) -> PressureSensor | None:
    """The transducer reading the channel's press (not connected), or None."""
    if channel.transducer is None:
        return None
    spec = rig.transducers[channel.transducer]
    area = spec.pressed_area if spec.pressed_area is not None else channel.cell.pressed_area
    if spec.kind == "sim":
        from simulators.cell import SimulatedCell
        from simulators.rig import SimulatedTransducer

        sim = SimulatedTransducer(
            sim_cell if sim_cell is not None else SimulatedCell(channel.cell), clock, **spec.options
        )
        sim.pressed_area = area
        return sim
    from drivers import transducers as tr

    cls = tr.TRANSDUCER_KINDS[spec.kind]
    kwargs = dict(spec.options)
    if spec.kind == "modbus":
        kwargs["registers"] = spec.registers
    return cls(spec.port, area, spec.calibration, clock, name=spec.name, **kwargs)


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
    sim_cell = None
    if rig.instruments[channel.instrument].kind == "sim" or (
        channel.transducer and rig.transducers[channel.transducer].kind == "sim"
    ):
        from simulators.cell import SimulatedCell

        sim_cell = SimulatedCell(cell)
    return ChannelHardware(
        channel,
        build_potentiostat(rig, channel, clock, sim_cell),
        build_transducer(rig, channel, clock, sim_cell),
        sim_cell,
    )
