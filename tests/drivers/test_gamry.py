"""Gamry driver end to end against the emulated GamryCOM object model."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from daq.core.capabilities import EisRequest
from daq.core.clock import RealClock, VirtualClock
from daq.core.errors import InstrumentError
from daq.core.samples import FLAG_HW_LIMIT, FLAG_OVERLOAD, SampleBlock
from daq.models.cell import load_cell
from drivers import gamry as G
from drivers import gamry_curves
from drivers.gamry import GamryPotentiostat, describe_hresult
from simulators import gamrycom as GC
from simulators.cell import SimulatedCell
from simulators.potentiostat import SimulatedPotentiostat
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(60)

CELL = "protocols/examples/cells/li6ps5cl_99.toml"
SECTION = "IFC1010-21185"
MA_CM2 = 10.0  # A/m^2
CAPACITY = 8 * 36000.0  # C/m^2, 8 mAh/cm^2


@pytest.fixture
def spec():
    return load_cell(CELL)


@pytest.fixture
def rig(spec):
    clock = VirtualClock()
    cell = SimulatedCell(spec)
    emu = GC.GamryComEmulator(clock, {SECTION: cell})
    driver = GamryPotentiostat(com=emu, clock=clock, call_timeout=2.0, safe_timeout=3.0)
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


def simulated(spec, current, duration, v_limits=(-5.0, 5.0)):
    clock = VirtualClock()
    cell = SimulatedCell(spec)
    sim = SimulatedPotentiostat(cell, clock)
    sim.connect()
    sim.apply_current(current, *v_limits, 1.0, duration=duration)
    return cell, run_for(sim, clock, duration + 5)


# --- outcome ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("density, shorts", [(9 * MA_CM2, False), (10 * MA_CM2, True)])
def test_plating_reproduces_simulator_outcome(rig, spec, density, shorts):
    clock, cell, emu, driver = rig
    info = driver.connect()
    assert info.vendor == "Gamry" and info.serial == "21185" and info.resource == f"gamrycom://{SECTION}"
    current = -spec.current(density)
    duration = CAPACITY / density
    driver.apply_current(current, -5.0, 5.0, 1.0, duration=duration)
    block = run_for(driver, clock, duration + 5)
    ref_cell, ref = simulated(spec, current, duration)

    assert cell.state.shorted is shorts is ref_cell.state.shorted
    if shorts:
        assert abs(cell.state.short_time - ref_cell.state.short_time) <= 2.0
    assert not emu.cell_on(SECTION)
    assert abs(block.t[-1] - ref.t[-1]) <= 1.0 and abs(len(block) - len(ref)) <= 2
    assert np.allclose(block.I, current, rtol=1e-9)
    common = np.intersect1d(np.round(block.t), np.round(ref.t))[10:-10]
    assert np.median(np.abs(np.interp(common, block.t, block.E_we) - np.interp(common, ref.t, ref.E_we))) < 3e-3
    assert np.all(np.isfinite(block.E_cell))  # the rig's auxiliary input measures WE-CE
    # The instrument holds the current after the curve ends until the driver's next read switches it off.
    assert 0 <= cell.state.plated - ref_cell.state.plated <= abs(current) / spec.electrodes.working_area * 5.01
    assert "Pstat.SetIConvention" in emu.calls and "DtaqCiiv.SetStopVMax" in emu.calls


def test_hardware_voltage_limit_stops_current(rig, spec):
    clock, cell, emu, driver = rig
    driver.connect()
    current = spec.current(9 * MA_CM2)  # stripping: voids raise the polarisation
    driver.apply_current(current, -1.0, 0.4, 1.0, duration=3000.0)
    block = run_for(driver, clock, 3000.0, chunk=5.0)
    trip = np.flatnonzero(block.flags & FLAG_HW_LIMIT)
    assert trip.size == 1 and trip[0] == len(block) - 1
    assert block.E_we[-1] >= 0.4 and np.all(block.E_we[:-1] < 0.4)
    assert not emu.cell_on(SECTION)
    ref_cell, ref = simulated(spec, current, 3000.0, (-1.0, 0.4))
    assert abs(block.t[-1] - ref.t[np.flatnonzero(ref.flags & FLAG_HW_LIMIT)[0]]) <= 3.0
    damage = cell.state.void_damage
    clock.sleep(600)
    assert len(driver.read()) == 0
    emu.settle()
    assert cell.state.void_damage == damage


def test_open_ended_step_is_rearmed(rig, spec, monkeypatch):
    monkeypatch.setattr(gamry_curves, "MAX_CURVE_POINTS", 102)  # 100 s curves at 1 s
    clock, cell, emu, driver = rig
    driver.connect()
    driver.apply_current(-spec.current(5 * MA_CM2), -5, 5, 1.0)
    block = run_for(driver, clock, 350.0, chunk=7.0)
    assert emu.cell_on(SECTION) and emu.calls.count("DtaqCiiv.Run") >= 4
    assert block.t[-1] > 340 and np.max(np.diff(block.t)) <= 8.0
    q = cell.state.plated * spec.electrodes.working_area
    assert q == pytest.approx(spec.current(5 * MA_CM2) * 350.0, rel=0.01)  # current never stopped
    driver.open_circuit()
    assert not emu.cell_on(SECTION)


def test_open_circuit_sampling(rig):
    clock, cell, emu, driver = rig
    driver.connect()
    driver.open_circuit(2.0)
    block = run_for(driver, clock, 60.0, chunk=10.0)
    assert len(block) >= 30 and np.all(block.I == 0) and np.all(np.abs(block.E_we) < 0.01)
    assert not emu.cell_on(SECTION)


# --- impedance ---------------------------------------------------------------------------------------------
def test_geis_and_peis_match_cell_impedance(rig):
    clock, cell, emu, driver = rig
    driver.connect()
    freqs = np.logspace(6, -1, 15)
    points = list(driver.impedance(EisRequest("galvanostatic", freqs, 5e-6, 0.0)))
    z = np.array([complex(p.z_real, p.z_imag) for p in points])
    assert [p.frequency for p in points] == pytest.approx(freqs)
    assert np.allclose(z, cell.impedance(freqs, 0.0), rtol=0.02)
    assert all(p.ok for p in points) and np.all(np.diff([p.t for p in points]) > 0)
    assert not emu.cell_on(SECTION)
    points = list(driver.impedance(EisRequest("potentiostatic", [1e5, 1e3, 10.0], 0.01, None)))
    z = np.array([complex(p.z_real, p.z_imag) for p in points])
    assert np.allclose(z, cell.impedance(np.array([1e5, 1e3, 10.0]), 0.0), rtol=0.02)
    assert not emu.cell_on(SECTION)
    with pytest.raises(InstrumentError, match="outside"):
        driver.impedance(EisRequest("galvanostatic", [1e7], 1e-6, 0.0))


def test_operando_geis_while_plating(rig, spec):
    clock, cell, emu, driver = rig
    driver.connect()
    current = -spec.current(9 * MA_CM2)
    driver.apply_current(current, -5, 5, 1.0, duration=1200.0)
    before = run_for(driver, clock, 300.0)
    freqs = np.logspace(5, 0, 11)
    points = []
    for p in driver.impedance(EisRequest("galvanostatic", freqs, 5e-6, current)):
        points.append(p)
        assert emu.cell_on(SECTION)
    z = np.array([complex(p.z_real, p.z_imag) for p in points])
    assert np.allclose(z, cell.impedance(freqs, current), rtol=0.03)
    assert all(p.I_dc == pytest.approx(current, rel=1e-6) for p in points)
    after = run_for(driver, clock, 1000.0)
    assert len(before) > 250 and len(after) > 800
    assert after.t[-1] <= 1200.0 + 1.0 and not emu.cell_on(SECTION)
    q = cell.state.plated * spec.electrodes.working_area
    assert q == pytest.approx(abs(current) * 1200.0, rel=0.01)  # no gap in the plating current


@pytest.mark.parametrize("statuses, ok", [([1, 1], True), ([1] * 4, False)])
def test_readz_retry_is_bounded(rig, statuses, ok):
    clock, cell, emu, driver = rig
    driver.connect()
    emu.readz_statuses.extend(statuses)
    points = list(driver.impedance(EisRequest("galvanostatic", [1e3, 100.0], 5e-6, 0.0)))
    assert points[0].ok is ok and points[1].ok
    measures = emu.calls.count("ReadZ.Measure")
    assert measures == (3 if ok else driver.readz_retries + 1) + 1


def test_readz_error_ends_safely(rig, spec):
    clock, cell, emu, driver = rig
    driver.connect()
    driver.apply_current(-spec.current(9 * MA_CM2), -5, 5, 1.0, duration=1000.0)
    clock.sleep(10)
    emu.readz_statuses.extend([0, 2])
    gen = driver.impedance(EisRequest("galvanostatic", [1e3, 100.0, 10.0], 5e-6, None))
    next(gen)
    with pytest.raises(InstrumentError, match="ReadZ error at 100 Hz.*cell switched off"):
        next(gen)
    assert not emu.cell_on(SECTION)


def test_events_that_never_come_time_out(rig, spec):
    clock, cell, emu, driver = rig
    driver.connect()
    driver.apply_current(-spec.current(9 * MA_CM2), -5, 5, 1.0, duration=1000.0)
    emu.suppress_events = True
    t0 = time.monotonic()
    with pytest.raises(InstrumentError, match="no ReadZ result at 1000 Hz.*cell switched off"):
        list(driver.impedance(EisRequest("galvanostatic", [1e3], 5e-6, None)))
    assert time.monotonic() - t0 < 10
    assert not emu.cell_on(SECTION)


# --- faults ------------------------------------------------------------------------------------------------
def test_device_in_use_is_readable(spec):
    clock = VirtualClock()
    emu = GC.GamryComEmulator(clock, {SECTION: SimulatedCell(spec)})
    emu.fail("Open", GC.GAMRY_DEVICE_IN_USE)
    with pytest.raises(InstrumentError, match=r"0xE0000027 GAMRY_DEVICE_IN_USE.*Framework"):
        GamryPotentiostat(com=emu, clock=clock).connect()
    with pytest.raises(InstrumentError, match="no instrument 'IFC1010-99999'"):
        GamryPotentiostat("IFC1010-99999", com=emu, clock=clock).connect()


def test_reference_family_uses_pc5_object(spec):
    clock = VirtualClock()
    emu = GC.GamryComEmulator(clock, {"REF600-12345": SimulatedCell(spec)})
    driver = GamryPotentiostat(com=emu, clock=clock)
    assert driver.connect().model == "Reference 600+"
    assert driver.capabilities.max_current == 0.6 and driver.capabilities.eis_max_frequency == 5e6
    driver.close()


@pytest.mark.parametrize(
    "method, hresult",
    [("DtaqCiiv.Run", GC.E_FAIL), ("Cook", GC.GAMRY_DEVICE_NOT_OPEN), ("SignalConst.Init", GC.GAMRY_INVALID_SIGNAL)],
)
def test_hresults_end_with_cell_off(rig, spec, method, hresult):
    clock, cell, emu, driver = rig
    driver.connect()
    driver.apply_current(-spec.current(9 * MA_CM2), -5, 5, 1.0, duration=1000.0)
    clock.sleep(10)
    driver.read()
    emu.fail(method, hresult)
    with pytest.raises(InstrumentError) as err:
        if method in ("DtaqCiiv.Run", "SignalConst.Init"):
            driver.apply_current(-spec.current(9 * MA_CM2), -5, 5, 1.0, duration=1000.0)
        else:
            clock.sleep(5)
            driver.read()
    text = str(err.value)
    assert f"0x{hresult:08X}" in text and G.HRESULTS[hresult][0] in text and "cell switched off" in text
    assert not emu.cell_on(SECTION)


@pytest.mark.parametrize("kind", ["columns", "nan", "time"])
def test_garbage_from_cook_is_refused(rig, spec, kind):
    clock, cell, emu, driver = rig
    driver.connect()
    driver.apply_current(-spec.current(9 * MA_CM2), -5, 5, 1.0, duration=1000.0)
    clock.sleep(10)
    if kind == "time":
        driver.read()
        clock.sleep(10)
    emu.garbage(kind)
    with pytest.raises(InstrumentError, match="malformed data from Cook.*cell switched off"):
        driver.read()
    assert not emu.cell_on(SECTION)


def test_overload_is_flagged_not_fatal(rig, spec):
    clock, cell, emu, driver = rig
    driver.connect()
    driver.apply_current(-spec.current(9 * MA_CM2), -5, 5, 1.0, duration=100.0)
    clock.sleep(10)
    emu.overload(SECTION)
    block = run_for(driver, clock, 50.0, chunk=10)
    assert np.any(block.flags & FLAG_OVERLOAD) and not np.all(block.flags & FLAG_OVERLOAD)


def test_hung_call_times_out_then_switches_off(rig, spec):
    clock, cell, emu, driver = rig
    driver.connect()
    driver.call_timeout = 0.2
    driver.apply_current(-spec.current(9 * MA_CM2), -5, 5, 1.0, duration=1000.0)
    clock.sleep(10)
    emu.hang("Cook", seconds=1.0)
    t0 = time.monotonic()
    with pytest.raises(InstrumentError, match="did not answer within 0.2 s.*cell switched off"):
        driver.read()
    assert time.monotonic() - t0 < 5
    assert not emu.cell_on(SECTION)


def test_permanent_hang_is_reported(rig, spec):
    clock, cell, emu, driver = rig
    driver.connect()
    driver.call_timeout, driver.safe_timeout = 0.2, 0.4
    driver.apply_current(-spec.current(9 * MA_CM2), -5, 5, 1.0, duration=1000.0)
    clock.sleep(10)
    emu.hang("Cook", seconds=None)
    t0 = time.monotonic()
    with pytest.raises(InstrumentError, match="WARNING: GamryCOM did not answer .* could not be switched off"):
        driver.read()
    assert time.monotonic() - t0 < 5
    emu.release()  # the stuck call returns; the queued cell-off then goes through
    wait_until(lambda: not emu.cell_on(SECTION), what="the queued cell-off")


def test_server_crash_switches_off_through_new_server(rig, spec):
    clock, cell, emu, driver = rig
    driver.connect()
    driver.apply_current(-spec.current(9 * MA_CM2), -5, 5, 1.0, duration=1000.0)
    clock.sleep(10)
    driver.read()
    emu.crash_server()
    assert emu.cell_on(SECTION)  # the hardware keeps its output when the server dies
    clock.sleep(5)
    with pytest.raises(InstrumentError, match="RPC_S_SERVER_UNAVAILABLE.*cell switched off"):
        driver.read()
    assert not emu.cell_on(SECTION)


def test_real_clock_watchdog_switches_off_between_reads(spec):
    clock = RealClock()
    cell = SimulatedCell(spec)
    emu = GC.GamryComEmulator(clock, {SECTION: cell})
    driver = GamryPotentiostat(com=emu, clock=clock, watchdog_period=0.05)
    driver.connect()
    try:
        driver.apply_current(-spec.current(9 * MA_CM2), -5, 5, 0.02, duration=0.3)
        # no read(): the watchdog sees the curve end (0.3 s) and switches off by itself
        wait_until(lambda: not emu.cell_on(SECTION), what="the watchdog to switch the cell off")
        block = driver.read()
        assert 10 <= len(block) <= 16
    finally:
        driver.close()


def test_real_clock_watchdog_failure_is_reported_at_next_read(spec):
    clock = RealClock()
    emu = GC.GamryComEmulator(clock, {SECTION: SimulatedCell(spec)})
    driver = GamryPotentiostat(com=emu, clock=clock, watchdog_period=0.05)
    driver.connect()
    try:
        driver.apply_current(-spec.current(9 * MA_CM2), -5, 5, 0.02, duration=30.0)
        emu.garbage("nan")
        # the watchdog finds it, switches off and records the failure: the first read after the switch-off
        # reports it, even one made while the watchdog is still recording it
        wait_until(lambda: not emu.cell_on(SECTION), what="the watchdog to switch the cell off")
        with pytest.raises(InstrumentError, match="malformed data from Cook.*cell switched off"):
            driver.read()
    finally:
        driver.close()


def test_missing_vendor_software_gives_clear_message(monkeypatch):
    if sys.platform != "win32":
        with pytest.raises(InstrumentError, match="need Windows with the Gamry software"):
            GamryPotentiostat(clock=VirtualClock()).connect()
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setitem(sys.modules, "comtypes", None)  # import comtypes -> ImportError
    with pytest.raises(InstrumentError, match="comtypes package is missing.*pip install comtypes"):
        GamryPotentiostat(clock=VirtualClock()).connect()


def test_hresult_decoding():
    text = describe_hresult(-2147023174, "The RPC server is unavailable.")
    assert "0x800706BA RPC_S_SERVER_UNAVAILABLE" in text and "GamryCOM.exe" in text
    assert "GAMRY_DEVICE_NOT_AUTHORIZED" in describe_hresult(0xE000002E)
    assert "not in the driver's table" in describe_hresult(0xE0001234)
    for code in (
        GC.E_FAIL,
        GC.E_INVALIDARG,
        GC.RPC_S_SERVER_UNAVAILABLE,
        GC.RPC_E_TIMEOUT,
        GC.GAMRY_DEVICE_NOT_OPEN,
        GC.GAMRY_DEVICE_IN_USE,
        GC.GAMRY_INVALID_DEVICE_TYPE,
        GC.GAMRY_DEVICE_NOT_FOUND,
        GC.GAMRY_INVALID_SIGNAL,
        GC.CO_E_CLASSSTRING,
    ):
        assert code in G.HRESULTS
    err = GC.COMError(GC.GAMRY_DEVICE_IN_USE, "Device In Use")
    assert err.args[0] < 0 and (err.args[0] & 0xFFFFFFFF) == GC.GAMRY_DEVICE_IN_USE


# --- whole protocol through the engine ---------------------------------------------------------------------
@pytest.mark.parametrize("density", ["9 mA/cm^2", "10 mA/cm^2"])
def test_ccd_protocol_through_gamry_matches_simulator(tmp_path, density):
    from daq.engine.runner import run_protocol
    from protocols.loader import load_protocol
    from tests.conftest import EXAMPLES, run_sim

    protocol = load_protocol(EXAMPLES / "ccd_single_plating.toml", {"current_density": density})
    spec = load_cell(protocol.cell_path)
    clock = VirtualClock()
    emu = GC.GamryComEmulator(clock, {SECTION: SimulatedCell(spec)})
    driver = GamryPotentiostat(com=emu, clock=clock)
    # A real instrument cannot rewind a block: poll it every few seconds, as a real-time engine does.
    result = run_protocol(protocol, spec, driver, clock, tmp_path / "gamry.h5", block_interval=4.0)
    ref = run_sim(EXAMPLES / "ccd_single_plating.toml", tmp_path / "sim.h5", overrides={"current_density": density})
    assert result.outcome == ref.outcome
    assert (result.short is None) == (ref.short is None) == (density == "9 mA/cm^2")
    if result.short is not None:
        assert abs(result.short["t"] - ref.short["t"]) <= 3.0
        assert result.short["capacity"] == pytest.approx(ref.short["capacity"], rel=0.01)
    assert result.plated_capacity == pytest.approx(ref.plated_capacity, rel=0.01)
    assert not emu.cell_on(SECTION)
