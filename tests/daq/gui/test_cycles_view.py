"""The window on a laptop screen, its cycles view, empty impedance panels, step counts after a stop and
the refusal of files that are not runs."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")
from daq.gui import qt_problem

if qt_problem():
    pytest.skip(qt_problem(), allow_module_level=True)

from PySide6.QtCore import QPoint, QRect

from daq.analysis.cycles import read_cycles
from daq.gui.window import RigWindow
from daq.storage.reader import open_run
from tests.conftest import EXAMPLES, run_sim

pytestmark = pytest.mark.timeout(120)

SHORTING = {
    "cycles": 20,
    "steps.2.steps.1.current_density": "9 mA/cm^2",
    "steps.2.steps.2.current_density": "1 mA/cm^2",
}


@pytest.fixture(scope="module")
def shorted(tmp_path_factory):
    out = tmp_path_factory.mktemp("gui") / "short.h5"
    assert run_sim(EXAMPLES / "asymmetric_cycling.toml", out, 83, overrides=SHORTING).outcome == "short_circuit"
    return out


@pytest.fixture
def opened(qtbot, shorted):
    w = RigWindow(channels=0, files=[shorted], refresh_ms=50)
    w.show()
    panel = w.panels[0]
    qtbot.waitUntil(lambda: panel.result is not None, timeout=20_000)
    yield w, panel
    for p in w.panels:
        p.shutdown(timeout=10)
    w.close()
    w.deleteLater()


def inside(widget, window) -> bool:
    top_left = widget.mapTo(window, QPoint(0, 0))
    return window.rect().contains(QRect(top_left, widget.size()))


def test_fits_a_1366x768_screen(qtbot, opened):
    w, panel = opened
    free = w.screen().availableGeometry()
    assert w.width() <= free.width() and w.height() <= free.height()  # opens within the screen
    panel.title.setText("<b>x</b>: " + "a very long protocol and file name " * 12)  # text never widens it
    hint = w.minimumSizeHint()
    assert hint.width() <= 1366 and hint.height() <= 768
    w.resize(1366, 768)
    qtbot.waitUntil(lambda: w.width() == 1366 and w.height() == 768, timeout=30_000)
    assert inside(panel.export_button, w) and panel.export_button.width() > 40
    assert inside(panel.plot_bode, w)
    phase = panel.bode_phase.sceneBoundingRect()  # the phase plot inside the Bode widget
    assert phase.width() > 100 and phase.right() <= panel.plot_bode.width() + 1


def test_cycles_view_rows_match_the_file(qtbot, opened, shorted):
    w, panel = opened
    with open_run(shorted) as run:
        table = read_cycles(run)
    qtbot.waitUntil(lambda: panel.cycles_view.rows == len(table), timeout=30_000)
    view = panel.cycles_view
    assert panel.views.tabText(1) == f"Cycles ({len(table)})"
    assert view.table.rowCount() == len(table)
    first = table.iloc[0]
    assert view.table.item(0, 1).text() == f"{first.plate_capacity / 36000:.3f}"
    assert view.table.item(0, 3).text() == f"{100 * first.coulombic_efficiency:.2f}"
    assert view.table.item(len(table) - 1, 7).text() == "short circuit"
    assert "short circuit in cycle" in view.message.text()
    assert view.potential.getAxis("left").isVisible() and view.potential.listDataItems()
    plated, stripped = view.capacity.listDataItems()  # the shorted cycle never stripped: no point at zero
    assert len(plated.xData) == len(table) and list(stripped.xData) == list(table.cycle[table.strip_mean.notna()])
    assert table.strip_mean.isna().iloc[-1]


def test_cycles_table_shows_every_column_on_a_laptop_screen(qtbot, opened):
    w, panel = opened
    w.resize(1366, 768)
    panel.views.setCurrentIndex(1)
    table = panel.cycles_view.table
    qtbot.waitUntil(lambda: table.rowCount() > 0 and w.width() == 1366, timeout=30_000)
    qtbot.wait(100)
    assert not table.horizontalScrollBar().isVisible()


def test_steps_after_the_stop_are_not_counted_against_the_plan(qtbot, opened):
    w, panel = opened
    qtbot.waitUntil(lambda: "after the stop" in panel.step_label.text(), timeout=30_000)
    text = panel.step_label.text()
    assert " of " not in text.split("\u00b7")[0]


def test_empty_impedance_panels_have_no_axes(qtbot, tmp_path):
    path = tmp_path / "noeis.h5"
    run_sim(EXAMPLES / "asymmetric_cycling.toml", path, 99, overrides={"cycles": 1})
    with open_run(path) as run:
        assert len(run.spectra()) == 0
    w = RigWindow(channels=0, files=[path], refresh_ms=50)
    w.show()
    panel = w.panels[0]
    qtbot.waitUntil(lambda: panel.result is not None, timeout=20_000)
    nyquist = panel.plot_nyquist.getPlotItem()
    for item in (nyquist, panel.bode_mag, panel.bode_phase):
        assert not item.getAxis("left").isVisible() and not item.getAxis("bottom").isVisible()
    assert "no spectra" in nyquist.titleLabel.text
    panel.shutdown(timeout=10)
    w.close()


def test_daq_gui_refuses_a_file_that_is_not_a_run(tmp_path, capsys):
    from daq.cli import main

    notes = tmp_path / "notes.txt"
    notes.write_text("cell 7 looked fine\n")
    assert main(["gui", str(notes)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "notes.txt: not a readable run file" in err
