"""The Keithley 2450 driver's exact SCPI, pinned message by message (no physics, no socket).

The trigger-model commands follow the 2450/2461 reference manual's TRIGger:BLOCk syntax (sources in
docs/drivers.md); these tests pin that the driver sends them in the order the dead-man switch needs.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from daq.core.clock import Clock
from daq.core.errors import InstrumentError
from drivers.keithley2450 import Keithley2450
from tests.drivers.expected_protocol import TIMEOUT, expected_protocol

pytestmark = pytest.mark.timeout(30)

IDN = "KEITHLEY INSTRUMENTS INC.,MODEL 2450,04412345,1.7.12b"
CONNECT = [
    ("*IDN?", IDN),
    ("*LANG?", "SCPI"),
    (":ABOR", None),
    (":OUTP?", "0"),
    (":OUTP:SMOD HIMP", None),
    ("*CLS", None),
    (":FORM:ASC:PREC 16", None),
    (':TRAC:MAKE "daqbuf", 1000', None),
    (":SYST:ERR?", '0,"No error;0;0"'),
]
NO_ERROR = (":SYST:ERR?", '0,"No error;0;0"')


class WallClock(Clock):
    """A clock that is not virtual (as on a rig) but that the test sets by hand."""

    virtual = False

    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def plating(level: str, count: int, deadman_count: int, period: str = "1.0") -> str:
    return ";".join(
        [
            ":SOUR:FUNC CURR",
            ":OUTP:CURR:SMOD HIMP",
            ":SOUR:CURR:RANG 0.0001",
            f":SOUR:CURR {level}",
            ":SOUR:CURR:VLIM 2.0",
            ":SOUR:CURR:READ:BACK ON",
            ':SENS:FUNC "VOLT"',
            ":SENS:VOLT:RANG:AUTO ON",
            ':TRIG:LOAD "Empty"',
            ':TRIG:BLOC:BUFF:CLE 1, "daqbuf"',
            ":TRIG:BLOC:SOUR:STAT 2, ON",
            f":TRIG:BLOC:DEL:CONS 3, {period}",
            ':TRIG:BLOC:MEAS 4, "daqbuf"',
            ":TRIG:BLOC:BRAN:EVEN 5, COMM, 8",
            f":TRIG:BLOC:BRAN:COUN 6, {deadman_count}, 9",
            ":TRIG:BLOC:BRAN:ALW 7, 10",
            ":TRIG:BLOC:BRAN:COUN:RES 8, 6",
            f":TRIG:BLOC:BRAN:COUN 9, {count}, 3",
            ":TRIG:BLOC:SOUR:STAT 10, OFF",
        ]
    )


def driver(session, clock=None, **kw) -> Keithley2450:
    kw.setdefault("deadman_s", 10.0)
    return Keithley2450(
        "TCPIP::fake::5025::SOCKET",
        clock or WallClock(),
        timeout=0.3,
        buffer_size=1000,
        open_resource=lambda resource, timeout: session,
        **kw,
    )


def test_first_switch_on_is_the_trigger_model_after_the_settings_are_accepted():
    """10 s dead-man at 1 s: a *TRG is seen within one period, then 9 readings -> off within 10 s."""
    start = [(plating("-5e-05", 1000, 9), None), NO_ERROR, (":INIT", None), NO_ERROR]
    with expected_protocol(CONNECT + start) as session:
        k = driver(session)
        k.connect()
        k.apply_current(-50e-6, -2.0, 2.0, 1.0)
    assert not any(m.startswith(":OUTP ON") for m in session.written)  # only the model switches on
    assert k.deadman_s == 10.0


def test_read_rearms_and_places_samples_on_the_run_clock():
    clock = WallClock()
    start = [(plating("-5e-05", 1000, 9), None), NO_ERROR, (":INIT", None), NO_ERROR]
    read = [
        ("*TRG", None),
        (":TRIG:STAT?", "RUNNING;RUNNING;3"),
        (':TRAC:ACT? "daqbuf"', "2"),
        (':TRAC:DATA? 1, 2, "daqbuf", READ, SOUR, REL', "-0.27,-5e-05,0.0,-0.28,-5e-05,1.0"),
        (":SOUR:CURR:VLIM:TRIP?", "0"),
    ]
    with expected_protocol(CONNECT + start + read) as session:
        k = driver(session, clock)
        k.connect()
        k.apply_current(-50e-6, -2.0, 2.0, 1.0)
        block = k.read()
    np.testing.assert_allclose(block.t, [101.0, 102.0])  # INIT at 100 s, first reading one period later
    np.testing.assert_allclose(block.E_cell, [-0.27, -0.28])
    np.testing.assert_allclose(block.I, -50e-6)


def test_a_step_change_while_sourcing_is_one_message():
    """ABOR ... INIT in one message: no moment with the output on and no model running."""
    start = [(plating("-5e-05", 1000, 9), None), NO_ERROR, (":INIT", None), NO_ERROR]
    change = [(":ABOR;" + plating("5e-05", 1000, 9) + ";:INIT", None), NO_ERROR]
    with expected_protocol(CONNECT + start + change) as session:
        k = driver(session)
        k.connect()
        k.apply_current(-50e-6, -2.0, 2.0, 1.0)
        k.apply_current(50e-6, -2.0, 2.0, 1.0)


def test_model_stopped_early_is_the_dead_man_and_is_reported():
    start = [(plating("-5e-05", 1000, 9), None), NO_ERROR, (":INIT", None), NO_ERROR]
    read = [
        ("*TRG", None),
        (":TRIG:STAT?", "IDLE;IDLE;10"),
        (':TRAC:ACT? "daqbuf"', "1"),
        (':TRAC:DATA? 1, 1, "daqbuf", READ, SOUR, REL', "-0.27,-5e-05,0.0"),
        (":SOUR:CURR:VLIM:TRIP?", "0"),
        (":ABOR", None),
        (":OUTP OFF", None),
        (":OUTP?", "0"),
    ]
    with expected_protocol(CONNECT + start + read) as session:
        k = driver(session)
        k.connect()
        k.apply_current(-50e-6, -2.0, 2.0, 1.0)
        assert len(k.read()) == 1  # the samples made before the switch-off are kept
        with pytest.raises(InstrumentError, match="dead-man switch ended the output after 1 readings"):
            k.read()


def test_timed_step_ends_in_the_instrument():
    """A 3 s step at 1 s: a loop of 3 readings whose last block switches the output off; dead-man 4 s -> 3."""
    start = [(plating("-5e-05", 3, 3), None), NO_ERROR, (":INIT", None), NO_ERROR]
    read = [
        ("*TRG", None),
        (":TRIG:STAT?", "IDLE;IDLE;10"),
        (':TRAC:ACT? "daqbuf"', "3"),
        (':TRAC:DATA? 1, 3, "daqbuf", READ, SOUR, REL', ",".join(["-0.27,-5e-05,0.0"] * 3)),
        (":SOUR:CURR:VLIM:TRIP?", "0"),
        (":ABOR", None),
        (":OUTP OFF", None),
        (":OUTP?", "0"),
    ]
    with expected_protocol(CONNECT + start + read) as session:
        k = driver(session, deadman_s=4.0)
        k.connect()
        k.apply_current(-50e-6, -2.0, 2.0, 1.0, duration=3.0)
        assert len(k.read()) == 3
        assert len(k.read()) == 0  # finished, no error


def test_period_too_long_for_the_dead_man_is_refused_before_anything_is_sent():
    with expected_protocol(CONNECT) as session:
        k = driver(session, deadman_s=10.0)
        k.connect()
        with pytest.raises(InstrumentError, match=r"sample period 6 s too long for the dead-man time of 10 s"):
            k.apply_current(-50e-6, -2.0, 2.0, 6.0)


def test_dead_man_time_must_be_sensible():
    with pytest.raises(InstrumentError, match="dead-man time 0.1 s must be at least 0.5 s"):
        Keithley2450("TCPIP::x::5025::SOCKET", WallClock(), deadman_s=0.1)


def test_silent_instrument_times_out_and_the_output_is_switched_off():
    start = [(plating("-5e-05", 1000, 9), None), NO_ERROR, (":INIT", None), NO_ERROR]
    fail = [
        ("*TRG", None),
        (":TRIG:STAT?", TIMEOUT),
        (":ABOR;:OUTP OFF", None),  # the safe state, on the same link
        (":OUTP?", "0"),
    ]
    with expected_protocol(CONNECT + start + fail) as session:
        k = driver(session)
        k.connect()
        k.apply_current(-50e-6, -2.0, 2.0, 1.0)
        started = time.monotonic()
        with pytest.raises(InstrumentError, match=r"no reply to ':TRIG:STAT\?' within 0.3 s; output switched off"):
            k.read()
        assert time.monotonic() - started < 0.3 + 1.0  # the timeout, a drain of at most 0.5 s, one reply
    assert session.closed


class FastClock(WallClock):
    """A scaled clock: run time passes ``speed`` times faster than the wall clock."""

    speed = 10.0


def test_dead_man_time_is_wall_time_on_a_scaled_clock():
    """2 s of wall time at 10x is 20 s of run time: at 1 s per reading the counter is 19, not 1."""
    start = [(plating("-5e-05", 1000, 19), None), NO_ERROR, (":INIT", None), NO_ERROR]
    with expected_protocol(CONNECT + start) as session:
        k = driver(session, FastClock(), deadman_s=2.0)
        k.connect()
        k.apply_current(-50e-6, -2.0, 2.0, 1.0)
