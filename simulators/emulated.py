"""Emulated rigs: the lab's real drivers talking to emulated instruments around a simulated cell.

An entry marked ``emulate = true`` in a rig file is built here instead of on hardware, with the very
driver the real instrument gets: Gamry and BioLogic through their in-process vendor-API emulators
(GamryCOM, EClib), a Keithley 2450 through pyvisa over a real loopback socket (simulators.scpi_server),
a serial transducer through pyserial on a pseudo-terminal (simulators.transducer_emulators). Behind
each channel sits a SimulatedCell, or a DummyCell when the rig wires the channel to a dummy cell.

The commands hand an :class:`Emulation` to ``load_rig``; the engine never imports this module.

Rig-file keys an emulated instrument accepts besides its own: ``model`` (BioLogic: "SP-300",
"VMP-3e" ...: the board family follows) and ``fault`` (what to rehearse): ``current_gain=1.05`` (the
current sourced is 5 % above the one reported), ``stops_disabled`` (Gamry: stop criteria never fire),
``unplugged`` (BioLogic: the channel answers as unplugged).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from daq.core.clock import Clock
from daq.core.errors import ConfigError
from daq.models.dummy_cell import DummyCellSpec
from drivers.registry import BuildContext, transducer_entry
from simulators.cell import SimulatedCell
from simulators.dummy_cell import DummyCell

BIOLOGIC_MODELS = {"SP-300": 16, "VSP-300": 20, "SP-200": 21, "VMP-300": 12, "VMP3": 2, "SP-150": 14, "VMP-3e": 33}
DEFAULT_BIOLOGIC_MODEL = "SP-300"
FAULTS = ("current_gain", "stops_disabled", "unplugged")
_KEITHLEY_OPTIONS = ("timeout", "buffer_size", "deadman_s")


def parse_fault(text: str | None, where: str) -> tuple[str, float] | None:
    """``name`` or ``name=value`` -> (name, value); None without a fault."""
    if text is None:
        return None
    name, _, value = text.partition("=")
    name = name.strip()
    if name not in FAULTS:
        raise ConfigError(where, text, f"unknown emulated fault; expected one of {', '.join(FAULTS)}")
    if name != "current_gain":
        return name, 1.0
    try:
        gain = float(value)
    except ValueError:
        gain = float("nan")
    if not 0.5 <= gain <= 2.0:
        raise ConfigError(where, text, "current_gain needs a factor between 0.5 and 2, e.g. current_gain=1.05")
    return name, gain


class Emulation:
    """Builds emulated instruments and transducers (rig.Emulation) and keeps their emulators running.

    ``output_on``: after a channel is built, ``ctx.shared["output_on"]`` tells whether the emulated
    instrument really sources (what an ammeter in series would show); the self test reads it.
    """

    def __init__(self) -> None:
        self.emulators: dict[tuple[str, int], Any] = {}  # (instrument, clock id) -> emulator
        self.connections: dict[tuple[str, int], Any] = {}
        self.resources: dict[str, str] = {}  # entry name -> address a client opens
        self.running: list[Any] = []  # servers and ptys to stop

    # --- rig.Emulation -------------------------------------------------------------------------------
    def instrument(self, spec: Any, ctx: BuildContext, dummy: DummyCellSpec | None) -> Any:
        fault = parse_fault(spec.options.get("fault"), f"instruments.{spec.name}.fault")
        cell = self.cell(ctx, dummy, fault)
        builders: dict[str, Callable[..., Any]] = {
            "gamry": self._gamry,
            "biologic": self._biologic,
            "keithley2450": self._keithley,
            "sim": self._sim,
        }
        if spec.kind not in builders:
            raise ConfigError(f"instruments.{spec.name}.emulate", True, f"no emulator for kind {spec.kind}")
        return builders[spec.kind](spec, ctx, cell, fault)

    def transducer(self, spec: Any, ctx: BuildContext, dummy: DummyCellSpec | None) -> Any:
        cell = self.cell(ctx, dummy, None)
        emulator = self.press_emulator(spec, cell, ctx.pressed_area)
        ctx.resource = emulator.port
        self.resources[spec.name] = emulator.port
        return transducer_entry(spec.kind).build(ctx)

    # --- cells -----------------------------------------------------------------------------------------
    @staticmethod
    def cell(ctx: BuildContext, dummy: DummyCellSpec | None, fault: tuple[str, float] | None) -> Any:
        """The one cell behind a channel's instrument and press (SimulatedCell or DummyCell)."""
        gain = fault[1] if fault and fault[0] == "current_gain" else 1.0
        if "sim_cell" not in ctx.shared:
            ctx.shared["sim_cell"] = DummyCell(dummy, ctx.cell, gain) if dummy is not None else SimulatedCell(ctx.cell)
        cell = ctx.shared["sim_cell"]
        if isinstance(cell, DummyCell) and gain != 1.0:
            cell.gain_error = gain
        return cell

    def _key(self, name: str, clock: Clock) -> tuple[str, int]:
        return (name, id(clock))

    # --- instruments -------------------------------------------------------------------------------------
    def _gamry(self, spec: Any, ctx: BuildContext, cell: Any, fault: Any) -> Any:
        from drivers.gamry import GamryPotentiostat
        from simulators.gamrycom import GamryComEmulator

        section = spec.resource if not spec.resource.startswith("sim://") else "IFC1010-21185"
        emu = GamryComEmulator(ctx.clock, {section: cell})
        self.emulators[self._key(spec.name, ctx.clock)] = emu
        if fault and fault[0] == "stops_disabled":
            emu.disable_stops()
        ctx.shared["output_on"] = lambda: emu.cell_on(section)
        ctx.shared["emulator"] = emu
        return GamryPotentiostat(section, com=emu, clock=ctx.clock, name=f"{ctx.name}:{ctx.channel}")

    def _biologic(self, spec: Any, ctx: BuildContext, cell: Any, fault: Any) -> Any:
        from drivers.biologic import BiologicConnection, BiologicPotentiostat
        from simulators.eclib import EClibEmulator
        from simulators.eclib_channel import Channel

        model = spec.options.get("model", DEFAULT_BIOLOGIC_MODEL)
        if model not in BIOLOGIC_MODELS:
            raise ConfigError(
                f"instruments.{spec.name}.model",
                model,
                f"no emulated BioLogic model; one of {', '.join(BIOLOGIC_MODELS)}",
            )
        key, index = self._key(spec.name, ctx.clock), ctx.channel - 1
        if key not in self.emulators:
            address = spec.resource if not spec.resource.startswith("sim://") else "USB0"
            emu = EClibEmulator(ctx.clock, {index: cell}, address=address, device_code=BIOLOGIC_MODELS[model])
            self.emulators[key] = emu
            self.connections[key] = BiologicConnection(address, dll=emu.dll)
        emu = self.emulators[key]
        emu.channels[index] = Channel(index, cell, emu.board)
        if fault and fault[0] == "unplugged":
            emu.unplug(index)
        ctx.shared["output_on"] = lambda: emu.output_on(index)
        ctx.shared["emulator"] = emu
        options = {k: v for k, v in spec.options.items() if k == "deadman_s"}
        return BiologicPotentiostat(
            self.connections[key], index, clock=ctx.clock, name=f"{ctx.name}:{ctx.channel}", **options
        )

    def _keithley(self, spec: Any, ctx: BuildContext, cell: Any, fault: Any) -> Any:
        from drivers.keithley2450 import Keithley2450
        from simulators.scpi_server import ScpiServer

        server = ScpiServer(cell, ctx.clock).start()
        self.running.append(server)
        self.emulators[self._key(spec.name, ctx.clock)] = server
        self.resources[spec.name] = server.resource
        instrument = server.instrument

        def output_on() -> bool:
            with instrument.lock:
                instrument.advance()
                return bool(instrument.output)

        ctx.shared["output_on"] = output_on
        ctx.shared["emulator"] = server
        # The 2450's dead-man runs on wall time: on a virtual clock the driver gives it none to act in.
        ctx.shared["deadman_wall_time"] = True
        options = {k: v for k, v in spec.options.items() if k in _KEITHLEY_OPTIONS}
        return Keithley2450(server.resource, ctx.clock, name=ctx.name, **options)

    def _sim(self, spec: Any, ctx: BuildContext, cell: Any, fault: Any) -> Any:
        from simulators.potentiostat import SimulatedPotentiostat

        pstat = SimulatedPotentiostat(cell, ctx.clock, name=f"{ctx.name}:{ctx.channel}")
        return pstat

    # --- transducers ---------------------------------------------------------------------------------------
    def press_emulator(self, spec: Any, cell: Any, pressed_area: float) -> Any:
        """A started pty (or Modbus) emulator of ``spec.kind`` reading ``cell``'s stack pressure."""
        from simulators import transducer_emulators as T

        options = spec.options
        if spec.kind == "mark10":
            kw = {k: options[k] for k in ("unit", "capacity") if k in options}
            emulator = T.Mark10Emulator(cell, pressed_area, **kw)
        elif spec.kind == "dp41":
            kw = {k: options[k] for k in ("unit", "recognition") if k in options}
            emulator = T.DP41Emulator(cell, pressed_area, **kw)
        elif spec.kind == "aed":
            kw = {k: options[k] for k in ("scale",) if k in options}
            emulator = T.AedEmulator(cell, pressed_area, **kw)
        elif spec.kind == "modbus":
            emulator = T.ModbusTransmitterEmulator(cell, spec.registers)
        else:
            raise ConfigError(f"transducers.{spec.name}.emulate", True, f"no emulator for kind {spec.kind}")
        emulator.start()
        self.running.append(emulator)
        return emulator

    # --- lifetime ------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop every server and pseudo-terminal started (drivers are closed by their users)."""
        while self.running:
            self.running.pop().stop()

    def __enter__(self) -> Emulation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def standalone_cell(rig: Any, channel: Any) -> Any:
    """The cell behind a wire-protocol emulator started on its own (``daq emulate``)."""
    if channel.on_dummy and channel.dummy_cell:
        return DummyCell(rig.dummy_cells[channel.dummy_cell], channel.cell)
    return SimulatedCell(channel.cell)


def start_wire_emulators(emulation: Emulation, rig: Any, clock: Clock) -> list[tuple[str, str, str]]:
    """Start the socket and pty emulators of a rig's emulated entries; (name, what, resource) of each.

    Vendor-API instruments (Gamry, BioLogic) are emulated in-process only and are listed as such."""
    from simulators.scpi_server import ScpiServer

    started: list[tuple[str, str, str]] = []
    for spec in rig.instruments.values():
        channels = rig.channels_of(spec.name)
        if not spec.emulate or not channels:
            continue
        if spec.kind != "keithley2450":
            started.append((spec.name, f"{spec.kind} (vendor API)", "in-process only (daq run / selftest)"))
            continue
        server = ScpiServer(standalone_cell(rig, channels[0]), clock).start()
        emulation.running.append(server)
        emulation.resources[spec.name] = server.resource
        started.append((spec.name, "Keithley 2450, SCPI over a raw socket", server.resource))
    for spec in rig.transducers.values():
        channel = next((c for c in rig.channels.values() if c.transducer == spec.name), None)
        if not spec.emulate or channel is None:
            continue
        area = spec.pressed_area if spec.pressed_area is not None else channel.cell.pressed_area
        emulator = emulation.press_emulator(spec, standalone_cell(rig, channel), area)
        emulation.resources[spec.name] = emulator.port
        started.append((spec.name, f"{spec.kind} transducer, serial", emulator.port))
    return started
