"""Crack and filament relations against the numbers in science.md 2.3."""

from __future__ import annotations

import math

import pytest

from daq.models import cracks
from daq.models.constants import V_M_LI, F


def test_filament_diameter_of_the_published_short():
    d = cracks.filament_diameter(cracks.FILAMENT_RESISTANCE, 1.2e-3)
    assert d == pytest.approx(0.5677e-6, rel=1e-3)
    # using the whole shorted cell (contacts included) makes the filament look thinner
    assert cracks.filament_diameter(cracks.SHORTED_CELL_RESISTANCE, 1.2e-3) == pytest.approx(0.5396e-6, rel=1e-3)
    # round trip: a wire of that diameter has the resistance back
    assert 9.28e-8 * 1.2e-3 / (math.pi * d**2 / 4) == pytest.approx(440.0)


def test_fracture_stress_and_overpotential_for_llzo():
    sigma = cracks.fracture_stress(1e-6)
    assert sigma == pytest.approx(338.5e6, rel=1e-3)
    assert cracks.cracking_overpotential(sigma) == pytest.approx(0.04561, rel=1e-3)
    assert cracks.deposition_stress(cracks.cracking_overpotential(sigma)) == pytest.approx(sigma)
    # larger flaws break at lower stress, as 1/sqrt(a)
    assert cracks.fracture_stress(4e-6) == pytest.approx(sigma / 2)
    # Li6PS5Cl (K_IC 0.23 MPa m^0.5) cracks at a lower stress for the same flaw
    assert cracks.fracture_stress(1e-6, toughness=0.23e6) == pytest.approx(129.8e6, rel=1e-3)


def test_tip_current_density():
    j = cracks.tip_current_density(1e-6)
    assert j == pytest.approx(F * 1e-6 / V_M_LI)
    assert j / 10 == pytest.approx(742.2, rel=1e-3)  # mA/cm^2
    assert cracks.tip_current_density(0.0) == 0.0


@pytest.mark.parametrize(
    "call",
    [
        lambda: cracks.filament_diameter(0.0, 1e-3),
        lambda: cracks.filament_diameter(440.0, -1e-3),
        lambda: cracks.fracture_stress(0.0),
        lambda: cracks.fracture_stress(1e-6, toughness=float("nan")),
        lambda: cracks.tip_current_density(-1e-6),
    ],
)
def test_non_physical_inputs_are_refused(call):
    with pytest.raises(ValueError):
        call()
