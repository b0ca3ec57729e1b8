"""CCD campaign files: one protocol run at several current densities x repeats, a fresh cell each."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from daq import units as u
from daq.errors import ConfigError


@dataclass(frozen=True)
class Series:
    cell_path: str
    current_densities: tuple[float, ...]  # A/m^2, ascending


@dataclass(frozen=True)
class Campaign:
    name: str
    protocol_path: str
    repeats: int
    series: tuple[Series, ...]
    source_text: str
    source_path: str


def load_campaign(path: str | Path) -> Campaign:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        doc = tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError("campaign", str(path), "file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError("campaign", str(path), f"not valid TOML: {exc}") from None
    try:
        return _campaign(doc, path, text)
    except ConfigError as exc:
        raise exc.located(str(path)) from None


def _campaign(doc: dict, path: Path, text: str) -> Campaign:
    extra = sorted(set(doc) - {"campaign", "series"})
    if extra:
        raise ConfigError(extra[0], None, "unknown table; expected [campaign] and [[series]]")
    meta = doc.get("campaign")
    if not isinstance(meta, dict):
        raise ConfigError("campaign", None, "missing [campaign] table")
    protocol = meta.get("protocol")
    if not isinstance(protocol, str):
        raise ConfigError("campaign.protocol", protocol,
                          "give the protocol file to run, e.g. \"ccd_single_plating.toml\"")
    repeats = meta.get("repeats", 3)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ConfigError("campaign.repeats", repeats, "must be a whole number of at least 1")
    raw_series = doc.get("series")
    if not isinstance(raw_series, list) or not raw_series:
        raise ConfigError("series", None, "give at least one [[series]] with a cell and current_densities")
    series = []
    for i, s in enumerate(raw_series, 1):
        where = f"series.{i}"
        if not isinstance(s, dict) or not isinstance(s.get("cell"), str):
            raise ConfigError(f"{where}.cell", None, "give the cell file of this series")
        values = s.get("current_densities")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.current_densities", values,
                              "give a list such as [\"1 mA/cm^2\", \"2 mA/cm^2\"]")
        densities = []
        for j, v in enumerate(values, 1):
            cd = u.parse(v, u.CURRENT_DENSITY, f"{where}.current_densities.{j}")
            if not cd > 0:
                raise ConfigError(f"{where}.current_densities.{j}", v, "must be positive")
            densities.append(cd)
        unknown = sorted(set(s) - {"cell", "current_densities"})
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}", s[unknown[0]], "unknown field")
        series.append(Series(str((path.parent / s["cell"]).resolve()), tuple(sorted(densities))))
    unknown = sorted(set(meta) - {"name", "protocol", "repeats"})
    if unknown:
        raise ConfigError(f"campaign.{unknown[0]}", meta[unknown[0]], "unknown field")
    return Campaign(str(meta.get("name", path.stem)), str((path.parent / protocol).resolve()), repeats,
                    tuple(series), text, str(path))
