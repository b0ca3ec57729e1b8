"""Arc tops read off -Im Z: scatter at the range ends is no arc, and an arc followed by a rising end is one."""

from __future__ import annotations

import numpy as np
from impedance.models.circuits import CustomCircuit

from daq.analysis.circuits import Circuit
from daq.analysis.eis_fit import fit_circuit

TAIL = "R0-p(R1,CPE1)-p(R2,CPE2)-CPE3"
TWO_ARCS = "R0-p(R1,CPE1)-p(R2,CPE2)"


def _spectrum(circuit: str, params: list[float], f_hi: float, f_lo: float) -> tuple[np.ndarray, np.ndarray]:
    f = np.geomspace(f_hi, f_lo, int(round(10 * np.log10(f_hi / f_lo))) + 1)
    return f, Circuit(circuit).impedance(f, params)


def test_scatter_dipping_inductive_at_the_high_frequency_end_is_no_arc():
    """A blocking electrode behind two arcs, 100 kHz - 0.1 Hz; the three highest frequencies scatter by
    +-3 % of |Z| into inductive values (as a CH Instruments export does). The fit finds both arcs and R0,
    as impedance.py does from a start near the truth, instead of putting an arc above the range."""
    truth = [97.7, 275.0, 3.79e-5, 0.76, 850.0, 1.85e-4, 0.684, 8.5e-5, 0.823]
    f, z = _spectrum(TAIL, truth, 1e5, 0.1)
    z[:3] += 1j * np.array([-2.7, 1.6, 0.8])  # -Im Z: +2.7, -1.6, -0.8 ohm off the model
    fit = fit_circuit(f, z, TAIL)
    ref = CustomCircuit(TAIL, initial_guess=truth).fit(f, z, weight_by_modulus=True)
    ref_rel = float(np.sqrt(np.mean(np.abs(ref.predict(f) - z) ** 2 / np.abs(z) ** 2)))
    assert fit.success, fit.message
    assert fit.relative_residual <= ref_rel * 1.01
    assert abs(fit["R0"] - 97.7) < 2.0
    assert abs(fit["R1"] - 275.0) < 10.0


def test_arc_top_before_a_rising_low_frequency_end_is_found():
    """One arc (top at ~1 Hz) followed by a second, slower one still rising at 1 mHz above the first top
    (a Gamry EISPOT export): the top stands above the rise only by its dip, yet it is an arc. Without it
    the first start put the first arc at 200 Hz and every start ended at 11 % residual."""
    truth = [12.0, 21290.0, 5.01e-5, 0.87, 2e5, 3.3e-4, 0.5]
    f, z = _spectrum(TWO_ARCS, truth, 1e5, 1e-3)
    assert -z.imag[-1] > (-z.imag[:60]).max()
    z = z * (1 + 0.01 * np.random.default_rng(1).standard_normal(f.size))
    fit = fit_circuit(f, z, TWO_ARCS)
    assert fit.success, fit.message
    assert fit.relative_residual < 0.01
    np.testing.assert_allclose(fit.values, truth, rtol=0.05)
