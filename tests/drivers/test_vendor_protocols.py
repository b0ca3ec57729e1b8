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


def biologic(spec, clock):
    emu = eclib.EClibEmulator(clock, {0: SimulatedCell(spec)})
    return BiologicPotentiostat(
        BiologicConnection("USB0", dll=emu.dll, call_timeout=2.0), 0, clock=clock, safe_timeout=3.0
    ), emu


# The paper's 7 MHz sweep suits the BioLogic SP-200; a Gamry Interface 1010 reaches 2 MHz.
GAMRY_RANGE = {"steps.2.f_start": "2 MHz", "steps.3.operando_eis.f_start": "2 MHz"}


@pytest.mark.parametrize("make,extra", [(gamry, GAMRY_RANGE), (biologic, {})], ids=["gamry", "biologic"])
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
