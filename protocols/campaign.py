"""CCD campaign files: one protocol run at several current densities x repeats, a fresh cell each."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from daq.core import units as u
from daq.core.errors import ConfigError
from daq.core.tables import ConfigTable, read_toml
from daq.models.cell import MAX_SEED, load_cell
from protocols import limits as L
from protocols.loader import load_protocol

MAX_REPEATS = 100
MAX_DENSITIES = 100


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
    text, doc = read_toml(path, "campaign")
    try:
        campaign = _campaign(doc, path, text)
    except ConfigError as exc:
        raise exc.located(str(path)) from None
    _check_inputs(campaign)
    return campaign


def _check_inputs(campaign: Campaign) -> None:
    """Read the protocol and every cell now, so a bad one is refused before the first test runs."""
    for series in campaign.series:
        for cd in series.current_densities:
            load_protocol(campaign.protocol_path, {"current_density": f"{u.to_unit(cd, 'mA/cm^2'):.6g} mA/cm^2"})
        cell = load_cell(series.cell_path)
        # each test's seed is derived from the cell's (seed * 1000 + series, density and repeat digits)
        if cell.simulation.seed * 1000 + 999 > MAX_SEED:
            raise ConfigError(
                "simulation.seed",
                cell.simulation.seed,
                f"too large for a campaign (at most {MAX_SEED // 1000 - 1})",
                series.cell_path,
            )


def _campaign(doc: dict, path: Path, text: str) -> Campaign:
    root = ConfigTable(doc, "")
    meta = root.sub("campaign")
    name = meta.text("name", path.stem)
    protocol = meta.text("protocol")
    repeats = meta.integer("repeats", 3, minimum=1, maximum=MAX_REPEATS)
    raw_series = root.raw("series")
    if not isinstance(raw_series, list) or not raw_series:
        raise ConfigError("series", None, "give at least one [[series]] with a cell and current_densities")
    series = []
    for i, data in enumerate(raw_series, 1):
        t = ConfigTable(data, f"series.{i}")
        cell = t.text("cell")
        values = t.raw("current_densities")
        if not isinstance(values, list) or not values or len(values) > MAX_DENSITIES:
            raise ConfigError(
                t.at("current_densities"),
                values,
                (f'give a list of 1 to {MAX_DENSITIES} such as ["1 mA/cm^2", "2 mA/cm^2"]'),
            )
        densities = []
        for j, v in enumerate(values, 1):
            cd = u.parse(v, u.CURRENT_DENSITY, t.at(f"current_densities.{j}"))
            if not 0 < cd <= L.MAX_CURRENT_DENSITY:
                raise ConfigError(t.at(f"current_densities.{j}"), v, "must be positive and at most 1000 mA/cm^2")
            densities.append(cd)
        t.finish()
        series.append(Series(str((path.parent / cell).resolve()), tuple(sorted(densities))))
    meta.finish()
    root.finish()
    return Campaign(name, str((path.parent / protocol).resolve()), repeats, tuple(series), text, str(path))
