"""The multi-start ends once three starts agree on the best minimum off the bounds, and loses nothing."""

from __future__ import annotations

import numpy as np

from daq.analysis.circuits import Circuit
from daq.analysis.eis_fit import fit_circuit
from daq.analysis.eis_guess import further_starts, initial_guess

F = np.geomspace(1e6, 0.1, 50)
# Two well-separated arcs: one arc cannot describe them, and every start ends in the same wide basin.
TWO_ARCS = Circuit("R0-p(R1,CPE1)-p(R2,CPE2)").impedance(F, np.array([20.0, 1e3, 1e-9, 0.9, 3e3, 1e-5, 0.8]))
ONE_ARC = "R0-p(R1,CPE1)"


def test_three_starts_at_one_interior_minimum_end_the_search_without_losing_a_better_one() -> None:
    fit = fit_circuit(F, TWO_ARCS, ONE_ARC)
    p0 = initial_guess(F, TWO_ARCS, ONE_ARC)
    every = [
        fit_circuit(F, TWO_ARCS, ONE_ARC, initial=s) for s in [p0, *further_starts(Circuit(ONE_ARC), F, TWO_ARCS, p0)]
    ]
    assert len(every) == 5
    assert fit.starts == 3  # the first three agree: the last two are not run
    assert fit.at_bound == ()
    assert 0.2 < fit.relative_residual < 0.3  # one arc misses the second
    assert fit.relative_residual <= min(e.relative_residual for e in every) * (1 + 1e-6)
    assert all(e.starts == 1 for e in every)  # an explicit start is the only one


def test_a_good_first_start_is_the_only_one() -> None:
    fit = fit_circuit(F, TWO_ARCS, "R0-p(R1,CPE1)-p(R2,CPE2)")
    assert fit.starts == 1
    assert fit.relative_residual < 1e-6
