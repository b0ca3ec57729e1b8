"""Kill tests on a wall clock through the emulated Keithley 2450 and the real driver over pyvisa-py.

SIGTERM and SIGHUP take the abort path: output off within 1 s of the signal (measured on the emulator's
output log). SIGKILL: nothing in the process acts, the instrument's dead-man switch (2 s) ends the
output; the file reads with plain h5py and resumes against the emulator to the exact capacity.
(scripts/kill_test.py --keithley runs 20 SIGKILLs; its table is in docs/reliability.md.)
"""

from __future__ import annotations

import signal

import pytest

from daq.core.clock import RealClock
from daq.models.cell import load_cell
from daq.storage.reader import open_run
from simulators.cell import SimulatedCell
from simulators.scpi_server import ScpiServer
from tests.daq.commands import keithley_kill as K

pytestmark = pytest.mark.timeout(180)
DEADMAN = 2.0  # s


@pytest.fixture(scope="module")
def server():
    with ScpiServer(SimulatedCell(load_cell(K.CELL)), RealClock()) as s:
        yield s


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_stop_signal_switches_the_output_off_within_a_second(tmp_path, server, sig):
    row = K.trial(server, tmp_path / "run.h5", sig, 1.5, DEADMAN)
    assert row["on_at_signal"] and row["returncode"] == 0
    assert row["off_after"] is not None and row["off_after"] <= 1.0
    assert row["readable"]
    with open_run(tmp_path / "run.h5") as run:
        assert run.attrs["outcome"] == "aborted"
        steps = run.steps()
        events = run.events()
        ts = run.timeseries()
    # the interrupted step's row, one event, then the open-circuit record: its samples at I = 0
    assert list(steps.end_reason) == ["time_reached", "aborted", "time_reached"]
    assert list(steps.label)[2] == "open circuit after aborted" and float(steps.Q.iloc[2]) == 0.0
    assert list(events.kind) == ["aborted"]
    last = ts[ts.step == 2]
    assert len(last) >= 1 and float(ts.I.iloc[-1]) == 0.0 and (last.I == 0.0).all()
    assert (ts[ts.step == 1].I != 0.0).all()  # the plating samples before it carry the current


@pytest.mark.parametrize("delay", [0.7, 8.3], ids=["in-plating", "in-stripping"])
def test_sigkill_dead_man_and_exact_resume(tmp_path, server, delay):
    row = K.trial(server, tmp_path / "run.h5", signal.SIGKILL, delay, DEADMAN)
    assert row["on_at_signal"] and row["returncode"] == -signal.SIGKILL
    assert row["off_after"] is not None and 0 < row["off_after"] <= DEADMAN  # the instrument, by itself
    assert row["readable"]
    resumed = K.resume(server, tmp_path / "run.h5", DEADMAN)
    assert resumed["outcome"] == "completed" and resumed["status"] == "completed"
    assert resumed["interrupted_step"] == (1 if delay < 5 else 2)
    assert resumed["capacities"] == pytest.approx([K.CAPACITY, K.CAPACITY], rel=1e-9)
