"""The end-of-run summary of a cycling run that shorts: totals, cycles completed, where the short was."""

from __future__ import annotations

import h5py
import numpy as np

from daq.commands.summary import summary
from daq.models.cell import load_cell
from protocols.loader import load_protocol
from tests.conftest import EXAMPLES, cell_file, run_sim

SHORTING = {
    "cycles": 20,
    "steps.2.steps.1.current_density": "9 mA/cm^2",
    "steps.2.steps.2.current_density": "1 mA/cm^2",
}


def test_summary_of_a_shorted_cycling_run(tmp_path):
    out = tmp_path / "run.h5"
    protocol_path = EXAMPLES / "asymmetric_cycling.toml"
    result = run_sim(protocol_path, out, 83, overrides=SHORTING)
    text = summary(result, load_protocol(protocol_path, SHORTING), load_cell(cell_file(83)), simulated=True)
    with h5py.File(out, "r", locking=False) as f:
        q, step = f["timeseries/Q"][()], f["timeseries/step"][()]
        cycle = f["timeseries/cycle"][()]
        area = f["cell"].attrs["electrodes.working_area"]
    last_of_step = np.flatnonzero(np.diff(step, append=-1) != 0)
    total = -q[last_of_step][q[last_of_step] < 0].sum() / area / 36000.0  # mAh/cm^2
    assert total > 2.0
    assert f"{total:.4g} mAh/cm^2 in total" in text
    assert "capacity reached" not in text  # a cycling run never "reached" one half cycle's capacity
    shorted_cycle = int(cycle[-1])
    assert f"cycle {shorted_cycle}, " in text
    assert f"cycles:            {shorted_cycle - 1} completed of {result.cycles} started" in text
