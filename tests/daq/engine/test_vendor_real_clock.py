"""Shortened protocols on a scaled wall clock through the lab's drivers against their emulators: the
Keithley 2450 over pyvisa-py to the SCPI emulator on loopback, Gamry against the GamryCOM emulator,
BioLogic against the EClib emulator. Each gives the step table, stop reasons and outcome of the
virtual-clock simulator run (83 % cell: short in CCD plating; 99 %: none), each step's charge within
one sample period's.

The Keithley has no reference electrode and no impedance: its short is judged on the cell voltage, and
the simulator's impedance step after a short has no counterpart (the engine skips steps the instrument
cannot run), so its short capacity is compared with the same driver on a virtual clock.

The impedance after a short is a potentiostatic sweep "vs open circuit": the simulator holds the cell
open (no charge), a Gamry or BioLogic holds it at the open-circuit potential it measured just before, so
the DC current is what the measurement noise of that potential drives through the cell. That step's
charge is bounded by it: duration x 4 sigma of the voltage noise / the smallest |Z| of its spectrum.
"""

from __future__ import annotations

import numpy as np
import pytest

from daq.core.clock import ScaledClock, VirtualClock
from daq.engine.runner import run_protocol
from daq.models.cell import load_cell
from daq.storage.reader import open_run
from drivers.keithley2450 import Keithley2450
from protocols.loader import load_protocol
from simulators.cell import SimulatedCell
from simulators.scpi_server import ScpiServer
from tests.conftest import EXAMPLES, cell_file
from tests.daq.engine.test_real_clock import ASYM_SHORT, CCD, CCD_SHORT, assert_same, run
from tests.drivers.test_vendor_protocols import biologic, gamry

pytestmark = pytest.mark.timeout(180)


def keithley(cell, clock):
    server = ScpiServer(SimulatedCell(cell), clock).start()
    return Keithley2450(server.resource, clock, timeout=2.0), server.stop


def gamry_release(cell, clock):
    driver, emu = gamry(cell, clock)
    return driver, emu.release


def biologic_release(cell, clock):
    driver, _ = biologic(cell, clock)
    return driver, lambda: None


def run_driver(make, case, density, clock, out):
    name, overrides = case
    protocol = load_protocol(EXAMPLES / name, overrides)
    cell = load_cell(cell_file(density))
    driver, release = make(cell, clock)
    try:
        result = run_protocol(protocol, cell, driver, clock, out, transcript=False)
    finally:
        release()
    with open_run(result.path) as f:
        return result, f.steps(), f.timeseries()


def same_stops(sim, drv) -> None:
    """Outcome, step table and stop reasons of the simulator run; impedance steps the driver cannot run
    are the only rows it may lack."""
    (r0, s0, _), (r1, s1, _) = sim, drv
    assert r1.outcome == r0.outcome, r1.message
    table = ["kind", "label", "cycle", "end_reason"]
    runnable = s0[s0.kind != "eis"][table].to_dict("records")
    assert s1[table].to_dict("records") == runnable


def open_circuit_sweep_charge(result, index: int, noise_voltage: float) -> float:
    """Largest charge (C) step ``index``, an impedance sweep around the measured open-circuit potential,
    can pass: its duration x 4 sigma of the voltage noise / the smallest |Z| of its spectrum."""
    with open_run(result.path) as f:
        step = f.steps().set_index("index").loc[index]
        spectra = f.spectra()
        k = int(np.flatnonzero(spectra.step.to_numpy() == index)[0])
        points = f.spectrum(k)
    z_min = float(np.hypot(points.z_real, points.z_imag).min())
    return float(step.t_end - step.t_start) * 4 * noise_voltage / z_min


def same_as_simulator(sim, drv, noise_voltage: float) -> None:
    """assert_same for the steps with current; an open-circuit sweep within its noise-driven bound."""
    (r0, s0, ts0), (r1, s1, ts1) = sim, drv
    sweeps = (s0.kind == "eis").to_numpy() & (s0.Q.to_numpy() == 0)
    assert r1.outcome == r0.outcome, r1.message
    table = ["index", "kind", "label", "cycle", "end_reason"]
    assert s1[table].to_dict("records") == s0[table].to_dict("records")
    keep = s0.index[~sweeps]
    assert_same((r0, s0.loc[keep], ts0), (r1, s1.loc[keep], ts1))
    for index in s0["index"][sweeps]:
        bound = open_circuit_sweep_charge(r1, int(index), noise_voltage)
        q = float(s1.set_index("index").Q.loc[index])
        assert abs(q) <= bound, f"step {index}: {q:.3e} C at open circuit, more than the noise allows ({bound:.3e} C)"


SPEED = 60  # clock seconds per wall second
CCD_83 = (CCD[0], {"steps.1.duration": "10 s"})  # shorts after about 0.28 mAh/cm^2 (110 s of plating)


@pytest.mark.parametrize(
    "case,density",
    [
        pytest.param(ASYM_SHORT, 99, id="asymmetric-99"),
        pytest.param(CCD_SHORT, 99, id="ccd-99"),
        pytest.param(CCD_83, 83, id="ccd-83"),
    ],
)
def test_keithley_over_pyvisa_on_a_scaled_clock(tmp_path, case, density):
    sim = run(case, density, VirtualClock(), tmp_path / "sim.h5")
    virtual = run_driver(keithley, case, density, VirtualClock(), tmp_path / "virtual.h5")
    scaled = run_driver(keithley, case, density, ScaledClock(SPEED), tmp_path / "scaled.h5")
    same_stops(sim, scaled)
    assert_same(virtual, scaled)
    assert sim[0].outcome == ("short_circuit" if density == 83 else "completed")


@pytest.mark.parametrize(
    "make,case,density",
    [
        pytest.param(gamry_release, ASYM_SHORT, 99, id="gamry-asymmetric-99"),
        pytest.param(gamry_release, CCD_83, 83, id="gamry-ccd-83"),
        pytest.param(biologic_release, ASYM_SHORT, 99, id="biologic-asymmetric-99"),
        pytest.param(biologic_release, CCD_83, 83, id="biologic-ccd-83"),
    ],
)
def test_vendor_api_drivers_on_a_scaled_clock(tmp_path, make, case, density):
    sim = run(case, density, VirtualClock(), tmp_path / "sim.h5")
    scaled = run_driver(make, case, density, ScaledClock(SPEED), tmp_path / "scaled.h5")
    same_as_simulator(sim, scaled, load_cell(cell_file(density)).simulation.noise_voltage)
