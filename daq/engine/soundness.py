"""Is the cell still sound? Checked at open circuit before an interrupted run applies current again.

A run that stopped unwatched (power cut, crash, killed process) may find its cell changed when it comes
back: a lithium filament may have shorted it, voids may have cut the interfacial contact, a lead may have
come loose. Driving the protocol's current into such a cell destroys the evidence or worse, so before
``daq resume`` lets current flow it

1. samples the open-circuit voltage for a short while: a Li | Li cell sits within a few mV of 0 V and
   is steady; a large or drifting voltage means a damaged interface, a broken reference or an open lead;
2. measures the impedance with a small potentiostatic sweep around open circuit (or, on an instrument
   without impedance, the resistance from a small potential step) and compares it with the last
   spectrum in the run file, else with the bulk resistance the cell file implies: a shorted cell's
   impedance collapses to the filament's few hundred ohms, lost contact multiplies it.

Every quantity is SI (V, ohm, Hz, s); messages name what was measured and the limit it broke.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from daq.core.capabilities import EisRequest, Potentiostat, honoured
from daq.core.clock import Clock
from daq.core.errors import DaqError
from daq.models.cell import Cell


class SoundnessError(DaqError):
    """The cell failed the check; the run was not resumed and no current was applied."""

    def __init__(self, message: str, report: SoundnessReport | None = None):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class SoundnessLimits:
    ocv_max: float = 0.05  # V, largest |open-circuit voltage| of a sound Li | Li cell
    ocv_drift_max: float = 0.01  # V, largest spread (max - min) while sampling
    ocv_duration: float = 10.0  # s of open-circuit sampling
    ocv_period: float = 1.0  # s between open-circuit samples
    z_min_ratio: float = 0.5  # |Z| / reference below this: collapsed (short)
    z_max_ratio: float = 5.0  # |Z| / earlier spectrum above this: contact lost or lead open
    bulk_max_ratio: float = 10.0  # |Z| / expected bulk resistance above this (the interface adds ~1x)
    f_high: float = 1e5  # Hz, first frequency of the quick sweep
    f_low: float = 10.0  # Hz, last frequency
    points_per_decade: int = 2
    amplitude: float = 0.01  # V, small-signal amplitude (and size of the DC step fallback)
    pulse_duration: float = 2.0  # s, DC step fallback on instruments without impedance


@dataclass(frozen=True)
class Reference:
    """What the measured impedance is compared with."""

    kind: str  # "spectrum" (the run file's last spectrum) or "bulk" (from the cell file)
    description: str
    resistance: float  # ohm: the spectrum's lowest-frequency |Z|, or the expected bulk resistance
    frequencies: np.ndarray | None = None  # Hz, of the reference spectrum
    z: np.ndarray | None = None  # ohm (complex), of the reference spectrum


@dataclass
class SoundnessReport:
    ok: bool
    problem: str  # one line: what was measured, the limit; "" when sound
    ocv: float = math.nan  # V, median open-circuit voltage
    ocv_drift: float = math.nan  # V, max - min while sampling
    method: str = ""  # "eis" or "dc_step"
    resistance: float = math.nan  # ohm, |Z| at the lowest frequency (or the DC step resistance)
    ratio: float = math.nan  # measured / reference
    reference: Reference | None = None
    frequencies: list[float] = field(default_factory=list)  # Hz
    z_real: list[float] = field(default_factory=list)  # ohm
    z_imag: list[float] = field(default_factory=list)  # ohm

    def summary(self) -> str:
        """One line for operators and the run file."""
        if not self.ok:
            return self.problem
        ref = self.reference
        return (
            f"cell sound: open-circuit voltage {1e3 * self.ocv:.1f} mV (drift {1e3 * self.ocv_drift:.1f} mV), "
            f"|Z| {self.resistance:.4g} ohm = {self.ratio:.2f} x {ref.description if ref else 'reference'}"
        )

    def data(self) -> dict[str, Any]:
        """JSON-able record (SI) for the run file's events."""
        ref = self.reference
        return {
            "ok": self.ok,
            "ocv": self.ocv,
            "ocv_drift": self.ocv_drift,
            "method": self.method,
            "resistance": self.resistance,
            "ratio": self.ratio,
            "reference": ref.kind if ref else "",
            "reference_resistance": ref.resistance if ref else math.nan,
            "frequencies": self.frequencies,
            "z_real": self.z_real,
            "z_imag": self.z_imag,
        }


def expected_bulk_resistance(cell: Cell) -> float:
    """Ohm the electrolyte alone should show between the electrodes the instrument measures.

    Three-electrode cells are read WE vs RE: the spreading resistance of the working disc, 1/(4 sigma r).
    Symmetric cells are read through the pellet: thickness / (sigma A).
    """
    sigma = cell.electrolyte.conductivity
    if cell.configuration == "three_electrode":
        radius = math.sqrt(cell.electrodes.working_area / math.pi)
        return 1.0 / (4.0 * sigma * radius)
    return cell.electrolyte.thickness / (sigma * cell.electrodes.working_area)


def reference_from_run(run: Any, cell: Cell) -> Reference:
    """The run file's most recent spectrum (``run`` is a daq.storage.reader.RunFile), else the cell's
    expected bulk resistance."""
    try:
        spectra = run.spectra()
        if len(spectra):
            index = int(spectra["index"].iloc[-1])
            pts = run.spectrum(index)
            pts = pts[np.isfinite(pts.z_real) & np.isfinite(pts.z_imag) & (pts.frequency > 0)]
            if len(pts) >= 2:
                f = pts.frequency.to_numpy(float)
                z = pts.z_real.to_numpy(float) + 1j * pts.z_imag.to_numpy(float)
                order = np.argsort(f)
                f, z = f[order], z[order]
                t = float(spectra["t_end"].iloc[-1])
                return Reference(
                    "spectrum", f"the last spectrum in the file (no. {index}, t = {t:.0f} s)", float(abs(z[0])), f, z
                )
    except Exception:  # noqa: BLE001 - a damaged spectrum table: fall back on the cell file
        pass
    r = expected_bulk_resistance(cell)
    return Reference("bulk", f"the expected bulk resistance ({r:.4g} ohm from the cell file)", r)


def _ocv(pstat: Potentiostat, clock: Clock, cell: Cell, limits: SoundnessLimits) -> tuple[float, float, str]:
    pstat.open_circuit(limits.ocv_period)
    clock.sleep(limits.ocv_duration)
    block = pstat.read()
    use_we = cell.configuration == "three_electrode" and pstat.capabilities.reference_electrode
    e = np.asarray(block.E_we if use_we else block.E_cell, dtype=float)
    e = e[np.isfinite(e)]
    if e.size == 0:
        return (
            math.nan,
            math.nan,
            (
                f"no open-circuit voltage could be read in {limits.ocv_duration:g} s; "
                "check the instrument and the cell's leads"
            ),
        )
    ocv, drift = float(np.median(e)), float(np.ptp(e))
    if abs(ocv) > limits.ocv_max:
        return (
            ocv,
            drift,
            (
                f"open-circuit voltage {1e3 * ocv:.1f} mV is outside +/-{1e3 * limits.ocv_max:.0f} mV "
                f"(median of {e.size} samples over {limits.ocv_duration:g} s): interface damaged, "
                "reference or lead open"
            ),
        )
    if drift > limits.ocv_drift_max:
        return (
            ocv,
            drift,
            (
                f"open-circuit voltage drifted {1e3 * drift:.1f} mV in {limits.ocv_duration:g} s, more "
                f"than {1e3 * limits.ocv_drift_max:.0f} mV: the cell is not at rest or a lead is loose"
            ),
        )
    return ocv, drift, ""


def _sweep(pstat: Potentiostat, limits: SoundnessLimits) -> tuple[np.ndarray, np.ndarray]:
    caps = pstat.capabilities
    hi, lo = min(limits.f_high, caps.eis_max_frequency), max(limits.f_low, caps.eis_min_frequency)
    n = max(int(round(math.log10(hi / lo) * limits.points_per_decade)) + 1, 2) if hi > lo else 1
    request = EisRequest("potentiostatic", list(np.logspace(math.log10(hi), math.log10(lo), n)), limits.amplitude, None)
    f, z = [], []
    for p in pstat.impedance(request):
        if p.ok and math.isfinite(p.z_real) and math.isfinite(p.z_imag) and p.frequency > 0:
            f.append(p.frequency)
            z.append(complex(p.z_real, p.z_imag))
    return np.asarray(f, float), np.asarray(z, complex)


def _dc_step(pstat: Potentiostat, clock: Clock, ocv: float, ref: Reference, limits: SoundnessLimits) -> float:
    """Resistance (ohm) from a small potential step above open circuit, current-limited so that even a
    shorted cell passes no more than ten times what the reference resistance would draw."""
    i_lim = min(pstat.capabilities.max_current, 10 * limits.amplitude / ref.resistance)
    pstat.apply_potential(ocv + limits.amplitude, -i_lim, i_lim, limits.ocv_period, limits.pulse_duration)
    try:
        clock.sleep(limits.pulse_duration)
        block = pstat.read()
    finally:
        pstat.open_circuit(None)
    current = np.asarray(block.I, float)
    current = current[np.isfinite(current)]
    if current.size == 0:
        return math.nan
    i = float(np.mean(current[current.size // 2 :]))
    return math.inf if i == 0 else abs(limits.amplitude / i)


def check_cell(
    pstat: Potentiostat, clock: Clock, cell: Cell, reference: Reference, limits: SoundnessLimits = SoundnessLimits()
) -> SoundnessReport:
    """Measure the connected instrument's cell at open circuit and judge it against ``reference``.

    Leaves the cell switched off. Instrument errors propagate (InstrumentError): no verdict, no current.
    """
    report = SoundnessReport(ok=False, problem="", reference=reference)
    try:
        report.ocv, report.ocv_drift, problem = _ocv(pstat, clock, cell, limits)
        if problem:
            report.problem = problem
            return report
        if honoured(pstat).eis_potentiostatic:
            report.method = "eis"
            f, z = _sweep(pstat, limits)
            if f.size == 0:
                report.problem = "the impedance check returned no valid point; the cell cannot be judged"
                return report
            report.frequencies, report.z_real, report.z_imag = list(f), list(z.real), list(z.imag)
            k = int(np.argmin(f))
            report.resistance, f_at = float(abs(z[k])), float(f[k])
            ratio = _ratio(f, z, reference)
            where = f"|Z| = {report.resistance:.4g} ohm at {f_at:g} Hz"
        else:
            report.method = "dc_step"
            report.resistance = _dc_step(pstat, clock, report.ocv, reference, limits)
            ratio = report.resistance / reference.resistance
            where = f"DC resistance {report.resistance:.4g} ohm ({1e3 * limits.amplitude:g} mV step)"
    finally:
        try:
            pstat.open_circuit(None)
            pstat.read()  # drop the check's last samples: they are not part of the run
        except Exception:  # noqa: BLE001 - the caller switches off again and reports instrument trouble
            pass
    report.ratio = float(ratio)
    hi = limits.z_max_ratio if reference.kind == "spectrum" else limits.bulk_max_ratio
    if not math.isfinite(ratio) or ratio > hi:
        report.problem = (
            f"impedance too high: {where} is {ratio:.3g} x {reference.description}, above the limit "
            f"{hi:g} x: interfacial contact lost or a lead is open"
        )
    elif ratio < limits.z_min_ratio:
        report.problem = (
            f"impedance collapsed: {where} is {ratio:.3g} x {reference.description}, below the limit "
            f"{limits.z_min_ratio:g} x: the cell is probably shorted"
        )
    report.ok = not report.problem
    return report


def _ratio(f: np.ndarray, z: np.ndarray, reference: Reference) -> float:
    """Median |Z| / |Z_ref| over the frequencies both cover; the lowest frequency against the bulk."""
    if reference.kind == "spectrum" and reference.frequencies is not None and reference.z is not None:
        rf, rz = reference.frequencies, np.abs(reference.z)
        inside = (f >= rf.min() * 0.999) & (f <= rf.max() * 1.001)
        if inside.sum() >= 2:
            ref_mag = np.exp(np.interp(np.log(f[inside]), np.log(rf), np.log(rz)))
            return float(np.median(np.abs(z[inside]) / ref_mag))
    return float(abs(z[int(np.argmin(f))]) / reference.resistance)
