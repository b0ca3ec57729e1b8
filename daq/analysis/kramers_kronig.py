"""Kramers-Kronig validity test of an impedance spectrum (Lin-KK, Schoenleber et al. 2014).

A spectrum from a linear, causal, stable and time-invariant system can be represented by a series of
RC elements with fixed, log-spaced time constants (plus a series resistance and inductance). Fitting
that model is linear in the resistances, so it is a fraction of a millisecond; residuals well above
the noise mean the spectrum is not KK-consistent: the cell changed during the sweep (a growing void, a
dendrite shortening the bulk path, SEI growth during a long low-frequency tail), or the instrument
distorted it. Fit equivalent circuits only to spectra that pass.

The number of RC elements M is chosen automatically by Schoenleber's mu = 1 - sum(|R_k|, R_k < 0) /
sum(|R_k|, R_k >= 0): over-fitting starts where mu falls below c (0.85). Taking the first M with mu <= c
(Schoenleber's loop, impedance.py's ``linKK``) stops too early on sparse spectra: with a few points per
decade the fixed time constants fall between the arcs' own, the fit borrows negative neighbours and mu dips
below c at M = 3-5 while the fit is still poor (a 19-point, 3-decade BioLogic GEIS spectrum of a plain RC
network: M = 4, 14 % residual, where M = 18 gives 0.02 %). Here every M from 1 to the number of points is
fitted and M is the first from which mu stays at or below c: the onset of lasting over-fitting, not a
dip. A series inductance is fitted (cables, high frequency), and a series capacitance where the spectrum
ends in a capacitive tail (-Z'' still rising at its lowest frequency: no low-frequency intercept, which the
RC elements alone cannot reach; impedance.py's ``add_cap`` for the same case). Where the spectrum closes
its arcs the capacitor is left out: it would absorb part of a drift in the last, slowest points.
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
    capacitance: bool | None = None,
    n_elements: int | None = None,
) -> KKResult:
    """Lin-KK test with automatic M (or ``n_elements`` fixed); ``capacitance`` None decides the series
    capacitor from the spectrum's low-frequency end (``capacitive_tail``), True/False force it.

    ``threshold`` applies to the largest residual; set it to 3-4 times the spectrum's relative noise (the
    ``rms_residual`` of a spectrum known to be good estimates that noise). ``max_elements`` bounds M (by
    default the number of points, at most 2 N - 1 less the series terms: the unknowns the data determine).
    """
    f, z = as_spectrum(frequencies, impedance, min_points=5)
    if not 0 < c < 1:
        raise AnalysisError(f"mu criterion c = {c} must be between 0 and 1 (Schoenleber: 0.85)")
    w = 2 * np.pi * f
    if capacitance is None:
        capacitance = capacitive_tail(f, z)
    extra = 1 + int(inductance) + int(capacitance)
    limit = min(max_elements or f.size, 2 * f.size - extra - 1)
    if limit < 1:
        raise AnalysisError("too few points for a Kramers-Kronig test")
    tau_min, tau_max = 1.0 / w.max(), 1.0 / w.min()
    if n_elements is not None and not 1 <= n_elements <= limit:
        raise AnalysisError(f"n_elements = {n_elements} must be between 1 and {limit} for {f.size} points")
    fits = []
    for m in [n_elements] if n_elements is not None else range(1, limit + 1):
        taus = np.geomspace(tau_min, tau_max, m) if m > 1 else np.array([np.sqrt(tau_min * tau_max)])
        x, z_fit = _solve(w, z, taus, inductance, capacitance)
        fits.append((m, _mu(x[extra:]), taus, x, z_fit))
    m, mu, taus, x, z_fit = fits[_overfitting_onset([fit[1] for fit in fits], c)]
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


def capacitive_tail(frequencies: np.ndarray, impedance: np.ndarray) -> bool:
    """True when -Z'' is positive and still rising at the two lowest frequencies (no low-frequency intercept)."""
    order = np.argsort(frequencies)
    lowest, next_lowest = -np.asarray(impedance)[order[:2]].imag
    return bool(lowest > 0 and lowest > next_lowest)


def _overfitting_onset(mus: list[float], c: float) -> int:
    """Index of the first fit from which mu stays at or below ``c`` (the last fit if mu ends above c)."""
    k = len(mus) - 1
    while k > 0 and mus[k - 1] <= c and mus[k] <= c:
        k -= 1
    return k
