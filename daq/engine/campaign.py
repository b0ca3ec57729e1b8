"""Run a CCD campaign and bracket each cell type's CCD from the outcomes.

Every test is a fresh cell: the same cell file with its own seed, so the simulated cells scatter as
real ones do. The measured CCD is bracketed by the highest current density at which no cell failed and
the lowest at which every cell failed (science.md 1: below the CCD cells never fail, at it always);
densities with mixed outcomes lie inside the bracket.

The tests are independent (each its own cell, seed, clock and run file), so they run side by side in
worker processes or on a Dask cluster (daq.engine.parallel) with the same results as one by one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import h5py
import numpy as np

from daq.core import units as u
from daq.core.capabilities import Potentiostat, PressureSensor
from daq.core.clock import Clock, VirtualClock
from daq.engine.campaign_plot import plot, prepare
from daq.engine.parallel import Workers
from daq.engine.runner import predictions, run_protocol
from daq.models.cell import Cell, cell_from_text, read_cell_text
from daq.storage.naming import confined
from daq.storage.writer import utc_now
from protocols.campaign import Campaign
from protocols.loader import load_protocol

STR = h5py.string_dtype()
TESTS = np.dtype(
    [
        ("series", "i4"),
        ("cell_id", STR),
        ("relative_density", "f8"),
        ("current_density", "f8"),
        ("repeat", "i4"),
        ("seed", "i8"),
        ("outcome", STR),
        ("failed", "u1"),
        ("plated", "f8"),
        ("short_capacity", "f8"),
        ("file", STR),
    ]
)
TEST_UNITS = {"relative_density": "1", "current_density": "mA/cm^2", "plated": "mAh/cm^2", "short_capacity": "mAh/cm^2"}
SUMMARY = np.dtype(
    [
        ("series", "i4"),
        ("cell_id", STR),
        ("relative_density", "f8"),
        ("highest_safe", "f8"),
        ("lowest_failed", "f8"),
        ("predicted", "f8"),
        ("predicted_low", "f8"),
        ("predicted_high", "f8"),
        ("prediction_in_bracket", "u1"),
    ]
)
SUMMARY_UNITS = {
    k: "mA/cm^2" for k in ("highest_safe", "lowest_failed", "predicted", "predicted_low", "predicted_high")
}


@dataclass(frozen=True)
class Bracket:
    highest_safe: float  # mA/cm^2, nan if every tested density failed at least once
    lowest_failed: float  # mA/cm^2, nan if no density failed every time


def bracket(densities: np.ndarray, failed: np.ndarray) -> Bracket:
    """CCD bracket from per-test outcomes (densities in mA/cm^2, failed as booleans)."""
    levels = np.unique(densities)
    never = [d for d in levels if not failed[densities == d].any()]
    always = [d for d in levels if failed[densities == d].all()]
    lowest_failed = min(always) if always else np.nan
    safe_below = [d for d in never if not always or d < lowest_failed]
    return Bracket(max(safe_below) if safe_below else np.nan, lowest_failed)


ChannelFactory = Callable[[Cell, Clock], tuple[Potentiostat, PressureSensor | None]]


@dataclass(frozen=True)
class CampaignTest:
    """One test of a campaign: all a worker process needs to run it (picklable)."""

    series: int  # 1-based
    repeat: int  # 1-based
    seed: int
    density: float  # mA/cm^2
    cell_path: str
    cell_text: str
    protocol_path: str
    path: str  # run file to write
    campaign: str


def plan(campaign: Campaign, out: Path) -> list[CampaignTest]:
    """Every test in campaign order, with its cell seed and run file fixed here (not by a worker)."""
    tests = []
    for s_index, series in enumerate(campaign.series, 1):
        cell_text = read_cell_text(series.cell_path)
        base = cell_from_text(cell_text, None, series.cell_path)
        for d_index, cd in enumerate(series.current_densities):
            density = u.to_unit(cd, "mA/cm^2")
            for rep in range(1, campaign.repeats + 1):
                seed = base.simulation.seed * 1000 + 100 * s_index + 10 * d_index + rep
                path = confined(out, f"{base.cell_id}_{density:g}mAcm2_r{rep}.h5")
                tests.append(
                    CampaignTest(
                        s_index,
                        rep,
                        seed,
                        density,
                        series.cell_path,
                        cell_text,
                        campaign.protocol_path,
                        str(path),
                        campaign.name,
                    )
                )
    return tests


def run_test(channel: ChannelFactory, test: CampaignTest) -> tuple:
    """Run one test on a fresh cell from ``channel``; its row of the tests table."""
    cell_overrides = {"simulation.seed": test.seed}
    cell = cell_from_text(test.cell_text, cell_overrides, test.cell_path)
    protocol = load_protocol(test.protocol_path, {"current_density": f"{test.density:.6g} mA/cm^2"})
    clock = VirtualClock()
    pstat, transducer = channel(cell, clock)
    res = run_protocol(
        protocol,
        cell,
        pstat,
        clock,
        Path(test.path),
        transducer=transducer,
        overwrite=True,
        cell_source=test.cell_text,
        cell_overrides=cell_overrides,
        run_attrs={"rig": "simulator", "campaign": test.campaign},
    )
    return (
        test.series,
        cell.cell_id,
        cell.electrolyte.relative_density,
        test.density,
        test.repeat,
        test.seed,
        res.outcome,
        res.outcome == "short_circuit",
        u.to_unit(res.plated_capacity, "mAh/cm^2"),
        u.to_unit(res.short["capacity"], "mAh/cm^2") if res.short else np.nan,
        Path(test.path).name,
    )


def schedule(campaign: Campaign, tests: Sequence[CampaignTest]) -> list[int]:
    """Indices of ``tests``, the longest expected first, so that side by side no worker is left running
    a long test alone at the end. A test above its cell's predicted CCD is expected to short, and a
    shorted run carries the longest post-run analysis (the fit of the shorted cell's spectra); the further
    above, the earlier. Only the order the tests start in depends on this, never their results."""
    ccd = [
        predictions(cell_from_text(read_cell_text(s.cell_path), None, s.cell_path))["ccd"]["value"]
        for s in campaign.series
    ]
    return sorted(range(len(tests)), key=lambda i: -tests[i].density / ccd[tests[i].series - 1])


def run_campaign(
    campaign: Campaign,
    out_dir: str | Path,
    channel: ChannelFactory,
    progress: Callable[[str], None] = lambda _: None,
    jobs: int = 1,
    dask: str | None = None,
) -> tuple[np.ndarray, np.ndarray, Path]:
    """Run every test on a fresh cell from ``channel`` (its potentiostat and press, e.g. a simulated
    cell's); store tests and summary in OUT/campaign.h5, plot OUT/ccd_vs_density.png.

    ``jobs`` worker processes (or the Dask scheduler at ``dask``) run the tests; ``channel`` must then
    be a module-level function (simulators.rig.simulated_channel) so it can be sent to them. The tests
    table is in plan order whatever order the tests finish in."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    planned = plan(campaign, out)

    def done(_: int, row: tuple) -> None:
        progress(f"{row[1]} at {row[3]:g} mA/cm^2, cell {row[4]}: {row[6]}")

    order = schedule(campaign, planned) if jobs > 1 or dask else list(range(len(planned)))
    preload = [__name__, getattr(channel, "__module__", None) or __name__]
    with Workers(jobs, dask, preload) as workers:  # its workers end while the summary is written and drawn
        results = workers.map(partial(run_test, channel), [planned[i] for i in order], on_done=done, meanwhile=prepare)
        rows: list[tuple] = [()] * len(planned)
        for i, row in zip(order, results, strict=True):
            rows[i] = row
        tests_arr = np.array(rows, dtype=TESTS)
        summary_arr = np.array(
            [_summary_row(campaign, s, tests_arr) for s in range(1, len(campaign.series) + 1)], SUMMARY
        )
        write_summary(out / "campaign.h5", campaign, tests_arr, summary_arr)
        return tests_arr, summary_arr, plot(tests_arr, summary_arr, out / "ccd_vs_density.png")


def write_summary(path: Path, campaign: Campaign, tests: np.ndarray, summary: np.ndarray) -> None:
    with h5py.File(path, "w") as f:
        f.attrs.update({"name": campaign.name, "created": utc_now(), "repeats": campaign.repeats})
        f.create_dataset("source", data=campaign.source_text, dtype=STR)
        for name, data, units in (("tests", tests, TEST_UNITS), ("summary", summary, SUMMARY_UNITS)):
            ds = f.create_dataset(name, data=data)
            ds.attrs["units"] = json.dumps(units)


def _summary_row(campaign: Campaign, s_index: int, tests: np.ndarray) -> tuple:
    """A series' CCD bracket from its tests, beside the model's prediction for its cell."""
    series = campaign.series[s_index - 1]
    base = cell_from_text(read_cell_text(series.cell_path), None, series.cell_path)
    rows = tests[tests["series"] == s_index]
    b = bracket(rows["current_density"], rows["failed"].astype(bool))
    pred = predictions(base)["ccd"]
    inside = (np.isnan(b.highest_safe) or pred["value"] >= b.highest_safe) and (
        np.isnan(b.lowest_failed) or pred["value"] <= b.lowest_failed
    )
    return (
        s_index,
        base.cell_id,
        base.electrolyte.relative_density,
        b.highest_safe,
        b.lowest_failed,
        pred["value"],
        pred["low"],
        pred["high"],
        inside,
    )
