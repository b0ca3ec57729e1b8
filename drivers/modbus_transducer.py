"""Modbus RTU pressure transmitters: the register map declared in the rig file, read with pymodbus."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from daq.core.capabilities import Calibration, InstrumentInfo, PressureReading
from daq.core.clock import Clock
from daq.core.errors import ConfigError, InstrumentError

# Units instruments print that daq.core.units does not know (case-insensitive), in SI.
from drivers.transducers import TransducerBase, unit_factor


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


class ModbusTransmitter(TransducerBase):
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
        from pymodbus.exceptions import ConnectionException, ModbusException

        if self._client is None:
            raise InstrumentError(f"{self.name}: not connected")
        reg = self.registers
        what = f"{reg.function} register {address}" + (f"..{address + count - 1}" if count > 1 else "")
        call = self._client.read_holding_registers if reg.function == "holding" else self._client.read_input_registers
        try:
            with _captured_log("pymodbus"):
                response = call(address, count=count, device_id=reg.device_id)
        except ConnectionException as exc:  # the port failed (pymodbus closed it), not a silent device
            self.close()
            raise InstrumentError(f"{self.name}: link to {self.port} lost ({_first_line(exc)})") from None
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
