"""Shared fixtures: example files and a helper that runs a protocol on the simulator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "protocols" / "examples"
CELLS = EXAMPLES / "cells"
VENDOR_DATA = ROOT.parent / "shared" / "data" / "vendor"


@pytest.fixture
def examples() -> Path:
    return EXAMPLES


def cell_file(density: int) -> Path:
    return CELLS / f"li6ps5cl_{density}.toml"


def run_sim(
    protocol_path: Path | str,
    out: Path,
    density: int | None = None,
    overrides: dict | None = None,
    cell_overrides: dict | None = None,
    **kwargs,
):
    """Run a protocol file on the simulated rig in virtual time; returns the RunResult."""
    from daq.core.clock import VirtualClock
    from daq.engine.runner import run_protocol
    from daq.models.cell import load_cell
    from protocols.loader import load_protocol
    from simulators.rig import simulated_rig

    protocol = load_protocol(protocol_path, overrides)
    cell = load_cell(cell_file(density) if density else protocol.cell_path, cell_overrides)
    clock = VirtualClock()
    _, pstat, transducer = simulated_rig(cell, clock)
    return run_protocol(protocol, cell, pstat, clock, out, transducer=transducer, **kwargs)


_KILL_AFTER_BLOCKS = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from tests.conftest import run_sim, EXAMPLES
    from daq.models.cell import read_cell_text
    from daq.core.records import Samples
    count = [0]
    def listener(record):
        if isinstance(record, Samples):
            count[0] += 1
            if count[0] == {blocks}:
                os.kill(os.getpid(), signal.SIGKILL)
    cell = EXAMPLES / "cells" / "li6ps5cl_99.toml"
    run_sim(EXAMPLES / {protocol!r}, {out!r}, 99, overrides={overrides!r}, subscribers=[listener],
            flush_interval=0.0, cell_source=read_cell_text(cell))
""")


def kill_run(out: Path, protocol: str, blocks: int, overrides: dict | None = None) -> Path:
    """Run an example protocol on the 99 % cell in a subprocess and SIGKILL it after ``blocks`` blocks."""
    code = _KILL_AFTER_BLOCKS.format(
        root=str(ROOT), out=str(out), blocks=blocks, protocol=protocol, overrides=overrides or {}
    )
    proc = subprocess.run([sys.executable, "-c", code], timeout=120)
    assert proc.returncode == -signal.SIGKILL
    return out
