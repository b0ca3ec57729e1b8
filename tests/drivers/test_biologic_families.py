"""BioLogic driver against each board family's emulated layouts (ESSENTIAL, PREMIUM, DIGICORE), layouts pinned
to independent references, floats through the library, I ranges, potentiostatic control, the dead-man time."""

from __future__ import annotations

import numpy as np
import pytest

from daq.core.capabilities import EisRequest
from daq.core.clock import VirtualClock
from daq.core.errors import ConfigError, InstrumentError
from daq.core.samples import FLAG_HW_LIMIT, SampleBlock
from daq.models.cell import load_cell
from drivers import biologic_layouts as L
from drivers import biologic_tables as T
from drivers.biologic import BiologicPotentiostat
from simulators import eclib as E
from simulators import eclib_structs as ES
from simulators.cell import SimulatedCell
from simulators.potentiostat import SimulatedPotentiostat

pytestmark = pytest.mark.timeout(60)

CELL = "protocols/examples/cells/li6ps5cl_99.toml"
MA_CM2 = 10.0  # A/m^2
# device code, board family: an SP-300 (PREMIUM), a VMP3 (ESSENTIAL), a VMP-3e (DIGICORE)
FAMILIES = [(16, T.PREMIUM), (5, T.ESSENTIAL), (33, T.DIGICORE)]
IDS = ["SP-300", "VMP3", "VMP-3e"]

# --- the references, transcribed as data ------------------------------------------------------------------
# easy-biologic, easy_biologic/lib/data_parser.py: VMP3_Fields.PEIS/GEIS[1] and SP300_Fields.PEIS/GEIS[1].
REF_EIS_VMP3 = [
    "frequency", "abs_voltage", "abs_current", "impedance_phase", "voltage", "current", "empty1",
    "abs_voltage_ce", "abs_current_ce", "impedance_ce_phase", "voltage_ce", "empty2", "empty3", "time",
    "current_range",
]  # fmt: skip
REF_EIS_SP300 = REF_EIS_VMP3[:14]
# Same file: VMP3_Fields.OCV, SP300_Fields.OCV, CP (= CA = CPLIMIT = CALIMIT), PEIS[0].
REF_OCV_VMP3 = ["t_high", "t_low", "voltage", "control"]
REF_OCV_SP300 = ["t_high", "t_low", "voltage"]
REF_STEP = ["t_high", "t_low", "voltage", "current", "cycle"]
REF_EIS_DC = ["t_high", "t_low", "voltage", "current"]
# BioLogic's kbio/kbio_types.py (as in CombiMatrix-AI/CombiMatrix.Py): the two device families.
REF_VMP3_FAMILY = ["VMP2", "VMP3", "BISTAT", "BISTAT2", "MCS_200", "VSP", "SP50", "SP150", "FCT50S", "FCT150S",
                   "CLB500", "CLB2000", "HCP803", "HCP1005", "MPG2", "MPG205", "MPG210", "MPG220", "MPG240",
                   "VMP3E", "VSP3E", "SP50E", "SP150E"]  # fmt: skip
REF_VMP300_FAMILY = ["SP100", "SP200", "SP300", "VSP300", "VMP300", "SP240", "BP300"]
REF_E_SERIES = ["VMP3E", "VSP3E", "SP50E", "SP150E"]  # DIGICORE boards
# CINF/PyExpLabSys, PyExpLabSys/drivers/bio_logic.py: TECHNIQUE_IDENTIFIERS.
REF_TECHNIQUE_IDS = {100: "OCV", 101: "CA", 102: "CP", 104: "PEIS", 107: "GEIS", 155: "CPLIMIT", 157: "CALIMIT"}
# Our column names -> the reference's.
OURS_TO_REF = {
    "freq": "frequency", "abs_Ewe": "abs_voltage", "abs_I": "abs_current", "Phase_Zwe": "impedance_phase",
    "Ewe": "voltage", "I": "current", "blank0": "empty1", "abs_Ece": "abs_voltage_ce", "abs_Ice": "abs_current_ce",
    "Phase_Zce": "impedance_ce_phase", "Ece": "voltage_ce", "blank1": "empty2", "blank2": "empty3", "t": "time",
    "Irange": "current_range", "t_high": "t_high", "t_low": "t_low", "cycle": "cycle",
}  # fmt: skip


def ref(names):
    return ["control" if n == "Ece" and len(names) == 4 else OURS_TO_REF[n] for n in names]


def test_layouts_are_pinned_to_the_references():
    for layouts in (L.LAYOUTS[(T.TECH_PEIS, 1)], L.LAYOUTS[(T.TECH_GEIS, 1)], ES.EIS_ROWS):
        assert ref(layouts[T.ESSENTIAL]) == REF_EIS_VMP3 and ref(layouts[T.DIGICORE]) == REF_EIS_VMP3
        assert ref(layouts[T.PREMIUM]) == REF_EIS_SP300
    for layouts in (L.LAYOUTS[(T.TECH_OCV, 0)], ES.OCV_ROWS):
        assert ref(layouts[T.ESSENTIAL]) == ref(layouts[T.DIGICORE]) == REF_OCV_VMP3
        assert ref(layouts[T.PREMIUM]) == REF_OCV_SP300
    for tech in (T.TECH_CP, T.TECH_CA, T.TECH_CPLIMIT, T.TECH_CALIMIT):
        assert {tuple(ref(v)) for v in L.LAYOUTS[(tech, 0)].values()} == {tuple(REF_STEP)}
    assert ref(ES.STEP_ROW) == REF_STEP and ref(ES.EIS_DC_ROW) == ref(L.EIS_DC_ROW) == REF_EIS_DC


def test_device_families_are_pinned_to_the_references():
    code = {name.replace("-", "").replace("_", "").upper(): c for c, name in T.DEVICE_CODES.items()}
    code.update({"MCS200": 4, "FCT50S": 15, "FCT150S": 11, "HCP803": 7, "HCP1005": 18, "CLB500": 17, "CLB2000": 19})
    for table in (T.DEVICE_FAMILY, ES.DEVICE_FAMILY):
        for name in REF_VMP3_FAMILY:
            family = T.DIGICORE if name in REF_E_SERIES else T.ESSENTIAL
            assert table[code[name.replace("_", "")]] == family, name
        for name in REF_VMP300_FAMILY:
            assert table[code[name]] == T.PREMIUM, name
    # BioLogic's C++ example (get_firmware_files): board type -> kernel and FPGA files.
    firmware = {
        1: ("kernel.bin", "vmp_ii_0437_a6.xlx"),
        2: ("kernel4.bin", "vmp_iv_0395_aa.xlx"),
        3: ("kernel5.bin", ""),
    }
    for board, (kernel, fpga) in firmware.items():
        assert (T.BOARD_FILES[board].firmware.lower(), T.BOARD_FILES[board].fpga.lower()) == (kernel, fpga)
        assert (ES.KERNEL[board], ES.FPGA[board]) == (kernel, fpga)


def test_technique_ids_are_pinned_to_the_reference():
    assert {k: v for k, v in T.TECHNIQUE_NAMES.items() if k} == REF_TECHNIQUE_IDS
    assert {v: k for k, v in REF_TECHNIQUE_IDS.items()} == {n.upper(): i for n, i in ES.TECH_BY_FILE.items()}


def test_row_length_decides_between_family_layouts():
    own = L.row_layout(T.TECH_PEIS, 1, T.PREMIUM, 14)
    assert own is not None and own.names[-1] == "t" and not own.note
    other = L.row_layout(T.TECH_PEIS, 1, T.PREMIUM, 15)
    assert other is not None and other.names[-1] == "Irange" and "15 words" in other.note
    assert L.row_layout(T.TECH_OCV, 0, T.DIGICORE, 4).names == ("t_high", "t_low", "Ewe", "Ece")
    assert L.row_layout(T.TECH_PEIS, 1, T.PREMIUM, 16) is None and L.row_layout(T.TECH_CP, 0, T.ESSENTIAL, 4) is None


def test_ti_words_only_read_right_through_the_library():
    x = np.array([0.0123, -0.4, 1.0, -2.0, 3.5e-6, 7e6])
    words = ES.ti_words(x)
    assert np.allclose([ES.ti_value(int(w)) for w in words], x, rtol=1e-6)
    assert not np.allclose(words.view(np.float32), x, rtol=1e-2)  # read as IEEE they are garbage


# --- each family end to end ---------------------------------------------------------------------------------
@pytest.fixture
def spec():
    return load_cell(CELL)


def make(spec, device_code, **kw):
    clock = VirtualClock()
    cell = SimulatedCell(spec)
    emu = E.EClibEmulator(clock, {0: cell}, device_code=device_code, **kw)
    driver = BiologicPotentiostat("USB0", 0, clock=clock, dll=emu.dll, safe_timeout=3.0)
    return clock, cell, emu, driver


def run_for(driver, clock, seconds, chunk=5.0) -> SampleBlock:
    blocks = []
    t_end = clock.now() + seconds
    while clock.now() < t_end - 1e-9:
        clock.sleep(min(chunk, t_end - clock.now()))
        blocks.append(driver.read())
    return SampleBlock.concat(blocks)


@pytest.mark.parametrize("device_code, family", FAMILIES, ids=IDS)
@pytest.mark.parametrize("float_format", [ES.FLOAT_IEEE, ES.FLOAT_TI], ids=["ieee", "ti"])
def test_family_layouts_through_the_driver(spec, device_code, family, float_format):
    clock, cell, emu, driver = make(spec, device_code, float_format=float_format)
    driver.connect()
    assert driver.board == family and not driver.warnings and driver.float_format == float_format
    driver.open_circuit(1.0)
    ocv = run_for(driver, clock, 20.0)
    assert len(ocv) == 21 and np.all(np.abs(ocv.E_we) < 5e-3)  # rest potential of a Li|Li cell, float words decoded
    freqs = np.logspace(6, 0, 7)
    points = list(driver.impedance(EisRequest("galvanostatic", freqs, 5e-6, 0.0)))
    z = np.array([complex(p.z_real, p.z_imag) for p in points])
    assert np.allclose(z, cell.impedance(freqs, 0.0), rtol=0.02) and len(points) == 7
    assert emu.loaded(0)[0].file == f"geis{ES.ECC_SUFFIX[family]}.ecc"
    assert len(driver.read()) == 7  # each point's DC level, for the charge bookkeeping
    current = -spec.current(5 * MA_CM2)
    driver.apply_current(current, -5, 5, 1.0, duration=30.0)
    block = run_for(driver, clock, 35.0)
    assert len(block) == 31 and np.allclose(block.I, current, rtol=1e-5) and not emu.output_on(0)


@pytest.mark.parametrize("device_code, family", FAMILIES, ids=IDS)
def test_operando_geis_on_each_family(spec, device_code, family):
    clock, cell, emu, driver = make(spec, device_code)
    driver.connect()
    current = -spec.current(9 * MA_CM2)
    driver.apply_current(current, -5, 5, 1.0, duration=600.0)
    before = run_for(driver, clock, 120.0)
    freqs = np.logspace(6, 0, 13)
    points = []
    for p in driver.impedance(EisRequest("galvanostatic", freqs, 5e-6, current)):
        points.append(p)
        assert emu.output_on(0)  # the plating current keeps flowing during the sweep
    assert len(points) == 13 and all(p.ok for p in points)
    z = np.array([complex(p.z_real, p.z_imag) for p in points])
    assert np.allclose(z, cell.impedance(freqs, current), rtol=0.03)
    after = run_for(driver, clock, 600.0)
    assert len(before) > 100 and after.t[-1] <= 600.0 + 1.0 and not emu.output_on(0)
    q = cell.state.plated * spec.electrodes.working_area
    assert q == pytest.approx(abs(current) * 600.0, rel=0.01)


# --- current ranges -----------------------------------------------------------------------------------------
def test_current_ranges_within_the_channel(spec):
    clock, cell, emu, driver = make(spec, 21, i_ranges=(5, 8))  # 10 uA ... 10 mA ranges only
    driver.connect()
    assert driver.i_ranges == (5, 8) and driver.capabilities.max_current == pytest.approx(10e-3)
    with pytest.raises(InstrumentError, match=r"beyond the channel's 0.01 A"):
        driver.apply_current(20e-3, -5, 5, 1.0, duration=10.0)
    assert "BL_LoadTechnique" not in emu.calls
    driver.apply_current(1e-6, -5, 5, 1.0, duration=10.0)  # below MinIRange: the smallest range it has
    assert emu.loaded(0)[0].get("I_Range") == 5
    driver.apply_current(5e-3, -5, 5, 1.0, duration=10.0)
    assert emu.loaded(0)[0].get("I_Range") == 8
    with pytest.raises(
        InstrumentError, match=r"0.01499 A needs a current range above the channel's largest \(0.01 A, MaxIRange 8\)"
    ):
        next(driver.impedance(EisRequest("galvanostatic", [1e3], 5e-3, 9.99e-3)))
    assert not emu.output_on(0)


# --- potentiostatic control -----------------------------------------------------------------------------------
def simulated(spec):
    clock = VirtualClock()
    cell = SimulatedCell(spec)
    sim = SimulatedPotentiostat(cell, clock)
    sim.connect()
    return clock, cell, sim


@pytest.mark.parametrize("device_code, family", FAMILIES, ids=IDS)
def test_potentiostatic_step_matches_simulator(spec, device_code, family):
    clock, cell, emu, driver = make(spec, device_code)
    driver.connect()
    driver.apply_potential(0.02, -5e-3, 5e-3, 1.0, duration=600.0)
    assert emu.loaded(0)[0].file == f"calimit{ES.ECC_SUFFIX[family]}.ecc"
    block = run_for(driver, clock, 610.0)
    ref_clock, ref_cell, sim = simulated(spec)
    sim.apply_potential(0.02, -5e-3, 5e-3, 1.0, duration=600.0)
    ref = run_for(sim, ref_clock, 610.0)
    assert not emu.output_on(0) and abs(len(block) - len(ref)) <= 1
    assert np.median(block.I) == pytest.approx(np.median(ref.I), rel=0.01) and np.all(block.I > 0)
    q, q_ref = np.sum(block.I), np.sum(ref.I)  # 1 s samples: charge in C
    assert q == pytest.approx(q_ref, rel=0.01)
    assert np.median(np.abs(block.E_we - 0.02)) < 2e-3  # E_we held at the set potential


def test_potentiostatic_current_limit_stops_the_channel(spec):
    clock, cell, emu, driver = make(spec, 16)
    driver.connect()
    i_hold = cell.current_for_potential(0.05)
    driver.apply_potential(0.05, -0.5 * i_hold, 0.5 * i_hold, 1.0, duration=300.0)
    tech = emu.loaded(0)[0]
    assert tech.get("Test2_Config") == T.TEST_I_ABOVE and tech.get("Exit_Cond") == T.EXIT_STOP
    block = run_for(driver, clock, 30.0)
    assert len(block) >= 1 and block.flags[-1] & FLAG_HW_LIMIT and block.I[-1] > 0.5 * i_hold
    assert not emu.output_on(0)
    with pytest.raises(InstrumentError, match="current limits"):
        driver.apply_potential(0.05, 1e-3, -1e-3, 1.0)


@pytest.mark.parametrize("device_code, family", FAMILIES, ids=IDS)
def test_peis_at_a_dc_potential(spec, device_code, family):
    clock, cell, emu, driver = make(spec, device_code)
    driver.connect()
    freqs = np.logspace(5, 0, 6)
    points = list(driver.impedance(EisRequest("potentiostatic", freqs, 0.01, 0.02)))
    i_dc = points[0].I_dc
    ref_clock, ref_cell, sim = simulated(spec)
    sim.apply_potential(0.02, -1.0, 1.0, 1.0, duration=5.0)
    ref = run_for(sim, ref_clock, 5.0)
    assert i_dc == pytest.approx(ref.I[0], rel=0.01) and i_dc > 0
    z = np.array([complex(p.z_real, p.z_imag) for p in points])
    assert np.allclose(z, cell.impedance(freqs, i_dc), rtol=0.02)
    assert emu.loaded(0)[0].get("Initial_Voltage_step") == pytest.approx(0.02) and not emu.output_on(0)


def test_operando_peis_during_a_potentiostatic_step(spec):
    clock, cell, emu, driver = make(spec, 16)
    driver.connect()
    driver.apply_potential(0.02, -5e-3, 5e-3, 1.0, duration=300.0)
    run_for(driver, clock, 60.0)
    for _ in driver.impedance(EisRequest("potentiostatic", np.logspace(4, 1, 4), 0.01, 0.02)):
        assert emu.output_on(0)
    assert [t.tech_id for t in emu.loaded(0)] == [ES.TECH_PEIS, ES.TECH_CALIMIT]
    after = run_for(driver, clock, 300.0)
    assert np.all(after.I > 0) and after.t[-1] <= 300.0 + 1.0 and not emu.output_on(0)


# --- dead-man time --------------------------------------------------------------------------------------------
def test_deadman_time_is_a_setting(spec):
    clock, cell, emu, driver = make(spec, 21)
    assert driver.deadman_s == 60.0
    assert "dead-man 60 s" in driver.connect().firmware
    with pytest.raises(ConfigError, match="deadman_s = 0: the dead-man time must be 1 s to"):
        BiologicPotentiostat("USB0", 0, clock=clock, dll=emu.dll, deadman_s=0)


@pytest.mark.parametrize("kind", ["current", "potential"])
@pytest.mark.parametrize("update", [True, False], ids=["extended", "old-library"])
def test_channel_stops_by_itself_when_the_pc_stops_polling(spec, kind, update):
    clock, cell, emu, driver = make(spec, 21)
    if not update:
        del emu.dll.BL_UpdateParameters  # an old library: segments are chained instead of extended
    driver.connect()
    if kind == "current":
        driver.apply_current(-spec.current(5 * MA_CM2), -5, 5, 1.0, duration=7200.0)
    else:
        driver.apply_potential(0.02, -5e-3, 5e-3, 1.0, duration=7200.0)
    block = run_for(driver, clock, 400.0)
    assert emu.output_on(0) and len(block) >= 399  # polled: the step goes on past several dead-man times
    assert np.max(np.diff(block.t)) <= (1.0 + 1e-4 if update else 6.0)  # extended in place, or chained
    last_poll = clock.now()
    clock.sleep(25.0)
    assert emu.output_on(0) is update  # extended: at least half the dead-man time left at every poll
    clock.sleep(3600.0)  # the process died: nobody polls
    off = emu.output_off_since(0)
    assert off is not None and off - last_poll <= driver.deadman_s + 1e-6
    with pytest.raises(InstrumentError, match="dead-man time|was not polled in time|stopped"):
        driver.read()
