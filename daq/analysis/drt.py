"""Distribution of relaxation times (DRT): separate processes by time constant without a circuit.

    Z(f) = R_inf [+ j w L] + integral gamma(ln tau) / (1 + j w tau) d ln tau

discretised on a log-spaced tau grid (an RC element per grid point, resistance gamma_k * d ln tau) and
solved as a Tikhonov-regularised, non-negative least-squares problem on the real and imaginary parts
together (scipy nnls on the stacked system [A; sqrt(lambda) D]). Non-negativity is physical for
resistive-capacitive cells and removes the oscillations plain Tikhonov produces; the regulariser
penalises the first derivative of gamma by default, which keeps peak positions and areas unbiased.

Residuals are weighted by 1/|Z| as in the fitter, so the bulk arc (small |Z|, MHz) counts as much as
the interface arc. In a Li | solid electrolyte cell the bulk/grain-boundary process sits near
tau ~ 1e-7..1e-6 s and the interface near 1e-5..1e-3 s; the peak areas are their resistances, which
is what daq.analysis.contact_loss follows during stripping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls
from scipy.signal import find_peaks

from daq.analysis import AnalysisError, as_spectrum

DEFAULT_LAMBDA = 1e-2  # chosen on simulated two-arc CPE spectra with 0.2-1 % noise


@dataclass(frozen=True)
class DrtPeak:
    tau: float  # s, at the maximum of gamma
    resistance: float  # ohm, area of the peak (between the minima that separate it from its neighbours)

    @property
    def frequency(self) -> float:
        """Characteristic frequency 1/(2 pi tau), Hz."""
        return 1.0 / (2 * np.pi * self.tau)


@dataclass(frozen=True)
class DrtResult:
    tau: np.ndarray  # s, log-spaced grid
    gamma: np.ndarray  # ohm per unit ln(tau)
    r_inf: float  # ohm, high-frequency (series) resistance
    inductance: float  # H (0 when not fitted)
    peaks: tuple[DrtPeak, ...]  # from short to long tau
    z_fit: np.ndarray  # ohm, at the input frequencies (sorted high to low)
    frequencies: np.ndarray  # Hz, high to low
    relative_residual: float  # rms |Z_fit - Z|/|Z|
    regularisation: float  # lambda

    @property
    def polarisation_resistance(self) -> float:
        """Total resistance under the distribution (ohm)."""
        return float(np.sum(self.gamma) * _dlntau(self.tau))


def _dlntau(tau: np.ndarray) -> float:
    return float(np.log(tau[1] / tau[0])) if tau.size > 1 else 1.0


def _difference(n: int, order: int) -> np.ndarray:
    d = np.eye(n)
    for _ in range(order):
        d = np.diff(d, axis=0)
    return d


def drt(
    frequencies: np.ndarray,
    impedance: np.ndarray,
    regularisation: float = DEFAULT_LAMBDA,
    points_per_decade: int = 10,
    extend_decades: float = 1.0,
    derivative_order: int = 1,
    inductance: bool = False,
    peak_fraction: float = 0.1,
) -> DrtResult:
    """Tikhonov-regularised non-negative DRT of a spectrum (f in Hz, complex Z in ohm).

    The tau grid spans 1/(2 pi f_max) .. 1/(2 pi f_min) widened by ``extend_decades`` each side, so
    processes at the edges of the measured range are not squeezed onto the last grid point. Peaks less
    prominent than ``peak_fraction`` of the highest one are ignored (noise ripples; CPE arcs with noisy
    data grow such side lobes), as is a maximum on the first or last grid point (a process outside what
    the spectrum resolves); their areas go to the neighbouring peaks.
    """
    f, z = as_spectrum(frequencies, impedance, min_points=5)
    if regularisation < 0 or derivative_order not in (0, 1, 2):
        raise AnalysisError("regularisation must be >= 0 and derivative_order 0, 1 or 2")
    w = 2 * np.pi * f
    lo = np.log10(1.0 / w.max()) - extend_decades
    hi = np.log10(1.0 / w.min()) + extend_decades
    n_tau = max(int(round((hi - lo) * points_per_decade)) + 1, 3)
    tau = np.logspace(lo, hi, n_tau)
    basis = 1.0 / (1.0 + 1j * np.outer(w, tau))
    cols = [np.ones_like(w, dtype=complex)] + ([1j * w] if inductance else []) + [basis]
    a = np.column_stack(cols)
    n_extra = a.shape[1] - n_tau
    weight = 1.0 / np.abs(z)
    # unknowns in units of |Z| (and L in units where w_max L ~ |Z|) keep lambda dimensionless
    colscale = np.full(a.shape[1], float(np.median(np.abs(z))))
    if inductance:
        colscale[1] /= w.max()
    aw = a * weight[:, None] * colscale[None, :]
    reg = np.zeros((0, a.shape[1]))
    if regularisation > 0:
        d = _difference(n_tau, derivative_order)
        reg = np.hstack([np.zeros((d.shape[0], n_extra)), np.sqrt(regularisation) * d])
    lhs = np.vstack([aw.real, aw.imag, reg])
    rhs = np.concatenate([(z * weight).real, (z * weight).imag, np.zeros(reg.shape[0])])
    sol, _ = nnls(lhs, rhs, maxiter=50 * lhs.shape[1])
    x = sol * colscale  # ohm (and H)
    z_fit = a @ x
    r_k = x[n_extra:]
    dln = _dlntau(tau)
    gamma = r_k / dln
    peaks = _peaks(tau, r_k, peak_fraction)
    rel = float(np.sqrt(np.mean(np.abs((z_fit - z) * weight) ** 2)))
    return DrtResult(tau, gamma, float(x[0]), float(x[1]) if inductance else 0.0, peaks, z_fit, f, rel, regularisation)


def _peaks(tau: np.ndarray, r_k: np.ndarray, fraction: float) -> tuple[DrtPeak, ...]:
    """Maxima of the distribution with the resistance between the minima that bound them."""
    if not np.any(r_k > 0):
        return ()
    idx, _ = find_peaks(r_k, prominence=fraction * r_k.max())
    if idx.size == 0:
        return ()
    cuts = [0]
    for a, b in zip(idx[:-1], idx[1:]):
        cuts.append(int(a + np.argmin(r_k[a : b + 1])))
    cuts.append(r_k.size)
    out = []
    for k, i in enumerate(idx):
        seg = slice(cuts[k], cuts[k + 1])
        # sub-grid peak position: parabola through the log-gamma maximum and its neighbours
        t = np.log(tau[i])
        if 0 < i < r_k.size - 1 and np.all(r_k[i - 1 : i + 2] > 0):
            y0, y1, y2 = np.log(r_k[i - 1 : i + 2])
            denom = y0 - 2 * y1 + y2
            if denom < 0:
                t += 0.5 * (y0 - y2) / denom * np.log(tau[1] / tau[0])
        out.append(DrtPeak(float(np.exp(t)), float(np.sum(r_k[seg]))))
    return tuple(out)
