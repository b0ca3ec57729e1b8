"""Transducer drivers (pyserial, pymodbus) against emulated instruments on pseudo-terminals."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import pytest

from daq.core.capabilities import Calibration
from daq.core.clock import VirtualClock
from daq.core.errors import ConfigError, InstrumentError
from drivers.modbus_transducer import ModbusTransmitter, RegisterMap
from drivers.transducers import HbmAed, Mark10Gauge, OmegaDP41
from simulators.transducer_emulators import AedEmulator, DP41Emulator, Mark10Emulator, ModbusTransmitterEmulator
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(30)

AREA = 19.635e-6  # m^2, a 5 mm electrolyte disc
TIMEOUT = 0.3  # s
HANG = TIMEOUT + 5.0  # s: an exchange bounded by the port timeout ends well within this even on a busy machine


def modbus_map(**kw) -> RegisterMap:
    base = dict(
        value=0, decimals=1, unit=2, unit_codes={0: "bar", 1: "MPa", 2: "kPa", 3: "psi"}, overflow=(32767, -32768)
    )
    return RegisterMap(**{**base, **kw})


# kind -> (emulator factory, driver factory, resolution in Pa, offset unit scale)
DEVICES = {
    "mark10": (
        lambda p, **kw: Mark10Emulator(p, AREA, **kw),
        lambda port, **kw: Mark10Gauge(port, AREA, timeout=TIMEOUT, capacity=2500.0, **kw),
        0.001 / AREA,
    ),
    "dp41": (
        lambda p, **kw: DP41Emulator(p, AREA, **kw),
        lambda port, **kw: OmegaDP41(port, AREA, timeout=TIMEOUT, unit="N", **kw),
        0.1 / AREA,
    ),
    "aed": (
        lambda p, **kw: AedEmulator(p, AREA, scale=0.01, **kw),
        lambda port, **kw: HbmAed(port, AREA, timeout=TIMEOUT, scale=0.01, unit="N", **kw),
        0.01 / AREA,
    ),
    "modbus": (
        lambda p, **kw: ModbusTransmitterEmulator(p, modbus_map(), unit="MPa", decimals=2, **kw),
        lambda port, **kw: ModbusTransmitter(port, AREA, timeout=TIMEOUT, registers=modbus_map(), **kw),
        0.01e6,
    ),
}


@pytest.fixture
def press():
    return SimpleNamespace(stack_pressure=7e6)


@pytest.mark.parametrize("kind", list(DEVICES))
def test_reading_equals_the_press_within_calibration(kind, press):
    make_emulator, make_driver, resolution = DEVICES[kind]
    force_device = kind != "modbus"
    offset = 0.8 if force_device else 0.05e6  # N or Pa, the instrument's zero error
    with make_emulator(press, gain_error=1.03, offset_error=offset) as emulator:
        clock = VirtualClock(100.0)
        cal = Calibration(gain=1.03, offset=offset, date="2025-01-15", reference="dead weights, cert 42")
        driver = make_driver(emulator.port, calibration=cal, clock=clock)
        info = driver.connect()
        assert info.resource.startswith(emulator.port) and info.driver == "drivers.transducers"
        reading = driver.read()
        assert reading.t == 100.0
        assert reading.pressure == pytest.approx(7e6, abs=1.03 * resolution)
        if force_device:
            assert reading.force == pytest.approx(7e6 * AREA, abs=1.03 * resolution * AREA)
            assert reading.pressure == pytest.approx(reading.force / AREA)
        else:
            assert reading.force is None
        press.stack_pressure = 3.5e6  # the press is let down
        assert driver.read().pressure == pytest.approx(3.5e6, abs=1.03 * resolution)
        driver.close()
        assert driver.calibration.date == "2025-01-15"
        uncalibrated = make_driver(emulator.port)
        uncalibrated.connect()
        assert abs(uncalibrated.read().pressure - 3.5e6) > 0.02 * 3.5e6  # the calibration matters
        uncalibrated.close()


@pytest.mark.parametrize("kind", list(DEVICES))
@pytest.mark.parametrize(
    "fault, message",
    [
        ("silence", "no reply|no valid reply"),
        ("garbage", "unreadable reply|no valid reply"),
        ("overflow", "overflow|overload"),
        ("disconnect", "lost|no reply|no valid reply"),
    ],
)
def test_faults_are_readable_errors_and_never_hang(kind, fault, message, press):
    make_emulator, make_driver, _ = DEVICES[kind]
    with make_emulator(press) as emulator:
        driver = make_driver(emulator.port)
        driver.connect()
        emulator.inject(fault)
        started = time.monotonic()
        with pytest.raises(InstrumentError, match=message) as err:
            driver.read()
        assert time.monotonic() - started < HANG
        text = str(err.value)
        assert "\n" not in text
        if fault == "garbage" and kind != "modbus":
            assert "\\xfe\\x9c" in text  # the reply is quoted
        if fault == "overflow" and kind == "dp41":
            assert "'?+999999'" in text
        driver.close()


@pytest.mark.parametrize("kind", list(DEVICES))
def test_a_line_found_dead_is_a_lost_link(kind, press):
    """The line dies between readings (adapter unplugged): the next reading says the link is lost.

    The emulator's end of the pty is released asynchronously; once its device node is gone the line is
    hung up, so every operation on the driver's port (flush, write, read) fails with an OS error.
    """
    make_emulator, make_driver, _ = DEVICES[kind]
    with make_emulator(press) as emulator:
        driver = make_driver(emulator.port)
        driver.connect()
        emulator.inject("disconnect")
        wait_until(lambda: not os.path.exists(emulator.port), what=f"{emulator.port} to hang up")
        started = time.monotonic()
        with pytest.raises(InstrumentError, match=f"link to {emulator.port} lost") as err:
            driver.read()
        assert time.monotonic() - started < HANG
        assert "\n" not in str(err.value)
        with pytest.raises(InstrumentError, match="not connected"):
            driver.read()  # the dead port was released; the caller reconnects
        driver.close()


def test_mark10_units_and_illegal_command(press):
    with Mark10Emulator(press, AREA, unit="lbF", decimals=4) as emulator:
        driver = Mark10Gauge(emulator.port, AREA, timeout=TIMEOUT)
        driver.connect()
        assert driver.read().force == pytest.approx(7e6 * AREA, abs=1e-4 * 4.45)
        emulator.answer = lambda command: b"*10\r\n"
        with pytest.raises(InstrumentError, match=r"'\*10' \(illegal command\)"):
            driver.read()
        driver.close()


def test_dp41_echo_mode_and_kilonewtons(press):
    press.stack_pressure = 50e6
    area = 100e-6
    with DP41Emulator(press, area, unit="kN", decimals=3, echo=True) as emulator:
        driver = OmegaDP41(emulator.port, area, timeout=TIMEOUT, unit="kN")
        driver.connect()
        assert driver.read().force == pytest.approx(5000.0, abs=1.0)
        assert emulator.received[-1] == "*X01"
        driver.close()


def test_aed_is_switched_to_ascii_output(press):
    with AedEmulator(press, AREA) as emulator:
        assert emulator.cof == 0
        driver = HbmAed(emulator.port, AREA, timeout=TIMEOUT, scale=0.01)
        info = driver.connect()
        assert emulator.cof == 3 and emulator.received[:2] == ["COF3", "IDN?"]
        assert (info.vendor, info.model, info.serial, info.firmware) == ("HBM", "AD104C", "0123456", "P77")
        driver.close()


def test_modbus_map_variants(press):
    registers = RegisterMap(value=10, value_type="float32", word_order="little", fixed_unit="bar", device_id=7)
    with ModbusTransmitterEmulator(press, registers, unit="bar", decimals=0) as emulator:
        ram = 2e-4  # m^2, hydraulic ram: the line pressure is not the stack pressure
        driver = ModbusTransmitter(emulator.port, AREA, timeout=TIMEOUT, registers=registers, ram_area=ram)
        assert "device 7" in driver.connect().resource
        reading = driver.read()
        assert reading.force == pytest.approx(7e6 * ram, rel=1e-6)
        assert reading.pressure == pytest.approx(7e6 * ram / AREA, rel=1e-6)
        driver.close()


def test_modbus_wrong_device_id_times_out(press):
    with ModbusTransmitterEmulator(press, modbus_map()) as emulator:
        driver = ModbusTransmitter(emulator.port, AREA, timeout=TIMEOUT, registers=modbus_map(device_id=9))
        with pytest.raises(InstrumentError, match="device 9"):
            driver.connect()


def test_unit_code_not_in_the_map(press):
    with ModbusTransmitterEmulator(press, modbus_map(), unit="kPa", decimals=0) as emulator:
        narrow = modbus_map(unit_codes={0: "bar", 1: "MPa"})
        driver = ModbusTransmitter(emulator.port, AREA, timeout=TIMEOUT, registers=narrow)
        with pytest.raises(InstrumentError, match="unit code 2"):
            driver.connect()


def test_missing_port_and_bad_configuration():
    with pytest.raises(InstrumentError, match="cannot open /nonexistent/tty"):
        Mark10Gauge("/nonexistent/tty", AREA, timeout=TIMEOUT).connect()
    with pytest.raises(InstrumentError, match="cannot open"):
        ModbusTransmitter("/nonexistent/tty", AREA, timeout=TIMEOUT).connect()
    with pytest.raises(ConfigError, match="value_type"):
        RegisterMap(value_type="int64")
    with pytest.raises(ConfigError, match="force or pressure"):
        OmegaDP41("/dev/null", AREA, unit="mA")
    with pytest.raises(ConfigError, match="pressed_area"):
        Mark10Gauge("/dev/null", 0.0)
