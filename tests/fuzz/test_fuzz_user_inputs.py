"""Absurd values, special files and hostile TOML given to the command line: each refused in one line with
exit code 2, within seconds, before any run file exists (so before any current could flow).

The named corpus holds every case a tester reported; the property tests below it widen each kind.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daq.cli import main
from daq.core.errors import ConfigError
from daq.core.tables import MAX_FILE_BYTES, parse_toml, read_user_file
from daq.models.cell import cell_from_text
from daq.storage.naming import confined, safe_name
from protocols import binding
from protocols import limits as L
from protocols.loader import protocol_from_text
from simulators.potentiostat import SIM_CAPABILITIES
from tests.conftest import CELLS, EXAMPLES, ROOT

FAST = settings(
    max_examples=int(os.environ.get("DAQ_FUZZ_EXAMPLES", "40")),
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
CELL_TEXT = (CELLS / "li6ps5cl_99.toml").read_text()
RIG_TEXT = (EXAMPLES / "rigs" / "glovebox_rig.toml").read_text().replace('"../cells/', f'"{CELLS}/')
PLATE_THEN_EIS = """
[[steps]]
kind = "galvanostatic"
direction = "plate"
current_density = "9 mA/cm^2"
duration = "5 s"
[[steps]]
kind = "eis"
mode = "galvanostatic"
f_start = "1 MHz"
f_end = "1 Hz"
amplitude = "0.05 mA/cm^2"
points_per_decade = {ppd}
"""
STEP = {
    "eis_5V": '[[steps]]\nkind = "eis"\nmode = "potentiostatic"\nf_start = "1 MHz"\nf_end = "1 Hz"\n'
    'amplitude = "5 V"\n',
    "potentiostatic_100V": '[[steps]]\nkind = "potentiostatic"\npotential = "100 V"\nduration = "1 min"\n',
    "galvanostatic_9A": '[[steps]]\nkind = "galvanostatic"\ndirection = "plate"\ncurrent_density = "9 A/cm^2"\n'
    'duration = "1 min"\n',
    "rest_forever": '[[steps]]\nkind = "rest"\nduration = "1e9 s"\n',
    "sample_storm": '[[steps]]\nkind = "rest"\nduration = "300 d"\nsample_period = "1 ms"\n',
}


def _cell(old: str, new: str) -> str:
    assert old in CELL_TEXT
    return CELL_TEXT.replace(old, new)


def _corpus(tmp: Path) -> dict[str, list[str]]:
    """name -> argv; files written into ``tmp``; every run writes to tmp/run.h5 if it ever starts."""
    files: dict[str, str] = {}
    for ppd in ("9223372036854775808", "10000000", "1001", "0"):
        files[f"ppd_{ppd}.toml"] = PLATE_THEN_EIS.format(ppd=ppd)
    for name, text in STEP.items():
        files[f"{name}.toml"] = text
    files["deep_arrays.toml"] = "x = " + "[" * 5000 + "]" * 5000 + "\n"
    files["deep_tables.toml"] = "x = " + "{a = " * 5000 + "1" + "}" * 5000 + "\n"
    files["interlock_timeout.toml"] = '[interlocks.pressure]\nmin = "5 MPa"\ntimeout = "1e9 s"\n' + STEP[
        "potentiostatic_100V"
    ].replace("100 V", "0.1 V")
    files["interlock_hot.toml"] = '[interlocks.temperature]\nmax = "1e9 degC"\n' + PLATE_THEN_EIS.format(ppd=10)
    files["seed_2_64.toml"] = _cell("seed = 99", "seed = 18446744073709551616")
    files["seed_negative.toml"] = _cell("seed = 99", "seed = -1")
    files["id_nul.toml"] = _cell('id = "LPSCl-99-01"', 'id = "a\\u0000b"')
    files["id_path.toml"] = _cell('id = "LPSCl-99-01"', 'id = "../../x"')
    files["id_abs.toml"] = _cell('id = "LPSCl-99-01"', 'id = "/tmp/x"')
    files["temperature.toml"] = _cell('temperature = "25 degC"', 'temperature = "1e9 degC"')
    files["pore_radius.toml"] = _cell('pore_radius = "0.5 um"', 'pore_radius = "1 m"')
    files["rig_gain_nan.toml"] = RIG_TEXT.replace("gain = 1.002", "gain = nan")
    files["rig_timeout.toml"] = RIG_TEXT.replace('timeout = "2 s"', 'timeout = "1e9 s"')
    files["notify_plain.toml"] = (
        '[notify.email]\nhost = "smtp.lab"\nfrom = "rig@lab"\nto = ["op@lab"]\nusername = "rig"\npassword_env = "PW"\n'
    )
    files["campaign_bad_cell.toml"] = (
        f'[campaign]\nprotocol = "{EXAMPLES}/ccd_single_plating.toml"\nrepeats = 1\n'
        f'[[series]]\ncell = "{tmp}/id_path.toml"\ncurrent_densities = ["1 mA/cm^2"]\n'
    )
    files["big.toml"] = "# " + "x" * MAX_FILE_BYTES + "\n"
    files["utf16.toml"] = ""
    for name, text in files.items():
        (tmp / name).write_text(text)
    (tmp / "utf16.toml").write_bytes('[[steps]]\nkind = "rest"\n'.encode("utf-16"))
    os.mkfifo(tmp / "fifo.toml")
    (tmp / "folder.toml").mkdir()
    cell99, sim, out = str(CELLS / "li6ps5cl_99.toml"), ["--sim", "--out", str(tmp / "run.h5")], str(tmp / "run.h5")
    proto = str(EXAMPLES / "ccd_single_plating.toml")
    corpus = {
        "notify /dev/zero": ["run", proto, *sim, "--notify", "/dev/zero"],
        "notify plaintext login": ["run", proto, *sim, "--notify", str(tmp / "notify_plain.toml")],
        "predict --cell /dev/zero": ["predict", "ccd", "--cell", "/dev/zero"],
        "predict pore radius 1 m": ["predict", "ccd", "--cell", str(tmp / "pore_radius.toml")],
        "campaign /dev/zero": ["campaign", "/dev/zero", "--sim", "--out", str(tmp / "campaign")],
        "campaign cell id ../../x": ["campaign", str(tmp / "campaign_bad_cell.toml"), "--sim", "--out", str(tmp / "c")],
        "instruments /dev/zero": ["instruments", "/dev/zero"],
        "instruments gain nan": ["instruments", str(tmp / "rig_gain_nan.toml")],
        "instruments timeout 1e9 s": ["instruments", str(tmp / "rig_timeout.toml")],
        "run /dev/zero": ["run", "/dev/zero", *sim],
        "run --cell /dev/urandom": ["run", proto, *sim, "--cell", "/dev/urandom"],
        "validate /dev/urandom": ["validate", "/dev/urandom"],
        "run FIFO": ["run", str(tmp / "fifo.toml"), *sim],
        "run directory": ["run", str(tmp / "folder.toml"), *sim],
        "run 1 MiB + file": ["run", str(tmp / "big.toml"), *sim],
        "run UTF-16 file": ["run", str(tmp / "utf16.toml"), *sim],
        "run --speed 1e-300": ["run", proto, *sim, "--speed", "1e-300"],
        "run --speed nan": ["run", proto, *sim, "--speed", "nan"],
        "run --sim --rig": ["run", proto, *sim, "--rig", str(tmp / "rig_timeout.toml")],
        "import --area -1 mm^2": ["import", proto, "--area=-1 mm^2", "--out", out],
        "run unquoted unit": ["run", *sim, "--set", "current_density=9", "mA/cm^2"],
    }
    for name in sorted(files):
        if name.startswith(("ppd_", "deep_", "interlock_")) or name[:-5] in STEP:
            corpus[f"validate {name}"] = ["validate", str(tmp / name), "--cell", cell99]
            corpus[f"run {name}"] = ["run", str(tmp / name), *sim, "--cell", cell99]
        elif name.startswith(("seed_", "id_", "temperature", "pore_")):
            corpus[f"run --cell {name}"] = ["run", proto, *sim, "--cell", str(tmp / name)]
    for value in ("5 V", "1 V"):
        corpus[f"--set EIS amplitude {value}"] = [
            "validate",
            str(EXAMPLES / "peis.toml"),
            "--set",
            f"steps.2.amplitude={value}",
        ]
    corpus["--set 9 A/cm^2"] = ["run", proto, *sim, "--set", "current_density=9 A/cm^2"]
    corpus["--set working electrode 1 m"] = [
        "run",
        proto,
        *sim,
        "--set",
        "cell.electrodes.working_diameter=1 m",
    ]
    return corpus


def _names() -> list[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return sorted(_corpus(Path(tmp)))


NAMES = _names()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", NAMES)
def test_every_reported_input_is_refused_in_one_line(tmp_path, capsys, name):
    argv = _corpus(tmp_path)[name]
    start = time.monotonic()
    code = main(argv)
    elapsed = time.monotonic() - start
    captured = capsys.readouterr()
    err = captured.err
    assert code == 2, (name, code, err)
    assert err.startswith("daq: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "internal error" not in err
    assert elapsed < 5.0, f"{name}: {elapsed:.1f} s"
    assert not (tmp_path / "run.h5").exists()  # no run started: no current flowed
    assert not any((tmp_path / "c").glob("*.h5")) if (tmp_path / "c").exists() else True


@pytest.mark.timeout(60)
@pytest.mark.parametrize("argv", [["validate", "/dev/zero"], ["run", "/dev/urandom", "--sim"]])
def test_special_files_refused_by_the_console_command(tmp_path, argv):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "daq.cli", *argv], capture_output=True, text=True, timeout=20, env=env, cwd=tmp_path
    )
    assert proc.returncode == 2 and "not a regular file" in proc.stderr and proc.stderr.count("\n") == 1


def test_reader_refuses_special_and_large_files(tmp_path):
    with pytest.raises(ConfigError, match="not a regular file"):
        read_user_file("/dev/zero", "protocol")
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * 2048)
    with pytest.raises(ConfigError, match="2048 bytes, larger than the 1024 bytes allowed"):
        read_user_file(big, "protocol", limit=1024)
    assert read_user_file(big, "protocol", limit=2048) == "#" * 2048


# --- properties -------------------------------------------------------------------------------------
def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if not isinstance(value, float) or math.isfinite(value) else "nan"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"  # type: ignore[union-attr]


KEYS = st.sampled_from(["a", "b", "kind", "steps", "duration", "seed", "id"])
LEAVES = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.booleans(),
)
VALUES = st.recursive(
    LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3), max_leaves=60
)


@FAST
@given(st.dictionaries(KEYS, VALUES, min_size=1, max_size=4), st.integers(min_value=0, max_value=60))
def test_any_toml_document_is_parsed_or_refused(doc, extra_depth):
    text = "\n".join(f"{k} = {_toml_value(v)}" for k, v in doc.items())
    text += "\nz = " + "[" * extra_depth + "]" * extra_depth + "\n"
    try:
        parsed = parse_toml(text, "protocol", "p.toml")
    except ConfigError as exc:
        assert "p.toml" in str(exc)
        return
    assert set(parsed) == set(doc) | {"z"}
    for source in (protocol_from_text, lambda t, s: cell_from_text(t, None, s)):
        try:
            source(text, "p.toml")
        except ConfigError:
            pass


MAGNITUDES = st.floats(min_value=-1e300, max_value=1e300, allow_nan=False).map(lambda x: f"{x:.6g}")
FIELDS = [  # (step table text with {v}, unit, check of the accepted step)
    ('kind = "potentiostatic"\npotential = "{v} V"\nduration = "1 min"', lambda s: abs(s.potential) <= 10),
    (
        'kind = "galvanostatic"\ndirection = "plate"\ncurrent_density = "{v} mA/cm^2"\nduration = "1 min"',
        lambda s: 0 < s.current_density <= L.MAX_CURRENT_DENSITY,
    ),
    (
        'kind = "eis"\nmode = "potentiostatic"\nf_start = "1 MHz"\nf_end = "1 Hz"\namplitude = "{v} mV"',
        lambda s: 0 < s.spec.amplitude <= L.MAX_EIS_POTENTIAL_AMPLITUDE,
    ),
    (
        'kind = "eis"\nmode = "galvanostatic"\nf_start = "{v} Hz"\nf_end = "1e-7 Hz"\namplitude = "0.05 mA/cm^2"\n'
        "points_per_decade = 1000",
        lambda s: len(s.spec.frequencies()) <= L.MAX_SWEEP_POINTS,
    ),
    ('kind = "rest"\nduration = "{v} h"\nsample_period = "1 ms"', lambda s: s.duration / s.sample_period <= 1e8),
]


@FAST
@given(st.sampled_from(range(len(FIELDS))), MAGNITUDES)
def test_accepted_values_lie_within_physical_bounds(index, value):
    template, within = FIELDS[index]
    cell = cell_from_text(CELL_TEXT)
    try:
        protocol = protocol_from_text("[[steps]]\n" + template.format(v=value), "p.toml")
        binding.check(protocol, cell, SIM_CAPABILITIES)
    except ConfigError as exc:
        assert str(exc).startswith("p.toml: steps.1.") or str(exc).startswith("steps.1."), str(exc)
        return
    assert within(protocol.steps[0])


@FAST
@given(st.text(max_size=80))
def test_names_from_user_text_stay_in_their_folder(tmp_path_factory, text):
    folder = tmp_path_factory.getbasetemp() / "out"
    name = safe_name(text)
    assert name and "/" not in name and "\\" not in name and name not in (".", "..") and "\0" not in name
    assert confined(folder, text).parent == folder.resolve()


@FAST
@given(st.sampled_from(["temperature", "pore_radius", "id"]), st.text(max_size=20))
def test_cell_fields_from_any_text_are_bounded(field, text):
    old = {
        "temperature": 'temperature = "25 degC"',
        "pore_radius": 'pore_radius = "0.5 um"',
        "id": 'id = "LPSCl-99-01"',
    }
    try:
        cell = cell_from_text(CELL_TEXT.replace(old[field], f"{field} = {json.dumps(text)}"))
    except ConfigError:
        return
    assert 173.15 <= cell.temperature <= 573.15
    assert 0 < cell.microstructure.pore_radius <= cell.electrolyte.thickness
    assert safe_name(cell.cell_id) == cell.cell_id
