"""Equivalent circuits written in the usual string form, e.g. ``R0-p(R1,CPE1)-p(R2,CPE2)``.

Grammar: ``-`` joins elements in series, ``p(a,b,...)`` puts its branches in parallel, and branches may
themselves be series chains or further ``p(...)`` groups. Elements are named by their kind followed by
an optional label (``R0``, ``Rbulk``, ``CPE1``, ``Wct``):

    R    resistor          R [ohm]
    C    capacitor         C [F]                      Z = 1/(jwC)
    L    inductor          L [H]                      Z = jwL
    CPE  constant phase    Q [ohm^-1 s^alpha], alpha  Z = 1/(Q (jw)^alpha)
    W    Warburg (semi-infinite) sigma [ohm s^-0.5]   Z = sigma sqrt(2)/sqrt(jw) = sigma (1-j)/sqrt(w)

Single-parameter elements name their parameter after the element (``R1``); the others append the
parameter (``CPE1.Q``, ``CPE1.alpha``). Evaluation is vectorised over frequency and also returns the
analytic Jacobian dZ/dp, which is what makes the fitter fast enough to run on every operando spectrum.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from daq.core.errors import ConfigError

# kind -> (parameter suffixes, units, parameter kinds)
_KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "CPE": (("Q", "alpha"), ("ohm^-1 s^alpha", "1")),
    "R": (("",), ("ohm",)),
    "C": (("",), ("F",)),
    "L": (("",), ("H",)),
    "W": (("",), ("ohm s^-0.5",)),
}
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Element:
    kind: str  # R, C, L, CPE or W
    name: str  # as written, e.g. "CPE1"
    index: int  # position of its first parameter in the parameter vector


@dataclass(frozen=True)
class Series:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Parallel:
    children: tuple[Node, ...]


Node = Element | Series | Parallel


def _kind_of(name: str) -> str | None:
    if name.startswith("CPE"):
        return "CPE"
    if name[:2] in ("Wo", "Ws"):  # finite-length Warburgs in other tools' notation: refuse, don't guess
        return None
    return name[0] if name[0] in "RCLW" else None


class _Parser:
    def __init__(self, text: str):
        self.raw = text
        self.s = "".join(text.split())
        self.pos = 0
        self.elements: list[Element] = []
        self.n_params = 0

    def fail(self, problem: str) -> ConfigError:
        return ConfigError(
            "circuit",
            self.raw,
            f"{problem} at character {self.pos + 1} of '{self.s}'; expected e.g. 'R0-p(R1,CPE1)-p(R2,CPE2)'",
        )

    def peek(self) -> str:
        return self.s[self.pos] if self.pos < len(self.s) else ""

    def series(self) -> Node:
        items = [self.term()]
        while self.peek() == "-":
            self.pos += 1
            items.append(self.term())
        return items[0] if len(items) == 1 else Series(tuple(items))

    def term(self) -> Node:
        if self.s.startswith("p(", self.pos):
            self.pos += 2
            branches = [self.series()]
            while self.peek() == ",":
                self.pos += 1
                branches.append(self.series())
            if self.peek() != ")":
                raise self.fail("missing ')'" if not self.peek() else f"unexpected '{self.peek()}'")
            self.pos += 1
            if len(branches) < 2:
                raise self.fail("p(...) needs at least two branches separated by ','")
            return Parallel(tuple(branches))
        m = _NAME_RE.match(self.s, self.pos)
        if not m:
            raise self.fail("missing element" if not self.peek() else f"unexpected '{self.peek()}'")
        name = m.group()
        kind = _kind_of(name)
        if kind is None:
            raise self.fail(
                f"unknown element '{name}' (known: R, C, L, CPE and semi-infinite W, "
                "each followed by an optional label)"
            )
        if any(e.name == name for e in self.elements):
            raise self.fail(f"element '{name}' appears twice; give each element its own label")
        element = Element(kind, name, self.n_params)
        self.elements.append(element)
        self.n_params += len(_KINDS[kind][0])
        self.pos = m.end()
        return element

    def parse(self) -> Node:
        if not self.s:
            raise ConfigError("circuit", self.raw, "empty circuit; expected e.g. 'R0-p(R1,CPE1)-p(R2,CPE2)'")
        node = self.series()
        if self.pos != len(self.s):
            raise self.fail(f"unexpected '{self.peek()}'")
        return node


class Circuit:
    """A parsed equivalent circuit: parameter names and units, and Z(f) with its Jacobian."""

    def __init__(self, text: str):
        if not isinstance(text, str):
            raise ConfigError("circuit", text, "must be text such as 'R0-p(R1,CPE1)'")
        parser = _Parser(text)
        self.root: Node = parser.parse()
        self.text = parser.s
        self.elements: tuple[Element, ...] = tuple(parser.elements)
        names, units, kinds = [], [], []
        for e in self.elements:
            suffixes, us = _KINDS[e.kind]
            for suffix, unit in zip(suffixes, us):
                names.append(f"{e.name}.{suffix}" if suffix else e.name)
                units.append(unit)
                kinds.append(suffix or e.kind)  # R, C, L, W, Q, alpha
        self.names: tuple[str, ...] = tuple(names)
        self.units: tuple[str, ...] = tuple(units)
        self.kinds: tuple[str, ...] = tuple(kinds)

    def __repr__(self) -> str:
        return f"Circuit('{self.text}')"

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise ConfigError(
                "parameter", name, f"not a parameter of {self.text}; parameters are {', '.join(self.names)}"
            ) from None

    def params(self, values: dict[str, float] | Sequence[float]) -> np.ndarray:
        """Parameter vector from a name -> value mapping (all names required) or a sequence."""
        if isinstance(values, dict):
            unknown = set(values) - set(self.names)
            if unknown:
                self.index(sorted(unknown)[0])
            missing = [n for n in self.names if n not in values]
            if missing:
                raise ConfigError("parameter", missing[0], f"missing; {self.text} needs {', '.join(self.names)}")
            return np.array([float(values[n]) for n in self.names])
        p = np.asarray(values, dtype=float)
        if p.shape != (len(self.names),):
            raise ConfigError(
                "parameters", list(np.ravel(p)), f"{self.text} needs {len(self.names)} values ({', '.join(self.names)})"
            )
        return p

    def evaluator(self, frequencies: np.ndarray) -> Evaluator:
        """Precompute the frequency terms once for repeated evaluation (fitting)."""
        return Evaluator(self, frequencies)

    def impedance(self, frequencies: np.ndarray, params: dict[str, float] | Sequence[float]) -> np.ndarray:
        """Complex impedance (ohm) at ``frequencies`` (Hz)."""
        return Evaluator(self, frequencies).z(self.params(params))


class Evaluator:
    """Z(p) and dZ/dp of one circuit on one fixed frequency vector."""

    def __init__(self, circuit: Circuit, frequencies: np.ndarray):
        f = np.asarray(frequencies, dtype=float)
        if f.ndim != 1 or not np.all(f > 0):
            raise ConfigError("frequencies", None, "must be a 1-D array of positive frequencies in Hz")
        self.circuit = circuit
        self.w = 2 * np.pi * f
        self.jw = 1j * self.w
        self.log_jw = np.log(self.w) + 0.5j * np.pi  # log(jw), for d/d alpha of (jw)^alpha
        self.inv_sqrt_jw = 1.0 / np.sqrt(self.jw)

    # -- impedance only ---------------------------------------------------------------------------
    def z(self, p: np.ndarray) -> np.ndarray:
        return self._z(self.circuit.root, p)

    def _z(self, node: Node, p: np.ndarray) -> np.ndarray:
        if isinstance(node, Element):
            return self._element(node, p)[0]
        if isinstance(node, Series):
            total = self._z(node.children[0], p)
            for child in node.children[1:]:
                total = total + self._z(child, p)
            return total
        admittance = 0.0
        for child in node.children:
            admittance = admittance + 1.0 / self._z(child, p)
        return 1.0 / admittance

    # -- impedance and Jacobian -------------------------------------------------------------------
    def z_jac(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Z (n,) and dZ/dp (n, P), both complex."""
        z, derivs = self._zj(self.circuit.root, p)
        jac = np.zeros((self.w.size, p.size), dtype=complex)
        for i, d in derivs:
            jac[:, i] = d
        return z, jac

    def _zj(self, node: Node, p: np.ndarray) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
        if isinstance(node, Element):
            return self._element(node, p, jac=True)
        if isinstance(node, Series):
            total, derivs = self._zj(node.children[0], p)
            for child in node.children[1:]:
                zc, dc = self._zj(child, p)
                total = total + zc
                derivs = derivs + dc
            return total, derivs
        parts = [self._zj(child, p) for child in node.children]
        admittance = 0.0
        for zc, _ in parts:
            admittance = admittance + 1.0 / zc
        z = 1.0 / admittance
        derivs = []
        for zc, dc in parts:  # d(1/Y)/dp = Z^2/Zc^2 dZc/dp
            scale = (z / zc) ** 2
            derivs += [(i, scale * d) for i, d in dc]
        return z, derivs

    def _element(self, e: Element, p: np.ndarray, jac: bool = False):
        i = e.index
        if e.kind == "R":
            z = np.full(self.w.shape, p[i], dtype=complex)
            return (z, [(i, np.ones(self.w.shape, dtype=complex))]) if jac else (z,)
        if e.kind == "C":
            z = 1.0 / (p[i] * self.jw)
            return (z, [(i, -z / p[i])]) if jac else (z,)
        if e.kind == "L":
            z = p[i] * self.jw
            return (z, [(i, self.jw)]) if jac else (z,)
        if e.kind == "W":
            z = p[i] * np.sqrt(2.0) * self.inv_sqrt_jw
            return (z, [(i, z / p[i])]) if jac else (z,)
        q, alpha = p[i], p[i + 1]
        z = 1.0 / (q * np.exp(alpha * self.log_jw))
        return (z, [(i, -z / q), (i + 1, -z * self.log_jw)]) if jac else (z,)


def parse(text: str) -> Circuit:
    """Parse a circuit string; a malformed one raises ConfigError naming the position."""
    return Circuit(text)
