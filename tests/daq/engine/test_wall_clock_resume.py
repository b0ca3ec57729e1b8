"""A run killed on a wall clock and resumed ends its interrupted step exactly at its capacity."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

from daq.core.clock import ScaledClock
from daq.engine.runner import resume_protocol
from daq.models.cell import load_cell
from daq.storage.reader import open_run
from simulators.rig import simulated_rig
from tests.conftest import EXAMPLES, ROOT

Q_UNIT = 36000.0  # C/m^2 per mAh/cm^2
CAPACITY = 1.0  # mAh/cm^2: 400 s of plating at 9 mA/cm^2, 4 s on the 100x clock
OVERRIDES = {"steps.1.duration": "10 s", "steps.2.capacity": f"{CAPACITY} mAh/cm^2"}

KILL_IN_PLATING = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from daq.core.clock import ScaledClock
    from daq.core.records import Samples
    from daq.engine.runner import run_protocol
    from daq.models.cell import load_cell, read_cell_text
    from protocols.loader import load_protocol
    from simulators.rig import simulated_rig
    from tests.conftest import EXAMPLES
    seen = [0]
    def listener(record):
        # Counted in samples, not blocks: a stalled machine reads the clock's backlog as one big block.
        if isinstance(record, Samples):
            seen[0] += int((record.columns["step"] == 1).sum())
            if seen[0] >= {samples}:
                os.kill(os.getpid(), signal.SIGKILL)
    path = EXAMPLES / "cells" / "li6ps5cl_99.toml"
    cell = load_cell(path)
    clock = ScaledClock(100)
    _, pstat, transducer = simulated_rig(cell, clock)
    protocol = load_protocol(EXAMPLES / "ccd_single_plating.toml", {overrides!r})
    run_protocol(protocol, cell, pstat, clock, {out!r}, transducer=transducer, subscribers=[listener],
                 flush_interval=0.0, cell_source=read_cell_text(path))
""")


@pytest.mark.parametrize("samples", [7, 40, 113])
def test_resume_after_a_kill_on_a_wall_clock_is_exact_to_the_charge(tmp_path, samples):
    out = tmp_path / "run.h5"
    code = KILL_IN_PLATING.format(root=str(ROOT), out=str(out), samples=samples, overrides=OVERRIDES)
    proc = subprocess.run([sys.executable, "-c", code], timeout=120)
    assert proc.returncode == -signal.SIGKILL
    with open_run(out) as run:
        point = run.resume_point()
        area = run.cell["electrodes.working_area"]
    assert point.steps_done == 1 and 0 < -point.charge / area / Q_UNIT < CAPACITY
    cell = load_cell(EXAMPLES / "cells" / "li6ps5cl_99.toml")
    clock = ScaledClock(100)
    _, pstat, transducer = simulated_rig(cell, clock)
    result = resume_protocol(out, pstat, clock, transducer)
    assert result.outcome == "completed", result.message
    with open_run(out) as run:
        steps, ts = run.steps(), run.timeseries()
    assert list(steps.end_reason) == ["time_reached", "capacity_reached"]
    assert -steps.Q.iloc[1] / area / Q_UNIT == pytest.approx(CAPACITY, rel=1e-9)
    plate = ts[ts.step == 1]
    assert len(plate) == 400  # one sample per second of the 400 s, none lost, none twice
