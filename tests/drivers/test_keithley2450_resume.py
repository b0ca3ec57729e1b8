"""A run on the Keithley 2450 killed right after a step's last sample was stored, resumed in its file.

The kill lands between the step's last samples (stored and flushed) and its /steps row: the resume
point holds the whole step's charge. The resumed run must end that step at once, switching nothing on
(the 2450 driver refuses a step of no duration; one more sample would overshoot the target), and run
the rest of the protocol. The kill test through the emulated 2450 met this in 2 of 18 resumes
(docs/reliability.md, "Kill tests through the Keithley 2450").
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from daq.core import units as u
from daq.core.clock import VirtualClock
from daq.engine.runner import resume_protocol
from daq.models.cell import load_cell
from daq.storage.reader import open_run
from drivers.keithley2450 import Keithley2450
from simulators.cell import SimulatedCell
from simulators.scpi_server import ScpiServer
from tests.daq.commands.keithley_kill import CAPACITY, CELL, PROTOCOL

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]  # the kill test's PROTOCOL: rest, then plate and strip CAPACITY

# The run in a child process (virtual clock, the emulated 2450 in the same process, every record
# flushed at once); it SIGKILLs itself once the plating step's last samples are stored.
CHILD = """
import os, signal, sys
from daq.core.clock import VirtualClock
from daq.core.records import Samples
from daq.engine.runner import run_protocol
from daq.models.cell import cell_from_text
from drivers.keithley2450 import Keithley2450
from protocols.loader import protocol_from_text
from simulators.cell import SimulatedCell
from simulators.scpi_server import ScpiServer

protocol_text, cell_path, out, target = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
text = open(cell_path).read()
cell = cell_from_text(text)
clock = VirtualClock()

def kill_at_step_end(record):  # optional subscriber: the writer (required) has stored the record
    if isinstance(record, Samples) and len(record.columns["t"]) and int(record.columns["step"][-1]) == 1:
        if abs(float(record.columns["Q"][-1])) >= target * (1 - 1e-9):
            os.kill(os.getpid(), signal.SIGKILL)

with ScpiServer(SimulatedCell(cell), clock) as server:
    run_protocol(protocol_from_text(protocol_text, "kill.toml"), cell, Keithley2450(server.resource, clock),
                 clock, out, subscribers=[kill_at_step_end], flush_interval=0.0, cell_source=text)
"""


def target_charge() -> float:
    """The plating step's charge (C): its capacity on the cell's working area."""
    return u.from_unit(CAPACITY, "mAh/cm^2") * load_cell(CELL).electrodes.working_area


def killed_at_step_end(out: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", CHILD, PROTOCOL, str(CELL), str(out), repr(target_charge())]
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=45)
    assert proc.returncode == -9, proc.stderr[-2000:]


def test_resume_after_a_kill_between_the_last_sample_and_the_step_row(tmp_path: Path) -> None:
    out = tmp_path / "run.h5"
    killed_at_step_end(out)
    with open_run(out) as run:
        assert run.status == "interrupted"
        point = run.resume_point()
        assert list(run.steps()["label"]) == ["rest"]  # the plating step's row was never written
    assert point.steps_done == 1
    assert abs(point.charge) == pytest.approx(target_charge(), rel=1e-9)  # all of it delivered

    clock = VirtualClock()
    with ScpiServer(SimulatedCell(load_cell(CELL)), clock) as server:
        result = resume_protocol(out, Keithley2450(server.resource, clock), clock)
        switched_on = [t for t, on in server.instrument.output_log if on]

    assert result.outcome == "completed"
    assert len(switched_on) == 1  # the strip step only: no current for the finished plating step
    with open_run(out) as run:
        assert run.status == "completed"
        steps = run.steps()
        area = run.cell["electrodes.working_area"]
    assert list(steps["label"]) == ["rest", "plate", "strip"]
    assert list(steps["end_reason"])[1:] == ["capacity_reached", "capacity_reached"]
    capacities = [u.to_unit(abs(q) / area, "mAh/cm^2") for q in steps["Q"][1:]]
    assert capacities == pytest.approx([CAPACITY, CAPACITY], rel=1e-9)
