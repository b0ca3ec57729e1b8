"""Equivalent-circuit fits of impedance spectra for display (the fitter is optional).

Fits run where the spectrum arrives (the engine's or the file follower's thread), never on the GUI
thread. Without the fitter the window shows the raw spectra only.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

try:  # the analysis package is optional for the window
    from daq.analysis.eis_fit import fit_circuit
except Exception:  # noqa: BLE001 - any import problem just means "no fits"
    fit_circuit = None

# Li | Li6PS5Cl | Li: bulk/grain-boundary arc then the interface arc; the one-arc circuit is the fallback
# for spectra that show only one.
CIRCUITS = ("R0-p(R1,CPE1)-p(R2,CPE2)", "R0-p(R1,CPE1)")
MAX_RESIDUAL = 0.05  # relative rms residual above which a fit is not drawn


def fit_spectrum(frequency: np.ndarray, z: np.ndarray) -> dict[str, Any] | None:
    """The best circuit fit as {circuit, frequency, z (model on a dense grid), parameters, residual},
    or None without a fitter, with too few points or when no circuit fits."""
    if fit_circuit is None:
        return None
    ok = np.isfinite(frequency) & np.isfinite(z) & (frequency > 0)
    f, zz = np.asarray(frequency)[ok], np.asarray(z)[ok]
    best = None
    for circuit in CIRCUITS:
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)
                result = fit_circuit(f, zz, circuit)
        except Exception:  # noqa: BLE001 - a spectrum the circuit cannot describe: try the next one
            continue
        if (
            result.success
            and result.relative_residual < MAX_RESIDUAL
            and (best is None or result.relative_residual < best.relative_residual * 0.8)
        ):
            best = result
    if best is None:
        return None
    grid = np.logspace(np.log10(f.min()), np.log10(f.max()), 200)
    return {
        "circuit": best.circuit,
        "frequency": grid,
        "z": best.impedance(grid),
        "parameters": best.as_dict(),
        "residual": float(best.relative_residual),
    }
