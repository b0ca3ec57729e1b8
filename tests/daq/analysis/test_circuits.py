"""Circuit strings: parsing, parameter names and units, Z(f) against hand formulas, analytic Jacobian."""

from __future__ import annotations

import numpy as np
import pytest

from daq.analysis.circuits import Circuit
from daq.core.errors import ConfigError

F = np.geomspace(1e6, 0.1, 25)
W = 2 * np.pi * F


def test_names_units_and_nesting():
    c = Circuit("R0 - p(R1, CPE1) - p(R2-W2, C2) - L3")
    assert c.names == ("R0", "R1", "CPE1.Q", "CPE1.alpha", "R2", "W2", "C2", "L3")
    assert c.units == ("ohm", "ohm", "ohm^-1 s^alpha", "1", "ohm", "ohm s^-0.5", "F", "H")
    assert c.text == "R0-p(R1,CPE1)-p(R2-W2,C2)-L3"


def test_impedance_matches_hand_formulas():
    c = Circuit("R0-p(R1,CPE1)-p(R2-W2,C2)-L3")
    p = dict(R0=5.0, R1=2500.0, **{"CPE1.Q": 2e-10, "CPE1.alpha": 0.9}, R2=800.0, W2=120.0, C2=1e-6, L3=1e-7)
    jw = 1j * W
    z_cpe = 1 / (2e-10 * jw**0.9)
    z_w = 120.0 * (1 - 1j) / np.sqrt(W)
    expected = 5.0 + 1 / (1 / 2500.0 + 1 / z_cpe) + 1 / (1 / (800.0 + z_w) + 1e-6 * jw) + 1e-7 * jw
    np.testing.assert_allclose(c.impedance(F, p), expected, rtol=1e-12)


def test_nested_parallel():
    c = Circuit("p(R1,p(R2,C2))")
    z = c.impedance(F, [100.0, 50.0, 1e-6])
    inner = 1 / (1 / 50.0 + 1j * W * 1e-6)
    np.testing.assert_allclose(z, 1 / (1 / 100.0 + 1 / inner), rtol=1e-12)


def test_jacobian_matches_finite_differences():
    c = Circuit("R0-p(R1,CPE1)-p(R2-W2,C2)-L3")
    p = np.array([5.0, 2500.0, 2e-10, 0.9, 800.0, 120.0, 1e-6, 1e-7])
    ev = c.evaluator(F)
    z, jac = ev.z_jac(p)
    for i in range(p.size):
        h = p[i] * 1e-7
        q = p.copy()
        q[i] += h
        fd = (ev.z(q) - z) / h
        assert np.max(np.abs(fd - jac[:, i])) < 1e-5 * np.max(np.abs(jac[:, i])), c.names[i]


@pytest.mark.parametrize(
    "text, where",
    [
        ("", "empty"),
        ("R0-", "missing element"),
        ("R0-p(R1)", "two branches"),
        ("R0-p(R1,C1", "missing ')'"),
        ("R0-X1", "unknown element 'X1'"),
        ("R1-R1", "appears twice"),
        ("R0-p(R1,C1))", "unexpected ')'"),
        ("R0--R1", "unexpected '-'"),
        ("Wo1", "unknown element"),
    ],
)
def test_malformed_strings_are_refused_clearly(text, where):
    with pytest.raises(ConfigError) as err:
        Circuit(text)
    assert where in str(err.value)
    assert str(err.value).startswith("circuit")


def test_parameter_vector_checks():
    c = Circuit("R0-p(R1,C1)")
    with pytest.raises(ConfigError, match="missing"):
        c.params({"R0": 1.0, "R1": 2.0})
    with pytest.raises(ConfigError, match="not a parameter"):
        c.params({"R0": 1.0, "R1": 2.0, "C1": 1e-6, "C9": 1.0})
    with pytest.raises(ConfigError, match="needs 3 values"):
        c.params([1.0, 2.0])
