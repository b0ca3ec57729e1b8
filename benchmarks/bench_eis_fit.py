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

Real spectra (../shared/data/real/eis, the vendor GEIS file's 12 spectra, the ZPlot example), with
R0-p(R1,CPE1)-p(R2,CPE2) and R0-p(R1,CPE1): median time per fit and the worst relative residual over a
file's spectra. impedance.py is fitted from our start and from its own generic one (as in
tests/daq/analysis/test_eis_fit_real_spectra.py); its residual is the better of the two, its time the
fit from our start. Rows are skipped when the shared data are not there.
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


SHARED = ROOT.parent / "shared" / "data"
REAL_FILES = (
    SHARED / "real" / "eis" / "exampleData.csv",
    SHARED / "real" / "eis" / "exampleDataGamry.DTA",
    SHARED / "vendor" / "GEIS_nesd.mpr",
    ROOT / "tests" / "data" / "spectra" / "exampleDataZPlot.z",
)
REAL_CIRCUITS = (CIRCUIT, "R0-p(R1,CPE1)")


def _impedance_py(f: np.ndarray, z: np.ndarray, circuit: str, start: list[float]) -> tuple[float, float]:
    """(CPU time, relative residual) of impedance.py from ``start``; residual inf when it fails."""
    from impedance.models.circuits import CustomCircuit  # benchmark-only dependency

    t0 = time.process_time()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c = CustomCircuit(circuit, initial_guess=start).fit(f, z)
        residual = relative_residual(c.predict(f), z)
    except (RuntimeError, ValueError, np.linalg.LinAlgError):
        residual = np.inf
    return time.process_time() - t0, residual


def bench_real(repeat: int) -> list[tuple[str, float, float, str]]:
    """Rows (measurement, ours, impedance.py, target) per real file and circuit."""
    from daq.importers import read_recording

    rows = []
    for path in REAL_FILES:
        if not path.exists():
            continue
        spectra = [(s.frequency, s.Z_re + 1j * s.Z_im) for s in read_recording(path).spectra]
        for circuit in REAL_CIRCUITS:
            t_ours, t_theirs, r_ours, r_theirs, converged = [], [], [], [], 0
            for f, z in spectra:
                t, fit = timed(lambda: fit_circuit(f, z, circuit), repeat)  # noqa: B023 - called at once
                t_ours.append(t)
                r_ours.append(fit.relative_residual)  # type: ignore[attr-defined]
                converged += bool(fit.success)  # type: ignore[attr-defined]
                start = list(initial_guess(f, z, circuit))
                own = [float(np.abs(z).min()), float(np.abs(z).max() / 2), 1e-6, 0.9, float(np.abs(z).max() / 2)]
                t_py, r_py = _impedance_py(f, z, circuit, start)
                _, r_own = _impedance_py(f, z, circuit, (own + [1e-4, 0.9])[: len(start)])
                t_theirs.append(t_py)
                r_theirs.append(min(r_py, r_own))
            label = f"real {path.name} ({len(spectra)} spectra, {converged} converged), {circuit}"
            rows.append((f"{label}: time per fit (ms)", np.median(t_ours) * 1e3, np.median(t_theirs) * 1e3, "-"))
            rows.append(
                (
                    f"{label}: worst relative residual (%)",
                    max(r_ours) * 100,
                    max(r_theirs) * 100,
                    "<= impedance.py + 0.5",
                )
            )
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
    for name, ours, theirs, target in bench_real(max(args.repeat // 10, 1)):
        ratio = f"{theirs / ours:.3g}"
        rows.append((name, ours, theirs, target))
        print(f"| {name} | {ours:.4g} | {theirs:.4g} | {ratio} | {target} |", flush=True)
    return rows


if __name__ == "__main__":
    main()
