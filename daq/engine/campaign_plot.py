"""The campaign's picture: each cell type's measured CCD bracket beside the model's prediction, with every
test's outcome.

It is drawn once, after the last test, while nothing else can run: so it is laid out with fixed margins
(no layout pass that draws the figure a second time) and labelled without mathtext (whose parser is
rebuilt for every figure), about 0.09 s instead of 0.15 s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plain_log_formatter(**kwargs):
    """matplotlib's choice of which log-axis ticks to label, each label a plain number (0.5, 1, 20)."""
    from matplotlib.ticker import LogFormatter

    class PlainLog(LogFormatter):
        def __call__(self, x: float, pos: int | None = None) -> str:
            return f"{x:g}" if super().__call__(x, pos) else ""

    return PlainLog(**kwargs)


def prepare() -> None:
    """Import the plotting library ahead of the plot: called while the tests run in workers, its 0.3 s
    of CPU is then not added to the campaign's wall time after the last test."""
    import matplotlib.backends.backend_agg
    import matplotlib.figure  # noqa: F401


def plot(tests: np.ndarray, summary: np.ndarray, path: Path) -> Path:
    """Draw ``tests`` and ``summary`` (daq.engine.campaign's TESTS and SUMMARY rows) into the PNG ``path``."""
    from matplotlib.figure import Figure  # only here: workers need no plotting library; no GUI backend

    fig = Figure(figsize=(7, 5))
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.1, top=0.93)
    ax = fig.subplots()
    x = 100 * summary["relative_density"]
    ax.errorbar(
        x - 0.25,
        summary["predicted"],
        yerr=[summary["predicted"] - summary["predicted_low"], summary["predicted_high"] - summary["predicted"]],
        fmt="s",
        color="tab:blue",
        capsize=4,
        label="predicted (model band)",
    )
    for i, row in enumerate(summary):
        lo = row["highest_safe"] if np.isfinite(row["highest_safe"]) else 0.0
        hi = row["lowest_failed"] if np.isfinite(row["lowest_failed"]) else lo
        ax.plot(
            [100 * row["relative_density"] + 0.25] * 2,
            [lo, hi],
            color="tab:red",
            lw=6,
            alpha=0.5,
            solid_capstyle="butt",
            label="measured bracket" if i == 0 else None,
        )
    for failed, marker, label in ((False, "o", "cell survived"), (True, "x", "cell shorted")):
        sel = tests["failed"].astype(bool) == failed
        ax.scatter(
            100 * tests["relative_density"][sel] + 0.6,
            tests["current_density"][sel],
            marker=marker,
            color="k",
            s=25,
            label=label,
        )
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(plain_log_formatter())
    ax.yaxis.set_minor_formatter(plain_log_formatter(labelOnlyBase=False))  # labelled when the axis spans few decades
    ax.set_xlabel("relative density / %")
    ax.set_ylabel("critical current density / mA cm\u207b\u00b2")
    ax.set_title("CCD vs relative density: measured (simulated cells) and predicted")
    ax.legend(fontsize=8, loc="upper left")
    fig.savefig(path, dpi=110)
    return path
