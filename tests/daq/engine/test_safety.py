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


CRITERIA = ShortCircuitCriteria()


def _reference_trips(e, i, set_current, c=CRITERIA, width=10):
    """The rule written per sample: sample k trips if the set current flows at k and |E_k| is below both
    thresholds of the largest |E| over the preceding ``width`` valid samples (0 where the current does not
    flow or E is NaN: such samples neither trip nor count as a reference)."""
    flowing = (i * np.sign(set_current) >= 0.5 * abs(set_current)) & ~np.isnan(e)
    mag = np.where(flowing, np.abs(e), 0.0)
    for k in range(len(e)):
        ref = mag[max(0, k - width) : k].max() if k else 0.0
        if flowing[k] and mag[k] < c.collapse_fraction * ref and ref - mag[k] > c.min_drop:
            return k
    return None


def test_blocks_decide_as_the_per_sample_rule():
    # Random records of both polarities with sign changes, NaN, switched-off samples and collapses, read
    # in random block sizes: the vectorised detector (with its fast exits) trips where the rule does.
    rng = np.random.default_rng(3)
    for case in range(300):
        set_current = I_SET if case % 2 else -I_SET
        n = int(rng.integers(5, 400))
        e = np.sign(set_current) * (0.25 + rng.normal(0, 0.02, n))
        if case % 5 == 0:
            e[rng.integers(0, n)] = -e[0]  # a sample of the other sign
        if case % 7 == 0:
            e[rng.integers(0, n)] = np.nan
        i = np.full(n, set_current)
        if case % 3 == 0:
            off = rng.integers(0, n)
            i[off : off + 3] = 0.0
        if case % 4 != 1:
            k = rng.integers(0, n)
            e[k:] *= 0.02 if case % 8 else 0.9  # a collapse, or a harmless 10 % fall
        expected = _reference_trips(e, i, set_current)
        d, found, start = ShortCircuitDetector(ShortCircuitCriteria(), 1.0, set_current), None, 0
        while start < n and found is None:
            size = int(rng.integers(1, 120))
            k = d.check(e[start : start + size], i[start : start + size])
            found = None if k is None else start + k
            start += size
        assert found == expected, case
