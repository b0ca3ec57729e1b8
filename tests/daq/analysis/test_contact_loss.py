"""Contact loss from interface resistance: area fraction, local current ratio, regions."""

from __future__ import annotations

import numpy as np
import pytest

from daq.analysis import AnalysisError
from daq.analysis.contact_loss import classify, contact_loss


def test_area_and_current_ratio_from_resistance():
    result = contact_loss([80.0, 100.0, 150.0, 160.0, 320.0, 400.0])
    np.testing.assert_allclose(result.area_fraction, [1.0, 0.64, 0.28444, 0.25, 0.0625, 0.04], rtol=1e-4)
    np.testing.assert_allclose(result.current_ratio, [1.0, 1.5625, 3.515625, 4.0, 16.0, 25.0])
    assert result.regions == ("stable", "transition", "transition", "transition", "failure", "failure")
    assert result.first("failure") == 4
    assert result.first("stable") == 0


def test_published_example_80_to_150_ohm():
    """~80 ohm staying < 150 ohm up to 5 mAh/cm^2: ratio 3.5, area 28 %, not yet failing."""
    result = contact_loss([150.0], initial_resistance=80.0)
    assert result.current_ratio[0] == pytest.approx(3.516, rel=1e-3)
    assert result.area_fraction[0] == pytest.approx(0.2844, rel=1e-3)
    assert result.regions == ("transition",)


def test_region_limits_and_gaps():
    # with an independently measured area the ratio limits apply as published
    assert classify(2.7, 0.85) == "stable"
    assert classify(2.8, 0.85) == "transition"  # gap 2.75-3 counts as transition
    assert classify(2.7, 0.75) == "transition"  # area condition fails
    assert classify(13.0) == "transition"  # gap 12-15 counts as transition
    assert classify(15.0) == "transition"
    assert classify(15.01) == "failure"
    # from one resistance the area is 1/ratio: stable only below ratio 1.25
    assert classify(1.24) == "stable"
    assert classify(1.26) == "transition"
    assert contact_loss([100.0, 110.0, 112.0]).regions == ("stable", "stable", "transition")


def test_measured_areas_and_bad_input():
    result = contact_loss([100.0, 160.0], area_fractions=[1.0, 0.82])
    assert result.regions == ("stable", "stable")  # ratio 2.56 < 2.75 with 82 % measured contact
    with pytest.raises(AnalysisError):
        contact_loss([100.0, -1.0])
    with pytest.raises(AnalysisError):
        contact_loss([])
    with pytest.raises(AnalysisError):
        contact_loss([100.0], area_fractions=[1.0, 0.5])
    with pytest.raises(AnalysisError):
        classify(0.0)
