"""Equivalent-circuit fitting of impedance spectra (complex non-linear least squares).

Choices, and why:

- Modulus weighting, residual (Z_model - Z)/|Z| on real and imaginary parts: a solid-electrolyte
  spectrum spans orders of magnitude in |Z| and the instrument error is roughly proportional to |Z|, so
  unweighted fits would ignore the high-frequency (bulk) arc that matters most for dendrite detection.
- Parameters with a non-negative lower bound (all by default) are fitted as log(p): positivity comes
  for free, and R ~ 1e3 ohm and Q ~ 1e-10 are equally well conditioned.
- Analytic Jacobian from the circuit (daq.analysis.circuits) and scipy's bounded trust-region solver
  ('trf', unit steps in the fitted space), in log(p) for positive parameters, inside physical bounds taken from the
  data (:func:`physical_bounds`). Where the first start leaves a poor fit, further starts (time
  constants a decade off, alpha 0.7, DRT peaks) are tried in a fixed order and the best is kept (one
  off the bounds unless a minimum on a bound is clearly lower); the search ends early once three
  starts have ended at the best minimum off the bounds.
- Starting points and physical bounds from the data itself: daq.analysis.eis_guess.
- Standard errors from the Jacobian at the solution, cov = s^2 (J^T J)^-1 with s^2 the residual
  variance, mapped back from the fitted space to physical units.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from daq.analysis import AnalysisError, as_spectrum
from daq.analysis.circuits import Circuit, Element, Node, Series
from daq.analysis.eis_guess import arc_groups, arcs_shown, elements, further_starts, initial_guess, physical_bounds
from daq.core.errors import ConfigError


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
    starts: int = 1  # starting points tried (the first guess and the further starts that ran)

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
            blocks.append([[i for e in elements(g) for i in range(e.index, e.index + _n_params(e))] for g in same])
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


def _solve(
    c: Circuit,
    f: np.ndarray,
    z: np.ndarray,
    p0: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    max_nfev: int,
) -> tuple[np.ndarray, object]:
    """Bounded trust-region least squares (scipy 'trf') in log(p) for positive parameters and p itself
    for CPE exponents; residuals (Z_model - Z)/|Z|. Both are scaled alike (a unit step is a factor e in
    p, or the whole range of alpha), so the steps are not rescaled by the Jacobian: that scaling sends
    the solver crawling along the flat valleys of parameters the data barely determine.
    """
    linear = np.array(c.kinds) == "alpha"
    ev = c.evaluator(f)
    w = 1.0 / np.abs(z)

    def to_p(u: np.ndarray) -> np.ndarray:
        return np.where(linear, u, np.exp(np.clip(u, -700, 700)))

    # The solver asks for the Jacobian at the point it has just evaluated: Z and dZ/dp come from one pass
    # over the circuit, and the Jacobian is kept for that request.
    last: list = [None, None]

    def fun(u: np.ndarray) -> np.ndarray:
        p = to_p(u)
        zm, j = ev.z_jac(p)
        r = (zm - z) * w
        last[0], last[1] = u.copy(), (j, p)
        return np.concatenate([r.real, r.imag])

    def jac(u: np.ndarray) -> np.ndarray:
        if last[0] is None or not np.array_equal(u, last[0]):
            fun(u)
        j, p = last[1]
        j = j * np.where(linear, 1.0, p)[None, :] * w[:, None]
        return np.concatenate([j.real, j.imag])

    ulo, uhi = np.where(linear, lo, np.log(lo)), np.where(linear, hi, np.log(hi))
    u0 = np.clip(np.where(linear, p0, np.log(np.maximum(p0, 1e-300))), ulo, uhi)
    u0 = np.where(u0 <= ulo, ulo + 1e-6 * (uhi - ulo), np.where(u0 >= uhi, uhi - 1e-6 * (uhi - ulo), u0))
    from scipy.optimize import least_squares  # scipy only when a spectrum is fitted (an instant CLI)

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        res = least_squares(
            fun,
            u0,
            jac=jac,
            bounds=(ulo, uhi),
            method="trf",
            x_scale=1.0,
            max_nfev=max_nfev,
            xtol=1e-8,
            ftol=1e-8,
            gtol=1e-8,
        )
    at_lo, at_hi = res.x - ulo < 1e-6 * (uhi - ulo), uhi - res.x < 1e-6 * (uhi - ulo)
    # Physical limits are answers, not pinned parameters: a resistance at ~0 (R >= 0; the lower bound is
    # 1e-9 max|Z|), a CPE exponent of 1 (a capacitor).
    physical = (np.array(c.kinds) == "R") & at_lo | linear & (np.abs(res.x - 1.0) < 1e-6)
    at_bound = (at_lo | at_hi) & ~physical
    return to_p(res.x), (res, at_bound)


GOOD_ENOUGH = 0.02  # relative residual below which the first start is accepted without trying others
# Starts at one minimum: residuals within this relative tolerance and fitted parameters (log p, alpha)
# within this absolute tolerance, after putting arcs of one shape in canonical order. The multi-start ends
# once the best minimum off the bounds has been reached by SAME_MINIMUM_STARTS starts.
SAME_MINIMUM_STARTS = 3
SAME_RESIDUAL = 1e-5
SAME_PARAMETERS = 1e-3
# A minimum with a parameter on a bound replaces the best one off the bounds only below this fraction of
# its residual: a bound usually marks an arc pushed out of the range at about the same residual, but a
# clearly lower one says the data want the parameter beyond the bound (and that fit is no success).
CLEARLY_BETTER = 0.8
MAX_ACCEPTED_RESIDUAL = 0.25  # above this a "fit" describes the data too poorly to be reported as one
# A standard error this many times the value: the data do not determine the parameter (e.g. the split of a
# series resistance between R0 and an arc pushed out of the measured range).
UNDETERMINED = 1e3


def fit_circuit(
    frequencies: np.ndarray,
    impedance: np.ndarray,
    circuit: str | Circuit,
    initial: dict[str, float] | Sequence[float] | None = None,
    bounds: dict[str, tuple[float, float]] | None = None,
    max_evaluations: int = 2000,
) -> FitResult:
    """Fit ``circuit`` to a spectrum (f in Hz, complex Z in ohm). Deterministic: the result depends on
    the data and arguments only.

    ``initial`` (SI, by name or in ``circuit.names`` order) overrides the automatic guess; ``bounds``
    maps parameter names to (low, high) in SI and narrows the physical bounds (:func:`physical_bounds`).
    Without ``initial``, further starts (:func:`further_starts`) are tried when the first fit leaves a relative
    residual above 2 % or a parameter on a bound, and the best is kept; they stop once three starts
    agree on the best minimum off the bounds (``starts`` counts those tried). ``success`` means a real fit:
    the solver converged, the relative residual is below 25 %, no parameter sits on a bound (listed in
    ``at_bound`` otherwise) and every standard error is finite; ``message`` says which failed.
    """
    c = circuit if isinstance(circuit, Circuit) else Circuit(circuit)
    f, z = as_spectrum(frequencies, impedance)
    n, k = f.size, len(c)
    if 2 * n <= k:
        raise AnalysisError(f"{n} points cannot determine the {k} parameters of {c.text}")
    lo, hi = physical_bounds(c, f, z)
    user_lo, user_hi = _bounds(c, bounds)
    for name in bounds or {}:
        i = c.index(name)
        lo[i], hi[i] = max(user_lo[i], 1e-300) if c.kinds[i] != "alpha" else user_lo[i], user_hi[i]
    p0 = initial_guess(f, z, c) if initial is None else c.params(initial)
    if initial is not None:
        outside = (p0 < lo) | (p0 > hi)
        if outside.any():
            bad = c.names[int(np.flatnonzero(outside)[0])]
            raise ConfigError(f"initial[{bad}]", float(p0[c.index(bad)]), "outside its bounds")
    budget = max(max_evaluations // 5, 50)
    best = None
    nfev = 0
    memo: list[int] = []
    interior: list[tuple[float, np.ndarray]] = []  # (residual, fitted-space point) of minima off the bounds

    def shown() -> int:  # arcs the spectrum shows, worked out once and only when a parameter is pinned
        if not memo:
            memo.append(arcs_shown(f, z, c))
        return memo[0]

    starts = [p0] + ([] if initial is not None else further_starts(c, f, z, p0))
    used = 0
    for start in starts:
        used += 1
        p, (res, at_bound) = _solve(c, f, z, start, lo, hi, budget)
        nfev += int(res.nfev)
        rel = _relative(c, f, z, p)
        key = (bool(at_bound.any()), rel)
        if best is None or _better(key, best[0]):
            best = (key, p, res, at_bound, start)
        if not at_bound.any() and rel < GOOD_ENOUGH:
            break
        if at_bound.any() and _unseen_arcs(c, at_bound, shown):  # no start can place an arc the data lack
            break
        if at_bound.any() or _times_found(c, p, rel, interior) < SAME_MINIMUM_STARTS:
            continue
        if not best[0][0] and rel <= best[0][1] * (1 + SAME_RESIDUAL):
            break  # the best minimum so far, off the bounds, reached again and again
    assert best is not None
    _, p, res, at_bound, start = best
    if res.status == 0:  # the best start ran out of its share of evaluations: carry on from where it stopped
        p_more, (res_more, bound_more) = _solve(c, f, z, p, lo, hi, max_evaluations)
        nfev += int(res_more.nfev)
        if _relative(c, f, z, p_more) <= best[0][1] * (1 + 1e-9):
            p, res, at_bound = p_more, res_more, bound_more
    perm = np.arange(len(c)) if bounds else _canonical_order(c, p)  # bounds name a specific arc: keep it
    p, at_bound = p[perm], at_bound[perm]
    unseen = _unseen_arcs(c, at_bound, shown) if at_bound.any() else []
    return _result(c, f, z, p, at_bound, res, start, nfev, unseen, used)


def _better(new: tuple[bool, float], old: tuple[bool, float]) -> bool:
    """Whether minimum ``new`` (on a bound?, residual) beats ``old``: by residual, but across the line
    between minima on and off the bounds only by a clear margin (``CLEARLY_BETTER``)."""
    if new[0] == old[0]:
        return new[1] < old[1]
    return new[1] < CLEARLY_BETTER * old[1] if new[0] else CLEARLY_BETTER * new[1] <= old[1]


def _times_found(c: Circuit, p: np.ndarray, rel: float, seen: list[tuple[float, np.ndarray]]) -> int:
    """How many starts, this one included, ended at this minimum (off the bounds); records it in ``seen``.

    Starts from different sides of the parameter space that end at one interior minimum say it is the
    bottom of a wide basin. Two are not enough: the first guess and the DRT start read the same arcs off
    the spectrum and often share a basin while a start a decade off finds a slightly deeper one; a third
    agreeing start is a majority of the starts there are. A minimum on a bound does not count: the
    bound, not the data, stopped the solver there, and another start may find an interior minimum below.
    """
    linear = np.array(c.kinds) == "alpha"
    q = p[_canonical_order(c, p)]
    u = np.where(linear, q, np.log(np.maximum(q, 1e-300)))
    again = sum(
        abs(rel - r) <= SAME_RESIDUAL * max(rel, r) and np.max(np.abs(u - v)) <= SAME_PARAMETERS for r, v in seen
    )
    seen.append((rel, u))
    return 1 + again


def _node_text(node: Node) -> str:
    if isinstance(node, Element):
        return node.name
    inner = ("-" if isinstance(node, Series) else ",").join(_node_text(ch) for ch in node.children)
    return inner if isinstance(node, Series) else f"p({inner})"


def _unseen_arcs(c: Circuit, at_bound: np.ndarray, shown: Callable[[], int]) -> list[str]:
    """The arcs (as written) whose parameters sit on bounds, when the spectrum shows too few arcs for them.

    A circuit with more arcs than the spectrum shows leaves the extra ones nothing to fit: the solver
    pushes them out of the measured range (Q or alpha on a bound: the arc acts as a plain resistor or
    vanishes). That is the answer, not a start gone wrong; no further start can place those arcs.
    Empty when a pinned parameter is outside the arcs or the spectrum shows enough arcs.
    """
    groups = arc_groups(c)
    params = [{i for e in elements(g) for i in range(e.index, e.index + _n_params(e))} for g in groups]
    pinned = set(np.flatnonzero(at_bound).tolist())
    hit = [k for k, idx in enumerate(params) if idx & pinned]
    if not hit or pinned - set().union(*(params[k] for k in hit)):
        return []
    if len(hit) > len(groups) - shown():
        return []
    return [_node_text(groups[k]) for k in hit]


def _relative(c: Circuit, f: np.ndarray, z: np.ndarray, p: np.ndarray) -> float:
    with np.errstate(all="ignore"):
        zm = c.evaluator(f).z(p)
    rel = float(np.sqrt(np.mean(np.abs(zm - z) ** 2 / np.abs(z) ** 2)))
    return rel if np.isfinite(rel) else np.inf


def _result(c, f, z, p, at_bound, res, start, nfev, unseen=(), starts=1) -> FitResult:
    """Standard errors cov = s^2 (J^T J)^-1 at the solution (J in p, residuals weighted by 1/|Z|)."""
    n, k = f.size, len(c)
    w = 1.0 / np.abs(z)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        zm, jac = c.evaluator(f).z_jac(p)
        rz, jw = (zm - z) * w, jac * w[:, None]
        r, j = np.concatenate([rz.real, rz.imag]), np.concatenate([jw.real, jw.imag])
        s2 = float(r @ r) / max(2 * n - k, 1)
        col = np.linalg.norm(j, axis=0)
        col = np.where(col > 0, col, 1.0)
        try:
            cov = np.linalg.inv((j / col).T @ (j / col)) / np.outer(col, col) * s2
        except np.linalg.LinAlgError:
            cov = np.full((k, k), np.inf)
    stderr = np.sqrt(np.abs(np.diag(cov)))
    rel = _relative(c, f, z, p)
    problems = []
    if not res.success:
        problems.append(f"solver: {res.message}")
    if not np.isfinite(rel) or rel > MAX_ACCEPTED_RESIDUAL:
        problems.append(
            f"relative residual {rel:.1%} above {MAX_ACCEPTED_RESIDUAL:.0%}: the circuit does not describe the spectrum"
        )
    pinned = tuple(name for name, b in zip(c.names, at_bound) if b)
    if unseen:
        n_arcs = len(arc_groups(c))
        problems.append(
            f"the spectrum shows {n_arcs - len(unseen)} of the circuit's {n_arcs} arcs: {', '.join(unseen)} "
            f"outside the measured range ({', '.join(pinned)} on {'its bound' if len(pinned) == 1 else 'their bounds'})"
            "; "
            "fit a circuit with fewer arcs"
        )
    elif pinned:
        problems.append("at a bound: " + ", ".join(pinned))
    zero = (np.array(c.kinds) == "R") & (p <= 1e-8 * np.abs(z).max())  # R = 0: its error is an upper limit
    if not np.all(np.isfinite(stderr)) or np.any((stderr > UNDETERMINED * np.abs(p)) & ~zero):
        problems.append(
            f"parameters not determined by the data (standard error not finite or above {UNDETERMINED:.0f}x the value)"
        )
    ok = not problems
    message = "converged" if ok else "; ".join(problems)
    return FitResult(c.text, c.names, p, stderr, c.units, rel, cov, ok, message, start, nfev, pinned, starts)
