"""Bad protocol input is refused with a message naming the field and value, before anything runs."""

import pytest

from daq.core.errors import ConfigError
from protocols.loader import load_protocol, protocol_from_text
from protocols.steps import Galvanostatic, Rest
from tests.conftest import EXAMPLES

BASE = """
[protocol]
name = "t"
[[steps]]
kind = "galvanostatic"
direction = "plate"
current_density = "9 mA/cm^2"
capacity = "8 mAh/cm^2"
"""


def test_example_loads_in_si():
    p = load_protocol(EXAMPLES / "ccd_single_plating.toml")
    rest, plate = p.steps
    assert isinstance(rest, Rest) and rest.duration == 600.0
    assert isinstance(plate, Galvanostatic)
    assert plate.current_density == pytest.approx(90.0)
    assert plate.capacity == pytest.approx(8 * 36000.0)
    assert plate.signed_current_density == pytest.approx(-90.0)
    assert p.cell_path.endswith("li6ps5cl_99.toml")


@pytest.mark.parametrize(
    "old,new,needle",
    [
        ('"9 mA/cm^2"', '"-9 mA/cm^2"', r"steps\.1\.current_density = '-9 mA/cm\^2': must be positive"),
        ('current_density = "9 mA/cm^2"', "", r"steps\.1\.current_density: missing"),
        ('"9 mA/cm^2"', '"9 mA/cm^3"', r"steps\.1\.current_density.*not a unit of current density"),
        ('"9 mA/cm^2"', '"9 bananas"', r"unknown unit 'bananas'"),
        ('"8 mAh/cm^2"', '"0 mAh/cm^2"', r"steps\.1\.capacity = '0 mAh/cm\^2': must be a positive"),
        ('kind = "galvanostatic"', 'kind = "galvanostatik"', r"steps\.1\.kind = 'galvanostatik': unknown step kind"),
        ('direction = "plate"', 'direction = "up"', r"steps\.1\.direction = 'up': must be one of plate, strip"),
        ('capacity = "8 mAh/cm^2"', 'capacity = "8 mAh/cm^2"\nspeed = 3', r"steps\.1\.speed = 3: unknown field"),
    ],
)
def test_bad_values_are_named(old, new, needle):
    with pytest.raises(ConfigError, match=needle):
        protocol_from_text(BASE.replace(old, new), "bad.toml")


EIS = """
[[steps]]
kind = "eis"
mode = "potentiostatic"
f_start = "1 MHz"
f_end = "1 Hz"
points_per_decade = 10
amplitude = "5 mV"
"""


@pytest.mark.parametrize(
    "old,new,needle",
    [
        ('f_start = "1 MHz"\nf_end = "1 Hz"', 'f_start = "1 Hz"\nf_end = "1 MHz"', "frequency range reversed"),
        ("points_per_decade = 10", "points_per_decade = 0", r"points_per_decade = 0: must be at least 1"),
        ('amplitude = "5 mV"', 'amplitude = "0 mV"', r"amplitude = '0 mV': must be a positive voltage"),
    ],
)
def test_bad_eis(old, new, needle):
    with pytest.raises(ConfigError, match=needle):
        protocol_from_text(EIS.replace(old, new), "eis.toml")


def test_eis_frequencies():
    p = protocol_from_text(EIS)
    f = p.steps[0].spec.frequencies()
    assert len(f) == 61 and f[0] == pytest.approx(1e6) and f[-1] == pytest.approx(1.0)


def test_overrides_by_unique_name_and_by_path():
    p = protocol_from_text(BASE, overrides={"current_density": "10 mA/cm^2"})
    assert p.steps[0].current_density == pytest.approx(100.0)
    p = protocol_from_text(BASE, overrides={"steps.1.capacity": "1 mAh/cm^2"})
    assert p.steps[0].capacity == pytest.approx(36000.0)
    with pytest.raises(ConfigError, match="no step has it"):
        protocol_from_text(BASE, overrides={"potential": "1 V"})
    with pytest.raises(ConfigError, match="not a step number"):
        protocol_from_text(BASE, overrides={"steps.5.capacity": "1 mAh/cm^2"})


def test_not_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        protocol_from_text("kind = = 3", "x.toml")
    with pytest.raises(ConfigError, match="file not found"):
        load_protocol(tmp_path / "nope.toml")
