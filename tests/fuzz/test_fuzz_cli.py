"""Bad command lines: every subcommand, every option, with junk values and broken files. The answer is
one line and exit code 2 (or a normal run, exit 0), never a traceback or an internal error.

Each command line runs in-process through ``daq.cli.main`` with stdout and stderr captured, inside a
worker process (tests.fuzz.test_fuzz_files.Sandbox) so that a hang is reported instead of blocking. The
strategy and check are shared with scripts/fuzz_all.py.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import CELLS, EXAMPLES, ROOT
from tests.fuzz.test_fuzz_files import NUMBERS, Sandbox, make_run_files, quantities

# Left out: the GUI (a window), and values that make a valid run last for real hours (a speed of 1e-7).
EXCLUDED_COMMANDS = ("gui",)
SPEEDS = ["0", "-1", "nan", "inf", "-inf", "abc", "1e400", "2e6", "", "1e6x"]


def make_pool(root: Path) -> dict[str, list[str]]:
    """Files a command line may name: good ones, broken ones, the wrong kind, missing ones."""
    root.mkdir(parents=True, exist_ok=True)
    good_protocol = root / "good.toml"
    good_protocol.write_text(
        (EXAMPLES / "ccd_single_plating.toml")
        .read_text()
        .replace('cell = "cells/li6ps5cl_99.toml"', f'cell = "{CELLS / "li6ps5cl_99.toml"}"')
        .replace('capacity = "8 mAh/cm^2"', 'capacity = "0.2 mAh/cm^2"')
    )
    (root / "broken.toml").write_text("[protocol\nname = 'x'\n")
    (root / "warp.toml").write_text("[[steps]]\nkind = 'warp'\n")
    (root / "empty.toml").write_text("")
    (root / "binary.toml").write_bytes(bytes(range(256)) * 4)
    (root / "latin1.toml").write_bytes("name = 'caf\xe9'\n".encode("latin-1"))
    shutil.copy(CELLS / "li6ps5cl_99.toml", root / "cell.toml")
    (root / "cell_bad.toml").write_text("[cell]\nid = 'x'\n[electrolyte]\nthickness = '-1 mm'\n")
    (root / "rig_sim.toml").write_text(
        f'[rig]\nname = "bench"\n[instruments.sim]\nkind = "sim"\n'
        f'[channels.A]\ninstrument = "sim"\ncell = "{CELLS / "li6ps5cl_99.toml"}"\n'
    )
    (root / "rig_bad.toml").write_text('[instruments.x]\nkind = "warp"\n')
    (root / "notify.toml").write_text('[notify]\ncommand = ["true"]\n')
    (root / "notify_bad.toml").write_text("[notify]\nemail = {host = 3}\n")
    done, snapshot = make_run_files(root)
    (root / "done.h5").write_bytes(done)
    (root / "interrupted.h5").write_bytes(snapshot)
    (root / "truncated.h5").write_bytes(done[: len(done) // 3])
    flipped = bytearray(done)
    flipped[100:120] = b"\xff" * 20
    (root / "flipped.h5").write_bytes(bytes(flipped))
    data = ROOT / "tests" / "data"
    for p in sorted(data.glob("*.mpt"))[:1] + sorted(data.glob("*.DTA"))[:1]:
        shutil.copy(p, root / p.name)
        (root / f"cut{p.suffix}").write_bytes(p.read_bytes()[:300])
    (root / "junk.mpr").write_bytes(b"BIO-LOGIC MODULAR FILE\x1a" + bytes(50))
    (root / "dir").mkdir(exist_ok=True)
    files = [str(p) for p in sorted(root.iterdir())]
    return {"files": files + [str(root / "missing.toml"), str(root / "missing.h5"), "/dev/null", ""]}


def cli_spec() -> dict[str, tuple[list[argparse.Action], list[argparse.Action]]]:
    """Each subcommand's positionals and options, read from the parser itself."""
    from daq.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    spec = {}
    for name, p in sub.choices.items():
        if name in EXCLUDED_COMMANDS:
            continue
        positionals = [a for a in p._actions if not a.option_strings]
        options = [a for a in p._actions if a.option_strings and "-h" not in a.option_strings]
        spec[name] = (positionals, options)
    return spec


def junk() -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=10), quantities(), st.sampled_from(NUMBERS + ["--", "-", "--sim", "-x"]))


def settings_items() -> st.SearchStrategy[str]:
    keys = [
        "current_density",
        "capacity",
        "steps.2.capacity",
        "steps.9.duration",
        "cell.simulation.seed",
        "cell.simulation.start_shorted",
        "cell.electrolyte.thickness",
        "nonsense",
        "cell.",
        "",
        "steps.x.y",
    ]
    return st.builds(
        lambda k, sep, v: f"{k}{sep}{v}",
        st.sampled_from(keys),
        st.sampled_from(["=", "", "=="]),
        st.one_of(quantities(), st.sampled_from(["true", "-3", "1e9"]), st.text(max_size=6)),
    )


@st.composite
def command_lines(draw: st.DrawFn, spec: dict[str, Any], pool: dict[str, list[str]]) -> list[str]:
    command = draw(st.sampled_from(sorted(spec)))
    positionals, options = spec[command]
    files = st.sampled_from(pool["files"])
    argv = [command]
    for action in positionals:
        if action.nargs == "?" and draw(st.booleans()):
            continue
        count = draw(st.integers(1, 3)) if action.nargs in ("+", "*", argparse.REMAINDER) else 1
        for _ in range(count):
            argv.append(
                draw(
                    st.one_of(files, files, junk(), st.sampled_from(["ccd", "void_free_limit", "fracture", "filament"]))
                )
            )
    for action in draw(st.lists(st.sampled_from(options), max_size=4, unique_by=id)) if options else []:
        flag = draw(st.sampled_from(action.option_strings))
        argv.append(flag)
        if action.nargs == 0:
            continue
        dest = action.dest
        if dest == "speed":
            argv.append(draw(st.sampled_from(SPEEDS)))
        elif dest == "set":
            argv.append(draw(settings_items()))
        elif dest == "out":
            argv.append(draw(st.sampled_from(["out-new.h5", "out-new.png", "", "/", "dir", "/dev/null/x.h5"])))
        else:
            argv.append(draw(st.one_of(files, junk())))
    if draw(st.integers(0, 9)) == 0:
        argv.insert(draw(st.integers(0, len(argv))), draw(junk()))
    return argv


def check_cli(argv: list[str], cwd: str | None = None) -> str:
    """Run ``daq ARGV`` in-process; "accepted" (exit 0, or the code of how a run ended short of a fault)
    or "refused" (exit 2, one line on stderr)."""
    from daq.cli import main
    from daq.core.exit_codes import BY_OUTCOME, FAULT

    out, err = io.StringIO(), io.StringIO()
    previous = os.getcwd()
    if cwd:
        os.chdir(cwd)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        os.chdir(previous)
    text = err.getvalue()
    assert "Traceback" not in text and "internal error" not in text, f"daq {argv!r}: {text}"
    assert code in {0, 2, *BY_OUTCOME.values()} - {FAULT}, f"daq {argv!r} exited with {code}: {text}"
    if code == 2:
        lines = [line for line in text.split("\n") if line.strip() and not line.startswith("daq: warning")]
        assert len(lines) == 1 and lines[0].startswith("daq: error: "), f"daq {argv!r}: {text!r}"
        return "refused"
    return "accepted"


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-pool")
    return root, make_pool(root)


@pytest.fixture(scope="module")
def sandbox():
    box = Sandbox(timeout=60.0)
    yield box
    box.close()


def test_known_bad_command_lines(pool, sandbox):
    root, _ = pool
    for argv in (
        ["run", str(root / "good.toml"), "--sim", "--speed", "inf"],
        ["run", str(root / "binary.toml"), "--sim"],
        ["run", str(root / "latin1.toml"), "--sim"],
        ["validate", str(root / "dir")],
        ["resume", str(root / "truncated.h5"), "--sim"],
        ["resume", str(root / "flipped.h5"), "--sim"],
        ["report", str(root / "truncated.h5")],
        ["report", ""],
        ["import", str(root / "junk.mpr")],
        ["instruments", str(root / "rig_bad.toml")],
        ["predict"],
        ["warp"],
    ):
        assert sandbox.check("cli", argv, str(root)) == "refused", argv


def test_fuzz_command_lines(pool, sandbox):
    root, files = pool
    spec = cli_spec()
    outcomes = []

    @settings(max_examples=30, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(command_lines(spec, files))
    def fuzz(argv):
        outcomes.append(sandbox.check("cli", argv, str(root)))

    fuzz()
    assert "hang" not in outcomes and outcomes.count("refused") > len(outcomes) // 2
