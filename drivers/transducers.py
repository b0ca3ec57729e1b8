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

import re

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


class TransducerBase(PressureSensor):
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


def _line_errors() -> tuple[type[BaseException], ...]:
    """Exceptions a serial port raises when its line dies (unplugged adapter, closed pty).

    pyserial wraps most of them in SerialException (an OSError), but flushing the input queue calls
    termios.tcflush directly, whose termios.error (EIO on a hung-up line) is not an OSError.
    """
    import serial

    try:
        import termios
    except ImportError:  # Windows: no termios, pyserial raises SerialException there
        return (serial.SerialException, OSError)
    return (serial.SerialException, OSError, termios.error)


class SerialTransducer(TransducerBase):
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
        if self._ser is None:
            raise InstrumentError(f"{self.name}: not connected")
        term = terminator or self.terminator
        try:
            self._ser.reset_input_buffer()
            self._ser.write(command.encode("ascii") + self.command_end)
            raw = self._ser.read_until(term)
        except _line_errors() as exc:
            self.close()
            why = exc if isinstance(exc, OSError) or len(exc.args) != 2 else f"[Errno {exc.args[0]}] {exc.args[1]}"
            raise InstrumentError(f"{self.name}: link to {self.port} lost ({why})") from None
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
