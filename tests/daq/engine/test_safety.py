import numpy as np

from daq.engine.safety import ShortCircuitDetector
from protocols.steps import ShortCircuitCriteria

I_SET = -70e-6


def detector(**kw):
    return ShortCircuitDetector(ShortCircuitCriteria(**kw), 1.0, I_SET)


def test_sudden_collapse_trips_at_first_collapsed_sample():
    e = np.r_[np.full(30, -0.25), np.full(5, -0.015)]
    assert detector().check(e, np.full(len(e), I_SET)) == 30


def test_collapse_across_block_boundary():
    d = detector()
    assert d.check(np.full(30, -0.25), np.full(30, I_SET)) is None
    assert d.check(np.full(5, -0.015), np.full(5, I_SET)) == 0


def test_slow_decline_and_build_up_do_not_trip():
    build_up = -np.linspace(0, 0.25, 20)
    slow = -np.linspace(0.25, 0.08, 2000)  # bulk path shortening over half an hour
    e = np.r_[build_up, slow]
    assert detector().check(e, np.full(len(e), I_SET)) is None


def test_current_switched_off_by_instrument_is_not_a_short():
    e = np.r_[np.full(30, -0.25), np.full(5, 0.0)]
    i = np.r_[np.full(30, I_SET), np.zeros(5)]
    assert detector().check(e, i) is None


def test_small_polarisation_noise_does_not_trip():
    rng = np.random.default_rng(0)
    e = -0.003 + rng.normal(0, 2e-4, 5000)  # tiny polarisation: drops are below min_drop
    assert detector().check(e, np.full(len(e), I_SET)) is None


def test_thresholds_are_configurable():
    e = np.r_[np.full(30, -0.25), np.full(5, -0.15)]  # falls to 60 %
    assert detector().check(e, np.full(len(e), I_SET)) is None
    assert detector(collapse_fraction=0.7).check(e, np.full(len(e), I_SET)) == 30


def _first_trip_in_blocks(e, i, size):
    """Global index of the first trip when the record arrives in blocks of ``size`` samples."""
    d = detector()
    for start in range(0, len(e), size):
        k = d.check(e[start : start + size], i[start : start + size])
        if k is not None:
            return start + k
    return None


def test_trip_does_not_depend_on_block_size():
    # A collapse 4 samples after the instrument switched off for 3 samples: the reference is carried
    # across blocks shorter and longer than the 10 s window, and the off samples count as no reference.
    e = np.r_[-np.linspace(0, 0.25, 20), np.full(110, -0.25), np.zeros(3), np.full(4, -0.25), np.full(20, -0.01)]
    i = np.full(len(e), I_SET)
    i[130:133] = 0.0
    assert detector().check(e, i) == 137
    for size in (1, 3, 7, 10, 11, 64, 1000):
        assert _first_trip_in_blocks(e, i, size) == 137, size
