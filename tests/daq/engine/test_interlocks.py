"""Interlocks hold the cell safe while a condition lasts, resume when it clears, stop if it does not."""

import numpy as np
import pytest

from daq.core.clock import VirtualClock
from daq.core.errors import ConfigError
from daq.core.records import Samples
from daq.engine.runner import run_protocol
from daq.models.cell import load_cell
from daq.storage.reader import open_run
from protocols.loader import protocol_from_text
from simulators.rig import simulated_rig
from tests.conftest import cell_file

PROTOCOL = """
[protocol]
name = "interlocked plating"
[interlocks.pressure]
min = "5 MPa"
max = "9 MPa"
clear_wait = "2 min"
timeout = "{timeout}"
[[steps]]
kind = "galvanostatic"
direction = "plate"
current_density = "1 mA/cm^2"
capacity = "0.5 mAh/cm^2"
"""


def run_with_pressure_drop(tmp_path, timeout, restore_after):
    """Plating at 1 mA/cm^2 (1800 s); the press loses pressure at 600 s and regains it ``restore_after`` later."""
    protocol = protocol_from_text(PROTOCOL.format(timeout=timeout))
    cell = load_cell(cell_file(99))
    clock = VirtualClock()
    sim, pstat, transducer = simulated_rig(cell, clock)

    def press(record):
        if isinstance(record, Samples):
            t = clock.now()
            sim.stack_pressure = 2e6 if 600 <= t < 600 + restore_after else 7e6

    return run_protocol(
        protocol, cell, pstat, clock, tmp_path / "r.h5", transducer=transducer, subscribers=[press], block_samples=16
    )


def test_pressure_loss_pauses_safe_and_resumes(tmp_path):
    res = run_with_pressure_drop(tmp_path, "1 h", restore_after=900)
    assert res.outcome == "completed"
    with open_run(res.path) as run:
        ev = run.events()
        kinds = list(ev.kind)
        assert kinds.index("interlock") < kinds.index("interlock_cleared")
        t_trip, t_clear = ev.t[ev.kind == "interlock"].iloc[0], ev.t[ev.kind == "interlock_cleared"].iloc[0]
        ts = run.timeseries()
        held = ts[(ts.t > t_trip + 1) & (ts.t < t_clear)]
        assert len(held) > 100 and np.all(held.I == 0.0) and held.pressure.iloc[0] < 5e6
        back = held.t[held.pressure > 5e6].iloc[0]  # pressure restored...
        assert t_clear - back >= 120 - 16  # ...and held clear for clear_wait (within a block) before resuming
        area = run.cell["electrodes.working_area"]
        assert abs(run.steps().Q.iloc[0]) / area / 36000 == pytest.approx(0.5, rel=1e-6)  # capacity kept


def test_interlock_that_never_clears_stops_the_run(tmp_path):
    res = run_with_pressure_drop(tmp_path, "10 min", restore_after=1e9)
    assert res.outcome == "interlock"
    assert "did not clear" in res.message


def test_interlock_config_errors():
    with pytest.raises(ConfigError, match="interlocks.pressure.min.*must be below max"):
        protocol_from_text(PROTOCOL.format(timeout="1 h").replace('max = "9 MPa"', 'max = "1 MPa"'))
    with pytest.raises(ConfigError, match="unknown interlock"):
        protocol_from_text(PROTOCOL.format(timeout="1 h").replace("[interlocks.pressure]", "[interlocks.humidity]"))
