"""Time per equivalent-circuit fit of a 60-point spectrum: daq.analysis.eis_fit against impedance.py.

The spectrum comes from the simulated 99 % Li6PS5Cl cell with 0.5 % complex noise (fixed seed), fitted
with R0-p(R1,CPE1)-p(R2,CPE2). Both fitters get the same modulus-weighted objective and start from
the same point (ours reads it off the spectrum; impedance.py has no automatic guess, so it is handed
ours, and that hand-over is not timed). impedance.py (package ``impedance``) is a benchmark-only
dependency; the product never imports it.

    python benchmarks/bench_eis_fit.py [--repeat 50] [--converged]

Ratios are impedance.py / this product (higher is better for us, for times and residuals alike).

Two frequency ranges: the operando GEIS range (7 MHz - 0.5 Hz), where the bulk arc is resolved, and the
PEIS range (1 MHz - 1 Hz), where the 5 ohm series resistance hides under the 2.5 kohm bulk arc.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from daq.analysis.eis_fit import fit_circuit, initial_guess
from daq.models.cell import load_cell
from simulators.cell import SimulatedCell

ROOT = Path(__file__).resolve().parents[1]
CIRCUIT = "R0-p(R1,CPE1)-p(R2,CPE2)"
RANGES = {"operando 7 MHz-0.5 Hz": (7e6, 0.5), "PEIS 1 MHz-1 Hz": (1e6, 1.0)}
NOISE = 0.005


def spectrum(fmax: float, fmin: float) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Frequencies, noisy Z, the cell's bulk resistance, and the rms relative noise actually added."""
    sim = SimulatedCell(load_cell(ROOT / "protocols/examples/cells/li6ps5cl_99.toml"))
    f = np.geomspace(fmax, fmin, 60)
    rng = np.random.default_rng(2025)
    z0 = sim.impedance(f)
    z = z0 * (1 + NOISE * (rng.normal(size=f.size) + 1j * rng.normal(size=f.size)))
    return f, z, float(sim.bulk_resistance()), relative_residual(z0, z)


def relative_residual(z_fit: np.ndarray, z: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.abs((z_fit - z) / z) ** 2)))


def timed(fn, repeat: int) -> tuple[float, object]:
    """Median CPU time of ``repeat`` calls after one warm-up call, and the warm-up's result.

    CPU time of this process, so that other jobs on a shared machine do not count; both fitters run
    single-threaded on arrays this small.
    """
    out = fn()
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return float(np.median(times)), out


def bench(fmax: float, fmin: float, repeat: int, converged: bool) -> list[tuple[str, float, float, str]]:
    """Rows (measurement, ours, impedance.py, target) for one frequency range."""
    from impedance.models.circuits import CustomCircuit  # benchmark-only dependency

    f, z, bulk, noise = spectrum(fmax, fmin)
    t_ours, ours = timed(lambda: fit_circuit(f, z, CIRCUIT), repeat)
    start = list(initial_guess(f, z, CIRCUIT))

    def theirs(**options):
        def fit():
            c = CustomCircuit(CIRCUIT, initial_guess=start)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                c.fit(f, z, weight_by_modulus=True, **options)
            return c

        return fit

    # impedance.py's defaults (scipy curve_fit, trf, x_scale=1) stop near the start when the parameters
    # span 1e-10 (CPE Q) to 1e3 ohm; x_scale="jac" makes it converge, at a price.
    t_default, default = timed(theirs(), max(repeat // 5, 3))
    r_ours = relative_residual(ours.impedance(f), z)  # type: ignore[attr-defined]
    r1 = 100 * (ours["R1"] - bulk) / bulk  # type: ignore[index]
    r1_target = f"within 3 std. errors ({300 * ours.error('R1') / bulk:.2g} %)"  # type: ignore[attr-defined]
    noise_target = f"~ noise ({100 * noise:.2g} %)"
    rows = [
        ("time per fit (ms)", t_ours * 1e3, t_default * 1e3, "a few ms"),
        ("relative residual, rms (%)", r_ours * 100, relative_residual(default.predict(f), z) * 100, noise_target),
        ("R1 (bulk) error vs cell (%)", r1, 100 * (float(default.parameters_[1]) - bulk) / bulk, r1_target),
    ]
    if converged:  # one run: minutes per fit on the PEIS spectrum
        t0 = time.process_time()
        jac = theirs(x_scale="jac")()
        t_jac = time.process_time() - t0
        rows += [
            ("time per fit (ms), impedance.py x_scale='jac'", t_ours * 1e3, t_jac * 1e3, "a few ms"),
            (
                "relative residual (%), impedance.py x_scale='jac'",
                r_ours * 100,
                relative_residual(jac.predict(f), z) * 100,
                noise_target,
            ),
            (
                "R1 (bulk) error (%), impedance.py x_scale='jac'",
                r1,
                100 * (float(jac.parameters_[1]) - bulk) / bulk,
                r1_target,
            ),
        ]
    return rows


def main() -> list[tuple[str, float, float, str]]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument(
        "--converged",
        action="store_true",
        help="also time impedance.py with x_scale='jac', which converges (takes minutes)",
    )
    args = parser.parse_args([] if __name__ != "__main__" else None)
    rows = []
    print("| measurement | this product | impedance.py | ratio | target |\n|---|---|---|---|---|")
    for label, (fmax, fmin) in RANGES.items():
        for name, ours, theirs, target in bench(fmax, fmin, args.repeat, args.converged):
            ratio = f"{theirs / ours:.3g}" if name.startswith(("time", "relative")) else "-"
            rows.append((f"{label}: {name}", ours, theirs, target))
            print(f"| {label}: {name} | {ours:.3g} | {theirs:.3g} | {ratio} | {target} |", flush=True)
    return rows


if __name__ == "__main__":
    main()
