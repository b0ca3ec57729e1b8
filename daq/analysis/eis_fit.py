"""Equivalent-circuit fitting of impedance spectra (complex non-linear least squares).

Choices, and why:

- Modulus weighting, residual (Z_model - Z)/|Z| on real and imaginary parts: a solid-electrolyte
  spectrum spans orders of magnitude in |Z| and the instrument error is roughly proportional to |Z|, so
  unweighted fits would ignore the high-frequency (bulk) arc that matters most for dendrite detection.
- Parameters with a non-negative lower bound (all by default) are fitted as log(p): positivity comes
  for free, and R ~ 1e3 ohm and Q ~ 1e-10 are equally well conditioned.
- Analytic Jacobian from the circuit (daq.analysis.circuits) and MINPACK Levenberg-Marquardt, with
  every bound mapped away (alpha <= 1 by a logistic map) and parameters the data push onto a bound
  pinned there (an active set): a 60-point two-arc spectrum fits in 2-3 ms, fast enough for every
  operando spectrum, where scipy's bounded trust-region solver takes ten times longer.
- Automatic initial guesses from the spectrum shape: high-frequency intercept, arc widths between
  minima of -Im Z, and arc peak frequencies (tau = 1/(2 pi f_peak)); arcs are matched to the circuit's
  parallel groups in the order written, which by convention runs from high to low frequency (bulk first).
- Standard errors from the Jacobian at the solution, cov = s^2 (J^T J)^-1 with s^2 the residual
  variance, mapped back from the fitted space to physical units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares
from scipy.signal import find_peaks

from daq.analysis import AnalysisError, as_spectrum
from daq.analysis.circuits import Circuit, Element, Node, Series
from daq.core.errors import ConfigError

DEFAULT_ALPHA = 0.9  # CPE exponent to start from: typical of ceramic bulk/grain-boundary and Li interface arcs


@dataclass(frozen=True)
class FitResult:
    """Fitted parameters (SI) with standard errors; ``relative_residual`` is rms |Z_fit - Z|/|Z|."""

    circuit: str
    names: tuple[str, ...]
    values: np.ndarray
    stderr: np.ndarray
    units: tuple[str, ...]
    relative_residual: float
    covariance: np.ndarray
    success: bool
    message: str = ""
    initial: np.ndarray = field(default_factory=lambda: np.empty(0))
    nfev: int = 0
    at_bound: tuple[str, ...] = ()  # parameters pinned at a bound (the data cannot tell them from it)

    def __getitem__(self, name: str) -> float:
        return float(self.values[self.names.index(name)])

    def error(self, name: str) -> float:
        return float(self.stderr[self.names.index(name)])

    def as_dict(self) -> dict[str, tuple[float, float, str]]:
        """name -> (value, standard error, unit)."""
        return {n: (float(v), float(e), u) for n, v, e, u in zip(self.names, self.values, self.stderr, self.units)}

    def impedance(self, frequencies: np.ndarray) -> np.ndarray:
        """The fitted model evaluated at ``frequencies`` (Hz)."""
        return Circuit(self.circuit).impedance(frequencies, self.values)

    def __str__(self) -> str:
        lines = [
            f"{self.circuit}: relative residual {self.relative_residual:.3%}"
            + ("" if self.success else f" (did not converge: {self.message})")
        ]
        for n, v, e, u in zip(self.names, self.values, self.stderr, self.units):
            pinned = "  (at its bound)" if n in self.at_bound else ""
            lines.append(f"  {n:12s} {v:.5g} +- {e:.2g} {u}{pinned}")
        return "\n".join(lines)


# --- initial guesses ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Features:
    r_hf: float  # high-frequency intercept, ohm
    arcs: list[tuple[float, float]]  # (R, tau) per arc, high to low frequency
    w_lf: float  # lowest angular frequency
    y_lf: float  # -Im Z there
    w_hf: float
    im_hf: float  # Im Z at the highest frequency (positive if inductive)
    z_scale: float


def _features(f: np.ndarray, z: np.ndarray, n_arcs: int, lf_tail: bool = False) -> _Features:
    """Arc structure of a spectrum sorted from high to low frequency; ``lf_tail``: the circuit blocks DC
    (capacitive or diffusion tail), so a rising low-frequency end is that tail, not the top of an arc."""
    x, y = z.real, -z.imag
    n = y.size
    ys = np.convolve(np.pad(y, 1, mode="edge"), np.ones(3) / 3, mode="valid") if n >= 5 else y
    peaks: list[int] = []
    if n_arcs:
        idx, props = find_peaks(ys, prominence=0.0)
        idx, prom = list(idx), list(props["prominences"])
        # An arc whose top lies beyond either end of the range shows as a falling edge: count it, with
        # the prominence defined as for interior peaks (drop to the lowest point before higher ground).
        for edge, inward in ((0, ys), (n - 1, ys[::-1])):
            if edge == n - 1 and lf_tail or n < 2 or inward[0] <= inward[1]:
                continue
            higher = np.flatnonzero(inward > inward[0])
            stop = int(higher[0]) if higher.size else n
            idx.append(edge)
            prom.append(float(inward[0] - inward[:stop].min()))
        idx, prom = np.array(idx, dtype=int), np.array(prom)
        top = prom.max() if prom.size else 0.0
        keep = [i for i in np.argsort(prom)[::-1][:n_arcs] if prom[i] >= 0.15 * top]  # not noise
        peaks = sorted(int(i) for i in idx[keep] if ys[i] > 0)
    # Boundaries: Re Z at the minimum of -Im Z between consecutive peaks.
    bounds = []
    for a, b in zip(peaks[:-1], peaks[1:]):
        bounds.append(x[a + int(np.argmin(ys[a : b + 1]))])
    if peaks:
        first = peaks[0]
        # HF intercept: where the first arc meets the axis; from its top (centre, height) if it is cut off.
        if ys[0] < 0.1 * ys[first]:
            r_hf = float(x[0])
        elif first > 0:
            r_hf = float(x[first] - ys[first])
        else:  # the arc's top lies beyond the highest frequency: only a small series part is likely
            r_hf = 0.05 * float(x[0])
        r_hf = float(np.clip(r_hf, 1e-3 * np.abs(z).min(), max(x[0], 1e-3 * np.abs(z).min())))
        tail = peaks[-1] + int(np.argmin(ys[peaks[-1] :]))
        end = float(x[tail]) if ys[tail] < 0.5 * ys[peaks[-1]] else float(x[peaks[-1]] + ys[peaks[-1]])
        edges = [r_hf, *bounds, max(end, x[peaks[-1]])]
        widths = np.maximum(np.diff(edges), 1e-3 * np.abs(z).max())
        arcs = [(float(r), 1.0 / (2 * np.pi * f[i])) for r, i in zip(widths, peaks)]
    else:
        r_hf = float(max(x.min(), 1e-3 * np.abs(z).min()))
        arcs = []
    # Arcs the spectrum does not show. A large high-frequency intercept is usually an arc cut off above
    # the range (the bulk of a ceramic at MHz): put one there. Otherwise share what is left of the
    # resistance and spread the time constants over the measured range.
    while len(arcs) < n_arcs:
        if r_hf > 0.2 * max(float(x[-1]) - r_hf, 0.0):
            arcs.insert(0, (0.95 * r_hf, 1.0 / (2 * np.pi * 3 * f[0])))
            r_hf *= 0.05
            continue
        total = max(float(x[-1]) - r_hf, 1e-3 * np.abs(z).max())
        spare = max(total - sum(r for r, _ in arcs), 0.1 * total) / (n_arcs - len(arcs))
        taus = 1.0 / (2 * np.pi * np.geomspace(f[0], f[-1], n_arcs + 2)[1:-1])
        used = {round(float(np.log10(t))) for _, t in arcs}
        free = [t for t in taus if round(float(np.log10(t))) not in used] or list(taus)
        arcs += [(spare, free[i % len(free)]) for i in range(n_arcs - len(arcs))]
        arcs.sort(key=lambda a: a[1])
    return _Features(
        r_hf,
        arcs,
        float(2 * np.pi * f[-1]),
        float(max(y[-1], 1e-3 * np.abs(z[-1]))),
        float(2 * np.pi * f[0]),
        float(z[0].imag),
        float(np.abs(z).max()),
    )


def _elements(node: Node) -> list[Element]:
    if isinstance(node, Element):
        return [node]
    return [e for child in node.children for e in _elements(child)]


def _blocks_dc(node: Node) -> bool:
    """Whether |Z| grows without bound as f -> 0 (a capacitive or diffusion tail at low frequency)."""
    if isinstance(node, Element):
        return node.kind in ("C", "CPE", "W")
    if isinstance(node, Series):
        return any(_blocks_dc(ch) for ch in node.children)
    return all(_blocks_dc(ch) for ch in node.children)


def _fill_group(p: np.ndarray, elements: list[Element], r: float, tau: float, feats: _Features) -> None:
    """Starting values for the elements of one arc of resistance r and time constant tau."""
    n_r = sum(e.kind == "R" for e in elements) or 1
    for e in elements:
        i = e.index
        if e.kind == "R":
            p[i] = r / n_r
        elif e.kind == "C":
            p[i] = tau / r
        elif e.kind == "CPE":
            p[i], p[i + 1] = tau**DEFAULT_ALPHA / r, DEFAULT_ALPHA
        elif e.kind == "W":
            p[i] = feats.y_lf * np.sqrt(feats.w_lf) / np.sqrt(2)  # the diffusion tail at the lowest frequency
        elif e.kind == "L":
            p[i] = 1e-3 * r * tau


def initial_guess(frequencies: np.ndarray, impedance: np.ndarray, circuit: str | Circuit) -> np.ndarray:
    """Starting parameters read off the spectrum (see module docstring); SI, in circuit.names order."""
    c = circuit if isinstance(circuit, Circuit) else Circuit(circuit)
    f, z = as_spectrum(frequencies, impedance)
    items = list(c.root.children) if isinstance(c.root, Series) else [c.root]
    groups = [it for it in items if not isinstance(it, Element)]
    series = [it for it in items if isinstance(it, Element)]
    feats = _features(f, z, len(groups), lf_tail=_blocks_dc(c.root))
    p = np.ones(len(c))
    n_r = sum(e.kind == "R" for e in series) or 1
    for e in series:
        i = e.index
        if e.kind == "R":
            p[i] = feats.r_hf / n_r
        elif e.kind == "L":
            p[i] = max(feats.im_hf, 1e-4 * feats.z_scale) / feats.w_hf
        elif e.kind == "C":
            p[i] = 1.0 / (feats.w_lf * feats.y_lf)
        elif e.kind == "CPE":
            p[i], p[i + 1] = feats.w_lf ** (-DEFAULT_ALPHA) / feats.y_lf, DEFAULT_ALPHA
        elif e.kind == "W":
            p[i] = feats.y_lf * np.sqrt(feats.w_lf) / np.sqrt(2)  # -Im Z_W = sigma / sqrt(w)
    for group, (r, tau) in zip(groups, feats.arcs):
        _fill_group(p, _elements(group), r, tau, feats)
    return p


# --- fitting ------------------------------------------------------------------------------------------


def _bounds(c: Circuit, bounds: dict[str, tuple[float, float]] | None) -> tuple[np.ndarray, np.ndarray]:
    lo = np.zeros(len(c))
    hi = np.where(np.array(c.kinds) == "alpha", 1.0, np.inf)
    for name, (a, b) in (bounds or {}).items():
        i = c.index(name)
        if not a < b:
            raise ConfigError(f"bounds[{name}]", (a, b), "lower bound must be below upper bound")
        lo[i], hi[i] = a, b
    return lo, hi


class _Transform:
    """Fitted variables u <-> parameters p, mapping every bound away so that MINPACK's unbounded
    Levenberg-Marquardt (fast) can do the work: p = lo + e^u above a lower bound (log space for the
    usual lo = 0), p = hi - e^u below an upper bound, a logistic map between two finite bounds (in log
    space when lo > 0), identity when unbounded.
    """

    def __init__(self, lo: np.ndarray, hi: np.ndarray):
        self.lo, self.hi = lo, hi
        fin_lo, fin_hi = np.isfinite(lo), np.isfinite(hi)
        self.box = fin_lo & fin_hi
        self.box_log = self.box & (lo > 0)
        self.above = fin_lo & ~fin_hi
        self.below = ~fin_lo & fin_hi
        safe_lo, safe_hi = np.where(self.box, lo, 0.0), np.where(self.box, hi, 1.0)
        self.a = np.where(self.box_log, np.log(np.where(self.box_log, safe_lo, 1.0)), safe_lo)
        self.b = np.where(self.box_log, np.log(np.where(self.box_log, safe_hi, 1.0)), safe_hi)

    def to_p(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """p(u) and dp/du."""
        e = np.exp(np.clip(u, -700, 700))
        s = 1.0 / (1.0 + np.exp(-np.clip(u, -700, 700)))
        v = self.a + (self.b - self.a) * s
        dv = (self.b - self.a) * s * (1 - s)
        ev = np.exp(np.where(self.box_log, v, 0.0))
        p = np.select(
            [self.box_log, self.box, self.above, self.below],
            [ev, v, np.where(self.above, self.lo, 0) + e, np.where(self.below, self.hi, 0) - e],
            u,
        )
        d = np.select([self.box_log, self.box, self.above, self.below], [ev * dv, dv, e, -e], 1.0)
        return p, d

    def to_u(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            pos = np.where(self.box_log, np.log(np.maximum(p, 1e-300)), p)
            s = np.clip((pos - self.a) / np.where(self.box, self.b - self.a, 1.0), 1e-6, 1 - 1e-6)
            tiny = 1e-12 * np.maximum(np.abs(p), 1e-300)
            return np.select(
                [self.box, self.above, self.below],
                [
                    np.log(s / (1 - s)),
                    np.log(np.maximum(p - np.where(self.above, self.lo, 0), tiny)),
                    np.log(np.maximum(np.where(self.below, self.hi, 0) - p, tiny)),
                ],
                p,
            )


def _arc_order(c: Circuit) -> list[list[int]]:
    """Parameter-index blocks of the top-level parallel groups that share one shape (e.g. p(R,CPE))."""
    items = list(c.root.children) if isinstance(c.root, Series) else [c.root]
    groups = [it for it in items if not isinstance(it, Element)]
    shapes: dict[str, list[Node]] = {}
    for g in groups:
        shapes.setdefault(_shape(g), []).append(g)
    blocks = []
    for same in shapes.values():
        if len(same) > 1:
            blocks.append([[i for e in _elements(g) for i in range(e.index, e.index + _n_params(e))] for g in same])
    return blocks  # type: ignore[return-value]


def _shape(node: Node) -> str:
    if isinstance(node, Element):
        return node.kind
    sep = "-" if isinstance(node, Series) else ","
    return ("p(" if sep == "," else "(") + sep.join(_shape(ch) for ch in node.children) + ")"


def _n_params(e: Element) -> int:
    return 2 if e.kind == "CPE" else 1


def _time_constant(c: Circuit, p: np.ndarray, block: list[int]) -> float:
    """Characteristic time of an arc: geometric mean over its R x (C or CPE) pairs, (R Q)^(1/alpha)."""
    kinds = [c.kinds[i] for i in block]
    r = [p[i] for i, k in zip(block, kinds) if k == "R"]
    r_tot = float(np.sum(r)) if r else 1.0
    taus = []
    for j, (i, k) in enumerate(zip(block, kinds)):
        if k == "C":
            taus.append(r_tot * p[i])
        elif k == "Q":
            alpha = p[block[j + 1]]
            taus.append(np.exp(min(np.log(max(r_tot * p[i], 1e-300)) / max(alpha, 1e-3), 700.0)))
    return float(np.exp(np.mean(np.log(np.maximum(taus, 1e-300))))) if taus else 0.0


def _canonical_order(c: Circuit, p: np.ndarray) -> np.ndarray:
    """Permutation that puts arcs of one shape in the order written = fastest (highest frequency) first.

    Without it two p(R,CPE) arcs may come out swapped when the spectrum shows only one of them.
    """
    perm = np.arange(len(c))
    for same in _arc_order(c):
        taus = [_time_constant(c, p, blk) for blk in same]
        order = np.argsort(taus, kind="stable")
        for dst, src in zip(same, [same[i] for i in order]):
            perm[dst] = src
    return perm


def fit_circuit(
    frequencies: np.ndarray,
    impedance: np.ndarray,
    circuit: str | Circuit,
    initial: dict[str, float] | Sequence[float] | None = None,
    bounds: dict[str, tuple[float, float]] | None = None,
    max_evaluations: int = 2000,
) -> FitResult:
    """Fit ``circuit`` to a spectrum (f in Hz, complex Z in ohm).

    ``initial`` (SI, by name or in ``circuit.names`` order) overrides the automatic guess; ``bounds``
    maps parameter names to (low, high) in SI (defaults: every parameter >= 0, CPE alpha <= 1).
    A parameter the data cannot hold away from a bound (e.g. a series resistance far below the bulk
    arc of a spectrum that stops at 1 MHz) is pinned there and listed in ``at_bound``; its standard
    error still says how large it could be.
    """
    c = circuit if isinstance(circuit, Circuit) else Circuit(circuit)
    f, z = as_spectrum(frequencies, impedance)
    n, k = f.size, len(c)
    if 2 * n <= k:
        raise AnalysisError(f"{n} points cannot determine the {k} parameters of {c.text}")
    lo, hi = _bounds(c, bounds)
    p0 = initial_guess(f, z, c) if initial is None else c.params(initial)
    outside = (p0 < lo) | (p0 > hi)
    if initial is not None and outside.any():
        bad = c.names[int(np.flatnonzero(outside)[0])]
        raise ConfigError(f"initial[{bad}]", float(p0[c.index(bad)]), "outside its bounds")
    tr = _Transform(lo, hi)
    ev = c.evaluator(f)
    weight = 1.0 / np.abs(z)
    u = tr.to_u(p0)
    free = np.ones(k, dtype=bool)
    pinned_value = np.where(np.isfinite(lo), lo, hi)
    cache: dict[str, object] = {}

    def evaluate(uf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        key = uf.tobytes()
        if cache.get("key") != key:
            full = u.copy()
            full[free] = uf
            p, dp = tr.to_p(full)
            p = np.where(free, p, pinned_value)
            zm, jac = ev.z_jac(p)
            cache.update(key=key, value=(zm, jac[:, free] * dp[free][None, :] * weight[:, None]))
        return cache["value"]  # type: ignore[return-value]

    def residuals(uf: np.ndarray) -> np.ndarray:
        r = (evaluate(uf)[0] - z) * weight
        return np.concatenate([r.real, r.imag])

    def jacobian(uf: np.ndarray) -> np.ndarray:
        jw = evaluate(uf)[1]
        return np.concatenate([jw.real, jw.imag])

    def linear_model(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Residuals and their Jacobian with respect to p itself (not the fitted variables)."""
        zm, jac = ev.z_jac(p)
        rz, jw = (zm - z) * weight, jac * weight[:, None]
        return np.concatenate([rz.real, rz.imag]), np.concatenate([jw.real, jw.imag])

    # Active set: a few LM iterations at a time. A parameter whose optimum lies beyond its bound (a
    # series resistance the spectrum cannot resolve, a CPE that is really a capacitor) would make LM in
    # the mapped variables creep after it for ever; the Gauss-Newton step in p itself shows it, so it is
    # pinned at the bound. At convergence a pinned parameter the data pull back inside is released once.
    nfev, success, message, released = 0, False, "", False
    while nfev < max_evaluations:
        cache.clear()
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            res = least_squares(
                residuals,
                u[free],
                jac=jacobian,
                method="lm",
                max_nfev=min(max_evaluations - nfev, 12),
                xtol=1e-8,
                ftol=1e-8,
                gtol=1e-8,
            )
        nfev += int(res.nfev)
        u[free] = res.x
        success, message = bool(res.success), str(res.message)
        p = np.where(free, tr.to_p(u)[0], pinned_value)
        r, jac_p = linear_model(p)
        if not (np.all(np.isfinite(r)) and np.all(np.isfinite(jac_p))):
            break
        if not success:
            col = np.linalg.norm(jac_p[:, free], axis=0)
            col = np.where(col > 0, col, 1.0)
            step = np.linalg.lstsq(jac_p[:, free] / col, -r, rcond=None)[0] / col
            target = np.full(k, np.nan)
            target[free] = p[free] + step
            bound = np.where(target > hi, hi, np.where(np.isfinite(lo), lo, hi))
            pin = np.zeros(k, dtype=bool)
            for i in np.flatnonzero(free & ((target < lo) | (target > hi))):
                trial = pin.copy()
                trial[i] = True
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    finite = np.all(np.isfinite(ev.z(np.where(trial, bound, p))))
                if finite and trial.sum() < free.sum():  # never pin where the model breaks (Q = 0)
                    pin = trial
            free &= ~pin
            pinned_value = np.where(pin, bound, pinned_value)
            continue
        g = jac_p.T @ r
        release = ~free & (((pinned_value == lo) & (g < 0)) | ((pinned_value == hi) & (g > 0)))
        if not release.any() or released:
            break
        released = True
        free |= release
        u = np.where(release, tr.to_u(np.where(release, pinned_value + 0.01 * (p0 - pinned_value), p0)), u)
    p = np.where(free, tr.to_p(u)[0], pinned_value)
    perm = _canonical_order(c, p)
    p, free = p[perm], free[perm]
    r, jac = linear_model(p)
    dof = max(2 * n - k, 1)
    s2 = float(r @ r) / dof
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        # column scaling keeps J^T J invertible in floating point when parameters span 1e-10..1e3
        col = np.linalg.norm(jac, axis=0)
        col = np.where(col > 0, col, 1.0)
        cov = np.linalg.pinv((jac / col).T @ (jac / col)) / np.outer(col, col) * s2
    stderr = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    rel = float(np.sqrt(np.mean(r[:n] ** 2 + r[n:] ** 2)))
    ok = success and bool(np.all(np.isfinite(p))) and bool(np.all(np.isfinite(r)))
    at_bound = tuple(name for name, fr in zip(c.names, free) if not fr)
    return FitResult(c.text, c.names, p, stderr, c.units, rel, cov, ok, message, p0, nfev, at_bound)
