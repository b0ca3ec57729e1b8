"""The table reader of user files: bounds on the file itself, typos named before missing fields."""

import os

import pytest

from daq.core import units as u
from daq.core.errors import ConfigError
from daq.core.tables import ConfigTable, parse_toml, read_user_file


@pytest.mark.parametrize(
    "text,kind,si",
    [
        ("9 mA cm-2", u.CURRENT_DENSITY, 90.0),
        ("9 mA cm^-2", u.CURRENT_DENSITY, 90.0),
        ("9 mA cm⁻²", u.CURRENT_DENSITY, 90.0),
        ("8 mAh cm-2", u.AREAL_CAPACITY, 8 * 36000.0),
        ("0.785 mm2", u.AREA, 0.785e-6),
        ("2.5 mS cm-1", u.CONDUCTIVITY, 0.25),
    ],
)
def test_papers_notations(text, kind, si):
    assert u.parse(text, kind, "f") == pytest.approx(si)


def test_unit_alone_is_recognised():
    assert u.is_unit("mA/cm^2") and u.is_unit("mAh cm-2")
    assert not u.is_unit("protocol.toml") and not u.is_unit("12") and not u.is_unit("")


def test_special_files_and_directories_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    for path, needle in (
        ("/dev/zero", "not a regular file"),
        (tmp_path / "pipe", "not a regular file"),
        (tmp_path, "is a directory"),
        (tmp_path / "none.toml", "file not found"),
    ):
        with pytest.raises(ConfigError, match=needle):
            read_user_file(path, "cell")


@pytest.mark.parametrize(
    "text,needle",
    [
        ("x = " + "[" * 40 + "]" * 40, "nested deeper than 32 levels"),
        ("x = " + "{a = " * 40 + "1" + "}" * 40, "nested deeper than 32 levels"),
        ("[a]\nseed = 18446744073709551616", "a.seed = 18446744073709551616: whole number too large"),
        ('[cell]\nid = "a\\u0000b"', "cell.id = 'a\\\\0b': must not contain NUL characters"),
        ("x = [", "not valid TOML"),
    ],
)
def test_toml_bounds(text, needle):
    with pytest.raises(ConfigError) as err:
        parse_toml(text, "cell", "c.toml")
    assert needle in str(err.value) and "c.toml" in str(err.value)


def test_deep_nesting_inside_strings_and_comments_is_fine():
    text = 'x = "' + "[" * 100 + '"\n# ' + "{" * 100 + "\ny = [[1, 2], [3]]\n"
    assert parse_toml(text, "protocol", "p.toml") == {"x": "[" * 100, "y": [[1, 2], [3]]}


def test_typo_reported_instead_of_the_missing_field():
    t = ConfigTable({"capacty": "1 mAh/cm^2"}, "steps.2")
    with pytest.raises(ConfigError, match=r"^steps.2.capacty: unknown field; did you mean capacity\?$"):
        t.quantity("capacity", u.AREAL_CAPACITY, required=True)
    t = ConfigTable({"colour": "red"}, "steps.2")
    with pytest.raises(ConfigError, match=r"^steps.2.capacity: missing; give a areal capacity"):
        t.quantity("capacity", u.AREAL_CAPACITY, required=True)


def test_bounds_and_several_kinds():
    t = ConfigTable({"a": "5 V", "b": "2500 N", "c": "3 MPa", "d": "1 kg", "g": float("nan")}, "t")
    with pytest.raises(ConfigError, match=r"t.a = '5 V': must be at most 100 mV"):
        t.quantity("a", u.VOLTAGE, hi=0.1, unit="mV")
    assert t.quantity("b", (u.FORCE, u.PRESSURE)) == 2500.0
    assert t.quantity("c", (u.FORCE, u.PRESSURE)) == 3e6
    with pytest.raises(ConfigError, match="expected a force or pressure with its unit"):
        t.quantity("d", (u.FORCE, u.PRESSURE))
    with pytest.raises(ConfigError, match="t.g = nan: must be a finite number"):
        t.number("g", 1.0)
    with pytest.raises(ConfigError, match="must be at most 1000"):
        ConfigTable({"n": 10**7}, "t").integer("n", maximum=1000)
