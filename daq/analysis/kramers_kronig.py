"""Kramers-Kronig validity test of an impedance spectrum (Lin-KK, Schoenleber et al. 2014).

A spectrum from a linear, causal, stable and time-invariant system can be represented by a series of
RC elements with fixed, log-spaced time constants (plus a series resistance and inductance). Fitting
that model is linear in the resistances, so it is a fraction of a millisecond; residuals well above
the noise mean the spectrum is not KK-consistent: the cell changed during the sweep (a growing void, a
dendrite shortening the bulk path, SEI growth during a long low-frequency tail), or the instrument
distorted it. Fit equivalent circuits only to spectra that pass.

The number of RC elements M is chosen automatically: M grows until over-fitting starts, detected by
Schoenleber's mu = 1 - sum(|R_k|, R_k < 0) / sum(|R_k|, R_k >= 0) falling below c (0.85).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daq.analysis import AnalysisError, as_spectrum

DEFAULT_THRESHOLD = 0.01  # largest |residual| relative to |Z| for a pass; 3-4x the relative noise


@dataclass(frozen=True)
class KKResult:
    """Lin-KK fit and residuals (relative to |Z|, frequencies from high to low)."""

    frequencies: np.ndarray  # Hz
    residuals_real: np.ndarray  # (Z' - Z'_KK)/|Z|
    residuals_imag: np.ndarray  # (Z'' - Z''_KK)/|Z|
    n_elements: int  # M
    mu: float
    time_constants: np.ndarray  # s
    resistances: np.ndarray  # ohm, R_k of the RC elements
    series_resistance: float  # ohm
    inductance: float  # H (0 when not fitted)
    capacitance: float  # F (inf when not fitted)
    z_fit: np.ndarray  # ohm
    threshold: float

    @property
    def max_residual(self) -> float:
        return float(max(np.abs(self.residuals_real).max(), np.abs(self.residuals_imag).max()))

    @property
    def rms_residual(self) -> float:
        """Root-mean-square of all residuals: on a valid spectrum, an estimate of the relative noise."""
        return float(np.sqrt(np.mean(np.concatenate([self.residuals_real, self.residuals_imag]) ** 2)))

    @property
    def passed(self) -> bool:
        return self.max_residual <= self.threshold

    def __str__(self) -> str:
        verdict = "valid" if self.passed else "NOT valid"
        return (
            f"Kramers-Kronig: {verdict} (max residual {self.max_residual:.2%}, rms {self.rms_residual:.2%}, "
            f"threshold {self.threshold:.2%}; M = {self.n_elements} RC elements, mu = {self.mu:.2f})"
        )


def _design(w: np.ndarray, taus: np.ndarray, inductance: bool, capacitance: bool) -> np.ndarray:
    """Complex columns: R_ohm, [L], [1/C], then R_k/(1 + j w tau_k) per unit R_k."""
    cols = [np.ones_like(w, dtype=complex)]
    if inductance:
        cols.append(1j * w)
    if capacitance:
        cols.append(1.0 / (1j * w))
    cols.append(1.0 / (1.0 + 1j * np.outer(w, taus)))
    return np.column_stack(cols)


def _solve(
    w: np.ndarray, z: np.ndarray, taus: np.ndarray, inductance: bool, capacitance: bool
) -> tuple[np.ndarray, np.ndarray]:
    a = _design(w, taus, inductance, capacitance)
    weight = 1.0 / np.abs(z)
    aw = a * weight[:, None]
    zw = z * weight
    lhs = np.vstack([aw.real, aw.imag])
    rhs = np.concatenate([zw.real, zw.imag])
    scale = np.linalg.norm(lhs, axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    x = np.linalg.lstsq(lhs / scale, rhs, rcond=None)[0] / scale
    return x, a @ x


def _mu(r_k: np.ndarray) -> float:
    pos = np.abs(r_k[r_k >= 0]).sum()
    neg = np.abs(r_k[r_k < 0]).sum()
    return 1.0 - neg / pos if pos > 0 else -np.inf


def lin_kk(
    frequencies: np.ndarray,
    impedance: np.ndarray,
    c: float = 0.85,
    max_elements: int | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    inductance: bool = True,
    capacitance: bool = False,
    n_elements: int | None = None,
) -> KKResult:
    """Lin-KK test with automatic M; ``capacitance=True`` for blocking electrodes (a capacitive tail).

    On spectra with a capacitive tail mu can dip below c at a handful of elements while the fit is still
    poor; check ``n_elements`` in the result there, or fix it with ``n_elements`` (about 2-3 per decade).

    ``threshold`` applies to the largest residual; set it to 3-4 times the spectrum's relative
    noise (the ``rms_residual`` of a spectrum known to be good estimates that noise).
    """
    f, z = as_spectrum(frequencies, impedance, min_points=5)
    if not 0 < c < 1:
        raise AnalysisError(f"mu criterion c = {c} must be between 0 and 1 (Schoenleber: 0.85)")
    w = 2 * np.pi * f
    extra = 1 + int(inductance) + int(capacitance)
    limit = max_elements or (2 * f.size - extra - 1)
    limit = min(limit, 2 * f.size - extra - 1)
    if limit < 1:
        raise AnalysisError("too few points for a Kramers-Kronig test")
    tau_min, tau_max = 1.0 / w.max(), 1.0 / w.min()
    if n_elements is not None and not 1 <= n_elements <= limit:
        raise AnalysisError(f"n_elements = {n_elements} must be between 1 and {limit} for {f.size} points")
    best = None
    for m in range(n_elements or 1, (n_elements or limit) + 1):
        taus = np.geomspace(tau_min, tau_max, m) if m > 1 else np.array([np.sqrt(tau_min * tau_max)])
        x, z_fit = _solve(w, z, taus, inductance, capacitance)
        mu = _mu(x[extra:])
        best = (m, mu, taus, x, z_fit)
        if mu <= c:
            break
    assert best is not None
    m, mu, taus, x, z_fit = best
    mod = np.abs(z)
    return KKResult(
        frequencies=f,
        residuals_real=(z.real - z_fit.real) / mod,
        residuals_imag=(z.imag - z_fit.imag) / mod,
        n_elements=m,
        mu=float(mu),
        time_constants=taus,
        resistances=x[extra:].real,
        series_resistance=float(x[0].real),
        inductance=float(x[1].real) if inductance else 0.0,
        capacitance=float(1.0 / x[1 + int(inductance)].real)
        if capacitance and x[1 + int(inductance)].real != 0
        else np.inf,
        z_fit=z_fit,
        threshold=threshold,
    )
