"""Analysis of measured data: impedance (equivalent-circuit fits, Kramers-Kronig, DRT, contact loss).

Everything here works on SI numpy arrays (Hz, ohm, s) and never imports instrument or storage code, so
the same functions run live on operando spectra and afterwards on stored runs.
"""

from __future__ import annotations

import numpy as np

from daq.core.errors import DaqError


class AnalysisError(DaqError):
    """A spectrum or series cannot be analysed as asked (wrong shape, too few points, non-finite)."""


def as_spectrum(frequencies: object, impedance: object, min_points: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Validated copies of a spectrum as (f [Hz], Z [ohm, complex]), sorted from high to low frequency."""
    f = np.asarray(frequencies, dtype=float).ravel()
    z = np.asarray(impedance, dtype=complex).ravel()
    if f.size != z.size:
        raise AnalysisError(f"spectrum has {f.size} frequencies but {z.size} impedance values")
    if f.size < min_points:
        raise AnalysisError(f"spectrum has {f.size} points; at least {min_points} are needed")
    if not (np.all(np.isfinite(f)) and np.all(np.isfinite(z))):
        raise AnalysisError("spectrum contains NaN or infinite values; drop those points first")
    if not np.all(f > 0):
        raise AnalysisError("spectrum frequencies must be positive (Hz)")
    order = np.argsort(-f, kind="stable")
    return f[order], z[order]
