"""Gamry driver: limits checked by the driver as well as by the instrument, potentiostatic control, PEIS at a
DC potential, amplitude conventions, dead-man status; against the emulated GamryCOM and the simulator."""

from __future__ import annotations

import math

import numpy as np
import pytest

from daq.core.capabilities import EisRequest
from daq.core.clock import VirtualClock
from daq.core.errors import InstrumentError
from daq.core.samples import FLAG_HW_LIMIT, SampleBlock
from daq.engine.runner import run_protocol
from daq.models.cell import load_cell
from daq.storage.reader import open_run
from drivers.eis_amplitude import PROTOCOL_CONVENTION, peak_to_rms, rms_to_peak
from drivers.gamry import GamryPotentiostat
from protocols.loader import load_protocol
from simulators import gamrycom as GC
from simulators.cell import SimulatedCell
from simulators.potentiostat import SimulatedPotentiostat
from tests.conftest import EXAMPLES, run_sim

pytestmark = pytest.mark.timeout(60)

CELL = "protocols/examples/cells/li6ps5cl_99.toml"
SECTION = "IFC1010-21185"
MA_CM2 = 10.0  # A/m^2


@pytest.fixture
def spec():
    return load_cell(CELL)


@pytest.fixture
def rig(spec):
    clock = VirtualClock()
    cell = SimulatedCell(spec)
    emu = GC.GamryComEmulator(clock, {SECTION: cell})
    driver = GamryPotentiostat(com=emu, clock=clock, call_timeout=2.0, safe_timeout=3.0)
    driver.connect()
    yield clock, cell, emu, driver
    emu.release()
    driver.close()


def run_for(driver, clock, seconds, chunk=60.0) -> SampleBlock:
    blocks = []
    t_end = clock.now() + seconds
    while clock.now() < t_end - 1e-9:
        clock.sleep(min(chunk, t_end - clock.now()))
        blocks.append(driver.read())
    return SampleBlock.concat(blocks)


def simulator(spec):
    clock = VirtualClock()
    cell = SimulatedCell(spec)
    sim = SimulatedPotentiostat(cell, clock)
    sim.connect()
    return clock, cell, sim


# --- the voltage window, checked by the driver too ---------------------------------------------------------
@pytest.mark.parametrize("stops_fire", [True, False], ids=["instrument-stops", "stop-criterion-disabled"])
def test_window_ends_the_step_at_the_first_point_outside(rig, spec, stops_fire):
    clock, cell, emu, driver = rig
    emu.disable_stops(not stops_fire)
    current = spec.current(9 * MA_CM2)  # stripping: voids raise the polarisation past 0.4 V
    driver.apply_current(current, -1.0, 0.4, 1.0, duration=3000.0)
    block = run_for(driver, clock, 3000.0, chunk=5.0)
    out = np.flatnonzero(block.E_we > 0.4)
    assert out.size == 1 and out[0] == len(block) - 1  # nothing reported after the first point outside
    assert np.flatnonzero(block.flags & FLAG_HW_LIMIT).tolist() == [len(block) - 1]
    assert not emu.cell_on(SECTION)
    ref_clock, _, sim = simulator(spec)
    sim.apply_current(current, -1.0, 0.4, 1.0, duration=3000.0)
    ref = run_for(sim, ref_clock, 3000.0)
    t_trip = ref.t[np.flatnonzero(ref.flags & FLAG_HW_LIMIT)[0]]
    assert block.t[-1] == pytest.approx(t_trip, abs=1.0)  # the same sample as the simulator's limit
    damage = cell.state.void_damage
    clock.sleep(600)
    assert len(driver.read()) == 0
    emu.settle()
    assert cell.state.void_damage == damage  # no current after the read that saw the point


def test_thresholds_are_armed_with_the_stop_criteria(rig, spec):
    clock, cell, emu, driver = rig
    inst = emu.instruments[SECTION]
    driver.apply_current(-spec.current(5 * MA_CM2), -0.8, 0.6, 1.0, duration=100.0)
    assert inst.dtaq.stops == inst.dtaq.thresholds == {"VMin": -0.8, "VMax": 0.6}
    assert inst.VCH_RANGES[inst.vch_range] >= 0.8  # the Vch range holds the whole window
    driver.apply_potential(0.05, -2e-4, 3e-4, 1.0, duration=100.0)
    assert inst.dtaq.stops == inst.dtaq.thresholds == {"IMin": -2e-4, "IMax": 3e-4}
    assert inst.ctrl_mode == GC.GC.PstatMode and emu.cell_on(SECTION)


def test_negative_potential_is_not_truncated(rig, spec):
    clock, cell, emu, driver = rig
    i_lim = spec.current(20 * MA_CM2)
    driver.apply_potential(-0.35, -i_lim, i_lim, 1.0, duration=30.0)
    block = run_for(driver, clock, 30.0, chunk=10.0)
    assert len(block) == 30 and np.allclose(block.E_we, -0.35, atol=2e-3)  # not held at a 0.3 V range end
    assert np.all(block.I < 0)  # plating current, anodic-positive
    assert not emu.cell_on(SECTION)


# --- potentiostatic control ----------------------------------------------------------------------------------
def test_potentiostatic_step_matches_simulator(rig, spec):
    clock, cell, emu, driver = rig
    i_lim = spec.current(10 * MA_CM2)
    driver.apply_potential(0.05, -i_lim, i_lim, 1.0, duration=600.0)
    block = run_for(driver, clock, 605.0, chunk=20.0)
    ref_clock, ref_cell, sim = simulator(spec)
    sim.apply_potential(0.05, -i_lim, i_lim, 1.0, duration=600.0)
    ref = run_for(sim, ref_clock, 605.0, chunk=20.0)
    # A Gamry curve's points end their sample periods (the first one period after Run), as the simulator's
    assert np.array_equal(block.t, ref.t) and len(block) == 600
    assert np.allclose(block.I, ref.I, rtol=2e-3)  # 0.05 V on the 99 % cell: ~1.7 mA/cm^2
    assert np.allclose(block.E_we, 0.05, atol=2e-3) and not np.any(block.flags & FLAG_HW_LIMIT)
    assert not emu.cell_on(SECTION)  # the duration ended it, cell off
    assert emu.instruments[SECTION].full_scale(emu.instruments[SECTION].ie_range) >= 1.05 * i_lim


@pytest.mark.parametrize("stops_fire", [True, False], ids=["instrument-stops", "stop-criterion-disabled"])
def test_current_limit_ends_potentiostatic_step(rig, spec, stops_fire):
    clock, cell, emu, driver = rig
    emu.disable_stops(not stops_fire)
    i_lim = spec.current(1 * MA_CM2)  # 0.05 V drives ~1.7 mA/cm^2: beyond the limit at once
    driver.apply_potential(0.05, -i_lim, i_lim, 1.0, duration=600.0)
    block = run_for(driver, clock, 60.0, chunk=10.0)
    assert len(block) == 1 and block.I[0] > i_lim and block.flags[0] & FLAG_HW_LIMIT
    assert not emu.cell_on(SECTION)


def test_potentiostatic_requests_are_checked_before_anything_runs(rig):
    clock, cell, emu, driver = rig
    with pytest.raises(InstrumentError, match="13 V beyond"):
        driver.apply_potential(13.0, -1e-3, 1e-3, 1.0)
    with pytest.raises(InstrumentError, match="current limits .* are empty"):
        driver.apply_potential(0.1, 1e-3, -1e-3, 1.0)
    assert "SignalConst.Init" not in emu.calls and not emu.cell_on(SECTION)


def test_potentiostatic_protocol_through_gamry_matches_simulator(tmp_path):
    protocol_file = tmp_path / "hold.toml"
    protocol_file.write_text(
        f"""
[protocol]
name = "hold"
cell = "{(EXAMPLES / "cells/li6ps5cl_99.toml").as_posix()}"

[[steps]]
kind = "potentiostatic"
potential = "0.05 V"
duration = "10 min"
i_limit = "5 mA/cm^2"

[[steps]]
kind = "potentiostatic"
potential = "0.1 V"
duration = "10 min"
i_limit = "2 mA/cm^2"
"""
    )
    ref = run_sim(protocol_file, tmp_path / "sim.h5")
    spec = load_cell(CELL)
    clock = VirtualClock()
    emu = GC.GamryComEmulator(clock, {SECTION: SimulatedCell(spec)})
    driver = GamryPotentiostat(com=emu, clock=clock)
    result = run_protocol(load_protocol(protocol_file), spec, driver, clock, tmp_path / "g.h5", block_interval=4.0)
    assert result.outcome == ref.outcome
    with open_run(result.path) as run, open_run(ref.path) as sim:
        got, want = list(run.steps()["end_reason"]), list(sim.steps()["end_reason"])
        q, q_ref = run.steps()["Q"].to_numpy(), sim.steps()["Q"].to_numpy()
    assert got == want and got[:2] == ["time_reached", "current_limit"]
    assert np.allclose(q, q_ref, rtol=0.02, atol=1e-4)
    assert not emu.cell_on(SECTION)


# --- impedance: DC potential, "vs Eoc", amplitudes -----------------------------------------------------------
def test_peis_at_dc_potential_matches_simulator(rig, spec):
    clock, cell, emu, driver = rig
    freqs = np.logspace(5, 0, 11)
    i_lim = spec.current(10 * MA_CM2)
    driver.apply_potential(0.02, -i_lim, i_lim, 1.0)  # as the engine does for an eis step with a dc
    points = list(driver.impedance(EisRequest("potentiostatic", freqs, 0.005, 0.02)))
    ref_clock, ref_cell, sim = simulator(spec)
    sim.apply_potential(0.02, -i_lim, i_lim, 1.0)
    ref = list(sim.impedance(EisRequest("potentiostatic", freqs, 0.005, 0.02)))
    z = np.array([complex(p.z_real, p.z_imag) for p in points])
    z_ref = np.array([complex(p.z_real, p.z_imag) for p in ref])
    assert len(points) == len(ref) == 11 and np.allclose(z, z_ref, rtol=0.03)
    i_dc = cell.current_for_potential(0.02)
    assert all(p.E_dc == pytest.approx(0.02, abs=1e-3) and p.I_dc == pytest.approx(i_dc, rel=0.01) for p in points)
    assert emu.cell_on(SECTION)  # the held potential goes on after the sweep
    driver.open_circuit()
    assert not emu.cell_on(SECTION)
    assert emu.excitations == [("potentiostatic", pytest.approx(0.005))] * 11


def test_peis_vs_eoc_measures_the_open_circuit_potential_first(rig, spec):
    clock, cell, emu, driver = rig
    driver.open_circuit(1.0)  # as the engine does for an eis step at "ocv"
    clock.sleep(30)
    points = list(driver.impedance(EisRequest("potentiostatic", [1e4, 10.0], 0.005, None)))
    assert driver.last_eoc is not None and abs(driver.last_eoc) < 1e-2
    assert all(p.E_dc == pytest.approx(driver.last_eoc, abs=1e-3) for p in points)
    calls = emu.calls
    assert calls.index("Pstat.MeasureV") < calls.index("Pstat.SetVoltage") < len(calls)
    assert not emu.cell_on(SECTION)


def test_protocol_amplitude_is_the_peak_excitation_on_the_instrument(rig, spec):
    clock, cell, emu, driver = rig
    assert PROTOCOL_CONVENTION == "peak"
    assert rms_to_peak(1.0) == pytest.approx(math.sqrt(2)) and peak_to_rms(rms_to_peak(0.0123)) == pytest.approx(0.0123)
    list(driver.impedance(EisRequest("galvanostatic", [1e3, 10.0], 5e-6, 0.0)))
    list(driver.impedance(EisRequest("potentiostatic", [1e3], 0.01, 0.0)))
    assert emu.excitations == [
        ("galvanostatic", pytest.approx(5e-6, rel=1e-12)),
        ("galvanostatic", pytest.approx(5e-6, rel=1e-12)),
        ("potentiostatic", pytest.approx(0.01, rel=1e-12)),
    ]


def test_peis_protocol_through_gamry_matches_simulator(tmp_path):
    overrides = {
        "steps.1.duration": "1 min",
        "steps.3.duration": "1 min",
        "steps.2.f_end": "10 Hz",
        "steps.4.f_end": "10 Hz",
    }
    ref = run_sim(EXAMPLES / "peis.toml", tmp_path / "sim.h5", overrides=overrides)
    spec = load_cell(CELL)
    clock = VirtualClock()
    emu = GC.GamryComEmulator(clock, {SECTION: SimulatedCell(spec)})
    driver = GamryPotentiostat(com=emu, clock=clock)
    protocol = load_protocol(EXAMPLES / "peis.toml", overrides)
    result = run_protocol(protocol, spec, driver, clock, tmp_path / "g.h5", block_interval=4.0)
    assert result.outcome == ref.outcome == "completed"
    with open_run(result.path) as run, open_run(ref.path) as sim:
        n, n_ref = len(run.spectra()), len(sim.spectra())
        assert n == n_ref >= 2
        for index in range(n):
            got, want = run.spectrum(index), sim.spectrum(index)
            assert len(got) == len(want) == 51
            z = got["z_real"].to_numpy() + 1j * got["z_imag"].to_numpy()
            z_ref = want["z_real"].to_numpy() + 1j * want["z_imag"].to_numpy()
            assert np.allclose(z, z_ref, rtol=0.03)
        assert np.allclose(run.spectra()["amplitude"], 0.005)  # the protocol's peak amplitude, stored as such
    assert not emu.cell_on(SECTION)


# --- dead-man ----------------------------------------------------------------------------------------------
def test_no_dead_man_guarantee_is_declared_and_true_of_the_emulated_instrument(spec):
    clock = VirtualClock()
    emu = GC.GamryComEmulator(clock, {SECTION: SimulatedCell(spec)})
    driver = GamryPotentiostat(com=emu, clock=clock)
    assert driver.deadman_guaranteed is False and driver.deadman_s is None and "no dead-man" in driver.deadman_note
    driver.connect()
    driver.apply_current(-spec.current(1 * MA_CM2), -5, 5, 1.0, duration=60.0)
    emu.crash_server()  # the PC side is gone: nobody switches the cell off
    clock.sleep(3600)
    assert emu.cell_on(SECTION)  # the curve ended long ago; the instrument still drives the cell
    driver.close()
    assert not emu.cell_on(SECTION)
