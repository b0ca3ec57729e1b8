"""Lin-KK on real spectra, compared with impedance.py's ``linKK``: same residuals at the same number of RC
elements, the same verdicts where its mu loop does not stop on a dip, and the sparse BioLogic GEIS spectra of
an RC network passing where the first-dip rule (M = 4) failed them; non-KK spectra still rejected."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
from impedance.models.circuits import elements as ipy_elements
from impedance.validation import linKK

from daq.analysis.circuits import Circuit
from daq.analysis.kramers_kronig import capacitive_tail, lin_kk
from daq.importers import read_recording

REAL = Path("/work/shared/data/real/eis")
GEIS_NESD = Path("/work/shared/data/vendor/GEIS_nesd.mpr")
pytestmark = pytest.mark.skipif(not GEIS_NESD.exists(), reason="shared real data not available")


def spectra(path):
    out = []
    for s in read_recording(path).spectra:
        f, z = np.asarray(s.frequency), np.asarray(s.Z_re) + 1j * np.asarray(s.Z_im)
        ok = np.isfinite(z) & (f > 0)
        out.append((f[ok], z[ok]))
    return out


@pytest.fixture
def ipy_linkk(monkeypatch):
    """impedance.py's linKK, quiet; its circuit strings hold numpy 2 reprs (np.float64(...)), so the
    namespace it evaluates them in needs numpy."""
    monkeypatch.setitem(ipy_elements.circuit_elements, "np", np)

    def run(f, z, **kw):
        with contextlib.redirect_stdout(io.StringIO()):
            m, mu, z_fit, res_re, res_im = linKK(f, z, fit_type="complex", **kw)
        return m, mu, res_re, res_im

    return run


def same_residuals_as_impedance_py(result, f, z, ipy_linkk):
    order = np.argsort(-f)  # our result runs from high to low frequency
    f, z = f[order], z[order]
    np.testing.assert_array_equal(result.frequencies, f)
    m, _, res_re, res_im = ipy_linkk(f, z, c=None, max_M=result.n_elements, add_cap=result.capacitance < np.inf)
    assert m == result.n_elements
    # the same least-squares problem; impedance.py solves its normal equations, hence 1e-5 (0.001 % of |Z|)
    np.testing.assert_allclose(result.residuals_real, res_re, atol=1e-5)
    np.testing.assert_allclose(result.residuals_imag, res_im, atol=1e-5)


# (file, valid?, largest residual bound): verdicts of the Lin-KK test on every real spectrum
REAL_VERDICTS = {"exampleData.csv": (True, 0.005), "exampleDataGamry.DTA": (False, 0.05)}


@pytest.mark.parametrize("name", sorted(REAL_VERDICTS))
def test_real_spectra_agree_with_impedance_py(name, ipy_linkk):
    assert {p.name for p in REAL.iterdir()} == set(REAL_VERDICTS)  # every real spectrum has its verdict here
    (f, z), *_ = spectra(REAL / name)
    result = lin_kk(f, z)
    valid, bound = REAL_VERDICTS[name]
    assert result.passed is valid
    assert (result.max_residual < bound) if valid else (result.max_residual > bound)
    same_residuals_as_impedance_py(result, f, z, ipy_linkk)
    # impedance.py's own automatic M (first mu <= 0.85, series capacitor as we decide it) lands on ours here
    m, *_ = ipy_linkk(f, z, c=0.85, max_M=100, add_cap=capacitive_tail(f, z))
    assert m == result.n_elements


def test_sparse_biologic_geis_of_an_rc_network_passes(ipy_linkk):
    """19 points over 3 decades: the first mu dip (M = 4, 14 % residual) is not where over-fitting starts."""
    all_spectra = spectra(GEIS_NESD)
    assert len(all_spectra) == 12
    for f, z in all_spectra:
        assert len(f) == 19
        result = lin_kk(f, z)
        assert result.passed and result.max_residual < 0.002, str(result)
        assert 8 <= result.n_elements <= 19 and result.capacitance == np.inf  # the arc closes: no capacitor
        same_residuals_as_impedance_py(result, f, z, ipy_linkk)
        m, _, res_re, res_im = ipy_linkk(f, z, c=0.85, max_M=100)  # impedance.py stops at the first dip
        assert m == 4 and max(np.abs(res_re).max(), np.abs(res_im).max()) > 0.1


def sparse_rc(growth, seed=1):
    """An RC network like the GEIS spectra (1 kHz - 1 Hz, 19 points), R1 growing by ``growth`` over the
    sweep's time (most of it in the slow points), 0.03 % noise."""
    f = np.geomspace(1000, 1, 19)
    elapsed = np.cumsum(1 / f) / np.sum(1 / f)
    rc, p = Circuit("R0-p(R1,C1)"), np.array([1490.0, 3570.0, 2.2e-6])
    z = np.array([rc.impedance(f[i : i + 1], p * [1, 1 + growth * elapsed[i], 1])[0] for i in range(f.size)])
    rng = np.random.default_rng(seed)
    return f, z * (1 + 3e-4 * (rng.normal(size=f.size) + 1j * rng.normal(size=f.size)))


def test_sparse_non_kk_spectra_are_still_rejected():
    assert lin_kk(*sparse_rc(0.0)).passed
    drifting = lin_kk(*sparse_rc(0.10))  # the cell changed by 10 % during the sweep
    assert not drifting.passed and drifting.max_residual > 0.025
    f, z = sparse_rc(0.0)
    skewed = lin_kk(f, z.real + 1.05j * z.imag)  # a 5 % gain error on the quadrature channel
    assert not skewed.passed and skewed.max_residual > 0.015
