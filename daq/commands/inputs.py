"""What several commands read from their command lines: protocol and cell files with ``--set`` overrides."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from daq.core.errors import ConfigError
from daq.models.cell import cell_from_text, read_cell_text
from protocols.loader import load_protocol

MAX_SPEED = 1e6  # beyond, one wall-clock poll spans more samples than a block can hold
DEFAULT_PROTOCOL = Path(__file__).resolve().parents[2] / "protocols" / "examples" / "ccd_single_plating.toml"


def parse_settings(items: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``--set`` items -> (protocol overrides, cell overrides ``cell.section.field``)."""
    proto: dict[str, Any] = {}
    cell: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ConfigError("--set", item, 'expected name=value, e.g. --set current_density="10 mA/cm^2"')
        typed: Any = value
        if re.fullmatch(r"[-+]?\d+", value):
            typed = int(value)
        elif value in ("true", "false"):
            typed = value == "true"
        if key.startswith("cell."):
            cell[key[5:]] = typed
        else:
            proto[key] = typed
    return proto, cell


def load_inputs(args: argparse.Namespace):
    overrides, cell_overrides = parse_settings(args.set)
    protocol = load_protocol(args.protocol, overrides)
    cell_path = args.cell or protocol.cell_path
    if cell_path is None:
        raise ConfigError("--cell", None, "the protocol names no cell; give --cell CELLFILE")
    cell_text = read_cell_text(cell_path)
    cell = cell_from_text(cell_text, cell_overrides, str(cell_path))
    return protocol, cell, {"cell_source": cell_text, "cell_overrides": cell_overrides}
