"""Starting points and bounds for equivalent-circuit fits, read off the spectrum itself.

- Initial guesses from the spectrum shape: high-frequency intercept, arc widths between minima of -Im Z,
  and arc peak frequencies (tau = 1/(2 pi f_peak)); arcs are matched to the circuit's parallel groups in
  the order written, which by convention runs from high to low frequency (bulk first).
- Physical bounds from the data's own scales (:func:`physical_bounds`).
- Further starts where the first fit is poor (:func:`further_starts`): time constants a decade off,
  CPE exponents at 0.7, arcs at the peaks of the distribution of relaxation times (DRT).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daq.analysis import AnalysisError, as_spectrum
from daq.analysis.circuits import Circuit, Element, Node, Series

DEFAULT_ALPHA = 0.9  # CPE exponent to start from: typical of ceramic bulk/grain-boundary and Li interface arcs
# A top of -Im Z counts as an arc when it stands this far (relative to |Z| there) above its surroundings: real
# spectra scatter by 1-3 % of |Z| at the ends of the range, where cables and instrument ranges act.
TOP_FLOOR = 0.02


@dataclass(frozen=True)
class Features:
    r_hf: float  # high-frequency intercept, ohm
    arcs: list[tuple[float, float]]  # (R, tau) per arc, high to low frequency
    w_lf: float  # lowest angular frequency
    y_lf: float  # -Im Z there
    w_hf: float
    im_hf: float  # Im Z at the highest frequency (positive if inductive)
    z_scale: float


def spectrum_features(f: np.ndarray, z: np.ndarray, n_arcs: int, lf_tail: bool = False) -> Features:
    """Arc structure of a spectrum sorted from high to low frequency; ``lf_tail``: the circuit blocks DC
    (capacitive or diffusion tail), so a rising low-frequency end is that tail, not the top of an arc."""
    y = -z.imag
    n = y.size
    ys = np.convolve(np.pad(y, 1, mode="edge"), np.ones(3) / 3, mode="valid") if n >= 5 else y
    peaks = _arc_tops(ys, np.abs(z), n_arcs, lf_tail) if n_arcs else []
    r_hf, arcs, gap = _shown_arcs(f, z, ys, peaks)
    r_hf = _add_hidden_arcs(f, z, r_hf, arcs, n_arcs, gap)
    return Features(
        r_hf,
        arcs,
        float(2 * np.pi * f[-1]),
        float(max(y[-1], 1e-3 * np.abs(z[-1]))),
        float(2 * np.pi * f[0]),
        float(z[0].imag),
        float(np.abs(z).max()),
    )


def _arc_tops(ys: np.ndarray, mod: np.ndarray, n_arcs: int, lf_tail: bool) -> list[int]:
    """Indices of the (at most ``n_arcs``) most prominent tops of the smoothed -Im Z, in order.

    Prominence counts only above zero (a dip into inductive values is no part of an arc). A top is kept
    when its prominence is above the scatter (``TOP_FLOOR`` x |Z|) and either comparable with the largest
    (15 %) or a tenth of its own height: the top of an arc followed by a rising tail stands only as far
    above the tail as its dip, however large the arc.
    """
    from scipy.signal import find_peaks  # scipy only when a spectrum is analysed

    n = ys.size
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
    idx = np.array(idx, dtype=int)
    prom = np.minimum(np.array(prom), ys[idx])
    real = prom >= TOP_FLOOR * mod[idx]
    top = prom[real].max() if real.any() else 0.0
    keep = real & ((prom >= 0.15 * top) | (prom >= 0.1 * ys[idx]))
    best = [i for i in np.argsort(prom)[::-1] if keep[i]][:n_arcs]
    return sorted(int(i) for i in idx[best])


def _shown_arcs(
    f: np.ndarray, z: np.ndarray, ys: np.ndarray, peaks: list[int]
) -> tuple[float, list[tuple[float, float]], float]:
    """High-frequency intercept, (resistance, time constant) of each arc the spectrum shows, and the gap
    between Re Z at the highest frequency and where the first arc meets the axis when the former lies
    left of the latter, off the axis (0 otherwise).
    Boundaries between arcs: Re Z at the minimum of -Im Z between consecutive peaks."""
    x = z.real
    if not peaks:
        return float(max(x.min(), 1e-3 * np.abs(z).min())), [], 0.0
    bounds = [x[a + int(np.argmin(ys[a : b + 1]))] for a, b in zip(peaks[:-1], peaks[1:])]
    first = peaks[0]
    gap = 0.0
    # HF intercept: where the first arc meets the axis; from its top (centre, height) if it is cut off.
    if ys[0] < 0.1 * ys[first]:
        r_hf = float(x[0])
    elif first > 0:
        r_hf = float(x[first] - ys[first])
        gap = max(r_hf - float(x[0]), 0.0)
    else:  # the arc's top lies beyond the highest frequency: only a small series part is likely
        r_hf = 0.05 * float(x[0])
    r_hf = float(np.clip(r_hf, 1e-3 * np.abs(z).min(), max(x[0], 1e-3 * np.abs(z).min())))
    tail = peaks[-1] + int(np.argmin(ys[peaks[-1] :]))
    end = float(x[tail]) if ys[tail] < 0.5 * ys[peaks[-1]] else float(x[peaks[-1]] + ys[peaks[-1]])
    edges = [r_hf, *bounds, max(end, x[peaks[-1]])]
    widths = np.maximum(np.diff(edges), 1e-3 * np.abs(z).max())
    return r_hf, [(float(r), 1.0 / (2 * np.pi * f[i])) for r, i in zip(widths, peaks)], gap


def _add_hidden_arcs(
    f: np.ndarray, z: np.ndarray, r_hf: float, arcs: list[tuple[float, float]], n_arcs: int, gap: float = 0.0
) -> float:
    """Complete ``arcs`` (in place) with those the spectrum does not show; returns the new intercept.

    Points at the highest frequencies that lie off the axis yet left of where the first arc meets it
    (``gap`` beyond the scatter) belong to a faster arc whose top is near the top of the range: put one
    there, its resistance the gap, the series resistance below Re Z there by half of it. Otherwise a
    large high-frequency intercept is usually an arc cut off above the range (the bulk of a ceramic at
    MHz): put one there. Failing both, share what is left of the resistance and spread the time
    constants over the measured range."""
    x = z.real
    if len(arcs) < n_arcs and gap > TOP_FLOOR * abs(z[0]):
        arcs.insert(0, (gap, 1.0 / (2 * np.pi * f[0])))
        r_hf = max(r_hf - 0.5 * gap, 1e-3 * float(np.abs(z).min()))
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
    return r_hf


def arcs_shown(frequencies: np.ndarray, impedance: np.ndarray, circuit: str | Circuit) -> int:
    """How many of the circuit's arcs (top-level parallel groups) the spectrum shows: tops of -Im Z, or
    where those are fewer (overlapping arcs make one top), peaks of the distribution of relaxation times."""
    from daq.analysis.drt import drt

    c = circuit if isinstance(circuit, Circuit) else Circuit(circuit)
    f, z = as_spectrum(frequencies, impedance)
    groups = arc_groups(c)
    if not groups:
        return 0
    y = -z.imag
    ys = np.convolve(np.pad(y, 1, mode="edge"), np.ones(3) / 3, mode="valid") if y.size >= 5 else y
    tops = len(_arc_tops(ys, np.abs(z), len(groups), blocks_dc(c.root)))
    if tops >= len(groups):
        return tops
    try:
        with np.errstate(all="ignore"):
            peaks = len(drt(f, z).peaks)
    except (AnalysisError, ValueError, np.linalg.LinAlgError):
        peaks = 0
    return min(max(tops, peaks), len(groups))


def arc_groups(c: Circuit) -> list[Node]:
    """The circuit's arcs: its top-level parallel groups, in the order written."""
    items = list(c.root.children) if isinstance(c.root, Series) else [c.root]
    return [it for it in items if not isinstance(it, Element)]


def elements(node: Node) -> list[Element]:
    if isinstance(node, Element):
        return [node]
    return [e for child in node.children for e in elements(child)]


def blocks_dc(node: Node) -> bool:
    """Whether |Z| grows without bound as f -> 0 (a capacitive or diffusion tail at low frequency)."""
    if isinstance(node, Element):
        return node.kind in ("C", "CPE", "W")
    if isinstance(node, Series):
        return any(blocks_dc(ch) for ch in node.children)
    return all(blocks_dc(ch) for ch in node.children)


def fill_group(p: np.ndarray, elements: list[Element], r: float, tau: float, feats: Features) -> None:
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
    feats = spectrum_features(f, z, len(groups), lf_tail=blocks_dc(c.root))
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
        fill_group(p, elements(group), r, tau, feats)
    return p


def physical_bounds(c: Circuit, f: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds a real cell respects, from the data's own scales.

    R in [1e-9, 1e4] x max|Z|: a resistance far above the largest impedance measured is not in the data,
    but an arc that never closes in the range (a blocking or diffusion-like tail) is fitted by one far
    beyond it, and a bound at a few times max|Z| bends that tail (it then stays pinned, reported as such);
    C and CPE Q such that the time constant R*C (or (R Q)^(1/alpha)) lies within three decades
    beyond the measured range 1/(2 pi f); 0.2 <= alpha <= 1 (below 0.2 a CPE is no longer an arc);
    L and Warburg coefficients within six decades of what the data's extremes imply.
    """
    zmax, zmin = float(np.abs(z).max()), float(np.abs(z).min())
    r_lo, r_hi = 1e-9 * zmax, 1e4 * zmax
    tau_lo, tau_hi = 1e-3 / (2 * np.pi * f.max()), 1e3 / (2 * np.pi * f.min())
    lo, hi = np.empty(len(c)), np.empty(len(c))
    for i, kind in enumerate(c.kinds):
        if kind == "R":
            lo[i], hi[i] = r_lo, r_hi
        elif kind == "C":
            lo[i], hi[i] = tau_lo / r_hi, tau_hi / (1e-3 * zmin)
        elif kind == "Q":
            lo[i], hi[i] = min(tau_lo, tau_lo**0.2) / r_hi, max(tau_hi, tau_hi**0.2) / (1e-3 * zmin)
        elif kind == "alpha":
            lo[i], hi[i] = 0.2, 1.0
        elif kind == "L":
            lo[i], hi[i] = 1e-6 * zmin / (2 * np.pi * f.max()), 1e3 * zmax / (2 * np.pi * f.min())
        else:  # Warburg sigma, ohm s^-1/2
            lo[i], hi[i] = 1e-6 * zmin * np.sqrt(2 * np.pi * f.min()), 1e3 * zmax * np.sqrt(2 * np.pi * f.max())
    return lo, hi


def further_starts(c: Circuit, f: np.ndarray, z: np.ndarray, p0: np.ndarray) -> list[np.ndarray]:
    """Further starting points, tried (in this fixed order) when the first fit is poor.

    Arc time constants moved by a decade either way, CPE exponents at 0.7, and arcs placed at the
    peaks of the distribution of relaxation times (DRT). The list depends only on the data.
    """
    starts = []
    kinds = np.array(c.kinds)
    for factor in (10.0, 0.1):
        p = p0.copy()
        p[kinds == "C"] *= factor
        q = kinds == "Q"
        p[q] *= factor ** p[np.flatnonzero(q) + 1]
        starts.append(p)
    p = p0.copy()
    alpha = np.flatnonzero(kinds == "alpha")
    p[alpha - 1] = p[alpha - 1] * 0.0 + (1.0 / (2 * np.pi * np.sqrt(f.max() * f.min()))) ** 0.7 / np.abs(z).max()
    p[alpha] = 0.7
    starts.append(p)
    drt_start = _drt_start(c, f, z, p0)
    if drt_start is not None:
        starts.insert(0, drt_start)
    return starts


def _drt_start(c: Circuit, f: np.ndarray, z: np.ndarray, p0: np.ndarray) -> np.ndarray | None:
    """Arcs at the largest DRT peaks (time constant and resistance), high frequency first."""
    from daq.analysis.drt import drt

    items = list(c.root.children) if isinstance(c.root, Series) else [c.root]
    groups = [it for it in items if not isinstance(it, Element)]
    if not groups:
        return None
    try:
        with np.errstate(all="ignore"):
            res = drt(f, z)
    except (AnalysisError, ValueError, np.linalg.LinAlgError):
        return None
    peaks = sorted(res.peaks, key=lambda pk: pk.resistance, reverse=True)[: len(groups)]
    if len(peaks) < len(groups):
        return None
    p = p0.copy()
    feats = spectrum_features(f, z, len(groups), lf_tail=blocks_dc(c.root))
    for group, pk in zip(groups, sorted(peaks, key=lambda pk: pk.tau)):
        fill_group(p, elements(group), max(pk.resistance, 1e-6 * feats.z_scale), pk.tau, feats)
    return p
