"""Bad files of every kind (protocols, cells, rigs, notification settings, damaged run files, damaged
vendor recordings) are refused with one clear line, never a traceback; nothing recorded is lost.

The strategies and checks here are shared with scripts/fuzz_all.py, which runs many more examples.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daq.core.errors import ConfigError, DataFileError
from daq.core.records import Samples
from daq.engine.notify import notify_from_dict
from daq.engine.runner import predictions, rebuild
from daq.models.cell import cell_from_text, load_cell
from daq.storage.reader import open_run
from protocols import binding
from protocols.loader import protocol_from_text
from simulators.cell import SimulatedCell
from simulators.potentiostat import SIM_CAPABILITIES
from tests.conftest import CELLS, EXAMPLES, ROOT, VENDOR_DATA

FAST = settings(
    max_examples=25, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
)

# --- inputs ---------------------------------------------------------------------------------------
FULL_PROTOCOL = """
[protocol]
name = "everything"
[defaults]
sample_period = "1 s"
[short_circuit]
enabled = true
collapse_fraction = 0.5
window = "10 s"
min_drop = "5 mV"
[interlocks.pressure]
min = "5 MPa"
max = "9 MPa"
clear_wait = "1 min"
timeout = "1 h"
[interlocks.overload]
[[steps]]
kind = "rest"
duration = "10 min"
[[steps]]
kind = "eis"
mode = "potentiostatic"
f_start = "1 MHz"
f_end = "1 Hz"
points_per_decade = 5
amplitude = "5 mV"
dc = "ocv"
[[steps]]
kind = "galvanostatic"
direction = "plate"
current_density = "1 mA/cm^2"
capacity = "0.5 mAh/cm^2"
v_min = "-2 V"
v_max = "2 V"
eis_every = "0.25 mAh/cm^2"
[steps.operando_eis]
f_start = "7 MHz"
f_end = "500 mHz"
points_per_decade = 10
amplitude = "0.05 mA/cm^2"
[[steps]]
kind = "loop"
cycles = 3
until = ["short_circuit"]
  [[steps.steps]]
  kind = "potentiostatic"
  potential = "0.1 V"
  duration = "1 h"
  i_limit = "10 mA/cm^2"
  [[steps.steps]]
  kind = "galvanostatic"
  direction = "strip"
  current_density = "0.05 mA/cm^2"
  duration = "1 h"
"""
PROTOCOL_TEXTS = [
    FULL_PROTOCOL,
    (EXAMPLES / "ccd_single_plating.toml").read_text(),
    (EXAMPLES / "asymmetric_cycling.toml").read_text(),
]
CELL_TEXTS = [p.read_text() for p in sorted(CELLS.glob("*.toml"))]
RIG_DIR = EXAMPLES / "rigs"
RIG_TEXTS = [p.read_text() for p in sorted(RIG_DIR.glob("*.toml"))]
NOTIFY_DOC = {
    "notify": {
        "on": ["stop", "fault"],
        "repeat_after": "5 min",
        "command": {"argv": ["logger", "-t", "daq"], "timeout": "10 s"},
        "email": {
            "host": "smtp.lab",
            "port": 587,
            "from": "rig@lab",
            "to": ["op@lab"],
            "starttls": True,
            "username": "rig",
            "password_env": "PW",
            "timeout": "5 s",
        },
    }
}

UNITS = [
    "mA/cm^2",
    "A/m^2",
    "mAh/cm^2",
    "C/m^2",
    "V",
    "mV",
    "s",
    "min",
    "h",
    "Hz",
    "MHz",
    "mHz",
    "MPa",
    "Pa",
    "bar",
    "N",
    "mm",
    "um",
    "nm",
    "%",
    "degC",
    "K",
    "ohm",
    "ohm cm^2",
    "mS/cm",
    "S/m",
    "MPa m^0.5",
    "mm^2",
    "cm^2",
    "kg",
    "parsecs",
    "",
    "mA cm^-2",
    "mA/cm^2/s",
    "V^2",
    "µm",
    "Ω",
]
NUMBERS = [
    "0",
    "-0",
    "1",
    "-1",
    "9",
    "1e-400",
    "1e400",
    "nan",
    "inf",
    "-inf",
    "0.0000001",
    "1e30",
    "-1e30",
    "1.5.2",
    "",
    " ",
    "+",
    "1e",
    "0x10",
    "1_000",
    "9,5",
    "½",
]
KEYWORDS = [
    "plate",
    "strip",
    "ocv",
    "OCV",
    "galvanostatic",
    "potentiostatic",
    "rest",
    "eis",
    "loop",
    "short_circuit",
    "voltage_limit",
    "three_electrode",
    "symmetric",
    "sim",
    "keithley2450",
    "true",
]


def quantities() -> st.SearchStrategy[str]:
    return st.builds(
        lambda n, sep, unit: f"{n}{sep}{unit}",
        st.sampled_from(NUMBERS),
        st.sampled_from(["", " "]),
        st.sampled_from(UNITS),
    )


def nasty_values() -> st.SearchStrategy[Any]:
    scalar = st.one_of(
        quantities(),
        st.sampled_from(KEYWORDS),
        st.text(max_size=12),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(),
        st.booleans(),
    )
    return st.one_of(scalar, st.lists(scalar, max_size=3), st.dictionaries(st.text(max_size=6), scalar, max_size=2))


# --- a small TOML writer (tomllib only reads) ------------------------------------------------------
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return (
            "{" + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)} = {_toml_value(x)}" for k, x in v.items()) + "}"
        )
    if hasattr(v, "isoformat"):  # TOML dates
        return v.isoformat()
    raise TypeError(type(v).__name__)


def toml_dumps(doc: dict[str, Any]) -> str:
    """Every top-level key as ``key = value`` with inline tables: valid TOML for any JSON-like tree."""
    return "\n".join(f"{json.dumps(str(k), ensure_ascii=False)} = {_toml_value(v)}" for k, v in doc.items()) + "\n"


def _slots(node: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """(container, key or index) for every value in a document tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((node, k))
            _slots(v, out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((node, i))
            _slots(v, out)
    return out


@st.composite
def mutated_doc(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """The document with 1-3 random edits: a value replaced, a key deleted or added, a table replaced."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        slots = _slots(doc, [])
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add", "duplicate"]))
        if action == "replace":
            container[key] = draw(nasty_values())
        elif action == "delete":
            del container[key]
        elif action == "add" and isinstance(container, dict):
            container[draw(st.sampled_from(["kind", "duration", "capacity", "unit", "bogus", "on", "steps"]))] = draw(
                nasty_values()
            )
        elif action == "duplicate" and isinstance(container, list):
            container.append(copy.deepcopy(container[key]))
    return doc


@st.composite
def mutated_text(draw: st.DrawFn, base: str) -> str:
    """The text with 1-3 random edits: truncated, a span deleted or replaced, a line duplicated."""
    text = base
    for _ in range(draw(st.integers(1, 3))):
        if not text:
            break
        i = draw(st.integers(0, len(text) - 1))
        action = draw(st.sampled_from(["truncate", "delete", "insert", "line"]))
        if action == "truncate":
            text = text[:i]
        elif action == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 40)) :]
        elif action == "insert":
            text = (
                text[:i]
                + draw(
                    st.one_of(st.text(max_size=8), st.sampled_from(['"', "[", "]", "=", "\n", "[[steps]]\n", "\x00"]))
                )
                + text[i:]
            )
        else:
            lines = text.splitlines(keepends=True)
            k = draw(st.integers(0, len(lines) - 1))
            text = "".join(lines[: k + 1] + [lines[k]] + lines[k + 1 :])
    return text


def doc_or_text(bases: list[str]) -> st.SearchStrategy[str]:
    docs = [tomllib.loads(t) for t in bases]
    return st.one_of(
        st.sampled_from(docs).flatmap(mutated_doc).map(toml_dumps), st.sampled_from(bases).flatmap(mutated_text)
    )


# --- checks: each returns "accepted" or "refused", and fails on anything else ------------------------
def one_line(exc: Exception) -> str:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text, f"not one clear line: {text!r}"
    return "refused"


CELL_99 = load_cell(CELLS / "li6ps5cl_99.toml")


def check_protocol(text: str) -> str:
    try:
        protocol = protocol_from_text(text, "fuzz.toml")
        binding.check(protocol, CELL_99, SIM_CAPABILITIES)
    except ConfigError as exc:
        return one_line(exc)
    return "accepted"


def check_cell(text: str) -> str:
    try:
        cell = cell_from_text(text, None, "fuzz-cell.toml")
    except ConfigError as exc:
        return one_line(exc)
    # an accepted cell must be usable: predictions stored with the run, the simulated twin
    predictions(cell)
    SimulatedCell(cell)
    return "accepted"


def check_rig(text: str) -> str:
    from daq.engine.rig import rig_from_dict

    try:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("rig", "fuzz-rig.toml", f"not valid TOML: {exc}") from None
        rig_from_dict(doc, RIG_DIR)
    except ConfigError as exc:
        return one_line(exc)
    return "accepted"


def check_notify(doc: Any) -> str:
    try:
        notify_from_dict(doc, "fuzz-notify.toml")
    except ConfigError as exc:
        return one_line(exc)
    return "accepted"


def read_everything(path: Path) -> None:
    with open_run(path) as run:
        _ = (
            run.status,
            run.attrs,
            run.cell,
            run.cell_units,
            run.protocol_source,
            run.protocol_overrides,
            run.cell_source,
            run.cell_overrides,
            run.columns(),
            run.units(),
            len(run),
        )
        run.resume_point()
        run.timeseries()
        run.steps()
        run.events()
        spectra = run.spectra()
        for i in range(min(len(spectra), 3)):
            run.spectrum(i)
        run.prediction("ccd")


def check_run_file(data: bytes, workdir: Path) -> str:
    path = workdir / "fuzz-run.h5"
    path.write_bytes(data)
    try:
        read_everything(path)
    except DataFileError as exc:
        return one_line(exc)
    try:
        rebuild(path)  # what `daq resume` reads first
    except (DataFileError, ConfigError) as exc:
        one_line(exc)
    return "accepted"


def check_vendor(data: bytes, suffix: str, workdir: Path) -> str:
    from daq.importers import read_recording

    path = workdir / f"fuzz-recording{suffix}"
    path.write_bytes(data)
    try:
        read_recording(path)
    except DataFileError as exc:
        return one_line(exc)
    return "accepted"


DAMAGE = ("truncate", "flip", "zero", "flip_head")


@st.composite
def damaged_bytes(draw: st.DrawFn, base: bytes, actions: tuple[str, ...] = DAMAGE) -> bytes:
    """Truncated, bytes overwritten, or a span zeroed: what a full disk, a bad sector or a kill leaves."""
    b = bytearray(base)
    action = draw(st.sampled_from(actions))
    if action == "truncate":
        return bytes(b[: draw(st.integers(0, len(b) - 1))])
    if action == "zero":
        i = draw(st.integers(0, len(b) - 1))
        n = draw(st.integers(1, 4096))
        b[i : i + n] = bytes(len(b[i : i + n]))
        return bytes(b)
    limit = min(len(b), 4096) if action == "flip_head" else len(b)  # headers and metadata live at the start
    for _ in range(draw(st.integers(1, 16))):
        b[draw(st.integers(0, limit - 1))] = draw(st.integers(0, 255))
    return bytes(b)


def make_run_files(workdir: Path) -> list[bytes]:
    """A finished run and a snapshot of one being written (its writer flag set), as bytes."""
    from tests.conftest import run_sim

    done = workdir / "base-done.h5"
    live = workdir / "base-live.h5"
    snapshot = workdir / "base-snapshot.h5"
    seen = [0]

    def copy_mid_run(record) -> None:
        if isinstance(record, Samples):
            seen[0] += 1
            if seen[0] == 4:
                shutil.copy(live, snapshot)

    text = (CELLS / "li6ps5cl_99.toml").read_text()
    run_sim(EXAMPLES / "ccd_single_plating.toml", done, 99, {"capacity": "0.3 mAh/cm^2"}, cell_source=text)
    run_sim(
        EXAMPLES / "ccd_single_plating.toml",
        live,
        99,
        {"capacity": "0.3 mAh/cm^2"},
        cell_source=text,
        subscribers=[copy_mid_run],
        flush_interval=0.0,
        block_samples=64,
    )
    return [done.read_bytes(), snapshot.read_bytes()]


class Sandbox:
    """Checks damaged binary files in a worker process, so that a damaged file on which a C library loops
    forever (HDF5 can, on some corrupted metadata) is counted as a hang instead of stopping the fuzzing."""

    def __init__(self, timeout: float = 10.0):
        self.timeout = timeout
        self.hangs: list[bytes] = []
        self._proc: Any = None

    def _start(self) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_sandbox_worker, args=(child,), daemon=True)
        self._proc.start()
        if not self._conn.poll(120.0):  # the worker's imports
            raise AssertionError("the checking process did not start")
        self._conn.recv()

    def check(self, kind: str, *args: Any) -> str:
        """Run check ``kind`` ("run", "vendor", "cli") on ``args`` in the worker: "accepted", "refused" or
        "hang"; raises AssertionError with the worker's traceback when the check failed or the worker died."""
        if self._proc is None or not self._proc.is_alive():
            self._start()
        self._conn.send((kind, args))
        if not self._conn.poll(self.timeout):
            self.close()
            self.hangs.append((kind, args))
            return "hang"
        try:
            status, detail = self._conn.recv()
        except (EOFError, OSError):
            code = self._proc.exitcode if self._proc is not None else None
            self.close()
            raise AssertionError(f"the checking process died (exit code {code}) on {kind} {args!r:.200}") from None
        if status != "ok":
            raise AssertionError(detail)
        return detail

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join()
            self._proc = None


def _sandbox_worker(conn: Any) -> None:
    import traceback

    from daq.cli import build_parser
    from tests.fuzz.test_fuzz_cli import check_cli

    build_parser()  # every command module imported before the first timed check

    workdir = Path(tempfile.mkdtemp(prefix="daq-fuzz-"))
    conn.send(("ready", None))
    while True:
        try:
            kind, args = conn.recv()
        except EOFError:
            return
        try:
            if kind == "run":
                outcome = check_run_file(args[0], workdir)
            elif kind == "vendor":
                outcome = check_vendor(args[0], args[1], workdir)
            else:
                outcome = check_cli(*args)
            conn.send(("ok", outcome))
        except BaseException:  # noqa: BLE001 - reported to the parent as a failure
            conn.send(("crash", traceback.format_exc(limit=8)))


def vendor_files() -> list[tuple[bytes, str]]:
    paths = sorted((ROOT / "tests" / "data").glob("*.mp[rt]")) + sorted((ROOT / "tests" / "data").glob("*.DTA"))
    if VENDOR_DATA.exists():
        paths += sorted(p for p in VENDOR_DATA.iterdir() if p.suffix.lower() in (".mpr", ".mpt", ".dta"))
    return [(p.read_bytes(), p.suffix) for p in paths]


# --- tests ----------------------------------------------------------------------------------------
def test_toml_writer_round_trips():
    for text in PROTOCOL_TEXTS + CELL_TEXTS + RIG_TEXTS:
        doc = tomllib.loads(text)
        assert tomllib.loads(toml_dumps(doc)) == doc
    for text in PROTOCOL_TEXTS:
        assert check_protocol(text) == "accepted"
    for text in CELL_TEXTS:
        assert check_cell(text) == "accepted"


@FAST
@given(doc_or_text(PROTOCOL_TEXTS))
def test_fuzz_protocol_files(text):
    check_protocol(text)


@FAST
@given(doc_or_text(CELL_TEXTS))
def test_fuzz_cell_files(text):
    check_cell(text)


@FAST
@given(doc_or_text(RIG_TEXTS))
def test_fuzz_rig_files(text):
    pytest.importorskip("daq.engine.rig")
    check_rig(text)


@FAST
@given(mutated_doc(NOTIFY_DOC))
def test_fuzz_notify_settings(doc):
    check_notify(doc)


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


@pytest.fixture(scope="module")
def run_files(workdir):
    return make_run_files(workdir)


@pytest.fixture(scope="module")
def sandbox():
    box = Sandbox()
    yield box
    box.close()


def test_fuzz_run_files(run_files, workdir, sandbox):
    """Zeroed spans are left to scripts/fuzz_all.py: one inside a string heap can make the HDF5 library
    loop forever (counted there as a hang; ``daq resume`` probes a file in a child process for that)."""
    outcomes = []

    @settings(max_examples=40, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(run_files).flatmap(lambda b: damaged_bytes(b, ("truncate", "flip", "flip_head"))))
    def damaged(data):
        outcomes.append(sandbox.check("run", data))

    damaged()
    assert "refused" in outcomes and "hang" not in outcomes
    for data in run_files:  # the undamaged files read completely
        assert check_run_file(data, workdir) == "accepted"


def test_fuzz_vendor_recordings(sandbox):
    files = vendor_files()
    if not files:
        pytest.skip("no vendor recordings")

    @settings(max_examples=40, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(files).flatmap(lambda f: damaged_bytes(f[0]).map(lambda b: (b, f[1]))))
    def damaged(item):
        assert sandbox.check("vendor", item[0], item[1]) != "hang"

    damaged()
