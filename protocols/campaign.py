"""CCD campaign files: one protocol run at several current densities x repeats, a fresh cell each."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from daq.core import units as u
from daq.core.errors import ConfigError
from daq.core.tables import ConfigTable


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
    root = ConfigTable(doc, "")
    meta = root.sub("campaign")
    name = meta.text("name", path.stem)
    protocol = meta.text("protocol")
    repeats = meta.integer("repeats", 3, minimum=1)
    raw_series = root.raw("series")
    if not isinstance(raw_series, list) or not raw_series:
        raise ConfigError("series", None, "give at least one [[series]] with a cell and current_densities")
    series = []
    for i, data in enumerate(raw_series, 1):
        t = ConfigTable(data, f"series.{i}")
        cell = t.text("cell")
        values = t.raw("current_densities")
        if not isinstance(values, list) or not values:
            raise ConfigError(t.at("current_densities"), values, 'give a list such as ["1 mA/cm^2", "2 mA/cm^2"]')
        densities = []
        for j, v in enumerate(values, 1):
            cd = u.parse(v, u.CURRENT_DENSITY, t.at(f"current_densities.{j}"))
            if not cd > 0:
                raise ConfigError(t.at(f"current_densities.{j}"), v, "must be positive")
            densities.append(cd)
        t.finish()
        series.append(Series(str((path.parent / cell).resolve()), tuple(sorted(densities))))
    meta.finish()
    root.finish()
    return Campaign(name, str((path.parent / protocol).resolve()), repeats, tuple(series), text, str(path))
