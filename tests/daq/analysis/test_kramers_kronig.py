"""Lin-KK: valid spectra pass with residuals at the noise level; spectra of a changing cell fail."""

from __future__ import annotations

import numpy as np
import pytest

from daq.analysis import AnalysisError
from daq.analysis.circuits import Circuit
from daq.analysis.kramers_kronig import lin_kk
from daq.models.cell import load_cell
from simulators.cell import SimulatedCell
from tests.conftest import cell_file

F = np.geomspace(7e6, 0.5, 60)
TWO_ARCS = Circuit("R0-p(R1,CPE1)-p(R2,CPE2)")
TRUE = np.array([5.0, 2500.0, 2e-10, 0.9, 1324.0, 1e-7, 0.85])


def noisy(z, sigma, seed):
    rng = np.random.default_rng(seed)
    return z * (1 + sigma * (rng.normal(size=z.size) + 1j * rng.normal(size=z.size)))


def test_noise_free_spectrum_is_reproduced_almost_exactly():
    result = lin_kk(F, TWO_ARCS.impedance(F, TRUE))
    assert result.passed
    assert result.max_residual < 5e-4
    assert result.mu <= 0.85 and result.n_elements > 5


def test_valid_noisy_simulated_spectrum_passes_and_rms_estimates_the_noise():
    z = noisy(SimulatedCell(load_cell(cell_file(99))).impedance(F), 0.002, seed=0)
    result = lin_kk(F, z)
    assert result.passed, str(result)
    assert result.max_residual < 0.008
    # per-component noise is 0.2 %; Lin-KK absorbs a little of it
    assert 0.0012 < result.rms_residual < 0.0022


def test_interface_growing_during_the_sweep_fails():
    """A void growing while the low-frequency points are measured (R2 +20 % over the sweep time)."""
    elapsed = np.cumsum(1 / F)
    elapsed /= elapsed[-1]
    z = np.array(
        [TWO_ARCS.impedance(F[i : i + 1], TRUE * [1, 1, 1, 1, 1 + 0.2 * elapsed[i], 1, 1])[0] for i in range(F.size)]
    )
    result = lin_kk(F, noisy(z, 0.002, seed=0))
    assert not result.passed
    assert result.max_residual > 0.02


def test_inconsistent_real_and_imaginary_parts_fail():
    z = TWO_ARCS.impedance(F, TRUE)
    corrupted = z.real + 1.1j * z.imag  # an instrument phase/gain error on the quadrature channel
    assert lin_kk(F, z).passed
    result = lin_kk(F, corrupted)
    assert not result.passed and result.max_residual > 0.02


def test_threshold_and_capacitive_tail():
    z = Circuit("R0-p(R1,CPE1)-C2").impedance(F, [10.0, 1000.0, 1e-7, 0.9, 1e-4])
    result = lin_kk(F, z, capacitance=True, n_elements=20)
    assert result.max_residual < 5e-3 and result.capacitance == pytest.approx(1e-4, rel=0.01)
    assert lin_kk(F, z, n_elements=20).capacitance == pytest.approx(1e-4, rel=0.01)  # the tail is seen
    assert lin_kk(F, z, capacitance=False, n_elements=20).max_residual > 0.1  # the tail needs the capacitor
    assert lin_kk(F, z, capacitance=True, n_elements=20, threshold=1e-6).passed is False
    with pytest.raises(AnalysisError):
        lin_kk(F[:3], z[:3])
    with pytest.raises(AnalysisError, match="mu criterion"):
        lin_kk(F, z, c=1.5)
