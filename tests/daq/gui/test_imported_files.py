"""Recordings of other programs opened in the window: no electrode area, no current or no time trace
must still draw (the current axis in mA, no per-area numbers, no NaN axis ranges)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")
from daq.gui import qt_problem

if qt_problem():
    pytest.skip(qt_problem(), allow_module_level=True)

from daq.cli import main
from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(120)

VFP600 = (
    "VFP600\r\nTAG\tVFP600\r\nFREQ\tQUANT\t1.50000E+1\tAcquisition Frequency (Hz)\r\n"
    "VFPCURVE\tTABLE\r\n\tVoltage\tCurrent\r\n\tV\tA\r\n"
    + "".join(f"\t{0.03 - 0.001 * k:.6f}\t{5e-10 + 1e-12 * k:.6E}\r\n" for k in range(20))
)


def _imported(tmp_path: Path, src: Path) -> Path:
    out = tmp_path / f"{src.stem}.h5"
    assert main(["import", str(src), "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("kind", ["chrono", "spectrum"])
def test_an_imported_recording_without_area_draws(qtbot, window, tmp_path, kind):
    if kind == "chrono":
        src = tmp_path / "vfp600.dta"
        src.write_bytes(VFP600.encode("cp1252"))
    else:
        src = ROOT / "tests" / "data" / "spectra" / "exampleDataZPlot.z"
    w = window(channels=0, files=[_imported(tmp_path, src)])
    panel = w.panels[0]
    qtbot.waitUntil(lambda: panel.result is not None, timeout=20_000)
    w.resize(1366, 768)
    w.grab()  # paints every plot: an exception in a paint fails the test (pytest-qt)
    readings = panel.readings.text()
    assert "nan" not in readings.lower() and "mA/cm^2" not in readings and " mA" in readings
    j_plot = panel.plot_j_t.getPlotItem()
    assert j_plot.getAxis("left").labelText == "I (mA)"
    if kind == "chrono":
        assert "E_we = +0.0110 V" in readings  # the recording's own potential, its last sample
        assert len(panel.curve_e_t.xData) == 20
