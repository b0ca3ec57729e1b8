"""DRT: peaks at the known time constants with the known resistances."""

from __future__ import annotations

import numpy as np
import pytest

from daq.analysis.circuits import Circuit
from daq.analysis.drt import drt
from daq.models.cell import load_cell
from simulators.cell import SimulatedCell
from tests.conftest import cell_file


def noisy(z, sigma, seed):
    rng = np.random.default_rng(seed)
    return z * (1 + sigma * (rng.normal(size=z.size) + 1j * rng.normal(size=z.size)))


def test_two_rc_elements_give_two_peaks_at_their_time_constants():
    f = np.geomspace(7e6, 0.1, 70)
    z = noisy(Circuit("R0-p(R1,C1)-p(R2,C2)").impedance(f, [10.0, 1000.0, 1e-9, 500.0, 1e-5]), 0.002, seed=0)
    result = drt(f, z)
    assert len(result.peaks) == 2
    fast, slow = result.peaks
    assert fast.tau == pytest.approx(1e-6, rel=0.1)  # R1 C1
    assert slow.tau == pytest.approx(5e-3, rel=0.1)  # R2 C2
    assert fast.resistance == pytest.approx(1000.0, rel=0.02)
    assert slow.resistance == pytest.approx(500.0, rel=0.02)
    assert result.r_inf == pytest.approx(10.0, abs=1.0)
    assert result.polarisation_resistance == pytest.approx(1500.0, rel=0.02)
    assert np.all(result.gamma >= 0)
    assert result.relative_residual < 0.006


def test_simulated_cell_bulk_and_interface_processes():
    """ZARC arcs peak at tau = (R Q)^(1/alpha): ~1e-7 s bulk, ~2.7e-5 s interface."""
    f = np.geomspace(7e6, 0.5, 60)
    sim = SimulatedCell(load_cell(cell_file(99)))
    result = drt(f, noisy(sim.impedance(f), 0.002, seed=0))
    assert len(result.peaks) == 2
    bulk, interface = result.peaks
    assert bulk.tau == pytest.approx((2500 * 2e-10) ** (1 / 0.9), rel=0.3)
    assert interface.tau == pytest.approx((1324 * 1e-7) ** (1 / 0.85), rel=0.3)
    assert bulk.resistance == pytest.approx(float(sim.bulk_resistance()), rel=0.1)
    assert interface.resistance == pytest.approx(1324.0, rel=0.1)
    assert bulk.frequency == pytest.approx(1 / (2 * np.pi * bulk.tau))


def test_stronger_regularisation_smooths():
    f = np.geomspace(7e6, 0.1, 70)
    z = Circuit("R0-p(R1,C1)").impedance(f, [10.0, 1000.0, 1e-9])
    sharp = drt(f, z, regularisation=1e-4)
    smooth = drt(f, z, regularisation=1e-1)
    assert sharp.gamma.max() > 1.5 * smooth.gamma.max()
    assert smooth.polarisation_resistance == pytest.approx(1000.0, rel=0.03)
