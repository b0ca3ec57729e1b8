"""EC-Lab cycles: a .mpr file holds the half-cycle counter only; its cycle column must be the cycle
number EC-Lab's own text export of the same run states (two half cycles per cycle, from 0)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from daq.cli import main
from daq.importers import read_recording

ECLAB = Path(__file__).resolve().parents[4] / "shared" / "data" / "real" / "eclab"
VENDOR = ECLAB.parents[1] / "vendor"

pytestmark = pytest.mark.skipif(not ECLAB.is_dir(), reason=f"shared recordings not available ({ECLAB} is absent)")


@pytest.mark.parametrize("run", ["gcpl.issue_149", "cp.issue_149"])
def test_mpr_cycles_are_those_of_ec_labs_own_export(run: str) -> None:
    text, binary = read_recording(ECLAB / f"{run}.mpt"), read_recording(ECLAB / f"{run}.mpr")
    assert text.source_columns["cycle"] == "cycle number" and "cycle" not in text.notes
    assert binary.source_columns["cycle"] == "half cycle // 2"
    np.testing.assert_array_equal(binary.timeseries["cycle"], text.timeseries["cycle"])
    assert np.unique(binary.timeseries["cycle"]).tolist() == [0, 1, 2, 3]


def test_import_names_ec_labs_default_area(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = VENDOR / "CstC_nesd.mpr"
    assert main(["import", str(src), "--out", str(tmp_path / "a.h5")]) == 0
    assert "working area is EC-Lab's default (0.001 cm^2)" in capsys.readouterr().out
    assert main(["import", str(src), "--out", str(tmp_path / "b.h5"), "--area", "1 cm^2"]) == 0
    assert "default" not in capsys.readouterr().out
