"""The lab's protocols through the vendor drivers against their emulated APIs give the simulator's outcome."""

import pytest

from daq.core.clock import VirtualClock
from daq.core.errors import ConfigError
from daq.engine.runner import run_protocol
from daq.models.cell import load_cell
from daq.storage.reader import open_run
from drivers.biologic import BiologicConnection, BiologicPotentiostat
from drivers.gamry import GamryPotentiostat
from protocols.loader import load_protocol
from simulators import eclib, gamrycom
from simulators.cell import SimulatedCell
from tests.conftest import EXAMPLES, cell_file, run_sim

SECTION = "IFC1010-21185"


def gamry(spec, clock):
    emu = gamrycom.GamryComEmulator(clock, {SECTION: SimulatedCell(spec)})
    return GamryPotentiostat(com=emu, clock=clock, call_timeout=2.0, safe_timeout=3.0), emu


def biologic(spec, clock, device_code=21):
    emu = eclib.EClibEmulator(clock, {0: SimulatedCell(spec)}, device_code=device_code)
    return BiologicPotentiostat(
        BiologicConnection("USB0", dll=emu.dll, call_timeout=2.0), 0, clock=clock, safe_timeout=3.0
    ), emu


def sp300(spec, clock):  # PREMIUM board: 14-word impedance rows
    return biologic(spec, clock, 16)


def vmp3e(spec, clock):  # DIGICORE board: 15-word impedance rows, OCV rows with Ece
    return biologic(spec, clock, 33)


# The paper's 7 MHz sweep suits the BioLogic SP-200; a Gamry Interface 1010 reaches 2 MHz.
GAMRY_RANGE = {"steps.2.f_start": "2 MHz", "steps.3.operando_eis.f_start": "2 MHz"}


@pytest.mark.parametrize(
    "make,extra",
    [
        (gamry, GAMRY_RANGE),
        (biologic, {}),
        (sp300, {}),
        (vmp3e, {"steps.2.f_start": "1 MHz", "steps.3.operando_eis.f_start": "1 MHz"}),
    ],
    ids=["gamry", "biologic-sp200", "biologic-sp300", "biologic-vmp3e"],
)
def test_operando_geis_through_vendor_driver(tmp_path, make, extra):
    overrides = {"steps.1.duration": "10 s", **extra}
    reference = run_sim(EXAMPLES / "operando_geis_plating.toml", tmp_path / "sim.h5", 99, overrides)
    spec = load_cell(cell_file(99))
    clock = VirtualClock()
    driver, emu = make(spec, clock)
    try:
        # a real instrument cannot rewind a block: poll it every few seconds, as a real-time engine does
        result = run_protocol(
            load_protocol(EXAMPLES / "operando_geis_plating.toml", overrides),
            spec,
            driver,
            clock,
            tmp_path / "drv.h5",
            block_interval=4.0,
        )
    finally:
        getattr(emu, "release", lambda: None)()
    assert result.outcome == reference.outcome == "short_circuit"
    assert result.short["capacity"] == pytest.approx(reference.short["capacity"], rel=0.01)
    with open_run(result.path) as run, open_run(reference.path) as ref:
        assert len(run.spectra()) == len(ref.spectra())
        assert list(run.spectra()["n_points"]) == list(ref.spectra()["n_points"])  # every spectrum's points


@pytest.mark.parametrize("make", [sp300, vmp3e], ids=["biologic-sp300", "biologic-vmp3e"])
def test_peis_protocol_on_biologic_families(tmp_path, make):
    overrides = {"steps.1.duration": "60 s", "steps.3.duration": "60 s"}
    reference = run_sim(EXAMPLES / "peis.toml", tmp_path / "sim.h5", 99, overrides)
    spec = load_cell(cell_file(99))
    clock = VirtualClock()
    driver, emu = make(spec, clock)
    result = run_protocol(
        load_protocol(EXAMPLES / "peis.toml", overrides), spec, driver, clock, tmp_path / "drv.h5", block_interval=4.0
    )
    assert result.outcome == reference.outcome
    with open_run(result.path) as run, open_run(reference.path) as ref:
        got, want = run.spectra(), ref.spectra()
        assert list(got["n_points"]) == list(want["n_points"]) == [61, 61]
    assert not emu.output_on(0)


def test_sweep_beyond_the_instrument_is_refused_before_anything_runs(tmp_path):
    spec = load_cell(cell_file(99))
    clock = VirtualClock()
    driver, emu = gamry(spec, clock)
    out = tmp_path / "r.h5"
    try:
        with pytest.raises(ConfigError, match=r"steps.2.f_start = '7e\+06 Hz': outside the instrument's"):
            run_protocol(load_protocol(EXAMPLES / "operando_geis_plating.toml"), spec, driver, clock, out)
    finally:
        emu.release()
    assert not out.exists()
