"""Contact loss (voids) during stripping, followed through successive impedance spectra.

Voids shrink the Li | electrolyte contact; the interface (or, with a DRT, the grain-boundary process near
tau ~ 1e-6 s) resistance R rises as the current crowds into what is left (science.md 2.2):

    active area fraction   S_active / S_initial = (R_0 / R)^2
    local current ratio    i_local / i_applied  = (R / R_0)^2

Published regions: stable (current ratio < 2.75 with area > 80 %), transition (ratio 3-12, area falling
70 % -> 30 %), failure (ratio > 15).

How the gaps and overlaps are treated:

- The published ranges leave gaps (2.75-3 and 12-15), and both gaps border the transition region. A
  state is called stable or failed only where the published data say so; the gaps are counted as
  transition: stable if ratio < 2.75 (and area > 80 %), failure if ratio > 15, transition otherwise
  (2.75 <= ratio <= 15). So nothing is left unclassified, and neither decisive verdict is widened:
  an alarm on "failure" is never raised early, and "stable" is never claimed beyond the evidence.
- "Stable" needs both conditions. When the area comes from the same resistance it is exactly
  1/ratio, so the area condition is the binding one (stable only while ratio < 1.25, i.e. R < 1.118 R_0).
  The 2.75 ratio limit matters when the area fraction is measured independently (tomography) and passed
  to :func:`classify`. A cell that fails the area condition but not the ratio one is in transition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from daq.analysis import AnalysisError

STABLE_RATIO = 2.75
STABLE_AREA = 0.80
TRANSITION_RATIO = (3.0, 12.0)
FAILURE_RATIO = 15.0

STABLE, TRANSITION, FAILURE = "stable", "transition", "failure"


@dataclass(frozen=True)
class ContactLoss:
    resistance: np.ndarray  # ohm, interface resistance of each spectrum
    initial_resistance: float  # ohm, R_0
    area_fraction: np.ndarray  # (R_0/R)^2
    current_ratio: np.ndarray  # (R/R_0)^2
    regions: tuple[str, ...]  # stable / transition / failure per spectrum

    def first(self, region: str) -> int | None:
        """Index of the first spectrum in ``region`` (e.g. the onset of failure), or None."""
        for i, r in enumerate(self.regions):
            if r == region:
                return i
        return None


def classify(current_ratio: float, area_fraction: float | None = None) -> str:
    """Region of one state; ``area_fraction`` defaults to 1/current_ratio (both from one resistance)."""
    if not current_ratio > 0 or not math.isfinite(current_ratio):
        raise AnalysisError(f"local current ratio {current_ratio!r} must be a positive finite number")
    area = 1.0 / current_ratio if area_fraction is None else area_fraction
    if current_ratio > FAILURE_RATIO:
        return FAILURE
    if current_ratio < STABLE_RATIO and area > STABLE_AREA:
        return STABLE
    return TRANSITION  # 2.75..15, including the published gaps


def follow_arcs(r_fast: np.ndarray, r_slow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bulk, interface) resistances of two-arc fits in time order, each arc followed by continuity.

    Fits label arcs by time constant. Near contact-loss failure the interface arc's time constant
    (R_ct ~ 1/sqrt(contact), C_dl ~ contact) falls towards and below the bulk arc's, so the labels can
    swap between spectra (bulk 2.2 kohm -> 47 kohm while the interface goes 20.9 -> 1.37 kohm). A
    spectrum's pair is swapped when that changes log R from the previous spectrum less than half as
    much as keeping it: a clear jump, not the moment the growing interface resistance passes the bulk
    resistance (where both choices are equally close). The first spectrum's labels (bulk = fast arc)
    anchor the sequence.
    """
    a, b = np.asarray(r_fast, dtype=float).ravel().copy(), np.asarray(r_slow, dtype=float).ravel().copy()
    if a.shape != b.shape:
        raise AnalysisError(f"{a.size} bulk and {b.size} interface resistances")
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in range(1, a.size):
            keep = abs(np.log(a[k] / a[k - 1])) + abs(np.log(b[k] / b[k - 1]))
            swap = abs(np.log(b[k] / a[k - 1])) + abs(np.log(a[k] / b[k - 1]))
            if swap < 0.5 * keep:
                a[k], b[k] = b[k], a[k]
    return a, b


def contact_loss(
    resistances: np.ndarray, initial_resistance: float | None = None, area_fractions: np.ndarray | None = None
) -> ContactLoss:
    """Area fraction, local current ratio and region for each interface resistance in time order.

    ``initial_resistance`` defaults to the first value (the spectrum before stripping);
    ``area_fractions`` (0..1), when measured independently, replaces (R_0/R)^2 in the stable test.
    """
    r = np.asarray(resistances, dtype=float).ravel()
    if r.size == 0:
        raise AnalysisError("no interface resistances given")
    if not np.all(np.isfinite(r) & (r > 0)):
        raise AnalysisError("interface resistances must be positive finite values (ohm)")
    r0 = float(r[0]) if initial_resistance is None else float(initial_resistance)
    if not (math.isfinite(r0) and r0 > 0):
        raise AnalysisError(f"initial interface resistance {r0!r} must be positive (ohm)")
    ratio = (r / r0) ** 2
    area = (r0 / r) ** 2
    measured = None if area_fractions is None else np.asarray(area_fractions, dtype=float).ravel()
    if measured is not None and measured.shape != r.shape:
        raise AnalysisError(f"{measured.size} area fractions for {r.size} resistances")
    regions = tuple(
        classify(float(q), None if measured is None else float(a))
        for q, a in zip(ratio, measured if measured is not None else ratio)
    )
    return ContactLoss(r, r0, area, ratio, regions)
