"""BioLogic driver end to end against the emulated EClib (real ctypes calls into emulated functions)."""

from __future__ import annotations

import ctypes
import threading
import time

import numpy as np
import pytest

from daq.core.capabilities import EisRequest
from daq.core.clock import VirtualClock
from daq.core.errors import InstrumentError
from daq.core.samples import FLAG_HW_LIMIT, SampleBlock
from daq.models.cell import load_cell
from drivers import biologic_tables as T
from drivers.biologic import BiologicConnection, BiologicPotentiostat, channel_drivers, load_eclib
from simulators import eclib as E
from simulators import eclib_structs as ES
from simulators.cell import SimulatedCell
from simulators.potentiostat import SimulatedPotentiostat

pytestmark = pytest.mark.timeout(60)

CELL = "protocols/examples/cells/li6ps5cl_99.toml"
MA_CM2 = 10.0  # A/m^2
CAPACITY = 8 * 36000.0  # C/m^2, 8 mAh/cm^2


@pytest.fixture
def spec():
    return load_cell(CELL)


@pytest.fixture
def rig(spec):
    """(clock, cell, emulator, driver) on channel 0 of an emulated SP-200. The tests read every 60 s of
    virtual time, so the dead-man time is 300 s (a real engine polls every few seconds)."""
    clock = VirtualClock()
    cell = SimulatedCell(spec)
    emu = E.EClibEmulator(clock, {0: cell, 1: SimulatedCell(spec)})
    conn = BiologicConnection("USB0", dll=emu.dll, call_timeout=2.0)
    driver = BiologicPotentiostat(conn, 0, clock=clock, safe_timeout=3.0, deadman_s=300.0)
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


def simulated_plating(spec, density, v_limits=(-5.0, 5.0)):
    clock = VirtualClock()
    cell = SimulatedCell(spec)
    sim = SimulatedPotentiostat(cell, clock)
    sim.connect()
    duration = CAPACITY / density
    sim.apply_current(-spec.current(density), *v_limits, 1.0, duration=duration)
    return cell, run_for(sim, clock, duration + 5)


# --- outcome ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("density, shorts", [(9 * MA_CM2, False), (10 * MA_CM2, True)])
def test_plating_reproduces_simulator_outcome(rig, spec, density, shorts):
    clock, cell, emu, driver = rig
    info = driver.connect()
    assert info.vendor == "BioLogic" and info.model == "SP-200"
    current = -spec.current(density)
    assert abs(spec.current(9 * MA_CM2) - 70.7e-6) < 0.1e-6
    duration = CAPACITY / density
    driver.apply_current(current, -5.0, 5.0, 1.0, duration=duration)
    block = run_for(driver, clock, duration + 5)
    ref_cell, ref = simulated_plating(spec, density)

    assert cell.state.shorted is shorts is ref_cell.state.shorted
    if shorts:
        assert abs(cell.state.short_time - ref_cell.state.short_time) <= 2.0
    assert not emu.output_on(0)  # the technique ended on its duration: channel stopped by itself
    assert abs(block.t[-1] - ref.t[-1]) <= 1.0 and abs(len(block) - len(ref)) <= 2
    assert np.allclose(block.I, current, rtol=1e-6)
    # Same physics at the same instants (float32 words, independent noise draws).
    common = np.intersect1d(np.round(block.t), np.round(ref.t))[10:-10]
    e_drv = np.interp(common, block.t, block.E_we)
    e_ref = np.interp(common, ref.t, ref.E_we)
    assert np.median(np.abs(e_drv - e_ref)) < 3e-3
    assert abs(cell.state.plated - ref_cell.state.plated) / ref_cell.state.plated < 1e-3


def test_hardware_voltage_limit_stops_current(rig, spec):
    clock, cell, emu, driver = rig
    driver.connect()
    current = spec.current(9 * MA_CM2)  # stripping: voids raise the polarisation
    driver.apply_current(current, -1.0, 0.4, 1.0, duration=3000.0)
    block = run_for(driver, clock, 3000.0)
    trip = np.flatnonzero(block.flags & FLAG_HW_LIMIT)
    assert trip.size == 1 and trip[0] == len(block) - 1
    assert block.E_we[-1] >= 0.4 and np.all(block.E_we[:-1] < 0.4)
    assert not emu.output_on(0) and emu.state(0) == T.STATE_STOP

    ref_clock, ref_cell = VirtualClock(), SimulatedCell(spec)
    sim = SimulatedPotentiostat(ref_cell, ref_clock)
    sim.connect()
    sim.apply_current(current, -1.0, 0.4, 1.0, duration=3000.0)
    ref = run_for(sim, ref_clock, 3000.0)
    assert abs(block.t[-1] - ref.t[np.flatnonzero(ref.flags & FLAG_HW_LIMIT)[0]]) <= 3.0
    # No current after the trip: more clock time changes nothing.
    age_damage = cell.state.void_damage
    clock.sleep(600)
    assert len(driver.read()) == 0
    emu.settle()
    assert cell.state.void_damage == age_damage


def test_open_ended_step_is_extended_without_gap(spec):
    """An open-ended step runs as a technique of the dead-man time, extended in place while polled."""
    clock = VirtualClock()
    emu = E.EClibEmulator(clock, {0: SimulatedCell(spec)})
    driver = BiologicPotentiostat("USB0", 0, clock=clock, dll=emu.dll, deadman_s=100.0)
    driver.connect()
    driver.apply_current(-spec.current(5 * MA_CM2), -5, 5, 1.0)
    assert emu.loaded(0)[0].get("Duration_step") == pytest.approx(100.0)
    block = run_for(driver, clock, 350.0, chunk=7.0)
    assert emu.output_on(0)
    assert len(block) == 351 and np.allclose(np.diff(block.t), 1.0)  # t = 0 ... 350 s, not a sample missing
    assert emu.calls.count("BL_StartChannel") == 1 and emu.calls.count("BL_UpdateParameters") >= 6
    assert 350.0 < emu.loaded(0)[0].get("Duration_step") <= 350.0 + 100.0
    driver.open_circuit()
    assert not emu.output_on(0)


# --- impedance ---------------------------------------------------------------------------------------------
def test_geis_and_peis_match_cell_impedance(rig):
    clock, cell, emu, driver = rig
    driver.connect()
    freqs = np.logspace(6, -1, 15)
    points = list(driver.impedance(EisRequest("galvanostatic", freqs, 5e-6, 0.0)))
    assert [p.frequency for p in points] == pytest.approx(freqs, rel=1e-6)
    z = np.array([complex(p.z_real, p.z_imag) for p in points])
    expected = cell.impedance(freqs, 0.0)
    assert np.allclose(z, expected, rtol=0.02)
    assert all(p.ok for p in points) and np.all(np.diff([p.t for p in points]) > 0)
    assert not emu.output_on(0)

    points = list(driver.impedance(EisRequest("potentiostatic", [1e5, 1e3, 10.0], 0.01, None)))
    z = np.array([complex(p.z_real, p.z_imag) for p in points])
    assert np.allclose(z, cell.impedance(np.array([1e5, 1e3, 10.0]), 0.0), rtol=0.02)
    assert not emu.output_on(0)


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
        assert emu.output_on(0)  # the plating current keeps flowing during the sweep
    z = np.array([complex(p.z_real, p.z_imag) for p in points])
    assert np.allclose(z, cell.impedance(freqs, current), rtol=0.03)
    assert all(p.I_dc == pytest.approx(current, rel=1e-5) for p in points)
    after = run_for(driver, clock, 1000.0)
    assert len(before) > 250 and len(after) > 800
    assert np.allclose(after.I, current, rtol=1e-6)
    assert after.t[-1] <= 1200.0 + 1.0  # the step still ends at its duration
    assert not emu.output_on(0)
    q = cell.state.plated * spec.electrodes.working_area
    assert q == pytest.approx(abs(current) * 1200.0, rel=0.01)


def test_irregular_frequency_list_and_early_exit(rig):
    clock, cell, emu, driver = rig
    driver.connect()
    freqs = [1e4, 3e3, 100.0, 7.0]
    gen = driver.impedance(EisRequest("galvanostatic", freqs, 5e-6, 0.0))
    first = next(gen)
    assert first.frequency == pytest.approx(1e4)
    gen.close()  # the engine gave up: the channel is stopped
    assert not emu.output_on(0)
    pts = list(driver.impedance(EisRequest("galvanostatic", freqs, 5e-6, 0.0)))
    assert [p.frequency for p in pts] == pytest.approx(freqs, rel=1e-6)


# --- faults ------------------------------------------------------------------------------------------------
def assert_safe(emu, channel=0):
    emu.settle()
    assert not emu.output_on(channel)


def test_connect_failure_is_readable(spec):
    clock = VirtualClock()
    emu = E.EClibEmulator(clock, {0: SimulatedCell(spec)})
    emu.fail("BL_Connect", -201)
    driver = BiologicPotentiostat("USB0", 0, clock=clock, dll=emu.dll)
    with pytest.raises(InstrumentError, match=r"ERR_COMM_CONNECTIONFAILED \(-201\)"):
        driver.connect()
    wrong = BiologicPotentiostat("192.168.0.9", 0, clock=clock, dll=emu.dll)
    with pytest.raises(InstrumentError, match="connecting to 192.168.0.9"):
        wrong.connect()


@pytest.mark.parametrize(
    "function, code",
    [
        ("BL_LoadTechnique", -401),
        ("BL_LoadTechnique", -6),
        ("BL_StartChannel", -13),
        ("BL_GetData", -200),
        ("BL_GetData", -404),
        ("BL_StopChannel", -101),
    ],
)
def test_error_codes_end_safely(rig, spec, function, code):
    clock, cell, emu, driver = rig
    driver.connect()
    driver.apply_current(-spec.current(9 * MA_CM2), -5, 5, 1.0, duration=1000.0)
    clock.sleep(30)
    driver.read()
    emu.fail(function, code)
    with pytest.raises(InstrumentError) as err:
        if function in ("BL_LoadTechnique", "BL_StartChannel"):
            driver.apply_current(-spec.current(9 * MA_CM2), -5, 5, 1.0, duration=1000.0)
        elif function == "BL_StopChannel":
            driver.open_circuit()
        else:
            clock.sleep(5)
            driver.read()
    text = str(err.value)
    assert T.ERROR_CODES[code][0] in text and "channel stopped" in text
    assert_safe(emu)


@pytest.mark.parametrize("kind", ["layout", "nan", "overflow"])
def test_garbage_data_is_refused(rig, spec, kind):
    clock, cell, emu, driver = rig
    driver.connect()
    driver.apply_current(-spec.current(9 * MA_CM2), -5, 5, 1.0, duration=1000.0)
    clock.sleep(30)
    emu.garbage("BL_GetData", kind)
    with pytest.raises(InstrumentError, match="corrupt data"):
        driver.read()
    assert_safe(emu)


def test_hung_call_times_out_then_stops_channel(rig, spec):
    clock, cell, emu, driver = rig
    driver.connect()
    driver.conn.call_timeout = 0.2
    driver.apply_current(-spec.current(9 * MA_CM2), -5, 5, 1.0, duration=1000.0)
    clock.sleep(30)
    emu.hang("BL_GetData", seconds=1.0)
    t0 = time.monotonic()
    with pytest.raises(InstrumentError, match="did not return within 0.2 s.*channel stopped"):
        driver.read()
    assert time.monotonic() - t0 < 5.0
    assert_safe(emu)


def test_permanent_hang_reports_and_instrument_finishes_alone(rig, spec):
    clock, cell, emu, driver = rig
    driver.connect()
    driver.conn.call_timeout, driver.safe_timeout = 0.2, 0.5
    driver.apply_current(-spec.current(9 * MA_CM2), -5, 5, 1.0, duration=600.0)
    clock.sleep(30)
    emu.hang("BL_GetData", seconds=None)
    t0 = time.monotonic()
    with pytest.raises(InstrumentError, match="could not be\\s+stopped from the PC"):
        driver.read()
    assert time.monotonic() - t0 < 5.0
    clock.sleep(600)  # the instrument ends the technique on its own duration
    assert not emu.output_on(0)
    emu.release()


def test_communication_loss_instrument_keeps_its_limits(rig, spec):
    clock, cell, emu, driver = rig
    driver.connect()
    driver.apply_current(spec.current(9 * MA_CM2), -1.0, 0.4, 1.0, duration=3000.0)
    clock.sleep(60)
    driver.read()
    emu.lose_communication()
    clock.sleep(5)
    with pytest.raises(InstrumentError, match="ERR_COMM_COMMFAILED.*WARNING"):
        driver.read()
    clock.sleep(3000)  # the CPLIMIT voltage test stops the channel in the instrument (or the dead-man time)
    assert not emu.output_on(0)


def test_eclab_firmware_is_replaced(rig, spec):
    clock, cell, emu, driver = rig
    emu.load_eclab_firmware(0)
    driver.connect()
    assert emu.channels[0].firmware == E.FIRM_KERNEL
    driver.apply_current(-spec.current(9 * MA_CM2), -5, 5, 1.0, duration=100.0)
    assert len(run_for(driver, clock, 100.0)) >= 100


def test_misread_board_type_falls_back_to_model_family(rig, spec):
    clock, cell, emu, driver = rig
    emu.misreport_board(0, E.ESSENTIAL)  # an SP-200 is PREMIUM
    driver.connect()
    assert driver.board == T.PREMIUM and driver.warnings
    driver.apply_current(-spec.current(9 * MA_CM2), -5, 5, 1.0, duration=100.0)
    assert len(run_for(driver, clock, 100.0)) >= 100


def test_unknown_library_version_is_refused(spec):
    clock = VirtualClock()
    emu = E.EClibEmulator(clock, {0: SimulatedCell(spec)}, lib_version="7.01")
    with pytest.raises(InstrumentError, match="7.01.*no technique label table"):
        BiologicPotentiostat("USB0", 0, clock=clock, dll=emu.dll).connect()
    ok = BiologicPotentiostat(BiologicConnection("USB0", dll=emu.dll, label_version="6.04"), 0, clock=clock)
    ok.connect()
    ok.close()


def test_multichannel_unplugged_channel_does_not_stop_others(spec):
    clock = VirtualClock()
    cells = {0: SimulatedCell(spec), 1: SimulatedCell(spec), 2: None}
    emu = E.EClibEmulator(clock, cells)
    # The engines below read once after 3300 s: a dead-man time longer than that keeps the steps running.
    drivers = channel_drivers("USB0", [0, 1, 2], dll=emu.dll, clock=clock, deadman_s=3600.0)
    drivers[0].connect()
    with pytest.raises(InstrumentError, match="channel 3 is not plugged"):
        drivers[2].connect()
    drivers[1].connect()
    assert drivers[0].conn is drivers[1].conn and emu.calls.count("BL_Connect") == 1
    for d, density in zip(drivers[:2], (9 * MA_CM2, 10 * MA_CM2)):
        d.apply_current(-spec.current(density), -5, 5, 1.0, duration=CAPACITY / density)
    results = {}

    def engine(d, k):  # one engine thread per channel, sharing the connection
        results[k] = SampleBlock.concat([d.read() for _ in range(3)])

    clock.sleep(3300)
    threads = [threading.Thread(target=engine, args=(d, k)) for k, d in enumerate(drivers[:2])]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert not cells[0].state.shorted and cells[1].state.shorted
    assert len(results[0]) > 3000 and len(results[1]) > 2800
    drivers[0].close()
    assert emu.calls.count("BL_Disconnect") == 0
    drivers[1].close()
    assert emu.calls.count("BL_Disconnect") == 1


def test_missing_vendor_software_gives_clear_message(monkeypatch, spec):
    driver = BiologicPotentiostat("USB0", 0, clock=VirtualClock())
    if not hasattr(ctypes, "WinDLL"):
        with pytest.raises(InstrumentError, match="needs Windows and the EC-Lab Development Package"):
            driver.connect()
    import drivers.biologic_structs as B

    monkeypatch.setattr(B.sys, "platform", "win32")

    def no_dll(path):
        raise OSError(126, "The specified module could not be found")

    monkeypatch.setattr(B.C, "WinDLL", no_dll, raising=False)
    with pytest.raises(InstrumentError, match="cannot load .*EClib.*install the EC-Lab Development Package"):
        load_eclib(None)


# --- tables ------------------------------------------------------------------------------------------------
def test_every_library_error_code_has_a_message(spec):
    assert set(E.ERROR_MESSAGES) == set(T.ERROR_CODES)
    for code in E.ERROR_MESSAGES:
        text = T.error_text(code)
        name, message = T.ERROR_CODES[code]
        assert name in text and str(code) in text and len(message) > 5
    # And through the driver: whatever code the library returns ends up named in the error.
    clock = VirtualClock()
    emu = E.EClibEmulator(clock, {0: SimulatedCell(spec)})
    for code in (c for c in E.ERROR_MESSAGES if c < 0):
        emu.fail("BL_Connect", code)
        with pytest.raises(InstrumentError, match=T.ERROR_CODES[code][0]):
            BiologicPotentiostat("USB0", 0, clock=clock, dll=emu.dll).connect()
    assert "unknown EClib error code -999" == T.error_text(-999)


def test_label_tables_match_what_the_emulated_library_accepts():
    for table in T.LABEL_TABLES.values():
        for tech, labels in table.labels.items():
            assert set(labels) <= ES.ACCEPTED[tech]
    assert T.label_table_for("6.06").version == "6.04" and T.label_table_for("6.03").version == "6.0"
    assert T.label_table_for("5.40") is None and T.label_table_for("garbage") is None
    assert T.technique_file(T.TECH_CPLIMIT, T.PREMIUM) == "cplimit4.ecc"
    assert T.technique_file(T.TECH_GEIS, T.DIGICORE) == "geis5.ecc"


def test_structure_layouts_match_header():
    from drivers import biologic as B

    assert ctypes.sizeof(B.DataInfos) == ctypes.sizeof(E.TDataInfos) == 40
    assert B.DataInfos.StartTime.offset == 28  # packed to 4 bytes, not 8
    assert ctypes.sizeof(B.CurrentValues) == ctypes.sizeof(E.TCurrentValues) == 76
    assert ctypes.sizeof(B.EccParam) == 76 and ctypes.sizeof(B.DataBuffer) == 4000
    assert ctypes.sizeof(B.ChannelInfos) == ctypes.sizeof(E.TChannelInfos) == 84


# --- whole protocol through the engine ---------------------------------------------------------------------
@pytest.mark.parametrize("density", ["9 mA/cm^2", "10 mA/cm^2"])
def test_ccd_protocol_through_biologic_matches_simulator(tmp_path, density):
    from daq.engine.runner import run_protocol
    from protocols.loader import load_protocol
    from tests.conftest import EXAMPLES, run_sim

    protocol = load_protocol(EXAMPLES / "ccd_single_plating.toml", {"current_density": density})
    spec = load_cell(protocol.cell_path)
    clock = VirtualClock()
    emu = E.EClibEmulator(clock, {0: SimulatedCell(spec)})
    driver = BiologicPotentiostat("USB0", 0, clock=clock, dll=emu.dll)
    # A real instrument cannot rewind a block: poll it every few seconds, as a real-time engine does.
    result = run_protocol(protocol, spec, driver, clock, tmp_path / "biologic.h5", block_interval=4.0)
    ref = run_sim(EXAMPLES / "ccd_single_plating.toml", tmp_path / "sim.h5", overrides={"current_density": density})
    assert result.outcome == ref.outcome
    assert (result.short is None) == (ref.short is None) == (density == "9 mA/cm^2")
    if result.short is not None:
        assert abs(result.short["t"] - ref.short["t"]) <= 3.0
        assert result.short["capacity"] == pytest.approx(ref.short["capacity"], rel=0.01)
    assert result.plated_capacity == pytest.approx(ref.plated_capacity, rel=0.01)
    assert not emu.output_on(0)


def test_plain_cp_without_limits(rig, spec):
    clock, cell, emu, driver = rig
    driver.connect()
    driver.apply_current(-spec.current(9 * MA_CM2), -np.inf, np.inf, 1.0, duration=100.0)
    assert [t.file for t in emu.loaded(0)] == ["cp4.ecc"]
    block = run_for(driver, clock, 120.0, chunk=30.0)
    assert len(block) == 101 and not np.any(block.flags & FLAG_HW_LIMIT) and not emu.output_on(0)
    driver.apply_current(spec.current(9 * MA_CM2), -np.inf, 0.3, 1.0, duration=100.0)  # one-sided window
    tech = emu.loaded(0)[0]
    assert tech.file == "cplimit4.ecc" and tech.get("Test1_Config") == 0
    assert tech.get("Test2_Value") == pytest.approx(0.3)
