"""The lab's protocols on the physics twin: cycling, operando GEIS, PEIS, voids, campaigns."""

import json

import h5py
import numpy as np
import pytest

from daq.core.errors import ConfigError
from daq.engine.campaign import bracket, run_campaign
from daq.storage.reader import open_run
from protocols.campaign import load_campaign
from simulators.rig import simulated_channel
from tests.conftest import EXAMPLES, run_sim

Q_UNIT = 36000.0


def test_asymmetric_cycling_83_shorts_early_and_99_completes(tmp_path):
    res83 = run_sim(EXAMPLES / "asymmetric_cycling.toml", tmp_path / "a83.h5", 83)
    assert res83.outcome == "short_circuit" and res83.cycles <= 10
    res99 = run_sim(EXAMPLES / "asymmetric_cycling.toml", tmp_path / "a99.h5", 99)
    assert res99.outcome == "completed" and res99.cycles == 100
    assert res99.duration / 86400 == pytest.approx(42, abs=0.5)  # about 42 days of cell time
    with open_run(res99.path) as run:
        steps = run.steps()
        assert len(steps) == 1 + 200 and set(steps.end_reason[1:]) == {"capacity_reached"}
        cycle = run.column("cycle")
        assert cycle[0] == 0 and cycle[-1] == 100 and np.all(np.diff(cycle) >= 0)  # cycle recorded per sample
        area = run.cell["electrodes.working_area"]
        assert np.allclose(np.abs(steps.Q[1:]) / area / Q_UNIT, 0.5, rtol=1e-6)


def test_operando_geis_bulk_resistance_falls_before_the_short(tmp_path):
    res = run_sim(EXAMPLES / "operando_geis_plating.toml", tmp_path / "op.h5", 99)
    assert res.outcome == "short_circuit"
    with h5py.File(res.path, "r") as f:
        fits = f["analysis/eis_fits"][:]
        short = json.loads(f["analysis"].attrs["short"])
        spectra = f["eis/spectra"][:]
    before = fits[fits["t"] < short["t"]]
    plating = before[before["Q"] < 0]
    assert len(plating) >= 15  # one spectrum every 0.25 mAh/cm^2
    assert np.all(np.diff(plating["R1"]) < 0)  # bulk arc shrinks spectrum after spectrum
    assert plating["R1"][-1] < 0.5 * plating["R1"][0]
    # capacity bookkeeping went on during the sweeps: spectra every 0.25 mAh/cm^2 of plating
    area = np.pi * 0.5e-3**2
    q = np.abs(spectra["Q"][spectra["Q"] < 0]) / area / Q_UNIT
    assert np.allclose(np.diff(q), 0.25, atol=0.02)
    # the impedance drops at the short: the post-short spectrum is a few hundred ohm
    assert 100 < short["resistance"] < 500 and 0.1e-6 < short["filament_diameter"] < 5e-6


def test_peis_spectrum_matches_cell(tmp_path):
    res = run_sim(EXAMPLES / "peis.toml", tmp_path / "peis.h5", 99)
    with open_run(res.path) as run:
        spectra = run.spectra()
        assert len(spectra) == 2 and set(spectra["mode"]) == {"potentiostatic"}
        s = run.spectrum(0)
        assert s.frequency.iloc[0] == pytest.approx(1e6) and s.frequency.iloc[-1] == pytest.approx(1.0)
        assert len(s) == 61
    with h5py.File(res.path, "r") as f:
        fits = f["analysis/eis_fits"][:]
        sigma = f["analysis"].attrs["conductivity_from_first_spectrum"]
    assert sigma == pytest.approx(0.20, rel=0.05)  # the cell file's 2.0 mS/cm
    assert fits["R2"][1] > fits["R2"][0]  # the SEI grew during the hour at rest


STRIP = """
[protocol]
name = "strip"
[[steps]]
kind = "galvanostatic"
direction = "strip"
current_density = "{cd}"
capacity = "1 mAh/cm^2"
"""


PEIS = """
[[steps]]
kind = "eis"
mode = "potentiostatic"
f_start = "1 MHz"
f_end = "1 Hz"
points_per_decade = 8
amplitude = "5 mV"
"""
STRIP_WITH_EIS = (
    """
[protocol]
name = "strip with impedance"
[[steps]]
kind = "rest"
duration = "10 h"
"""
    + PEIS
    + """
[[steps]]
kind = "galvanostatic"
direction = "strip"
current_density = "0.09 mA/cm^2"
capacity = "5 mAh/cm^2"
sample_period = "10 s"
"""
    + PEIS
)


@pytest.mark.parametrize("pressure,voids", [("7 MPa", False), ("5 MPa", True)])
def test_void_free_limit_follows_stack_pressure(tmp_path, pressure, voids):
    """0.09 mA/cm^2 is below the void-free limit at 7 MPa (0.094) and above it at 5 MPa (0.067): only at
    5 MPa does the interface resistance (R2) rise after stripping, as voids take away contact."""
    path = tmp_path / "p.toml"
    path.write_text(STRIP_WITH_EIS)
    res = run_sim(path, tmp_path / "s.h5", 99, cell_overrides={"conditions.stack_pressure": pressure})
    with h5py.File(res.path, "r") as f:
        r2 = f["analysis/eis_fits"]["R2"]
    ratio = r2[1] / r2[0]
    assert (ratio > 1.08) == voids
    assert ratio > 0.98


def test_fast_stripping_loses_contact_until_cut_off(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(STRIP.format(cd="1 mA/cm^2").replace('capacity = "1 mAh/cm^2"', 'capacity = "8 mAh/cm^2"'))
    res = run_sim(path, tmp_path / "s.h5", 99)
    assert res.outcome == "voltage_limit"
    with open_run(res.path) as run:
        stripped = abs(run.steps().Q.iloc[0]) / run.cell["electrodes.working_area"] / Q_UNIT
    assert 4.0 < stripped < 8.0  # published effective stripping capacity about 5 mAh/cm^2 at 1 mA/cm^2


def test_bracket_logic():
    d = np.array([1, 1, 1, 2, 2, 2, 3, 3, 3], float)
    f = np.array([0, 0, 0, 0, 1, 0, 1, 1, 1], bool)
    b = bracket(d, f)
    assert (b.highest_safe, b.lowest_failed) == (1.0, 3.0)
    assert np.isnan(bracket(d, np.zeros(9, bool)).lowest_failed)


def test_campaign_brackets_both_ccds(tmp_path):
    campaign = load_campaign(EXAMPLES / "ccd_campaign.toml")
    tests, summary, png = run_campaign(campaign, tmp_path, simulated_channel)
    assert len(tests) == 2 * 4 * 3 and png.exists()
    s83, s99 = summary
    assert s83["highest_safe"] < 1.0 <= s83["lowest_failed"]  # published: 83 % fails at 1 mA/cm^2
    assert s99["highest_safe"] == 9.0 and s99["lowest_failed"] == 10.0  # published: safe at 9, fails at 10
    assert s83["prediction_in_bracket"] and s99["prediction_in_bracket"]
    with h5py.File(tmp_path / "campaign.h5", "r") as f:
        assert json.loads(f["summary"].attrs["units"])["predicted"] == "mA/cm^2"


def test_campaign_file_errors(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text(
        '[campaign]\nprotocol = "x.toml"\nrepeats = 0\n[[series]]\ncell = "c.toml"\ncurrent_densities = ["1 mA/cm^2"]\n'
    )
    with pytest.raises(ConfigError, match="campaign.repeats = 0"):
        load_campaign(bad)
    bad.write_text('[campaign]\nprotocol = "x.toml"\n[[series]]\ncell = "c.toml"\ncurrent_densities = ["1 mA"]\n')
    with pytest.raises(ConfigError, match=r"series.1.current_densities.1"):
        load_campaign(bad)
