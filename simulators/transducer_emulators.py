"""Stack-pressure transducers on pseudo-terminals, reading a simulated press.

Each emulator owns a pty pair (os.openpty): the driver opens the slave path with pyserial as it would a
USB-serial adapter, the emulator answers on the master side in the instrument's own command language.
The press is anything with a ``stack_pressure`` attribute (Pa; a SimulatedCell has one) or a callable
returning Pa; gauges measure force = pressure * pressed area.

A gauge can be given a calibration error (``gain_error``, ``offset_error`` in N or Pa): it then shows
(true - offset_error) / gain_error, so a driver holding the matching Calibration recovers the truth.

Faults (``inject``): ``silence`` (commands are swallowed), ``garbage`` (the reply is unreadable bytes),
``overflow`` (the instrument's over-range answer), ``disconnect`` (the line goes dead).

The Modbus RTU transmitter is a real pymodbus server on a second pty, joined to the driver's pty by a
byte-copying bridge (a virtual null-modem cable); faults act on that cable.
"""

from __future__ import annotations

import asyncio
import os
import select
import threading
import tty
from collections.abc import Callable

from drivers.modbus_transducer import RegisterMap
from drivers.transducers import unit_factor

PressureSource = Callable[[], float]


def _pressure_source(press: object) -> PressureSource:
    if callable(press):
        return press  # type: ignore[return-value]
    if hasattr(press, "stack_pressure"):
        return lambda: float(press.stack_pressure)  # type: ignore[attr-defined]
    raise TypeError("press must have a stack_pressure attribute (Pa) or be a callable returning Pa")


class _Pty:
    """A pseudo-terminal pair; ``port`` is the path a driver opens."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no line editing before the driver configures the port
        self.port = os.ttyname(self.slave)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self.master = self.slave = -1


class PtyInstrument:
    """Base: a thread answering commands that arrive on the pty master."""

    separators = (b"\r", b"\n")  # a command ends at any of these

    def __init__(self, press: object, pressed_area: float, *, gain_error: float = 1.0, offset_error: float = 0.0):
        self.pressure = _pressure_source(press)
        self.pressed_area = pressed_area
        self.gain_error, self.offset_error = gain_error, offset_error
        self.fault: str | None = None
        self._fault_once = False
        self.received: list[str] = []
        self._pty = _Pty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=type(self).__name__)

    @property
    def port(self) -> str:
        return self._pty.port

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._pty.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject(self, kind: str | None, once: bool = False) -> None:
        """``silence`` | ``garbage`` | ``overflow`` | ``disconnect`` | None (healthy again)."""
        if kind not in (None, "silence", "garbage", "overflow", "disconnect"):
            raise ValueError(kind)
        self.fault, self._fault_once = kind, once
        if kind == "disconnect":
            try:
                os.close(self._pty.master)  # the driver's next exchange fails
            except OSError:
                pass
            self._pty.master = -1

    def force(self) -> float:
        """Force the gauge shows (N), with its calibration error."""
        return self.shown(self.pressure() * self.pressed_area)

    def shown(self, true_value: float) -> float:
        return (true_value - self.offset_error) / self.gain_error

    # --- protocol -----------------------------------------------------------------------------
    def answer(self, command: str) -> bytes | None:
        raise NotImplementedError

    def overflow_reply(self, command: str) -> bytes | None:
        return self.answer(command)

    def _loop(self) -> None:
        pending = b""
        while not self._stop.is_set():
            fd = self._pty.master
            if fd < 0:
                self._stop.wait(0.05)
                continue
            try:
                ready, _, _ = select.select([fd], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(fd, 4096)
            except OSError:
                self._stop.wait(0.05)
                continue
            pending += data
            while True:
                cut = min((pending.find(s) for s in self.separators if s in pending), default=-1)
                if cut < 0:
                    break
                line, pending = pending[:cut], pending[cut + 1 :]
                command = line.decode("ascii", "replace").strip()
                if command:
                    self._respond(fd, command)

    def _respond(self, fd: int, command: str) -> None:
        self.received.append(command)
        fault = self.fault
        if fault and self._fault_once:
            self.fault = None
        if fault == "silence":
            return
        if fault == "garbage":
            reply: bytes | None = b"\xfe\x9c#@!\x07" + self.garbage_end
        elif fault == "overflow":
            reply = self.overflow_reply(command)
        else:
            reply = self.answer(command)
        if reply:
            try:
                os.write(fd, reply)
            except OSError:
                pass

    garbage_end = b"\r\n"


class Mark10Emulator(PtyInstrument):
    """Mark-10 force gauge: ``?`` -> ``137.445 N`` + CR LF; anything else -> ``*10``.

    Overflow: a gauge past its capacity shows the overloaded value (the driver's capacity check acts).
    """

    def __init__(
        self,
        press: object,
        pressed_area: float,
        *,
        unit: str = "N",
        decimals: int = 3,
        capacity: float = 2500.0,
        **kwargs,
    ):
        super().__init__(press, pressed_area, **kwargs)
        self.unit, self.decimals, self.capacity = unit, decimals, capacity

    def answer(self, command: str) -> bytes | None:
        if command != "?":
            return b"*10\r\n"
        value = self.force() / unit_factor(self.unit)[0]
        return f"{value:.{self.decimals}f} {self.unit}\r\n".encode("ascii")

    def overflow_reply(self, command: str) -> bytes | None:
        if command != "?":
            return b"*10\r\n"
        return f"{2.5 * self.capacity / unit_factor(self.unit)[0]:.{self.decimals}f} {self.unit}\r\n".encode()


class DP41Emulator(PtyInstrument):
    """Omega DP41-B meter scaled to show force (``unit``): ``*X01`` -> ``00137.4`` + CR (no-echo mode)."""

    separators = (b"\r",)
    garbage_end = b"\r"

    def __init__(
        self,
        press: object,
        pressed_area: float,
        *,
        unit: str = "N",
        decimals: int = 1,
        echo: bool = False,
        recognition: str = "*",
        **kwargs,
    ):
        super().__init__(press, pressed_area, **kwargs)
        self.unit, self.decimals, self.echo, self.recognition = unit, decimals, echo, recognition

    def answer(self, command: str) -> bytes | None:
        command = command.lstrip("\n")
        if not command.startswith(self.recognition):
            return None  # not addressed to this meter: it stays silent
        body = command[len(self.recognition) :]
        if body != "X01":
            return b"?43\r"  # command error
        value = self.force() / unit_factor(self.unit)[0]
        text = f"{value:0{7}.{self.decimals}f}"
        if abs(value) >= 999999.5 or len(text) > 8:
            text = "?+999999" if value > 0 else "?-999999"
        return ((("X01" if self.echo else "") + text) + "\r").encode("ascii")

    def overflow_reply(self, command: str) -> bytes | None:
        if not command.startswith(self.recognition):
            return None
        return b"?+999999\r"


class AedEmulator(PtyInstrument):
    """HBM AED amplifier: ``;``-terminated commands; ``MSV?`` in digits (``scale`` N per digit).

    Until ``COF3`` selects ASCII output, ``MSV?`` answers in 4-byte binary, as the amplifier does.
    """

    separators = (b";",)

    def __init__(
        self, press: object, pressed_area: float, *, scale: float = 0.01, idn: str = "HBM,AD104C,0123456,P77", **kwargs
    ):
        super().__init__(press, pressed_area, **kwargs)
        self.scale, self.idn, self.cof = scale, idn, 0

    def answer(self, command: str) -> bytes | None:
        command = command.upper()
        if command == "IDN?":
            return (self.idn + "\r\n").encode("ascii")
        if command.startswith("COF") and command[3:].isdigit():
            self.cof = int(command[3:])
            return b"0\r\n"
        if command == "COF?":
            return f"{self.cof:02d}\r\n".encode()
        if command == "MSV?":
            digits = round(self.force() / self.scale)
            if self.cof != 3:
                return digits.to_bytes(4, "big", signed=True) + b"\r\n"
            return f"{digits:+8d}\r\n".encode("ascii")
        return b"?\r\n"

    def overflow_reply(self, command: str) -> bytes | None:
        if command.upper() == "MSV?" and self.cof == 3:
            return b"+9999999\r\n"
        return self.answer(command)


class ModbusTransmitterEmulator:
    """A Modbus RTU pressure transmitter: a pymodbus server on a pty, the driver on another, a bridge.

    Shows the press's stack pressure in ``unit`` (one of ``registers.unit_codes`` when the map has a unit
    register) with ``decimals`` decimal places, in the registers ``registers`` names.
    """

    def __init__(
        self,
        press: object,
        registers: RegisterMap | None = None,
        *,
        unit: str = "MPa",
        decimals: int = 2,
        gain_error: float = 1.0,
        offset_error: float = 0.0,
        baudrate: int = 19200,
    ):
        self.pressure = _pressure_source(press)
        self.registers = registers or RegisterMap(
            value=0, decimals=1, unit=2, unit_codes={0: "bar", 1: "MPa", 2: "kPa", 3: "psi"}
        )
        self.unit, self.decimals = unit, decimals
        self.gain_error, self.offset_error = gain_error, offset_error
        self.baudrate = baudrate
        self.fault: str | None = None
        self.requests = 0
        self._driver_side = _Pty()
        self._server_side = _Pty()
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._threads = [
            threading.Thread(target=self._serve, daemon=True, name="modbus-server"),
            threading.Thread(target=self._bridge, daemon=True, name="modbus-cable"),
        ]

    @property
    def port(self) -> str:
        return self._driver_side.port

    def start(self) -> ModbusTransmitterEmulator:
        for t in self._threads:
            t.start()
        if not self._ready.wait(5.0) or self._error is not None:
            self.stop()
            raise RuntimeError(f"modbus emulator did not start: {self._error}")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._loop is not None and self._server is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(2.0)
            except Exception:  # noqa: BLE001 - already stopping
                pass
        for t in self._threads:
            t.join(timeout=2.0)
        self._driver_side.close()
        self._server_side.close()

    def __enter__(self) -> ModbusTransmitterEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject(self, kind: str | None) -> None:
        """``silence`` | ``garbage`` | ``overflow`` | ``disconnect`` | None."""
        if kind not in (None, "silence", "garbage", "overflow", "disconnect"):
            raise ValueError(kind)
        self.fault = kind
        if kind == "disconnect":
            try:
                os.close(self._driver_side.master)
            except OSError:
                pass
            self._driver_side.master = -1

    # --- register contents --------------------------------------------------------------------
    def register_values(self) -> dict[int, int]:
        reg = self.registers
        true = self.pressure()
        shown = (true - self.offset_error) / self.gain_error
        value = shown / unit_factor(self.unit)[0] / reg.scale
        out: dict[int, int] = {}
        decimals = self.decimals if reg.decimals is not None else reg.fixed_decimals
        raw = round(value * 10**decimals)
        if self.fault == "overflow" and reg.overflow:
            raw = reg.overflow[0]
        words = _encode(raw if reg.value_type != "float32" else value * 10**decimals, reg.value_type, reg.word_order)
        for i, w in enumerate(words):
            out[reg.value + i] = w
        if reg.decimals is not None:
            out[reg.decimals] = self.decimals
        if reg.unit is not None:
            codes = {name: code for code, name in reg.unit_codes.items()}
            out[reg.unit] = codes[self.unit]
        return out

    # --- threads ------------------------------------------------------------------------------
    def _serve(self) -> None:
        try:
            asyncio.run(self._amain())
        except BaseException as exc:  # noqa: BLE001 - reported through start()
            self._error = exc
            self._ready.set()

    async def _amain(self) -> None:
        from pymodbus.server import ModbusSerialServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        reg = self.registers
        top = max([reg.value + reg.width] + [a + 1 for a in (reg.decimals, reg.unit) if a is not None])

        async def action(function_code, start_address, address, count, registers, set_values):
            self.requests += 1
            for addr, value in self.register_values().items():
                registers[addr - start_address] = value & 0xFFFF
            return None

        device = SimDevice(
            reg.device_id, simdata=[SimData(0, count=top + 1, values=0, datatype=DataType.REGISTERS)], action=action
        )
        self._loop = asyncio.get_running_loop()
        self._server = ModbusSerialServer(device, port=self._server_side.port, baudrate=self.baudrate, timeout=0.5)
        await self._server.serve_forever(background=True)
        self._ready.set()
        while not self._stop.is_set():
            await asyncio.sleep(0.05)
        await self._server.shutdown()

    def _bridge(self) -> None:
        """Copy bytes both ways between the two ptys, acting out the faults."""
        while not self._stop.is_set():
            a, b = self._driver_side.master, self._server_side.master
            fds = [fd for fd in (a, b) if fd >= 0]
            try:
                ready, _, _ = select.select(fds, [], [], 0.05)
            except (OSError, ValueError):
                self._stop.wait(0.05)
                continue
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if fd == a:
                    if self.fault == "silence" or b < 0:
                        continue  # the request never reaches the transmitter
                    os.write(b, data)
                elif a >= 0:
                    if self.fault == "garbage":
                        data = bytes(x ^ 0x5A for x in data)  # line noise: CRC fails
                    try:
                        os.write(a, data)
                    except OSError:
                        pass


def _encode(value: float, value_type: str, word_order: str) -> list[int]:
    import struct

    fmt = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f"}[value_type]
    if value_type != "float32":
        value = int(value)
        bits = 16 if value_type.endswith("16") else 32
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if value_type.startswith("int") else (0, 2**bits - 1)
        value = min(max(value, lo), hi)
    data = struct.pack(fmt, value)
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if len(words) == 2 and word_order == "little":
        words.reverse()
    return words
