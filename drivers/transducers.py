"""Stack-pressure transducers on serial lines: Mark-10 force gauges, Omega DP41 meters, HBM AED load-cell
electronics, and Modbus RTU pressure transmitters (pymodbus).

Every reading is converted to SI first (N for force, Pa for pressure), then the calibration is applied
in that unit (value = gain * reading + offset, so an offset is written in N or Pa), then force becomes
stack pressure on the pressed area: P = F / A_pressed. A pressure transmitter on the press's hydraulic
line gives the ram force F = p * A_ram when ``ram_area`` is configured; without it the transmitter's
pressure is taken as the stack pressure itself.

Replies that cannot be a reading (garbage, an error code, an over-range marker) raise InstrumentError
quoting the reply; every exchange is bounded by the port timeout and stale bytes are discarded before
each command, so a late answer cannot be taken for the next one.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from daq.core import units as u
from daq.core.capabilities import Calibration, InstrumentInfo, PressureReading, PressureSensor
from daq.core.clock import Clock, RealClock
from daq.core.errors import ConfigError, InstrumentError

# Units instruments print that daq.core.units does not know (case-insensitive), in SI.
_EXTRA_UNITS = {
    "lbf": (4.4482216152605, "force"),
    "klbf": (4448.2216152605, "force"),
    "kgf": (9.80665, "force"),
    "gf": (9.80665e-3, "force"),
    "ozf": (0.27801385095378, "force"),
    "tf": (9806.65, "force"),
    "psi": (6894.757293168, "pressure"),
    "ksi": (6894757.293168, "pressure"),
    "atm": (101325.0, "pressure"),
    "kgf/cm^2": (98066.5, "pressure"),
    "kgf/cm2": (98066.5, "pressure"),
    "mmhg": (133.322387415, "pressure"),
}


def unit_factor(unit: str, field_name: str = "unit") -> tuple[float, str]:
    """SI factor of a force or pressure unit and which of the two it is: ``("kN") -> (1000.0, "force")``."""
    text = unit.strip()
    if text.lower() in _EXTRA_UNITS:
        return _EXTRA_UNITS[text.lower()]
    for kind, name in ((u.FORCE, "force"), (u.PRESSURE, "pressure")):
        try:
            return u.parse(f"1 {text}", kind, field_name), name
        except ConfigError:
            continue
    raise ConfigError(field_name, unit, 'not a unit of force or pressure (e.g. "N", "kN", "lbf", "MPa", "bar")')


class _Base(PressureSensor):
    """Shared conversion: reading (value, unit) -> calibrated SI -> PressureReading."""

    vendor = ""
    model = ""

    def __init__(
        self,
        pressed_area: float,
        calibration: Calibration | None = None,
        clock: Clock | None = None,
        name: str = "transducer",
        ram_area: float | None = None,
        capacity: float | None = None,
    ):
        if not pressed_area > 0:
            raise ConfigError("pressed_area", pressed_area, "must be a positive area")
        self.pressed_area = float(pressed_area)
        self.calibration = calibration or Calibration()
        self.clock = clock or RealClock()
        self.name = name
        self.ram_area = ram_area  # m^2, hydraulic ram: a line pressure becomes force
        self.capacity = capacity  # N or Pa: readings beyond 110 % are an overload

    @property
    def offset_unit(self) -> str:
        """The unit of the calibration offset: N for force readings, Pa for pressure readings."""
        unit = getattr(self, "unit", None)
        if unit:
            return "N" if unit_factor(unit)[1] == "force" else "Pa"
        return "Pa"

    def _reading(self, value: float, unit: str, raw: str) -> PressureReading:
        factor, kind = unit_factor(unit)
        si = self.calibration.gain * (value * factor) + self.calibration.offset
        if self.capacity is not None and abs(value * factor) > 1.1 * self.capacity:
            raise InstrumentError(
                f"{self.name}: overload, reading {raw!r} beyond the {self.capacity:g} "
                f"{'N' if kind == 'force' else 'Pa'} capacity"
            )
        if kind == "force":
            return PressureReading(self.clock.now(), si / self.pressed_area, si)
        if self.ram_area is not None:
            force = si * self.ram_area
            return PressureReading(self.clock.now(), force / self.pressed_area, force)
        return PressureReading(self.clock.now(), si, None)


class SerialTransducer(_Base):
    """An ASCII command/reply instrument on a serial port (RS-232, USB-serial, or a pseudo-terminal)."""

    terminator = b"\n"  # last byte of a reply
    command_end = b"\r"

    def __init__(
        self,
        port: str,
        pressed_area: float,
        calibration: Calibration | None = None,
        clock: Clock | None = None,
        *,
        baudrate: int = 9600,
        timeout: float = 1.0,
        name: str | None = None,
        unit: str | None = None,
        capacity: float | None = None,
        ram_area: float | None = None,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: float = 1,
    ):
        super().__init__(pressed_area, calibration, clock, name or type(self).__name__, ram_area, capacity)
        self.port, self.baudrate, self.timeout = port, int(baudrate), float(timeout)
        self.serial_settings = {"bytesize": bytesize, "parity": parity, "stopbits": stopbits}
        self.unit = unit
        if unit is not None:
            unit_factor(unit)  # refuse a bad unit at construction, not at the first reading
        self._ser = None

    def connect(self) -> InstrumentInfo:
        import serial  # pyserial

        self.close()
        try:
            self._ser = serial.Serial(
                self.port, self.baudrate, timeout=self.timeout, write_timeout=self.timeout, **self.serial_settings
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise InstrumentError(f"{self.name}: cannot open {self.port}: {exc}") from None
        try:
            info = self._identify()
            self.read()  # a first reading proves the line and the format
        except InstrumentError:
            self.close()
            raise
        return info

    def close(self) -> None:
        ser, self._ser = self._ser, None
        if ser is not None:
            try:
                ser.close()
            except Exception:  # noqa: BLE001 - releasing a broken port
                pass

    def _identify(self) -> InstrumentInfo:
        return InstrumentInfo(self.vendor, self.model, "", "", "drivers.transducers", self.port)

    def ask(self, command: str, terminator: bytes | None = None) -> str:
        """Send one command, return the reply line without its terminator (bounded by the timeout)."""
        import serial

        if self._ser is None:
            raise InstrumentError(f"{self.name}: not connected")
        term = terminator or self.terminator
        try:
            self._ser.reset_input_buffer()
            self._ser.write(command.encode("ascii") + self.command_end)
            raw = self._ser.read_until(term)
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise InstrumentError(f"{self.name}: link to {self.port} lost ({exc})") from None
        if not raw.endswith(term):
            if raw:
                raise InstrumentError(f"{self.name}: incomplete reply {raw!r} to {command!r} within {self.timeout:g} s")
            raise InstrumentError(f"{self.name}: no reply to {command!r} within {self.timeout:g} s")
        try:
            return raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise InstrumentError(f"{self.name}: unreadable reply {raw!r} to {command!r}") from None


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


class Mark10Gauge(SerialTransducer):
    """Mark-10 force gauge (Series 4/5/7): ``?`` -> ``4.285 N`` (compression positive by default).

    Commands end with CR, replies with CR LF; ``*10`` is the gauge's "illegal command" answer. When the
    gauge is set to send no unit, ``unit`` (default N) says what the number is.
    """

    vendor, model = "Mark-10", "force gauge"
    terminator = b"\n"
    offset_unit = "N"

    def read(self) -> PressureReading:
        reply = self.ask("?")
        if reply.startswith("*"):
            meaning = {
                "*10": "illegal command",
                "*11": "not applicable",
                "*12": "invalid specifier",
                "*22": "value too large",
            }.get(reply, "error code")
            raise InstrumentError(f"{self.name}: gauge answered {reply!r} ({meaning}) to '?'")
        m = re.fullmatch(rf"({_NUMBER})\s*([A-Za-z]+)?", reply)
        if not m:
            raise InstrumentError(f"{self.name}: unreadable reply {reply!r} to '?'")
        unit = m[2] or self.unit or "N"
        try:
            return self._reading(float(m[1]), unit, reply)
        except ConfigError:
            raise InstrumentError(f"{self.name}: reply {reply!r} is in an unknown unit") from None


class OmegaDP41(SerialTransducer):
    """Omega DP41-B / iSeries meter: ``*X01`` -> ``00345.6`` (or ``X0100345.6`` in echo mode).

    The meter shows whatever its scaling makes of the load cell; ``unit`` (required) names it. A reading
    out of range is sent as ``?+999999`` / ``?-999999``; other replies starting with ``?`` are errors.
    """

    vendor, model = "Omega", "DP41-B"
    terminator = b"\r"
    command_end = b"\r"

    def __init__(
        self,
        port: str,
        pressed_area: float,
        calibration: Calibration | None = None,
        clock: Clock | None = None,
        *,
        recognition: str = "*",
        unit: str = "N",
        **kwargs,
    ):
        super().__init__(port, pressed_area, calibration, clock, unit=unit, **kwargs)
        self.recognition = recognition

    def read(self) -> PressureReading:
        cmd = f"{self.recognition}X01"
        reply = self.ask(cmd)
        if reply.startswith("X01"):
            reply = reply[3:].strip()  # echo mode repeats the command
        if re.fullmatch(r"\?[-+–]999999", reply):
            raise InstrumentError(f"{self.name}: meter reports an overflow ({reply!r} to {cmd!r})")
        if reply.startswith("?"):
            raise InstrumentError(f"{self.name}: meter answered {reply!r} (error) to {cmd!r}")
        if not re.fullmatch(_NUMBER, reply):
            raise InstrumentError(f"{self.name}: unreadable reply {reply!r} to {cmd!r}")
        return self._reading(float(reply), self.unit or "N", reply)


class HbmAed(SerialTransducer):
    """HBM AED load-cell electronics (AD103/AD104/AD105): ``COF3;`` selects ASCII output, ``MSV?;`` reads.

    ``MSV?`` answers in digits of the configured measuring range; ``scale`` (unit per digit) and ``unit``
    turn them into a force or pressure. ASCII values beyond +-399999 digits are over range.
    """

    vendor, model = "HBM", "AED"
    terminator = b"\n"
    command_end = b""
    MAX_DIGITS = 399_999

    def __init__(
        self,
        port: str,
        pressed_area: float,
        calibration: Calibration | None = None,
        clock: Clock | None = None,
        *,
        scale: float = 1.0,
        unit: str = "N",
        **kwargs,
    ):
        super().__init__(port, pressed_area, calibration, clock, unit=unit, **kwargs)
        self.scale = float(scale)

    def _identify(self) -> InstrumentInfo:
        ack = self.ask("COF3;")
        if ack != "0":
            raise InstrumentError(f"{self.name}: the amplifier refused ASCII output: {ack!r} to 'COF3;'")
        idn = self.ask("IDN?;")
        fields = [f.strip() for f in idn.split(",")]
        if len(fields) < 2:
            raise InstrumentError(f"{self.name}: unreadable reply {idn!r} to 'IDN?;'")
        vendor = fields[0] if fields[0].upper() == "HBM" else "HBM"
        rest = fields[1:] if fields[0].upper() == "HBM" else fields
        model, serial_no, firmware = (rest + ["", "", ""])[:3]
        return InstrumentInfo(vendor, model, serial_no, firmware, "drivers.transducers", self.port)

    def read(self) -> PressureReading:
        reply = self.ask("MSV?;")
        if reply == "?":
            raise InstrumentError(f"{self.name}: amplifier answered '?' (error) to 'MSV?;'")
        if not re.fullmatch(r"[-+]?\d+", reply):
            raise InstrumentError(f"{self.name}: unreadable reply {reply!r} to 'MSV?;'")
        digits = int(reply)
        if abs(digits) > self.MAX_DIGITS:
            raise InstrumentError(f"{self.name}: amplifier reports an overflow ({reply!r} to 'MSV?;')")
        return self._reading(digits * self.scale, self.unit or "N", reply)


@dataclass(frozen=True)
class RegisterMap:
    """Where a Modbus transmitter keeps its reading; vendors differ, so this is configuration.

    value = raw / 10**decimals * scale, in ``unit_codes[unit register]`` (or ``unit`` when the device has
    no unit register). ``overflow`` lists raw values the device uses to mark an over-range reading.
    """

    value: int = 0  # register address of the reading
    value_type: str = "int16"  # int16 | uint16 | int32 | uint32 | float32
    word_order: str = "big"  # 32-bit values: "big" = high word first
    decimals: int | None = None  # register holding the number of decimal places
    unit: int | None = None  # register holding a unit code
    unit_codes: dict[int, str] = field(default_factory=dict)
    fixed_unit: str = "bar"  # the unit when there is no unit register
    fixed_decimals: int = 0  # decimal places when there is no decimals register
    scale: float = 1.0
    function: str = "holding"  # holding | input registers
    device_id: int = 1
    overflow: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.value_type not in ("int16", "uint16", "int32", "uint32", "float32"):
            raise ConfigError(
                "registers.value_type", self.value_type, "must be int16, uint16, int32, uint32 or float32"
            )
        if self.word_order not in ("big", "little"):
            raise ConfigError("registers.word_order", self.word_order, "must be 'big' or 'little'")
        if self.function not in ("holding", "input"):
            raise ConfigError("registers.function", self.function, "must be 'holding' or 'input'")
        for code, name in self.unit_codes.items():
            unit_factor(name, f"registers.unit_codes.{code}")
        if self.unit is None:
            unit_factor(self.fixed_unit, "registers.fixed_unit")

    @property
    def width(self) -> int:
        return 1 if self.value_type.endswith("16") else 2


class ModbusTransmitter(_Base):
    """A pressure transmitter (or load-cell amplifier) speaking Modbus RTU, read with pymodbus."""

    vendor, model = "Modbus RTU", "pressure transmitter"

    def __init__(
        self,
        port: str,
        pressed_area: float,
        calibration: Calibration | None = None,
        clock: Clock | None = None,
        *,
        registers: RegisterMap | None = None,
        baudrate: int = 19200,
        timeout: float = 1.0,
        name: str = "modbus",
        parity: str = "N",
        stopbits: int = 1,
        ram_area: float | None = None,
        capacity: float | None = None,
    ):
        super().__init__(pressed_area, calibration, clock, name, ram_area, capacity)
        self.port, self.baudrate, self.timeout = port, int(baudrate), float(timeout)
        self.parity, self.stopbits = parity, stopbits
        self.registers = registers or RegisterMap()
        self._client = None

    def connect(self) -> InstrumentInfo:
        from pymodbus.client import ModbusSerialClient
        from pymodbus.framer import FramerType

        self.close()
        self._client = ModbusSerialClient(
            self.port,
            framer=FramerType.RTU,
            baudrate=self.baudrate,
            timeout=self.timeout,
            retries=0,
            parity=self.parity,
            stopbits=self.stopbits,
        )
        with _captured_log("pymodbus") as messages:
            try:
                ok = self._client.connect()
            except Exception as exc:  # noqa: BLE001 - pymodbus/pyserial raise several kinds
                ok, why = False, str(exc)
            else:
                why = messages[-1] if messages else "port did not open"
        if not ok:
            self.close()
            raise InstrumentError(f"{self.name}: cannot open {self.port}: {why}")
        try:
            self.read()
        except InstrumentError:
            self.close()
            raise
        return InstrumentInfo(
            self.vendor, self.model, "", "", "drivers.transducers", f"{self.port} (device {self.registers.device_id})"
        )

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - releasing a broken link
                pass

    def _registers(self, address: int, count: int) -> list[int]:
        from pymodbus.exceptions import ModbusException

        if self._client is None:
            raise InstrumentError(f"{self.name}: not connected")
        reg = self.registers
        what = f"{reg.function} register {address}" + (f"..{address + count - 1}" if count > 1 else "")
        call = self._client.read_holding_registers if reg.function == "holding" else self._client.read_input_registers
        try:
            with _captured_log("pymodbus"):
                response = call(address, count=count, device_id=reg.device_id)
        except ModbusException as exc:
            raise InstrumentError(
                f"{self.name}: no valid reply reading {what} of device {reg.device_id} "
                f"within {self.timeout:g} s ({_first_line(exc)})"
            ) from None
        except Exception as exc:  # noqa: BLE001 - a port that vanished raises serial/OS errors
            self.close()
            raise InstrumentError(f"{self.name}: link to {self.port} lost ({_first_line(exc)})") from None
        if response.isError():
            raise InstrumentError(f"{self.name}: device {reg.device_id} refused reading {what}: {response}")
        values = list(getattr(response, "registers", []))
        if len(values) != count:
            raise InstrumentError(f"{self.name}: reply {values!r} reading {what} has {len(values)} registers")
        return values

    def read(self) -> PressureReading:
        reg = self.registers
        words = self._registers(reg.value, reg.width)
        raw = _decode(words, reg.value_type, reg.word_order)
        shown = f"{raw!r} (registers {words})"
        if isinstance(raw, int) and raw in reg.overflow:
            raise InstrumentError(f"{self.name}: transmitter reports an overflow, value {shown}")
        if not math.isfinite(raw):
            raise InstrumentError(f"{self.name}: unreadable value {shown}")
        decimals = reg.fixed_decimals
        if reg.decimals is not None:
            decimals = self._registers(reg.decimals, 1)[0]
            if decimals > 9:
                raise InstrumentError(f"{self.name}: unreadable decimal-places register value {decimals}")
        unit = reg.fixed_unit
        if reg.unit is not None:
            code = self._registers(reg.unit, 1)[0]
            if code not in reg.unit_codes:
                raise InstrumentError(
                    f"{self.name}: unit code {code} not in the register map's unit_codes {sorted(reg.unit_codes)}"
                )
            unit = reg.unit_codes[code]
        return self._reading(raw / 10**decimals * reg.scale, unit, shown)


def _decode(words: list[int], value_type: str, word_order: str) -> float:
    import struct

    if len(words) == 2 and word_order == "little":
        words = [words[1], words[0]]
    data = b"".join(struct.pack(">H", w & 0xFFFF) for w in words)
    fmt = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f"}[value_type]
    return struct.unpack(fmt, data)[0]


@contextmanager
def _captured_log(name: str) -> Iterator[list[str]]:
    """Collect a library's log messages instead of letting them reach stderr (they go into our error)."""
    logger = logging.getLogger(name)
    messages: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(" ".join(record.getMessage().split()))

    handler, propagate = _Collect(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


TRANSDUCER_KINDS = {"mark10": Mark10Gauge, "dp41": OmegaDP41, "aed": HbmAed, "modbus": ModbusTransmitter}
