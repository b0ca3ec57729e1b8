"""A circuit with more arcs than the spectrum shows: the fit says so instead of reporting a real fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from daq.analysis.circuits import Circuit
from daq.analysis.eis_fit import fit_circuit
from daq.importers import read_recording

ONE_ARC = "R0-p(R1,CPE1)"
TWO_ARCS = "R0-p(R1,CPE1)-p(R2,CPE2)"
ZPLOT = Path(__file__).resolve().parents[2] / "data" / "spectra" / "exampleDataZPlot.z"


def test_arc_pushed_to_its_bounds_is_named_and_no_further_start_is_tried():
    """ZPlot example: one arc over two decades (300 kHz - 3 kHz)."""
    s = read_recording(ZPLOT).spectra[0]
    f, z = s.frequency, s.Z_re + 1j * s.Z_im
    right = fit_circuit(f, z, ONE_ARC)
    fit = fit_circuit(f, z, TWO_ARCS)
    assert right.success
    assert fit.relative_residual <= right.relative_residual * (1 + 1e-6)
    assert not fit.success
    assert "shows 1 of the circuit's 2 arcs" in fit.message and "fewer arcs" in fit.message
    assert set(fit.at_bound) in ({"CPE1.Q", "CPE1.alpha"}, {"CPE2.Q", "CPE2.alpha"})
    # the first start answers: the multi-start stops (a handful of evaluations, not hundreds)
    assert fit.nfev <= right.nfev * 5
    again = fit_circuit(f, z, TWO_ARCS)
    assert np.array_equal(again.values, fit.values) and again.message == fit.message


def test_arc_moved_out_of_range_without_a_bound_is_not_a_real_fit():
    """The extra arc may leave the range inside its bounds: R0 and its resistance then trade freely."""
    f = np.geomspace(3e5, 3e3, 21)
    z0 = Circuit(ONE_ARC).impedance(f, [150.0, 500.0, 3e-8, 1.0])
    rng = np.random.default_rng(11)
    z = z0 * (1 + 0.003 * (rng.normal(size=f.size) + 1j * rng.normal(size=f.size)))
    fit = fit_circuit(f, z, TWO_ARCS)
    assert fit_circuit(f, z, ONE_ARC).success
    assert not fit.success and "not determined by the data" in fit.message
    assert fit.relative_residual < 0.004  # the fit itself is good: the parameters are what is missing


def test_two_visible_arcs_still_fit_both():
    f = np.geomspace(1e6, 0.1, 60)
    truth = [10.0, 500.0, 1e-9, 0.9, 3000.0, 1e-5, 0.8]
    fit = fit_circuit(f, Circuit(TWO_ARCS).impedance(f, truth), TWO_ARCS)
    assert fit.success and fit.at_bound == ()
    assert np.allclose(fit.values, truth, rtol=1e-4)
