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
    reason; so are samples without a valid potential (NaN), which must not blind the detector. A
    detector belongs to one command: make a new one at every (re)apply.
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
        half = 0.5 * abs(self.set_current)
        # The usual block: one reduction (NaN fails the comparison, as it fails ``signed >= half``).
        all_flowing = float(current.min()) >= half if self.set_current > 0 else float(current.max()) <= -half
        w, tail = self.width, self._tail
        if all_flowing and self._quiet(potential, tail):
            return None
        if all_flowing and not np.isnan(potential).any():
            flowing, mag = np.ones(0, dtype=bool), np.abs(potential)
        else:  # a sample without a valid potential is neither a reference nor a trip (as a switched-off one)
            all_flowing = False
            flowing = (current * math.copysign(1.0, self.set_current) >= half) & ~np.isnan(potential)
            mag = np.where(flowing, np.abs(potential), 0.0)
        # Fast exit: every reference is at most the largest |E| of the tail and the block, so no sample can
        # trip unless it lies below both thresholds taken at that maximum (saves the rolling maximum).
        top = _top(float(mag.max()), tail)
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

    def _quiet(self, potential: np.ndarray, tail: np.ndarray) -> bool:
        """True if no sample of a block where the current flows throughout can trip, decided from E's
        extremes alone when E keeps one sign (the usual polarisation: then min |E| and max |E| are |E|'s
        extremes, and the test is the fast exit's below without the |E| column); updates the tail then."""
        lo, hi = float(potential.min()), float(potential.max())
        if not (lo > 0.0 or hi < 0.0):  # a sign change, a zero or a NaN: the general path decides
            return False
        least, top = sorted((abs(lo), abs(hi)))
        top = _top(top, tail)
        c, w = self.criteria, self.width
        if least < min(c.collapse_fraction * top, top - c.min_drop):
            return False
        end = np.abs(potential[-w:])
        self._tail = end if len(end) >= w else np.concatenate([tail, end])[-w:]
        return True


def _top(block_max: float, tail: np.ndarray) -> float:
    """The largest |E| of the tail and the block."""
    return max(block_max, float(tail.max())) if tail.size else block_max


def first_flagged(flags: np.ndarray, mask: int) -> int | None:
    """Index of the first sample carrying any bit of ``mask``, or None (one reduction for a clean block)."""
    if not flags.any():
        return None
    hits = np.flatnonzero(flags & mask)
    return int(hits[0]) if hits.size else None


def first_outside(values: np.ndarray, lo: float, hi: float) -> int | None:
    """Index of the first value outside [lo, hi], or None."""
    if len(values) == 0 or (values.min() >= lo and values.max() <= hi):  # the usual case: two reductions
        return None
    hits = np.flatnonzero((values < lo) | (values > hi))
    return int(hits[0]) if hits.size else None
