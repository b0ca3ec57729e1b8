import math

import pytest

from daq.core import units as u
from daq.core.errors import ConfigError


@pytest.mark.parametrize(
    "text,kind,si",
    [
        ("9 mA/cm^2", u.CURRENT_DENSITY, 90.0),
        ("0.05 mA/cm²", u.CURRENT_DENSITY, 0.5),
        ("8 mAh/cm^2", u.AREAL_CAPACITY, 8 * 36000.0),
        ("7 MPa", u.PRESSURE, 7e6),
        ("1 mm", u.LENGTH, 1e-3),
        ("158 nm", u.LENGTH, 158e-9),
        ("2.3 um", u.LENGTH, 2.3e-6),
        ("2.3 µm", u.LENGTH, 2.3e-6),
        ("10 ohm cm^2", u.AREA_SPECIFIC_RESISTANCE, 1e-3),
        ("2.5 mS/cm", u.CONDUCTIVITY, 0.25),
        ("0.23 MPa m^0.5", u.FRACTURE_TOUGHNESS, 0.23e6),
        ("10 min", u.TIME, 600.0),
        ("1 h", u.TIME, 3600.0),
        ("500 mHz", u.FREQUENCY, 0.5),
        ("7 MHz", u.FREQUENCY, 7e6),
        ("99 %", u.FRACTION, 0.99),
        ("25 degC", u.TEMPERATURE, 298.15),
        ("-2 V", u.VOLTAGE, -2.0),
        ("70.7 uA", u.CURRENT, 70.7e-6),
    ],
)
def test_parse_to_si(text, kind, si):
    assert math.isclose(u.parse(text, kind, "f"), si, rel_tol=1e-12)


def test_display_conversions_round_trip():
    assert u.to_unit(90.0, "mA/cm^2") == pytest.approx(9.0)
    assert u.fmt(8 * 36000.0, "mAh/cm^2") == "8 mAh/cm^2"
    assert u.from_unit(u.to_unit(0.123, "MPa"), "MPa") == pytest.approx(0.123)
    assert u.si_unit(u.CURRENT_DENSITY) == "A/m^2"


@pytest.mark.parametrize(
    "text,kind,needle",
    [
        ("9 mA/furlong", u.CURRENT_DENSITY, "unknown unit 'furlong'"),
        ("9 mA", u.CURRENT_DENSITY, "'mA' is not a unit of current density"),
        ("9", u.CURRENT_DENSITY, "needs its unit"),
        (9, u.CURRENT_DENSITY, "needs its unit"),
        ("fast", u.CURRENT_DENSITY, "not a number"),
        (True, u.TIME, "expected a time"),
    ],
)
def test_parse_errors_name_field_and_value(text, kind, needle):
    with pytest.raises(ConfigError) as err:
        u.parse(text, kind, "steps.2.current_density")
    assert "steps.2.current_density" in str(err.value)
    assert needle in str(err.value)
