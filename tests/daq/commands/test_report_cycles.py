"""`daq report` on a cycling run that shorts: figures, per-cycle rows, summary numbers, --cycles."""

from __future__ import annotations

import json

import h5py
import matplotlib.pyplot as plt
import numpy as np
import pytest

from daq.analysis.cycles import read_cycles
from daq.cli import main
from daq.commands import report_data as D
from daq.commands import report_figures as F
from daq.commands.report_text import summary_lines
from daq.storage.reader import open_run
from tests.conftest import EXAMPLES, run_sim

SHORTING = {
    "cycles": 20,
    "steps.2.steps.1.current_density": "9 mA/cm^2",
    "steps.2.steps.2.current_density": "1 mA/cm^2",
}


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "short.h5"
    assert run_sim(EXAMPLES / "asymmetric_cycling.toml", out, 83, overrides=SHORTING).outcome == "short_circuit"
    return out


def test_summary_states_totals_cycles_and_where_the_short_was(run_path):
    with open_run(run_path) as run:
        text = "\n".join(summary_lines(run))
        steps, table = run.steps(), read_cycles(run)
        area = run.cell["electrodes.working_area"]
    total = -steps.Q[steps.Q < 0].sum() / area / 36000.0
    shorted = table[table.stop == "short_circuit"].iloc[0]
    assert f"plated:   {total:.4g} mAh/cm^2 in total" in text
    assert total > 1.0  # several 0.5 mAh/cm^2 half cycles, not the size of one step
    assert f"cycles:   {len(table) - 1} completed of {len(table)} started" in text
    with h5py.File(run_path, "r", locking=False) as f:
        events = f["events"][()]
    trip = json.loads(events["data"][events["kind"] == b"short_circuit"][0])
    into = trip["capacity"] / 36000.0  # the capacity the engine recorded at the trip
    assert f"cycle {int(shorted.cycle)}, step" in text and f"{into:.3g} mAh/cm^2 into the step" in text
    assert into == pytest.approx(shorted.plate_capacity / 36000.0, rel=0.02)  # a few samples until the trip


def test_cycles_figure_has_one_point_per_cycle_and_labelled_axes(run_path):
    with open_run(run_path) as run:
        table = read_cycles(run)
    fig = F.cycles_figure(table)
    a1, a2, a3 = fig.axes
    assert "overpotential" in a1.get_ylabel() and "mV" in a1.get_ylabel()
    assert "coulombic efficiency" in a2.get_ylabel() and a3.get_xlabel() == "cycle"
    mean_line = next(line for line in a1.get_lines() if line.get_label() == "plate mean")
    np.testing.assert_array_equal(mean_line.get_xdata(), table.cycle.values)
    np.testing.assert_allclose(mean_line.get_ydata(), 1e3 * table.plate_mean.values)
    assert {t.get_text() for t in a1.get_legend().get_texts()} >= {"plate mean", "strip mean", "plate largest"}
    assert any("short circuit" in t.get_text() for t in a1.texts)
    plt.close(fig)


def test_cycle_curves_coloured_by_chosen_cycles_with_colour_bar(run_path):
    with open_run(run_path) as run:
        fig = F.cycle_curves_figure(run, [2, 3])
    plating, stripping, bar = fig.axes
    assert bar.get_ylabel() == "cycle"
    assert len(plating.get_lines()) == 2 and len(stripping.get_lines()) == 2
    assert plating.get_lines()[0].get_color() != plating.get_lines()[1].get_color()
    # each plating curve runs from zero to the half cycle's 0.5 mAh/cm^2
    assert max(plating.get_lines()[0].get_xdata()) == pytest.approx(0.5, rel=1e-6)
    assert "stripped capacity" in stripping.get_xlabel()
    plt.close(fig)


def test_voltage_time_keeps_e_we_and_e_cell_apart_and_labels_the_short(run_path):
    with open_run(run_path) as run:
        fig = F.voltage_time_figure(run)
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels == ["E_we vs ref / V", "E_cell / V", "j / mA cm$^{-2}$"]
    assert any(t.get_text().startswith("short circuit") for t in fig.axes[0].texts)
    plt.close(fig)


def test_nyquist_fit_and_post_short_label(run_path):
    with open_run(run_path) as run:
        labels = D.spectrum_labels(run, run.cell["electrodes.working_area"])
        short = D.short_info(run)
        table = read_cycles(run)
        fig = F.nyquist_figure(run)
    # the post-short spectrum carries the capacity of the step that shorted, not 0
    assert len(labels) == 1 and "(after the short)" in labels[0][1]
    shorted = table[table.stop == "short_circuit"].iloc[0]
    assert labels[0][0] == pytest.approx(shorted.plate_capacity, rel=1e-9)
    assert short["cycle"] == shorted.cycle
    (ax,) = fig.axes  # one spectrum: its capacity is in the legend, no colour scale
    assert ax.get_ylabel() == "-Z'' / ohm"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [labels[0][1]]
    assert len(ax.get_lines()) >= 2  # measured points and the fitted line
    assert any(t.get_text().endswith("Hz") for t in ax.texts)  # decade frequencies marked
    assert ax.get_ylim()[0] > -0.1 * ax.get_ylim()[1]  # no half-height below zero
    plt.close(fig)


def test_envelope_reads_in_chunks_and_keeps_extremes(run_path):
    with open_run(run_path) as run:
        y = run.column("E_we")
        t, env = D.envelope_column(run, "E_we", bins=100, chunk=1000)
    assert len(env) <= 2 * 101 and env.min() == y.min() and env.max() == y.max()
    assert np.all(np.diff(t) >= 0)


def test_parse_cycles():
    assert D.parse_cycles("1,10,50-52", list(range(1, 101))) == [1, 10, 50, 51, 52]
    spread = D.parse_cycles(None, list(range(1, 101)), default=3)
    assert len(spread) == 3 and spread[0] == 1 and spread[-1] == 100 and 49 <= spread[1] <= 52


def test_report_command_cycles_option(run_path, tmp_path, capsys):
    assert main(["report", str(run_path), "--out", str(tmp_path / "r"), "--cycles", "1,3-4"]) == 0
    out = capsys.readouterr().out
    assert "cycle_curves.png" in out and (tmp_path / "r" / "cycles.png").stat().st_size > 10_000
    assert main(["report", str(run_path), "--out", str(tmp_path / "r2"), "--cycles", "90-99"]) == 2
    assert "none of these cycles is in the run" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()
