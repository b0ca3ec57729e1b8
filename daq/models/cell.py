"""The cell under test: geometry, electrolyte, microstructure and conditions, read from a TOML cell file.

Current densities and capacities in protocols refer to the working-electrode area, so the cell file is
what turns "9 mA/cm^2" into amperes. Everything is SI once loaded.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from daq.core import units as u
from daq.core.errors import ConfigError
from daq.core.tables import ConfigTable, parse_toml, read_user_file
from daq.models.ccd import Microstructure


@dataclass(frozen=True)
class Electrolyte:
    material: str
    relative_density: float  # fraction, 0..1
    thickness: float  # m
    diameter: float  # m
    conductivity: float  # S/m, bulk ionic conductivity at the test temperature
    fracture_toughness: float  # Pa m^0.5


@dataclass(frozen=True)
class Electrodes:
    working_area: float  # m^2 (current densities refer to this area)
    counter_area: float  # m^2
    reference_area: float | None  # m^2, None for a two-electrode cell
    working_diameter: float | None = None  # m, when given as a disc
    counter_diameter: float | None = None
    reference_diameter: float | None = None


@dataclass(frozen=True)
class SimulationParameters:
    """Only read by the simulated cell: seeded cell-to-cell variability and interfacial constants."""

    seed: int = 0
    variability: float = 0.02  # relative spread of the cell's CCD (truncated at 2 sigma)
    interface_asr: float = 1e-3  # ohm m^2, Li | electrolyte charge transfer (10 ohm cm^2)
    sei_asr: float = 2e-4  # ohm m^2, SEI after stabilisation (2 ohm cm^2)
    short_resistance: float = 300.0  # ohm, Li filament after a short
    noise_voltage: float = 2e-4  # V, rms measurement noise
    # State the simulated cell starts in (to rehearse resuming a cell that failed while a run was down).
    start_shorted: bool = False  # a Li filament already spans the electrolyte
    start_damage: float = 0.0  # fraction of interfacial contact already lost to voids, 0..1


@dataclass(frozen=True)
class Cell:
    cell_id: str
    configuration: str  # "three_electrode" or "symmetric"
    electrolyte: Electrolyte
    electrodes: Electrodes
    microstructure: Microstructure
    microstructure_source: str
    stack_pressure: float  # Pa
    pressed_area: float  # m^2, the area the press acts on (electrolyte disc)
    temperature: float  # K
    notes: str = ""
    simulation: SimulationParameters = field(default_factory=SimulationParameters)

    def current(self, current_density: float) -> float:
        """Current (A) for a current density (A/m^2) on the working electrode."""
        return current_density * self.electrodes.working_area

    def attrs(self) -> dict[str, Any]:
        """Flat attribute dict (SI values) for storage; units listed by :func:`attr_units`."""
        flat: dict[str, Any] = {
            "cell_id": self.cell_id,
            "configuration": self.configuration,
            "microstructure_source": self.microstructure_source,
            "stack_pressure": self.stack_pressure,
            "pressed_area": self.pressed_area,
            "temperature": self.temperature,
            "notes": self.notes,
        }
        for prefix, part in (
            ("electrolyte", self.electrolyte),
            ("electrodes", self.electrodes),
            ("microstructure", self.microstructure),
            ("simulation", self.simulation),
        ):
            for key, value in asdict(part).items():
                flat[f"{prefix}.{key}"] = math.nan if value is None else value
        return flat


ATTR_UNITS = {
    "stack_pressure": "Pa",
    "pressed_area": "m^2",
    "temperature": "K",
    "electrolyte.relative_density": "1",
    "electrolyte.thickness": "m",
    "electrolyte.diameter": "m",
    "electrolyte.conductivity": "S/m",
    "electrolyte.fracture_toughness": "Pa m^0.5",
    "electrodes.working_area": "m^2",
    "electrodes.counter_area": "m^2",
    "electrodes.reference_area": "m^2",
    "electrodes.working_diameter": "m",
    "electrodes.counter_diameter": "m",
    "electrodes.reference_diameter": "m",
    "microstructure.pore_radius": "m",
    "microstructure.pore_separation": "m",
    "microstructure.crack_length": "m",
    "microstructure.crack_width": "m",
    "simulation.variability": "1",
    "simulation.interface_asr": "ohm m^2",
    "simulation.sei_asr": "ohm m^2",
    "simulation.short_resistance": "ohm",
    "simulation.noise_voltage": "V",
    "simulation.start_shorted": "1",
    "simulation.start_damage": "1",
}


# Physical bounds of what a cell file describes (SI); they catch unit slips, not unusual cells.
CELL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")  # safe in file names on every system
MAX_SEED = 2**63 - 1
LENGTHS = {  # field: (lowest, highest, display unit)
    "thickness": (1e-6, 0.05, "mm"),
    "diameter": (1e-4, 0.3, "mm"),
    "pore_radius": (1e-10, 1e-3, "um"),
    "pore_separation": (1e-10, 0.01, "um"),
    "crack_length": (1e-10, 0.05, "um"),
    "crack_width": (1e-11, 1e-3, "nm"),
    "electrode_diameter": (1e-5, 0.3, "mm"),
}
MAX_AREA = 0.1  # m^2 (1000 cm^2)
MAX_CONDUCTIVITY = 100.0  # S/m (1 S/cm, beyond any solid electrolyte)
MAX_TOUGHNESS = 1e8  # Pa m^0.5
MAX_PRESSURE = 1e9  # Pa
MIN_TEMPERATURE, MAX_TEMPERATURE = 173.15, 573.15  # K (-100 degC .. 300 degC)
MAX_ASR = 1e3  # ohm m^2
MAX_RESISTANCE = 1e12  # ohm
MAX_NOISE = 1.0  # V


def _length(t: ConfigTable, key: str, bounds: str | None = None, **kw: Any) -> float | None:
    lo, hi, unit = LENGTHS[bounds or key]
    return t.quantity(key, u.LENGTH, lo=lo, hi=hi, unit=unit, **kw)


def _cell_id(meta: ConfigTable) -> str:
    cell_id = meta.text("id")
    if not CELL_ID.fullmatch(cell_id):
        raise ConfigError(
            "cell.id",
            cell_id,
            "must be 1-64 letters, digits, '.', '_', '+' or '-', starting with a letter or digit "
            "(it names files; no spaces or path separators)",
        )
    return cell_id


def _disc_area(sec: ConfigTable, name: str, required: bool) -> tuple[float | None, float | None]:
    """An electrode given by ``<name>_diameter`` (disc) or ``<name>_area``; returns (area, diameter)."""
    diameter = _length(sec, f"{name}_diameter", "electrode_diameter", required=False)
    area = sec.quantity(f"{name}_area", u.AREA, required=False, hi=MAX_AREA, unit="cm^2")
    if diameter is not None and area is not None:
        raise ConfigError(
            sec.at(f"{name}_area"), sec.data[f"{name}_area"], f"give either {name}_diameter or {name}_area, not both"
        )
    if diameter is not None:
        return math.pi * diameter**2 / 4, diameter
    if area is None and required:
        raise sec.missing(
            f"{name}_area",
            f'electrode area missing; give {name}_diameter (e.g. "1 mm") or {name}_area',
            (f"{name}_diameter",),
        )
    return area, None


# Every field of each section, so a misspelt one is named before a required one is reported missing.
_ELECTRODES = {f"{e}_{k}" for e in ("working", "counter", "reference") for k in ("diameter", "area")}
CELL_FIELDS = {
    "cell": {"id", "configuration", "notes"},
    "electrolyte": {"material", "relative_density", "thickness", "diameter", "conductivity", "fracture_toughness"},
    "electrodes": _ELECTRODES,
    "microstructure": {"pore_radius", "pore_separation", "crack_length", "crack_width", "source"},
    "conditions": {"stack_pressure", "pressed_area", "temperature"},
    "simulation": {f.name for f in fields(SimulationParameters)},
}


def cell_from_dict(doc: dict[str, Any]) -> Cell:
    """The cell a parsed cell file describes; the first thing wrong raises ConfigError naming its field."""
    root = ConfigTable(doc, "")
    root.refuse_unknown(CELL_FIELDS)
    for section, known in CELL_FIELDS.items():
        if isinstance(doc.get(section), dict):
            ConfigTable(doc[section], section).refuse_unknown(known)
    meta = root.sub("cell")
    electrolyte, el = _electrolyte(root)
    ed = root.sub("electrodes")
    configuration = meta.text("configuration", "three_electrode")
    if configuration not in ("three_electrode", "symmetric"):
        raise ConfigError("cell.configuration", configuration, "must be 'three_electrode' or 'symmetric'")
    electrodes = _electrodes(ed, configuration)
    micro, ms = _microstructure(root, electrolyte)
    cond = root.sub("conditions")
    pressed_area = cond.quantity("pressed_area", u.AREA, required=False, hi=MAX_AREA, unit="cm^2")
    if pressed_area is None:
        pressed_area = math.pi * electrolyte.diameter**2 / 4
    simulation, sim = _simulation(root)
    cell = Cell(
        cell_id=_cell_id(meta),
        configuration=configuration,
        electrolyte=electrolyte,
        electrodes=electrodes,
        microstructure=micro,
        microstructure_source=ms.text("source", ""),
        stack_pressure=cond.quantity("stack_pressure", u.PRESSURE, required=True, hi=MAX_PRESSURE, unit="MPa"),
        pressed_area=pressed_area,
        temperature=cond.quantity(
            "temperature", u.TEMPERATURE, default=298.15, lo=MIN_TEMPERATURE, hi=MAX_TEMPERATURE, unit="degC"
        ),
        notes=meta.text("notes", ""),
        simulation=simulation,
    )
    for table in (root, meta, el, ed, ms, cond, sim):
        table.finish()
    return cell


def _electrolyte(root: ConfigTable) -> tuple[Electrolyte, ConfigTable]:
    el = root.sub("electrolyte")
    electrolyte = Electrolyte(
        material=el.text("material"),
        relative_density=el.quantity("relative_density", u.FRACTION, required=True),
        thickness=_length(el, "thickness", required=True),
        diameter=_length(el, "diameter", required=True),
        conductivity=el.quantity("conductivity", u.CONDUCTIVITY, required=True, hi=MAX_CONDUCTIVITY),
        fracture_toughness=el.quantity(
            "fracture_toughness", u.FRACTURE_TOUGHNESS, default=0.23e6, hi=MAX_TOUGHNESS, unit="MPa m^0.5"
        ),
    )
    if electrolyte.relative_density > 1:
        raise ConfigError("electrolyte.relative_density", el.data["relative_density"], "must be at most 100 %")
    return electrolyte, el


def _electrodes(ed: ConfigTable, configuration: str) -> Electrodes:
    """Working, counter and (three-electrode cells only, required there) reference discs."""
    we_area, we_d = _disc_area(ed, "working", True)
    ce_area, ce_d = _disc_area(ed, "counter", True)
    re_area, re_d = _disc_area(ed, "reference", configuration == "three_electrode")
    return Electrodes(we_area, ce_area, re_area, we_d, ce_d, re_d)


def _microstructure(root: ConfigTable, electrolyte: Electrolyte) -> tuple[Microstructure, ConfigTable]:
    ms = root.sub("microstructure")
    micro = Microstructure(
        pore_radius=_length(ms, "pore_radius", required=True),
        pore_separation=_length(ms, "pore_separation", required=True),
        crack_length=_length(ms, "crack_length", required=True),
        crack_width=_length(ms, "crack_width", required=True),
    )
    if micro.pore_radius > electrolyte.thickness:
        raise ConfigError(
            "microstructure.pore_radius", ms.data["pore_radius"], "must be smaller than the electrolyte's thickness"
        )
    return micro, ms


def _simulation(root: ConfigTable) -> tuple[SimulationParameters, ConfigTable]:
    """The optional [simulation] table: seed, cell-to-cell variability, starting state, model parameters."""
    sim = root.sub("simulation", required=False)
    seed = sim.raw("seed")
    seed = 0 if seed is None else seed
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise ConfigError("simulation.seed", seed, f"must be a whole number from 0 to {MAX_SEED}")
    variability = sim.quantity("variability", u.FRACTION, default=0.02, positive=False)
    if not 0 <= variability < 0.5:
        raise ConfigError("simulation.variability", sim.data.get("variability"), "must be between 0 and 50 %")
    defaults = SimulationParameters()
    start_shorted = sim.flag("start_shorted", False)
    start_damage = sim.quantity("start_damage", u.FRACTION, default=0.0, positive=False)
    if not 0 <= start_damage < 1:
        raise ConfigError("simulation.start_damage", sim.data.get("start_damage"), "must be at least 0 and below 100 %")
    simulation = SimulationParameters(
        seed=seed,
        variability=variability,
        interface_asr=sim.quantity(
            "interface_asr", u.AREA_SPECIFIC_RESISTANCE, default=defaults.interface_asr, hi=MAX_ASR
        ),
        sei_asr=sim.quantity("sei_asr", u.AREA_SPECIFIC_RESISTANCE, default=defaults.sei_asr, hi=MAX_ASR),
        short_resistance=sim.quantity(
            "short_resistance", u.RESISTANCE, default=defaults.short_resistance, hi=MAX_RESISTANCE
        ),
        noise_voltage=sim.quantity(
            "noise_voltage", u.VOLTAGE, default=defaults.noise_voltage, positive=False, lo=0.0, hi=MAX_NOISE
        ),
        start_shorted=start_shorted,
        start_damage=start_damage,
    )
    return simulation, sim


def cell_from_text(text: str, overrides: dict[str, Any] | None = None, source: str = "<cell>") -> Cell:
    """A cell from cell-file text; ``overrides`` maps dotted keys (``simulation.seed``) to new values."""
    doc = parse_toml(text, "cell", source)
    for key, value in (overrides or {}).items():
        section, _, name = key.partition(".")
        if not name or section not in doc or not isinstance(doc[section], dict):
            raise ConfigError(f"cell.{key}", value, "unknown cell field; use section.field, e.g. simulation.seed")
        doc[section][name] = value
    try:
        return cell_from_dict(doc)
    except ConfigError as exc:
        raise exc.located(source) from None


def read_cell_text(path: str | Path) -> str:
    return read_user_file(path, "cell")


def load_cell(path: str | Path, overrides: dict[str, Any] | None = None) -> Cell:
    """Read a cell file; ``overrides`` maps dotted keys (``simulation.seed``) to replacement values."""
    return cell_from_text(read_cell_text(path), overrides, str(path))
