"""The fitter on real spectra (../shared/data/real/eis, the vendor GEIS file, the ZPlot example), against
impedance.py (``impedance.models.circuits.CustomCircuit``) started from our guess and from its own."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from daq.analysis.eis_fit import fit_circuit, initial_guess
from daq.importers import read_recording

SHARED = Path(__file__).resolve().parents[4] / "shared" / "data"
FILES = sorted((SHARED / "real" / "eis").glob("*")) + sorted((SHARED / "vendor").glob("GEIS*.mpr"))
FILES += sorted((Path(__file__).resolve().parents[2] / "data" / "spectra").glob("*.z"))
CIRCUITS = ("R0-p(R1,CPE1)-p(R2,CPE2)", "R0-p(R1,CPE1)")
SLACK = 0.005  # 0.5 percentage points

pytestmark = pytest.mark.skipif(not (SHARED / "real").exists(), reason=f"shared spectra not available ({SHARED})")


def _spectra():
    out = []
    for path in FILES:
        for k, s in enumerate(read_recording(path).spectra[:3]):
            out.append(pytest.param(s.frequency, s.Z_re + 1j * s.Z_im, id=f"{path.name}#{k}"))
    return out


def _relative(zm: np.ndarray, z: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.abs(zm - z) ** 2 / np.abs(z) ** 2)))


def _impedance_py_best(f: np.ndarray, z: np.ndarray, circuit: str) -> float:
    from impedance.models.circuits import CustomCircuit

    own = [float(np.abs(z).min()), float(np.abs(z).max() / 2), 1e-6, 0.9, float(np.abs(z).max() / 2), 1e-4, 0.9]
    best = np.inf
    for guess in (list(initial_guess(f, z, circuit)), own[: len(initial_guess(f, z, circuit))]):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cc = CustomCircuit(circuit, initial_guess=guess).fit(f, z)
            best = min(best, _relative(cc.predict(f), z))
        except (RuntimeError, ValueError, np.linalg.LinAlgError):
            continue
    return best


@pytest.mark.parametrize("circuit", CIRCUITS)
@pytest.mark.parametrize(("f", "z"), _spectra())
def test_fit_is_no_worse_than_impedance_py_and_deterministic(f: np.ndarray, z: np.ndarray, circuit: str) -> None:
    fit = fit_circuit(f, z, circuit)
    reference = _impedance_py_best(f, z, circuit)
    assert np.isfinite(reference)
    assert fit.relative_residual <= reference + SLACK, f"ours {fit.relative_residual:.4f}, impedance.py {reference:.4f}"
    assert np.isclose(fit.relative_residual, _relative(fit.impedance(f), z), rtol=1e-9)
    fit_circuit(f[::2], z[::2], circuit)  # another fit in between must not change the next result
    again = fit_circuit(f, z, circuit)
    assert np.array_equal(again.values, fit.values) and again.success == fit.success
    if fit.success:
        assert fit.at_bound == () and np.all(np.isfinite(fit.stderr)) and fit.relative_residual < 0.25
    else:
        assert fit.message and fit.message != "converged"


def test_arcs_are_ordered_by_time_constant() -> None:
    f = np.geomspace(1e6, 0.1, 60)
    truth = {
        "R0": 10.0,
        "R1": 500.0,
        "CPE1.Q": 1e-9,
        "CPE1.alpha": 0.9,
        "R2": 3000.0,
        "CPE2.Q": 1e-5,
        "CPE2.alpha": 0.8,
    }
    from daq.analysis.circuits import Circuit

    z = Circuit(CIRCUITS[0]).impedance(f, truth)
    fit = fit_circuit(f, z, CIRCUITS[0])
    assert fit.success
    for name, value in truth.items():
        assert fit[name] == pytest.approx(value, rel=1e-4)
