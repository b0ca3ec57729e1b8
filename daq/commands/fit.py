"""``daq fit FILE``: equivalent-circuit fit of the impedance spectra in a run file, an imported recording
or a plain spectrum (CSV, ZPlot .z, Parstat text), with the Kramers-Kronig check of each spectrum.

    daq fit run.h5                                   every spectrum, default circuit
    daq fit exampleData.csv --circuit "R0-p(R1,CPE1)" --json
    daq fit run.h5 --spectrum 3 --png fit.png        one spectrum and its Nyquist/Bode figure
    daq fit cells/*.h5 --jobs 2                      a study: every spectrum of many files

Printed per spectrum: parameters with standard errors (SI), the relative residual
sqrt(mean(|Z_fit - Z|^2 / |Z|^2)), whether it is a real fit (``success``) and why not, and the Lin-KK
verdict. ``--json`` prints one JSON object per spectrum instead. In a run file (HDF5) the fits are
stored in /analysis/eis_fits, the table the post-run analysis writes, with the circuit as an attribute.
With several spectra the fits run side by side in worker processes (``--jobs N``, one per core by
default) or on a Dask cluster (``--dask ADDRESS``); results are printed and stored in the files' order,
identical to fitting one after another.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from daq.analysis import AnalysisError
from daq.analysis.circuits import Circuit
from daq.analysis.eis_fit import FitResult, fit_circuit
from daq.analysis.kramers_kronig import KKResult, lin_kk
from daq.analysis.postrun import CIRCUIT, FIT_DTYPE, FIT_UNITS
from daq.core.errors import ConfigError, DataFileError
from daq.importers import read_recording
from daq.storage.hdf5 import open_h5
from daq.storage.reader import open_run

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
MIN_POINTS = 8  # fewer points than this cannot tell two arcs apart
FIT_MODULES = ("scipy.optimize", "scipy.signal", "daq.analysis.drt")  # what a fit imports when it first runs


@dataclass
class SpectrumData:
    """One spectrum to fit; t, step and Q are known for run files only."""

    index: int
    f: np.ndarray  # Hz
    z: np.ndarray  # ohm
    t: float = math.nan
    step: int = -1
    q: float = math.nan


@dataclass
class Outcome:
    spectrum: SpectrumData
    fit: FitResult | None
    kk: KKResult | None
    error: str = ""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit",
        help="fit an equivalent circuit to impedance spectra (run file, recording or plain spectrum)",
        description="Equivalent-circuit fit with uncertainties, relative residual and Kramers-Kronig check.",
    )
    p.add_argument(
        "file",
        nargs="+",
        metavar="FILE",
        help="run files (.h5), vendor recordings, CSV spectra, ZPlot .z or Parstat text",
    )
    p.add_argument("--circuit", default=CIRCUIT, help=f"circuit to fit (default {CIRCUIT})")
    p.add_argument("--spectrum", default="all", metavar="N|all", help="spectrum number (from 0) or all (default)")
    p.add_argument("--json", action="store_true", help="one JSON object per spectrum instead of text")
    p.add_argument(
        "--png",
        metavar="PATH",
        help="Nyquist/Bode figure with the fit (PATH_N.png per spectrum if several; PATH_FILE_N.png if several FILEs)",
    )
    p.add_argument("--jobs", type=int, metavar="N", help="with several spectra: fit N at once (default: one per core)")
    p.add_argument(
        "--dask", metavar="ADDRESS", help="fit on the Dask scheduler at ADDRESS (pip install 'sse-rig[dask]')"
    )
    p.set_defaults(func=cmd_fit)


def is_run_file(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(8) == HDF5_MAGIC
    except OSError:
        return False


def load_spectra(path: Path) -> list[SpectrumData]:
    """Every spectrum in the file, in its order; only valid points (run files flag each point)."""
    if is_run_file(path):
        out = []
        with open_run(path) as run:
            table = run.spectra()
            for i in range(len(table)):
                s = run.spectrum(i)
                ok = s.ok.values.astype(bool)
                z = s.z_real.values[ok] + 1j * s.z_imag.values[ok]
                row = table.iloc[i]
                out.append(SpectrumData(i, s.frequency.values[ok], z, row.t_start, int(row.step), row.Q))
        return out
    rec = read_recording(path)
    return [SpectrumData(i, s.frequency, s.Z_re + 1j * s.Z_im) for i, s in enumerate(rec.spectra)]


def select(spectra: list[SpectrumData], which: str, path: Path) -> list[SpectrumData]:
    if not spectra:
        raise DataFileError(f"{path}: holds no impedance spectrum")
    if which.strip().lower() == "all":
        return spectra
    try:
        n = int(which)
    except ValueError:
        raise ConfigError("--spectrum", which, "expected a spectrum number or 'all'") from None
    if not 0 <= n < len(spectra):
        raise ConfigError("--spectrum", which, f"{path.name} holds spectra 0 to {len(spectra) - 1}")
    return [spectra[n]]


def analyse(s: SpectrumData, circuit: Circuit) -> Outcome:
    """Fit and Lin-KK check of one spectrum; a spectrum that cannot be fitted says why."""
    if s.f.size < MIN_POINTS:
        return Outcome(s, None, None, f"not fitted: {s.f.size} valid points (at least {MIN_POINTS} needed)")
    try:
        with np.errstate(all="ignore"):
            fit = fit_circuit(s.f, s.z, circuit)
    except (AnalysisError, ValueError, np.linalg.LinAlgError) as exc:
        return Outcome(s, None, None, f"not fitted: {exc}")
    try:
        kk: KKResult | None = lin_kk(s.f, s.z)
    except (AnalysisError, ValueError, np.linalg.LinAlgError):
        kk = None
    return Outcome(s, fit, kk)


def as_json(o: Outcome, circuit: Circuit) -> dict[str, Any]:
    """The JSON form of one spectrum's result (SI values; units listed alongside)."""
    out: dict[str, Any] = {"spectrum": o.spectrum.index, "circuit": circuit.text}
    if o.fit is None:
        nan = dict.fromkeys(circuit.names)
        out |= {"parameters": nan, "stderr": nan, "relative_residual": None, "success": False, "message": o.error}
        return out
    fit = o.fit
    out["parameters"] = {n: _finite(v) for n, v in zip(fit.names, fit.values)}
    out["stderr"] = {n: _finite(e) for n, e in zip(fit.names, fit.stderr)}
    out["units"] = dict(zip(fit.names, fit.units))
    out["relative_residual"] = _finite(fit.relative_residual)
    out["success"] = bool(fit.success)
    out["message"] = fit.message
    if o.kk is not None:
        out["kramers_kronig"] = {
            "valid": bool(o.kk.passed),
            "max_residual": o.kk.max_residual,
            "rms_residual": o.kk.rms_residual,
            "n_elements": o.kk.n_elements,
        }
    return out


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def as_text(o: Outcome) -> str:
    head = f"spectrum {o.spectrum.index} ({o.spectrum.f.size} points)"
    if o.fit is None:
        return f"{head}: {o.error}"
    lines = [f"{head}: {o.fit}", f"  success: {'yes' if o.fit.success else 'no, ' + o.fit.message}"]
    lines.append(f"  {o.kk}" if o.kk is not None else "  Kramers-Kronig: check not possible on this spectrum")
    return "\n".join(lines)


def store(path: Path, circuit: Circuit, outcomes: list[Outcome]) -> None:
    """Write the fits into /analysis/eis_fits (rows of other spectra kept when the circuit is the same)."""
    rows = {}
    params: dict[str, Any] = {}
    with open_h5(path, "a") as f:
        g = f.require_group("analysis")
        old = g.get("eis_fits")
        if old is not None and old.attrs.get("circuit") == circuit.text and old.dtype == FIT_DTYPE:
            rows = {int(r["spectrum"]): r for r in old[()]}
            params = json.loads(old.attrs.get("parameters", "{}"))
        for o in outcomes:
            rows[o.spectrum.index] = _row(o)
            if o.fit is not None:
                params[str(o.spectrum.index)] = {
                    n: [float(v), float(e)] for n, v, e in zip(o.fit.names, o.fit.values, o.fit.stderr)
                }
        if old is not None:
            del g["eis_fits"]
        table = np.array([rows[k] for k in sorted(rows)], dtype=FIT_DTYPE)
        ds = g.create_dataset("eis_fits", data=table)
        ds.attrs["circuit"] = circuit.text
        ds.attrs["units"] = json.dumps(FIT_UNITS)
        ds.attrs["parameters"] = json.dumps(params)  # every parameter: spectrum -> name -> [value, stderr] (SI)
        ds.attrs["parameter_units"] = json.dumps(dict(zip(circuit.names, circuit.units)))


def _row(o: Outcome) -> tuple:
    s, fit, nan = o.spectrum, o.fit, math.nan
    if fit is None:
        return (
            s.index,
            s.t,
            s.step,
            s.q,
            nan,
            nan,
            nan,
            nan,
            nan,
            nan,
            nan,
            0,
            o.error.encode("utf-8", "replace")[:160],
        )
    value = {n: (fit[n], fit.error(n)) for n in ("R0", "R1", "R2") if n in fit.names}
    r = [value.get(n, (nan, nan)) for n in ("R0", "R1", "R2")]
    message = b"" if fit.success else fit.message.encode("utf-8", "replace")[:160]
    return (
        s.index,
        s.t,
        s.step,
        s.q,
        *(v for v, _ in r),
        *(e for _, e in r),
        fit.relative_residual,
        fit.success,
        message,
    )


@dataclass
class FitJob:
    """One spectrum of a study, as sent to a worker: the fit, and its figure when asked for."""

    spectrum: SpectrumData
    circuit: str
    png: Path | None = None
    title: str = ""


def fit_job(job: FitJob) -> Outcome:
    """Fit one spectrum (in a worker process, or here with ``--jobs 1``) and draw its figure if asked."""
    outcome = analyse(job.spectrum, Circuit(job.circuit))
    if job.png is not None:
        from daq.commands.fit_figure import plot_fit

        plot_fit(job.spectrum.f, job.spectrum.z, outcome.fit, job.png, job.title)
    return outcome


def png_paths(base: Path, spectra: list[SpectrumData], file: Path | None = None) -> list[Path]:
    """One figure per spectrum: ``base`` itself for a single spectrum of a single file."""
    if len(spectra) == 1 and file is None:
        return [base]
    middle = f"_{file.stem}" if file is not None else ""
    return [base.with_name(f"{base.stem}{middle}_{s.index}{base.suffix or '.png'}") for s in spectra]


def cmd_fit(args: argparse.Namespace) -> int:
    from daq.engine.parallel import check_jobs, default_jobs, run_parallel

    jobs = check_jobs(args.jobs) if args.jobs is not None else default_jobs()
    paths = [Path(f) for f in args.file]
    for path in paths:
        if not path.is_file():
            raise DataFileError(f"{path}: no such file")
    circuit = Circuit(args.circuit)  # a bad circuit is refused before any file is read
    several = len(paths) > 1
    chosen, study, unread = {}, [], []
    for path in paths:
        try:
            chosen[path] = select(load_spectra(path), args.spectrum, path)
        except DataFileError as exc:
            if not several:
                raise
            unread.append(f"{path}: not fitted: {exc}")
            continue
        pngs = png_paths(Path(args.png), chosen[path], path if several else None) if args.png else None
        for k, s in enumerate(chosen[path]):
            png = pngs[k] if pngs else None
            study.append(FitJob(s, circuit.text, png, f"{path.name} spectrum {s.index}"))
    for line in unread:
        print(line, file=sys.stderr)
    preload = [*FIT_MODULES, *(["daq.commands.fit_figure"] if args.png else [])]
    owners = [path for path, spectra in chosen.items() for _ in spectra]
    printer = InOrder(lambda i, o: _print(o, owners[i], circuit, study[i].png, args.json, several))
    outcomes = run_parallel(fit_job, study, jobs=jobs, dask=args.dask, on_done=printer, preload=preload)
    start = 0
    for path, spectra in chosen.items():
        if is_run_file(path):
            store(path, circuit, outcomes[start : start + len(spectra)])
        start += len(spectra)
    if unread:
        raise DataFileError(f"{len(unread)} of {len(paths)} files could not be read (the reasons are above)")
    return 0


class InOrder:
    """Calls ``emit(i, result)`` in the items' order while results arrive in any order: a study prints as
    it goes, and prints what fitting one spectrum after another prints."""

    def __init__(self, emit: Callable[[int, Any], None]):
        self.emit, self.waiting, self.next = emit, {}, 0

    def __call__(self, index: int, result: Any) -> None:
        self.waiting[index] = result
        while self.next in self.waiting:
            self.emit(self.next, self.waiting.pop(self.next))
            self.next += 1


def _print(o: Outcome, path: Path, circuit: Circuit, png: Path | None, as_json_line: bool, several: bool) -> None:
    if as_json_line:
        print(json.dumps({"file": str(path)} | as_json(o, circuit)), flush=True)
        return
    print(f"{path.name}: {as_text(o)}" if several else as_text(o), flush=True)
    if png is not None:
        print(f"figure: {png}", flush=True)
