"""Every way a run ends early is recorded one way, and no trip goes unnoticed: an operando sweep's limit
trip, an abort, a dead instrument, an interlock on a step's last block and between steps."""

from __future__ import annotations

import json

import numpy as np

from daq.core.clock import VirtualClock
from daq.core.records import Samples, StepStart
from daq.engine.engine import RunControl
from daq.engine.runner import run_protocol
from daq.models.cell import load_cell
from daq.storage.reader import open_run
from protocols.loader import protocol_from_text
from simulators.faults import FaultPlan, FaultyPotentiostat
from simulators.rig import simulated_rig
from tests.conftest import cell_file

Q_UNIT = 36000.0  # C/m^2 per mAh/cm^2

OPERANDO_STRIP = """
[protocol]
name = "operando strip"
[[steps]]
kind = "galvanostatic"
label = "strip with operando GEIS"
direction = "strip"
current_density = "5 mA/cm^2"
capacity = "20 mAh/cm^2"
v_min = "-2 V"
v_max = "1 V"
eis_every = "0.25 mAh/cm^2"
  [steps.operando_eis]
  f_start = "7 MHz"
  f_end = "500 mHz"
  points_per_decade = 10
  amplitude = "0.05 mA/cm^2"
"""

PLATE = """
[protocol]
name = "plate"
[[steps]]
kind = "rest"
label = "rest"
duration = "10 s"
[[steps]]
kind = "galvanostatic"
label = "plate"
direction = "plate"
current_density = "1 mA/cm^2"
capacity = "1 mAh/cm^2"
"""

SHORT_STEPS = """
[protocol]
name = "short steps under a pressure interlock"
[interlocks.pressure]
min = "8 MPa"
clear_wait = "10 s"
timeout = "1 min"
[[steps]]
kind = "galvanostatic"
label = "pulse 1"
direction = "plate"
current_density = "1 mA/cm^2"
capacity = "0.0025 mAh/cm^2"
[[steps]]
kind = "galvanostatic"
label = "pulse 2"
direction = "strip"
current_density = "1 mA/cm^2"
capacity = "0.0025 mAh/cm^2"
"""


def run_text(tmp_path, text, density=99, wrap=None, **kwargs):
    protocol = protocol_from_text(text)
    cell = load_cell(cell_file(density))
    clock = VirtualClock()
    _, pstat, transducer = simulated_rig(cell, clock)
    if wrap is not None:
        pstat = wrap(pstat, clock)
    result = run_protocol(protocol, cell, pstat, clock, tmp_path / "r.h5", transducer=transducer, **kwargs)
    run = open_run(result.path)
    return result, run


def test_limit_trip_during_an_operando_sweep_stops_the_run(tmp_path):
    result, run = run_text(tmp_path, OPERANDO_STRIP)
    with run:
        steps, events, ts = run.steps(), run.events(), run.timeseries()
        area = run.cell["electrodes.working_area"]
        spectra = run.spectra()
    assert result.outcome == "voltage_limit", result.message
    assert list(steps.end_reason) == ["voltage_limit", "time_reached"]  # then the open-circuit record
    assert "the instrument's own limit" in result.message
    limit = events[events.kind == "voltage_limit"]
    assert len(limit) == 1 and json.loads(limit.data.iloc[0])["hardware"] is True
    stripped = abs(steps.Q.iloc[0]) / area / Q_UNIT
    assert 0 < stripped < 20
    tripped = ts[(ts["flags"].to_numpy() & 1) == 1]
    assert len(tripped) == 1
    # nothing after the trip is labelled as the stripping step with current flowing
    after = ts[ts.t > tripped.t.iloc[0]]
    assert (after.I == 0).all()
    assert len(spectra) >= 1


def test_abort_records_step_event_and_open_circuit(tmp_path):
    control = RunControl()
    count = [0]

    def abort_in_plating(record):
        if isinstance(record, Samples) and int(record.columns["step"][-1]) == 1:
            count[0] += 1
            if count[0] == 3:
                control.abort("stopped by the test")

    result, run = run_text(tmp_path, PLATE, control=control, subscribers=[abort_in_plating], block_samples=16)
    with run:
        steps, events, ts = run.steps(), run.events(), run.timeseries()
        area = run.cell["electrodes.working_area"]
    assert result.outcome == "aborted"
    assert list(steps.label) == ["rest", "plate", "open circuit after aborted"]
    assert list(steps.end_reason) == ["time_reached", "aborted", "time_reached"]
    plate = ts[ts.step == 1]
    assert steps.Q.iloc[1] == plate.Q.iloc[-1] and 0 < -steps.Q.iloc[1] / area / Q_UNIT < 1
    assert list(events.kind[events.kind == "aborted"]) == ["aborted"]
    record = ts[ts.step == 2]
    assert len(record) >= 2 and (record.I == 0).all() and ts.I.iloc[-1] == 0.0


def test_dead_instrument_says_the_output_is_unconfirmed(tmp_path):
    def dead_at_90(pstat, clock):
        return FaultyPotentiostat(pstat, clock, FaultPlan(dead_after=90.0, timeout=0.5))

    result, run = run_text(tmp_path, PLATE, wrap=dead_at_90, block_samples=16)
    with run:
        steps, events = run.steps(), run.events()
    assert result.outcome == "fault"
    assert list(steps.label) == ["rest", "plate"] and steps.end_reason.iloc[1] == "fault"
    kinds = list(events.kind)
    assert "fault" in kinds and kinds[-1] == "safe_state_unconfirmed"
    message = events.message.iloc[-1]
    assert "could not be confirmed off" in message and "daq safe" in message


def test_pressure_interlock_fires_before_current_on_short_steps(tmp_path):
    """A 7 MPa cell under an 8 MPa minimum: judged between steps, no pulse ever starts."""
    result, run = run_text(tmp_path, SHORT_STEPS)  # the simulated press holds the cell at 7 MPa
    with run:
        steps, events, ts = run.steps(), run.events(), run.timeseries()
    assert result.outcome == "interlock", result.message
    interlock = events[events.kind == "interlock"]
    assert len(interlock) == 1 and "outside its window [8e+06" in interlock.message.iloc[0]
    assert len(steps) == 0 and np.all(ts.I == 0.0)


def test_pressure_interlock_on_a_steps_only_block(tmp_path):
    """The press fails during pulse 1, whose 9 s are a single block: that last block trips the
    interlock before pulse 2 applies current."""
    text = SHORT_STEPS.replace('min = "8 MPa"', 'min = "5 MPa"')
    holder = {}

    def wrap(pstat, clock):
        holder["sim"] = pstat.cell
        return pstat

    def press_fails(record):
        if isinstance(record, StepStart) and record.label == "pulse 1":
            holder["sim"].stack_pressure = 2e6

    result, run = run_text(tmp_path, text, wrap=wrap, subscribers=[press_fails])
    with run:
        steps, events, ts = run.steps(), run.events(), run.timeseries()
    assert result.outcome == "interlock", result.message
    assert list(steps.label) == ["pulse 1"] and steps.end_reason.iloc[0] == "capacity_reached"
    pulse = ts[(ts.step == 0) & (ts.t <= steps.t_end.iloc[0])]
    assert len(pulse) == 9 and pulse.pressure.iloc[-1] < 5e6  # one block of 9 s at 1 s
    interlock = events[events.kind == "interlock"]
    assert len(interlock) == 1 and interlock.t.iloc[0] >= pulse.t.iloc[-1]
    assert np.all(ts[ts.t > pulse.t.iloc[-1]].I == 0.0)
