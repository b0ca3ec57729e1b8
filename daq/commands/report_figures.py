"""A run's plots (PNG): what the operator looks at in the morning.

Long traces are read as a min/max envelope per pixel column (:mod:`daq.commands.report_data`), so a
42-day run plots with the memory of a short one and looks the same as the full data: a short's spike
stays visible. Each ``*_figure`` function returns a matplotlib Figure (tests look at its axes);
:func:`plot` saves them.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

from daq.analysis.cycles import read_cycles
from daq.commands import report_data as D
from daq.core import units as u
from daq.storage.reader import RunFile

MAH_CM2 = "mAh/cm^2"
MARKED = {
    "short_circuit": "short circuit",
    "voltage_limit": "voltage limit",
    "fault": "fault",
    "interlock": "interlock",
}


def _mah(c_per_m2):
    return np.asarray(c_per_m2) / u.from_unit(1.0, MAH_CM2)


def voltage_time_figure(run: RunFile) -> plt.Figure:
    """E_we and E_cell on panels of their own (neither hides the other), current density below."""
    area = run.cell["electrodes.working_area"]
    names = [n for n in ("E_we", "E_cell") if n in run.columns()]
    if run.cell.get("configuration") == "symmetric":
        names = ["E_cell"]
    fig, axes = plt.subplots(len(names) + 1, 1, figsize=(10, 2.4 * (len(names) + 1)), sharex=True)
    labels = {"E_we": "E_we vs ref / V", "E_cell": "E_cell / V"}
    colours = {"E_we": "tab:blue", "E_cell": "tab:orange"}
    for ax, name in zip(axes, names):
        t, y = D.envelope_column(run, name)
        ax.plot(t / 3600, y, lw=0.6, color=colours[name])
        ax.set_ylabel(labels[name])
    t, i = D.envelope_column(run, "I")
    axes[-1].plot(t / 3600, u.to_unit(1.0, "mA/cm^2") * i / area, lw=0.6, color="tab:green")
    axes[-1].set_ylabel("j / mA cm$^{-2}$")
    axes[-1].set_xlabel("time / h")
    for _, e in run.events().iterrows():
        if e.kind in MARKED:
            for ax in axes:
                ax.axvline(e.t / 3600, color="red", ls="--", lw=0.8)
            axes[0].annotate(
                f"{MARKED[e.kind]} {e.t / 3600:.3g} h",
                (e.t / 3600, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(3, -12),
                textcoords="offset points",
                color="red",
                fontsize=8,
            )
    fig.tight_layout()
    return fig


def cycles_figure(table) -> plt.Figure:
    """Potential, coulombic efficiency and capacity vs cycle, one point per row of /analysis/cycles."""
    fig, (a1, a2, a3) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    c = table.cycle.values
    pot = table.attrs.get("potential", "E_we")
    ms = 3 if len(c) <= 100 else 1  # hundreds of cycles: markers would merge into a band
    for half, colour in (("plate", "tab:blue"), ("strip", "tab:red")):
        a1.plot(c, 1e3 * table[f"{half}_mean"], "o-", ms=ms, color=colour, label=f"{half} mean")
        a1.plot(c, 1e3 * table[f"{half}_end"], "s", ms=ms, mfc="none", color=colour, label=f"{half} end")
        a1.plot(c, 1e3 * table[f"{half}_extreme"], "^", ms=ms, color=colour, alpha=0.5, label=f"{half} largest")
    a1.axhline(0, color="grey", lw=0.5)
    a1.set_ylabel(f"overpotential ({pot}) / mV")
    a1.legend(fontsize=7, ncol=2, loc="best")
    a2.plot(c, 100 * table.coulombic_efficiency, "o-", ms=ms, color="k")
    a2.set_ylabel("coulombic efficiency / %")
    a3.plot(c, _mah(table.plate_capacity), "o-", ms=ms, color="tab:blue", label="plated")
    a3.plot(c, _mah(table.strip_capacity), "s--", ms=ms, color="tab:red", label="stripped")
    a3.set_ylabel("capacity / mAh cm$^{-2}$")
    a3.set_xlabel("cycle")
    top = float(np.nanmax(_mah(table[["plate_capacity", "strip_capacity"]].to_numpy()), initial=0.0))
    a3.set_ylim(0, 1.15 * top if top > 0 else 1)  # from zero: equal capacities read 0.5, not 1e-12 + 5e-1
    a3.legend(fontsize=7)
    for row in table[table.stop == "short_circuit"].itertuples():
        for ax in (a1, a2, a3):
            ax.axvline(row.cycle, color="red", ls="--", lw=0.8)
        a1.annotate(f"short circuit (cycle {row.cycle})", (row.cycle, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(3, -12), textcoords="offset points", color="red", fontsize=8)  # fmt: skip
    fig.tight_layout()
    return fig


def cycle_curves_figure(run: RunFile, chosen: list[int]) -> plt.Figure:
    """Plating and stripping curves (potential vs capacity in the half cycle) coloured by cycle."""
    area = run.cell["electrodes.working_area"]
    pot = "E_cell" if run.cell.get("configuration") == "symmetric" else "E_we"
    ranges = D.cycle_ranges(run)
    fig, (ap, as_) = plt.subplots(1, 2, figsize=(11, 4.5), layout="constrained")
    norm = Normalize(vmin=min(chosen), vmax=max(chosen) if max(chosen) > min(chosen) else min(chosen) + 1)
    cmap = plt.get_cmap("viridis")
    for c in chosen:
        lo, hi = ranges[c]
        i, q, e = run.column("I", lo, hi), run.column("Q", lo, hi), run.column(pot, lo, hi)
        for ax, sel in ((ap, i < 0), (as_, i > 0)):
            if sel.any():
                ax.plot(*D.decimate(_mah(np.abs(q[sel]) / area), e[sel]), lw=0.8, color=cmap(norm(c)))
    for ax, what in ((ap, "plating"), (as_, "stripping")):
        ax.set_xlabel(f"{'plated' if ax is ap else 'stripped'} capacity / mAh cm$^{{-2}}$")
        ax.set_ylabel(f"{pot} / V")
        ax.set_title(f"{what}: cycles {_ranges_text(chosen)}", fontsize=9)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=[ap, as_])
    bar.set_label("cycle")
    return fig


def _ranges_text(cycles: list[int]) -> str:
    parts, start = [], cycles[0]
    for a, b in zip(cycles, cycles[1:] + [None]):
        if b != a + 1:
            parts.append(str(start) if start == a else f"{start}-{a}")
            start = b
    return ",".join(parts)


def step_curves_figure(run: RunFile) -> plt.Figure:
    """Runs without loop cycles: each plating step's potential vs its capacity."""
    area = run.cell["electrodes.working_area"]
    steps = run.steps()
    plating = steps[steps.parameters.str.contains('"direction": "plate"')]
    fig, ax = plt.subplots(figsize=(8, 5))
    ranges = D.value_ranges(run, "step")
    for row in plating.head(20).itertuples():
        if int(row.index) not in ranges:
            continue
        lo, hi = ranges[int(row.index)]
        q, e = run.column("Q", lo, hi), run.column("E_we", lo, hi)
        ax.plot(*D.decimate(_mah(np.abs(q) / area), e), lw=0.8, label=f"step {row.index + 1} {row.label}")
    ax.set_xlabel("plated capacity / mAh cm$^{-2}$")
    ax.set_ylabel("E_we / V")
    ax.set_title("plating steps: potential vs capacity")
    if len(plating):
        ax.legend(fontsize=7)
    return fig


FIT_CIRCUITS = ("R0-p(R1,CPE1)-p(R2,CPE2)", "R0-p(R1,CPE1)")  # two arcs (bulk, interface), one as fallback
MAX_SPECTRA = 30  # spectra drawn; evenly chosen beyond that


def _fit(f: np.ndarray, z: np.ndarray):
    """The better of the two-arc and one-arc fits (relative residual under 5 %), or None."""
    from daq.analysis.eis_fit import fit_circuit

    best = None
    for circuit in FIT_CIRCUITS:
        try:
            with np.errstate(all="ignore"):
                fit = fit_circuit(f, z, circuit)
        except Exception:  # noqa: BLE001 - a spectrum a circuit cannot describe is drawn without a fit
            continue
        if (
            fit.success
            and fit.relative_residual < 0.05
            and (best is None or fit.relative_residual < best.relative_residual)
        ):
            best = fit
    return best


def _hz(f: float) -> str:
    for scale, unit in ((1e6, "MHz"), (1e3, "kHz"), (1.0, "Hz"), (1e-3, "mHz")):
        if f >= scale:
            return f"{f / scale:.3g} {unit}"
    return f"{f:.3g} Hz"


def _mark_decades(ax, f: np.ndarray, z: np.ndarray, span: float) -> None:
    """An x and its frequency at the point nearest each decade; points closer than 4 % of the plot's
    span (the low-frequency end of a resistive spectrum, a small post-short arc) are labelled once."""
    placed: list[complex] = []
    for decade in 10.0 ** np.arange(np.floor(np.log10(f.min())), np.ceil(np.log10(f.max())) + 1):
        j = int(np.argmin(np.abs(np.log10(f) - np.log10(decade))))
        if abs(np.log10(f[j]) - np.log10(decade)) >= 0.15 or any(abs(z[j] - p) < 0.04 * span for p in placed):
            continue
        placed.append(z[j])
        ax.plot(z.real[j], -z.imag[j], "x", color="k", ms=6)
        ax.annotate(_hz(f[j]), (z.real[j], -z.imag[j]), xytext=(4, 4), textcoords="offset points", fontsize=7)


def nyquist_figure(run: RunFile, fits: bool = True) -> plt.Figure | None:
    """Spectra coloured by the capacity they were taken after (colour bar), their circuit fits as lines,
    decade frequencies marked on the first and last spectrum; -Z'' from zero up."""
    spectra = run.spectra()
    if not len(spectra):
        return None
    area = run.cell["electrodes.working_area"]
    labels = D.spectrum_labels(run, area)
    caps = _mah([c for c, _ in labels])
    by_capacity = np.ptp(caps) > 0
    value = caps if by_capacity else np.arange(len(spectra), dtype=float)
    norm = Normalize(vmin=value.min(), vmax=value.max() if value.max() > value.min() else value.min() + 1)
    cmap = plt.get_cmap("viridis")
    drawn = np.unique(np.linspace(0, len(spectra) - 1, min(len(spectra), MAX_SPECTRA)).round().astype(int))
    fig, ax = plt.subplots(figsize=(8, 7), layout="constrained")
    top, marked, fitted = 0.0, [], 0
    for k, i in enumerate(drawn):
        s = run.spectrum(int(i))
        s = s[s.ok.astype(bool)]
        f, z = s.frequency.values, s.z_real.values + 1j * s.z_imag.values
        colour = cmap(norm(value[i]))
        ax.plot(z.real, -z.imag, "o", ms=3, color=colour, label=labels[i][1] if len(drawn) <= 12 else None)
        top = max(top, float(np.max(-z.imag, initial=0.0)))
        fit = _fit(f, z) if fits and len(f) >= 8 else None
        if fit is not None:
            grid = np.logspace(np.log10(f.min()), np.log10(f.max()), 200)
            zf = fit.impedance(grid)
            ax.plot(zf.real, -zf.imag, "-", lw=1.0, color=colour, alpha=0.8)
            fitted += 1
        if k in (0, len(drawn) - 1) and len(f):
            marked.append((f, z))
    span = max(top, float(np.ptp(ax.dataLim.intervalx)), 1e-12)
    for f, z in marked:
        _mark_decades(ax, f, z, span)
    ax.set_xlabel("Z' / ohm")
    ax.set_ylabel("-Z'' / ohm")
    ax.set_ylim(bottom=-0.05 * top if top > 0 else None)
    ax.set_aspect("equal", adjustable="box")
    lines = ", lines circuit fits" if fitted else " (no circuit fit within 5 %)" if fits else ""
    ax.set_title(f"Nyquist: points measured{lines}, x decade frequencies", fontsize=9)
    if len(drawn) > 1:  # one spectrum needs no colour scale
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax)
        bar.set_label("plated capacity / mAh cm$^{-2}$" if by_capacity else "spectrum number")
    if len(drawn) <= 12:  # below the plot: a legend inside would hide the arcs
        fig.legend(fontsize=7, loc="outside lower center", ncol=2, frameon=False)
    return fig


def pressure_figure(run: RunFile) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(10, 3.5))
    t, p = D.envelope_column(run, "pressure")
    ax.plot(u.to_unit(t, "h"), u.to_unit(p, "MPa"), lw=0.7)
    ax.set_xlabel("time / h")
    ax.set_ylabel("stack pressure / MPa")
    fig.tight_layout()
    return fig


def plot(run: RunFile, out_dir: Path, cycles: str | None = None) -> list[Path]:
    """Every figure of the run saved as PNG in ``out_dir``; ``cycles`` as given to ``--cycles``."""
    table = read_cycles(run)
    if cycles and not len(table):
        from daq.core.errors import ConfigError

        raise ConfigError("--cycles", cycles, "this run has no loop cycles")
    chosen = D.parse_cycles(cycles, [int(c) for c in table.cycle])  # bad --cycles refused before any plot
    out_dir.mkdir(parents=True, exist_ok=True)
    figures: dict[str, plt.Figure | None] = {}
    kinds = set(run.steps().kind)
    if kinds != {"eis"}:  # a spectrum-only recording (a plain spectrum imported) has no trace in time
        figures["voltage_time"] = voltage_time_figure(run)
    if len(table):
        figures["cycles"] = cycles_figure(table)
        figures["cycle_curves"] = cycle_curves_figure(run, chosen)
    elif kinds != {"eis"}:
        figures["voltage_capacity"] = step_curves_figure(run)
    figures["nyquist"] = nyquist_figure(run)
    if "pressure" in run.columns():
        figures["pressure"] = pressure_figure(run)
    files = []
    for name, fig in figures.items():
        if fig is not None:
            files.append(out_dir / f"{name}.png")
            fig.savefig(files[-1], dpi=110)
            plt.close(fig)
    return files
