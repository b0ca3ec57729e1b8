"""Dead-man switch and bounded waits of the Keithley 2450 driver, against the emulated 2450.

Real time throughout (the emulator runs its trigger model on its own timer), a 2 s dead-man time and a
0.25 s sample period: a *TRG is seen within one period, then 7 readings, so the output goes off at most
2 s after the last re-arm. Trigger-model semantics follow the 2450/2461 reference manual (see
docs/drivers.md for the sources).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from daq.core.clock import RealClock, VirtualClock
from daq.core.errors import InstrumentError
from daq.models.cell import load_cell
from drivers.keithley2450 import Keithley2450
from drivers.keithley2450_scpi import deadman_blocks
from simulators.cell import SimulatedCell
from simulators.scpi_server import ScpiServer

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
CELL = ROOT / "protocols" / "examples" / "cells" / "li6ps5cl_99.toml"
DEADMAN = 2.0  # s
PERIOD = 0.25  # s
POLL = 0.005  # s, how often the test looks at the emulated output


@pytest.fixture
def server():
    with ScpiServer(SimulatedCell(load_cell(CELL)), RealClock()) as s:
        yield s


@pytest.fixture
def half_open():
    """A listening socket that never accepts or answers: the TCP handshake succeeds, nothing more."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    yield f"TCPIP::127.0.0.1::{listener.getsockname()[1]}::SOCKET"
    listener.close()


def seconds_until_off(server, limit: float) -> float:
    started = time.monotonic()
    while server.instrument.output and time.monotonic() - started < limit:
        time.sleep(POLL)
    return time.monotonic() - started


def client(resource: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.drivers.keithley_client", resource, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(proc: subprocess.Popen, text: str) -> None:
    for line in proc.stdout:  # type: ignore[union-attr]
        if line.strip() == text:
            return
    raise AssertionError(f"client ended before {text!r}: {proc.stderr.read()}")  # type: ignore[union-attr]


def test_emulated_model_switches_off_after_the_dead_man_count_and_trg_extends_it():
    """Blocks as the driver loads them; readings at 1, 2, ... s; *TRG at 2.5 s is seen at the 3 s pass,
    resets the counter, and 3 more readings end the model at 6 s (without it: at 3 s)."""
    clock = VirtualClock()
    with ScpiServer(SimulatedCell(load_cell(CELL)), clock) as s:
        inst = s.instrument
        inst.handle(':TRAC:MAKE "daqbuf", 1000;:SOUR:FUNC CURR;:SOUR:CURR -5e-05;:SOUR:CURR:VLIM 2')
        blocks = deadman_blocks("daqbuf", 1.0, 3, 100)
        inst.handle(";".join(blocks))
        inst.handle(":INIT")
        clock.sleep(2.5)
        inst.handle("*TRG")
        clock.sleep(10.0)
        inst.advance()
        assert inst.output_log == [(0.0, True), (6.0, False)]
        assert inst.handle(':TRAC:ACT? "daqbuf"')[0] == "6"
        assert inst.handle(":TRIG:STAT?")[0] == "IDLE;IDLE;10"
        assert not inst.errors


def test_output_stays_on_while_polled_and_goes_off_within_the_dead_man_time(server):
    k = Keithley2450(server.resource, RealClock(), timeout=1.0, deadman_s=DEADMAN)
    k.connect()
    k.apply_current(-50e-6, -2.0, 2.0, PERIOD)
    got = 0
    for _ in range(12):  # 3.6 s of polling: longer than the dead-man time
        time.sleep(0.3)
        assert server.instrument.output
        got += len(k.read())
    assert got >= 12
    off_after = seconds_until_off(server, 5.0)
    assert 1.5 <= off_after <= DEADMAN  # no read any more: the instrument ends the output by itself
    assert len(k.read()) >= 5  # the readings made until the switch-off are handed over first
    with pytest.raises(InstrumentError, match="dead-man switch ended the output"):
        k.read()
    k.close()


def test_sigkilled_client_leaves_the_output_off_within_the_dead_man_time(server):
    rng = random.Random(12)
    for _ in range(4):
        proc = client(server.resource, str(DEADMAN), str(PERIOD))
        try:
            wait_for_line(proc, "sourcing")
            time.sleep(rng.uniform(0.1, 2.5))
            assert server.instrument.output
            os.kill(proc.pid, signal.SIGKILL)
            off_after = seconds_until_off(server, 10.0)
        finally:
            proc.kill()
            proc.wait()
        assert off_after <= DEADMAN + 2 * POLL
        assert not server.instrument.output


def test_unreachable_address_ends_within_the_timeout():
    k = Keithley2450("TCPIP::192.0.2.1::5025::SOCKET", RealClock(), timeout=1.0)
    started = time.monotonic()
    with pytest.raises(InstrumentError, match=r"cannot (open|reach) TCPIP::192\.0\.2\.1"):
        k.connect()
    assert time.monotonic() - started <= 1.0 + 0.5


def test_half_open_connection_ends_within_the_timeout(half_open):
    k = Keithley2450(half_open, RealClock(), timeout=1.0)
    started = time.monotonic()
    with pytest.raises(InstrumentError, match=r"no reply to '\*IDN\?' within 1 s"):
        k.connect()
    assert time.monotonic() - started <= 1.0 + 0.5


def test_instrument_that_stops_answering_mid_step_ends_within_the_timeout(server):
    k = Keithley2450(server.resource, RealClock(), timeout=1.0, deadman_s=DEADMAN)
    k.connect()
    k.apply_current(-50e-6, -2.0, 2.0, PERIOD)
    time.sleep(0.5)
    assert len(k.read()) >= 1
    server.inject("no_reply", once=False)  # every query goes unanswered from now on
    started = time.monotonic()
    with pytest.raises(InstrumentError, match="no reply to .* within 1 s; COULD NOT CONFIRM THE OUTPUT OFF"):
        k.read()
    elapsed = time.monotonic() - started
    assert elapsed <= 1.0 + 2.5  # the timeout, then the safe state: 0.5 s drain + 0.5 s reply, twice at most
    assert seconds_until_off(server, 1.0) < 0.1  # the off commands themselves were received


def test_interrupt_ends_a_wait_at_once(half_open):
    k = Keithley2450(half_open, RealClock(), timeout=30.0)
    threading.Timer(0.5, k.interrupt).start()
    started = time.monotonic()
    with pytest.raises(InstrumentError, match=r"interrupted while waiting for the reply to '\*IDN\?'"):
        k.connect()
    assert time.monotonic() - started < 0.5 + 0.5


@pytest.mark.parametrize("stage", ["connecting", "sourcing"])
def test_ctrl_c_acts_within_a_second(half_open, server, stage):
    """SIGINT while connecting to a half-open link (30 s timeout), or while polling a live instrument."""
    resource = half_open if stage == "connecting" else server.resource
    proc = client(resource, str(DEADMAN), str(PERIOD), "30")
    try:
        wait_for_line(proc, stage)
        time.sleep(0.5)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=5.0)
        elapsed = time.monotonic() - started
    finally:
        proc.kill()
        proc.wait()
    assert elapsed < 1.0
    assert "KeyboardInterrupt" in proc.stderr.read()  # type: ignore[union-attr]
