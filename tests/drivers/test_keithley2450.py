"""Keithley 2450 driver through pyvisa + pyvisa-py against the emulated 2450 on a loopback socket."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from daq.core.clock import VirtualClock
from daq.core.errors import InstrumentError
from daq.core.samples import FLAG_HW_LIMIT
from daq.models.cell import load_cell
from drivers.keithley2450 import Keithley2450
from simulators.cell import SimulatedCell
from simulators.potentiostat import SimulatedPotentiostat
from simulators.scpi_server import ScpiServer

pytestmark = pytest.mark.timeout(60)

CELLS = Path(__file__).resolve().parents[2] / "protocols" / "examples" / "cells"
MA_CM2 = 10.0  # A/m^2


@pytest.fixture
def cell():
    return load_cell(CELLS / "li6ps5cl_99.toml")


@pytest.fixture
def rig(cell):
    clock = VirtualClock()
    server = ScpiServer(SimulatedCell(cell), clock).start()
    driver = Keithley2450(server.resource, clock, timeout=0.5)
    yield server, driver, clock
    driver.close()
    server.stop()


def wait_for(predicate, timeout: float = 30.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def sent(server, text: str) -> bool:
    return any(text in c.upper() for c in server.instrument.commands)


def test_connect_identifies_and_never_switches_on(rig):
    server, driver, _ = rig
    info = driver.connect()
    assert (info.vendor, info.model, info.serial, info.firmware) == ("Keithley", "2450", "04412345", "1.7.12b")
    assert info.resource == server.resource and info.driver == "drivers.keithley2450"
    assert not server.instrument.output
    assert server.instrument.off_mode == {"CURR": "HIMP", "VOLT": "HIMP"}  # relay opens when off
    driver.connect()  # re-connecting
    assert not server.instrument.output
    assert not sent(server, "OUTP ON")
    caps = driver.capabilities
    assert not caps.reference_electrode and not caps.eis_galvanostatic and caps.hardware_voltage_limit


def test_connect_switches_off_an_output_left_on(rig):
    server, driver, _ = rig
    server.instrument.output = True  # a previous session died with the output on
    driver.connect()
    assert not server.instrument.output


def test_plating_matches_simulated_potentiostat(cell):
    """9 mA/cm^2 on the 99 % dense disc: no short; the same data as SimulatedPotentiostat (same seed)."""
    current = -cell.current(9 * MA_CM2)
    assert current == pytest.approx(-70.7e-6, rel=1e-3)
    clock, clock_ref = VirtualClock(), VirtualClock()
    reference = SimulatedPotentiostat(SimulatedCell(cell), clock_ref)
    with ScpiServer(SimulatedCell(cell), clock) as server:
        driver = Keithley2450(server.resource, clock, timeout=1.0)
        driver.connect()
        reference.connect()
        driver.apply_current(current, -2.0, 2.0, 1.0)
        reference.apply_current(current, -2.0, 2.0, 1.0)
        assert server.instrument.output
        assert sent(server, ":SOUR:CURR:VLIM 2.0")
        blocks, ref_blocks = [], []
        for _ in range(13):  # 8 mAh/cm^2 at 9 mA/cm^2 is 3200 s
            clock.sleep(256.0)
            clock_ref.sleep(256.0)
            blocks.append(driver.read())
            ref_blocks.append(reference.read())
        driver.open_circuit(None)
        assert not server.instrument.output
        driver.close()
        shorted = server.instrument.cell.state.shorted
    ours, ref = (b.__class__.concat(x) for b, x in ((blocks[0], blocks), (ref_blocks[0], ref_blocks)))
    assert len(ours) == len(ref) == 13 * 256
    np.testing.assert_array_equal(ours.t, ref.t)
    np.testing.assert_allclose(ours.E_cell, ref.E_cell, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ours.E_we, ours.E_cell)  # two-terminal SMU
    np.testing.assert_allclose(ours.I, current, rtol=1e-12)
    assert not np.any(ours.flags)
    assert not shorted and not reference.cell.state.shorted


def test_voltage_limit_is_in_the_instrument_and_stops_the_step(rig, cell):
    server, driver, clock = rig
    driver.connect()
    driver.apply_current(-cell.current(9 * MA_CM2), -0.2, 0.2, 1.0)  # polarisation ~0.27 V: clamps at once
    clock.sleep(30.0)
    block = driver.read()
    assert len(block) == 1 and block.flags[0] & FLAG_HW_LIMIT
    assert block.E_cell[0] == pytest.approx(-0.2)
    assert not server.instrument.output
    clock.sleep(30.0)
    assert len(driver.read()) == 0


def test_asymmetric_window_checked_on_every_sample(rig, cell):
    server, driver, clock = rig
    driver.connect()
    driver.apply_current(-cell.current(9 * MA_CM2), -0.25, 5.0, 1.0)  # VLIM 5 V; the window's low side acts
    clock.sleep(20.0)
    block = driver.read()
    assert block.flags[-1] & FLAG_HW_LIMIT and block.E_cell[-1] < -0.25
    assert np.all(block.E_cell[:-1] >= -0.25)
    assert not server.instrument.output


def test_timed_step_ends_at_its_duration(rig):
    server, driver, clock = rig
    driver.connect()
    driver.apply_current(-50e-6, -2.0, 2.0, 1.0, duration=10.0)
    clock.sleep(25.0)
    block = driver.read()
    np.testing.assert_allclose(block.t, np.arange(1.0, 11.0))
    assert not server.instrument.output


def test_long_step_spans_several_buffer_loops(cell):
    clock = VirtualClock()
    with ScpiServer(SimulatedCell(cell), clock) as server:
        driver = Keithley2450(server.resource, clock, timeout=1.0, buffer_size=100)
        driver.connect()
        driver.apply_current(-50e-6, -2.0, 2.0, 1.0, duration=250.0)
        got = []
        for _ in range(6):
            clock.sleep(60.0)
            got.append(driver.read())
        t = np.concatenate([b.t for b in got])
        assert len(t) == 250 and np.all(np.diff(t) > 0)
        assert not server.instrument.output
        driver.close()


def test_open_circuit_sampling_and_off(rig):
    server, driver, clock = rig
    driver.connect()
    driver.open_circuit(2.0)
    clock.sleep(10.0)
    block = driver.read()
    assert len(block) == 5 and np.all(block.I == 0.0)
    assert server.instrument.output and server.instrument.source_level["CURR"] == 0.0
    driver.open_circuit(None)
    assert not server.instrument.output


def test_potentiostatic_hold(rig):
    server, driver, clock = rig
    driver.connect()
    driver.apply_potential(-0.1, -1e-3, 1e-3, 1.0)
    clock.sleep(5.0)
    block = driver.read()
    assert len(block) == 5
    np.testing.assert_allclose(block.E_cell, -0.1)
    assert np.all(block.I < 0)
    assert server.instrument.source_function == "VOLT" and server.instrument.limit["VOLT"] == 1e-3


def test_refusals_before_anything_is_switched_on(rig):
    server, driver, _ = rig
    driver.connect()
    with pytest.raises(InstrumentError, match="beyond"):
        driver.apply_current(2.0, -1, 1, 1.0)
    with pytest.raises(InstrumentError, match="sample period"):
        driver.apply_current(1e-6, -1, 1, 1e-4)
    assert not server.instrument.output


FAULTS = {
    "no reply": (lambda s: s.inject("no_reply"), "no reply to"),
    "silent instrument": (lambda s: s.inject("no_reply", once=False), "no reply to"),
    "garbage reply": (lambda s: s.inject("garbage", on="TRAC:DATA?"), r"unreadable reply b'\\x8f"),
    "dropped connection": (lambda s: s.drop_connections(), "no reply to|link failure"),
    "dropped mid-command": (lambda s: s.inject("drop", on="TRAC:ACT?"), "no reply to|link failure"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_faults_while_sourcing_give_a_readable_error_and_output_off(rig, fault):
    server, driver, clock = rig
    inject, message = FAULTS[fault]
    driver.connect()
    driver.apply_current(-50e-6, -2.0, 2.0, 1.0)
    clock.sleep(10.0)
    assert len(driver.read()) == 10
    assert server.instrument.output
    inject(server)
    clock.sleep(10.0)
    started = time.monotonic()
    with pytest.raises(InstrumentError, match=message) as err:
        driver.read()
    assert time.monotonic() - started < 3.0  # bounded: timeouts, never a hang
    assert "keithley2450" in str(err.value) and "\n" not in str(err.value)
    assert wait_for(lambda: not server.instrument.output)
    server.clear_faults()
    with pytest.raises(InstrumentError, match="not connected"):
        driver.read()
    driver.connect()  # recovers, output still off
    assert not server.instrument.output


def test_error_queue_entry_refuses_the_step(rig):
    server, driver, _ = rig
    driver.connect()
    server.push_error(-222, "Parameter data out of range")
    with pytest.raises(InstrumentError, match="refused the configuration: -222 Parameter data out of range"):
        driver.apply_current(-50e-6, -2.0, 2.0, 1.0)
    assert not server.instrument.output
    assert not sent(server, "OUTP ON")


def test_error_queue_is_checked_at_connect(rig):
    server, driver, _ = rig
    server.inject("garbage", on="SYST:ERR?")
    with pytest.raises(InstrumentError, match="unreadable reply"):
        driver.connect()
    assert not server.instrument.output


def test_tsp_command_set_is_refused_clearly(rig):
    server, driver, _ = rig
    server.instrument.lang = "TSP"
    started = time.monotonic()
    with pytest.raises(InstrumentError, match="TSP command set.*SCPI"):
        driver.connect()
    assert time.monotonic() - started < 1.5  # answered, not waited out (the VISA timeout is 2 s)
    assert not server.instrument.output


def test_lang_switch_needs_a_power_cycle(rig):
    server, driver, _ = rig
    server.instrument.lang = "TSP"
    server.instrument.handle("*LANG SCPI")
    with pytest.raises(InstrumentError, match="TSP"):
        driver.connect()
    server.instrument.power_cycle()
    assert driver.connect().model == "2450"


def test_unreachable_instrument():
    clock = VirtualClock()
    with ScpiServer(SimulatedCell(load_cell(CELLS / "li6ps5cl_99.toml")), clock) as server:
        port = server.port
    driver = Keithley2450(f"TCPIP::127.0.0.1::{port}::SOCKET", clock, timeout=0.5)
    with pytest.raises(InstrumentError, match="cannot reach|no reply"):
        driver.connect()
    driver.close()  # safe after a failed connect


def test_bad_resource_string():
    with pytest.raises(InstrumentError, match="cannot open"):
        Keithley2450("NOT-A-RESOURCE", VirtualClock(), timeout=0.5).connect()
