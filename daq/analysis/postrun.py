"""Analysis run on every finished run file, stored in /analysis (what a lab would otherwise do by hand).

- every impedance spectrum fitted with R0-p(R1,CPE1)-p(R2,CPE2): R1 the bulk (high-frequency) arc,
  R2 the interface + SEI arc; table /analysis/eis_fits;
- the bulk-resistance trend before a short (a penetrating dendrite shortens the bulk path);
- after a short: the shorted cell's resistance (post-short spectrum, else E_cell/I just after the trip)
  and the Li filament diameter it implies (science.md 2.3);
- contact loss through the stripping spectra (science.md 2.2);
- conductivity from the first bulk resistance.

Memory stays flat with run length: samples are read a slice at a time and the step and event tables
a block of rows at a time (``daq.analysis.closed_run``); only per-spectrum and per-cycle results are
held whole.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from daq.analysis import AnalysisError
from daq.analysis.closed_run import ClosedRun, table_blocks
from daq.analysis.contact_loss import contact_loss, follow_arcs
from daq.analysis.cycles import cycle_table, potential_column, store_cycles
from daq.analysis.eis_fit import fit_circuit
from daq.core.errors import DaqError
from daq.models.cracks import filament_diameter
from daq.storage.hdf5 import open_h5

CIRCUIT = "R0-p(R1,CPE1)-p(R2,CPE2)"
Q_UNIT = 36000.0  # C/m^2 per mAh/cm^2

FIT_DTYPE = np.dtype(
    [
        ("spectrum", "i4"),
        ("t", "f8"),
        ("step", "i4"),
        ("Q", "f8"),
        ("R0", "f8"),
        ("R1", "f8"),
        ("R2", "f8"),
        ("R0_err", "f8"),
        ("R1_err", "f8"),
        ("R2_err", "f8"),
        ("relative_residual", "f8"),
        ("success", "u1"),
        ("message", "S160"),  # why a fit is not a real fit (empty when it is): never skipped silently
    ]
)
FIT_UNITS = {
    "t": "s",
    "Q": "C",
    "R0": "ohm",
    "R1": "ohm",
    "R2": "ohm",
    "R0_err": "ohm",
    "R1_err": "ohm",
    "R2_err": "ohm",
    "relative_residual": "1",
}


def fit_spectra(run) -> np.ndarray:
    spectra = run.spectra()
    rows = []
    for i in range(len(spectra)):
        s = run.spectrum(i)
        ok = s.ok.values.astype(bool)
        f, z = s.frequency.values[ok], s.z_real.values[ok] + 1j * s.z_imag.values[ok]
        if len(f) < 8 or spectra.step[i] < 0:
            continue
        try:
            with np.errstate(all="ignore"):  # trial steps of the optimiser may overflow; the fit copes
                fit = fit_circuit(f, z, CIRCUIT)
        except (AnalysisError, DaqError, ValueError, np.linalg.LinAlgError) as exc:
            nan = math.nan
            why = f"not fitted: {exc}".encode("utf-8", "replace")[:160]
            rows.append(
                (i, spectra.t_start[i], spectra.step[i], spectra.Q[i], nan, nan, nan, nan, nan, nan, nan, 0, why)
            )
            continue
        rows.append(
            (
                i,
                spectra.t_start[i],
                spectra.step[i],
                spectra.Q[i],
                fit["R0"],
                fit["R1"],
                fit["R2"],
                fit.error("R0"),
                fit.error("R1"),
                fit.error("R2"),
                fit.relative_residual,
                fit.success,
                b"" if fit.success else fit.message.encode("utf-8", "replace")[:160],
            )
        )
    return np.array(rows, dtype=FIT_DTYPE)


def analyse(path: str | Path) -> dict[str, Any]:
    """Analyse a closed run file and store the results in it; returns them. A run without spectra is
    read as plain arrays (no pandas, no scipy: the end of ``daq run`` stays quick)."""
    path = Path(path)
    with ClosedRun(path) as light:
        has_spectra = light.spectra_count() > 0
    if has_spectra:
        from daq.storage.reader import open_run  # DataFrames for the spectra to fit

        reader: Any = open_run(path)
    else:
        reader = ClosedRun(path)
    with reader as run:
        all_fits = fit_spectra(run) if has_spectra else np.zeros(0, dtype=FIT_DTYPE)
        results = _results(run, run.spectra() if has_spectra else None, all_fits)
    with ClosedRun(path) as run:  # the samples read without a chunk cache (closed_run)
        cycles, potential = cycle_table(run), potential_column(run)
    _store(path, results, all_fits)
    with open_h5(path, "a") as f:
        store_cycles(f.require_group("analysis"), cycles, potential)
    return results


def _results(run, spectra, all_fits: np.ndarray) -> dict[str, Any]:
    cell = run.cell
    area = cell["electrodes.working_area"]
    thickness = cell.get("electrolyte.thickness", math.nan)  # imported recordings do not state it
    fits = all_fits[np.isfinite(all_fits["R1"])]  # failed fits stay recorded with their reason
    results: dict[str, Any] = {}
    shorts = _short_events(run.f["events"])
    if len(fits):
        r_we = math.sqrt(area / math.pi)
        results["conductivity_from_first_spectrum"] = 1.0 / (4.0 * fits["R1"][0] * r_we)
        results["conductivity_unit"] = "S/m (spreading resistance of the working-electrode disc)"
    if shorts:
        results["short"] = _short(run, spectra, fits, shorts[0], area, thickness)
    strip_steps = _strip_steps(run.f["steps"])
    stripping = fits[np.isin(fits["step"], list(strip_steps))] if strip_steps else fits[:0]
    if len(stripping) >= 2:
        cl = contact_loss(follow_arcs(stripping["R1"], stripping["R2"])[1])
        results["contact_loss"] = {
            "area_fraction": cl.area_fraction.tolist(),
            "current_ratio": cl.current_ratio.tolist(),
            "regions": list(cl.regions),
        }
    return results


def _short_events(events) -> list[dict[str, Any]]:
    """The data of every short-circuit event (the event table read in blocks)."""
    return [
        json.loads(data)
        for _, block in table_blocks(events, ("kind", "data"))
        for kind, data in zip(block["kind"], block["data"])
        if kind == "short_circuit"
    ]


def _strip_steps(steps) -> set[int]:
    """Rows of /steps that strip (the step table read in blocks)."""
    return {
        first + k
        for first, block in table_blocks(steps, ("parameters",))
        for k, p in enumerate(block["parameters"])
        if '"direction": "strip"' in p
    }


def _short(run, spectra, fits: np.ndarray, data: dict[str, Any], area: float, thickness: float) -> dict[str, Any]:
    """The short circuit: when, at what capacity, the bulk-resistance trend before it, the shorted
    cell's resistance and the filament diameter it implies."""
    t_trip = data["t_trip"]
    short: dict[str, Any] = {
        "t": t_trip,
        "t_unit": "s",
        "capacity": data["capacity"] / Q_UNIT,
        "capacity_unit": "mAh/cm^2",
    }
    before = fits[fits["t"] < t_trip]
    if len(before) >= 3:
        q = np.abs(before["Q"]) / area / Q_UNIT
        plating = before[q > 0]
        if len(plating) >= 3:
            slope = np.polyfit(np.abs(plating["Q"]) / area / Q_UNIT, plating["R1"], 1)[0]
            short["bulk_resistance_slope"] = float(slope)
            short["bulk_resistance_slope_unit"] = "ohm per mAh/cm^2"
            short["bulk_resistance_first"] = float(plating["R1"][0])
            short["bulk_resistance_last"] = float(plating["R1"][-1])
    resistance = _post_short_resistance(run, spectra, t_trip, data["sample"])
    if resistance is not None:
        short["resistance"], short["resistance_unit"] = resistance, "ohm"
        short["filament_diameter"] = filament_diameter(resistance, thickness)
        short["filament_diameter_unit"] = "m"
    return short


def _post_short_resistance(run, spectra, t_trip: float, sample: int) -> float | None:
    after = spectra[spectra.t_start > t_trip] if spectra is not None else ()
    if len(after):
        s = run.spectrum(int(after.index[0]))
        return float(s.z_real.values[np.argmin(s.frequency.values)])  # low-frequency limit: DC resistance
    e, i = run.column("E_cell", sample, sample + 2), run.column("I", sample, sample + 2)
    good = np.abs(i) > 0
    return float(np.median(e[good] / i[good])) if good.any() else None


def _store(path: Path, results: dict[str, Any], fits: np.ndarray) -> None:
    with open_h5(path, "a") as f:
        g = f.require_group("analysis")
        for key, value in results.items():
            g.attrs[key] = json.dumps(value) if isinstance(value, (dict, list)) else value
        if "eis_fits" in g:
            del g["eis_fits"]
        ds = g.create_dataset("eis_fits", data=fits)
        ds.attrs["circuit"] = CIRCUIT
        ds.attrs["units"] = json.dumps(FIT_UNITS)
