from dataclasses import replace

import pytest

from daq.models import ccd, voids


def mA(x):
    return x / 10.0  # A/m^2 -> mA/cm^2


def test_literature_constants_reproduce_the_published_reconstruction():
    # science.md 2.1: "about 1.5 mA/cm^2 for the low-density and 13 mA/cm^2 for the high-density microstructure"
    assert mA(ccd.critical_current_density(ccd.LOW_DENSITY, ccd.LITERATURE)) == pytest.approx(1.5, rel=0.05)
    assert mA(ccd.critical_current_density(ccd.HIGH_DENSITY, ccd.LITERATURE)) == pytest.approx(13.0, rel=0.05)


def test_calibration_matches_published_ccds():
    p = ccd.calibrated()
    assert mA(ccd.critical_current_density(ccd.HIGH_DENSITY, p)) == pytest.approx(9.5, rel=1e-9)
    assert mA(ccd.critical_current_density(ccd.LOW_DENSITY, p)) == pytest.approx(0.95, rel=1e-6)
    assert 6.3 < p.creep_exponent < 7.0  # inside the literature spread around 6.6


@pytest.mark.parametrize(
    "field,factor,direction",
    [
        ("pore_radius", 1.5, -1),
        ("pore_separation", 1.5, -1),
        ("crack_width", 1.2, +1),
        ("crack_length", 1.5, -1),
    ],
)
def test_trends(field, factor, direction):
    base = ccd.critical_current_density(ccd.HIGH_DENSITY)
    scaled = replace(ccd.HIGH_DENSITY, **{field: getattr(ccd.HIGH_DENSITY, field) * factor})
    changed = ccd.critical_current_density(scaled)
    assert (changed - base) * direction > 0


def test_fracture_toughness_power_law():
    p = ccd.calibrated()
    ratio = ccd.critical_current_density(
        ccd.HIGH_DENSITY, replace(p, fracture_toughness=2 * p.fracture_toughness)
    ) / ccd.critical_current_density(ccd.HIGH_DENSITY, p)
    assert ratio == pytest.approx(2**p.creep_exponent, rel=1e-9)


def test_prediction_band_brackets_value():
    pred = ccd.predict(ccd.HIGH_DENSITY)
    assert pred.low < pred.value < pred.high


def test_void_free_limit_published_numbers():
    assert mA(voids.void_free_limit(7e6)) == pytest.approx(0.094, abs=0.002)
    assert mA(voids.void_free_limit(5e6)) == pytest.approx(0.067, abs=0.002)
    # r_crit ~ 1/i
    assert voids.critical_void_radius(10.0) == pytest.approx(10 * voids.critical_void_radius(100.0))
