"""What several commands read from their command lines: protocol and cell files with ``--set`` overrides."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from daq.core import units as u
from daq.core.errors import ConfigError
from daq.models.cell import cell_from_text, read_cell_text
from protocols.loader import load_protocol

MAX_SPEED = 1e6  # beyond, one wall-clock poll spans more samples than a block can hold
MIN_SPEED = 1e-3  # below, a one-second sample takes over a quarter of an hour: surely a slip
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


def check_speed(speed: float | None) -> None:
    """``--speed``: a finite multiple of real time the scaled clock can keep."""
    if speed is not None and not MIN_SPEED <= speed <= MAX_SPEED:  # also refuses nan and inf
        raise ConfigError("--speed", speed, f"must be a multiple of real time between {MIN_SPEED:g} and {MAX_SPEED:g}")


def check_where(args: argparse.Namespace, command: str, verb: str = "run") -> None:
    """``--sim`` or ``--rig``: exactly one of them."""
    if args.sim and args.rig:
        raise ConfigError(command, None, "--sim and --rig exclude each other; give one of them")
    if not args.sim and not args.rig:
        raise ConfigError(command, None, f"choose where to {verb}: --sim (simulator) or --rig RIG.toml")


def unquoted_value_hint(settings: list[str], stray: str) -> str | None:
    """A hint when ``stray`` (a positional argument) is the unit of a ``--set`` value the shell split off
    (``--set current_density=9 mA/cm^2`` unquoted), else None."""
    if not u.is_unit(stray):
        return None
    for item in settings:
        key, sep, value = item.partition("=")
        if sep and re.fullmatch(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*", value):
            return (
                f"'{stray}' looks like the unit of --set {item}, split off by the shell; "
                f'quote the value: --set {key.strip()}="{value.strip()} {stray}"'
            )
    return None


def load_inputs(args: argparse.Namespace):
    check_speed(getattr(args, "speed", None))
    hint = unquoted_value_hint(args.set, args.protocol)
    if hint and not Path(args.protocol).exists():
        raise ConfigError("--set", None, hint)
    overrides, cell_overrides = parse_settings(args.set)
    protocol = load_protocol(args.protocol, overrides)
    cell_path = args.cell or protocol.cell_path
    if cell_path is None:
        raise ConfigError("--cell", None, "the protocol names no cell; give --cell CELLFILE")
    cell_text = read_cell_text(cell_path)
    cell = cell_from_text(cell_text, cell_overrides, str(cell_path))
    return protocol, cell, {"cell_source": cell_text, "cell_overrides": cell_overrides}
