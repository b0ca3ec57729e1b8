import math

import pytest

from daq.core.errors import ConfigError
from daq.models import ccd
from daq.models.cell import load_cell
from tests.conftest import CELLS, cell_file


def test_example_cells_load_with_geometry():
    cell = load_cell(cell_file(99))
    assert cell.electrodes.working_area == pytest.approx(math.pi * 0.5e-3**2)
    assert cell.electrolyte.relative_density == pytest.approx(0.99)
    assert cell.stack_pressure == pytest.approx(7e6)
    assert cell.current(90.0) == pytest.approx(70.7e-6, rel=1e-3)  # 9 mA/cm^2 on a 1 mm WE


def test_predicted_ccd_rises_with_density():
    values = [ccd.critical_current_density(load_cell(cell_file(d)).microstructure) for d in (83, 86, 95, 99)]
    assert values == sorted(values) and values[0] < 10.0 < values[-1]


def test_missing_electrode_area_is_named(tmp_path):
    text = (CELLS / "li6ps5cl_99.toml").read_text().replace('working_diameter = "1 mm"', "")
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=r"electrodes.working_area.*electrode area missing"):
        load_cell(bad)


def test_cell_override():
    assert load_cell(cell_file(99), {"simulation.seed": 7}).simulation.seed == 7
    with pytest.raises(ConfigError, match="unknown cell field"):
        load_cell(cell_file(99), {"nonsense": 1})
