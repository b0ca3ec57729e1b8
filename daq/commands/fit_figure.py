"""Nyquist and Bode figure of one spectrum with its fitted circuit (``daq fit --png``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from daq.analysis.eis_fit import FitResult


def plot_fit(f: np.ndarray, z: np.ndarray, fit: FitResult | None, out: Path, title: str) -> Path:
    """Data as points, the fit as a line over a dense frequency grid; written as PNG to ``out``."""
    fig, (nyq, mag) = plt.subplots(1, 2, figsize=(11, 4.5))
    phase = mag.twinx()
    nyq.plot(z.real, -z.imag, "o", ms=4, label="data")
    mag.loglog(f, np.abs(z), "o", ms=4, color="C0", label="|Z| data")
    phase.semilogx(f, -np.degrees(np.angle(z)), "s", ms=3, color="C1", label="-phase data")
    if fit is not None:
        fd = np.geomspace(f.max(), f.min(), 300)
        zf = fit.impedance(fd)
        state = "" if fit.success else " (not a real fit)"
        label = f"{fit.circuit}, residual {fit.relative_residual:.2%}{state}"
        nyq.plot(zf.real, -zf.imag, "-", color="C3", label=label)
        mag.loglog(fd, np.abs(zf), "-", color="C3")
        phase.semilogx(fd, -np.degrees(np.angle(zf)), "--", color="C3")
    nyq.set_xlabel("Z' / ohm")
    nyq.set_ylabel("-Z'' / ohm")
    nyq.set_aspect("equal", adjustable="datalim")
    nyq.legend(fontsize=8)
    mag.set_xlabel("f / Hz")
    mag.set_ylabel("|Z| / ohm")
    phase.set_ylabel("-phase / degree")
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
