"""Safety monitors evaluated on every block, vectorised: short-circuit detection and limits."""

from __future__ import annotations

import math

import numpy as np

from protocols.steps import ShortCircuitCriteria


class ShortCircuitDetector:
    """Finds the first sample of a sudden collapse of polarisation during a current step.

    The reference is the largest |E| over the preceding ``window`` (carried across blocks), so a slow
    drift never trips it but a dendrite short, where |E| falls to a few percent in one sample period,
    does. Samples where the set current is not flowing in its direction (instrument limit, end of the
    step, a sample of the previous command) are ignored: there the polarisation changes for a harmless
    reason. A detector belongs to one command: make a new one at every (re)apply.
    """

    def __init__(self, criteria: ShortCircuitCriteria, sample_period: float, set_current: float):
        self.criteria = criteria
        self.set_current = set_current
        self.width = max(int(math.ceil(criteria.window / sample_period)), 1)
        self._tail = np.zeros(0)  # |E| of the last ``width`` valid samples

    def check(self, potential: np.ndarray, current: np.ndarray) -> int | None:
        """Index of the tripping sample in this block, or None."""
        c = self.criteria
        if not c.enabled or len(potential) == 0 or self.set_current == 0:
            return None
        # Only samples of this command count: the set current flowing in the set direction.
        signed = current * math.copysign(1.0, self.set_current)
        all_flowing = float(signed.min()) >= 0.5 * abs(self.set_current)  # the usual block: one reduction
        flowing = np.ones(0, dtype=bool) if all_flowing else signed >= 0.5 * abs(self.set_current)
        mag = np.abs(potential) if all_flowing else np.where(flowing, np.abs(potential), 0.0)
        w, tail = self.width, self._tail
        # Fast exit for the usual block: every reference is at most the largest |E| of the tail and the
        # block, so no sample can trip unless it lies below both thresholds taken at that maximum (saves
        # the rolling maximum, and the joined copy when the block alone fills the window).
        top = float(mag.max())
        if tail.size:
            before = float(tail.max())
            top = before if before > top or before != before else top  # NaN propagates, as in np.max
        self._tail = mag[-w:] if len(mag) >= w else np.concatenate([tail, mag])[-w:]
        below = mag < min(c.collapse_fraction * top, top - c.min_drop)
        if not (below if all_flowing else flowing & below).any():
            return None
        from scipy.ndimage import maximum_filter1d  # only for a block that may trip (rare)

        if all_flowing:
            flowing = np.ones(len(mag), dtype=bool)
        joined = np.concatenate([tail, mag])
        # ref[k] = max(joined[k-w : k]) (preceding window, excluding sample k itself)
        rolling = maximum_filter1d(joined, size=w, origin=(w - 1) // 2, mode="constant", cval=0.0)  # trailing
        ref = np.concatenate([[0.0], rolling[:-1]])[len(tail) :]
        trip = flowing & (mag < c.collapse_fraction * ref) & (ref - mag > c.min_drop)
        hits = np.flatnonzero(trip)
        return int(hits[0]) if hits.size else None


def first_outside(values: np.ndarray, lo: float, hi: float) -> int | None:
    """Index of the first value outside [lo, hi], or None."""
    if len(values) == 0 or (values.min() >= lo and values.max() <= hi):  # the usual case: two reductions
        return None
    hits = np.flatnonzero((values < lo) | (values > hi))
    return int(hits[0]) if hits.size else None
