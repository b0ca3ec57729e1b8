"""Shared fixtures: example files and a helper that runs a protocol on the simulator."""

from __future__ import annotations

import os
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


def run_sim(protocol_path: Path | str, out: Path, density: int | None = None, overrides: dict | None = None,
            cell_overrides: dict | None = None, **kwargs):
    """Run a protocol file on the simulated rig in virtual time; returns the RunResult."""
    from daq.cell import load_cell
    from daq.clock import VirtualClock
    from daq.runner import run_protocol
    from protocols.loader import load_protocol
    from simulators.rig import simulated_rig

    protocol = load_protocol(protocol_path, overrides)
    cell = load_cell(cell_file(density) if density else protocol.cell_path, cell_overrides)
    clock = VirtualClock()
    _, pstat, transducer = simulated_rig(cell, clock)
    return run_protocol(protocol, cell, pstat, clock, out, transducer=transducer, **kwargs)
