"""``daq predict MODEL ...``: the physics models from the command line, with units written out.

    daq predict ccd --cell CELLFILE                       critical current density from microstructure
    daq predict ccd --pore-radius "0.5 um" --pore-separation "22 um" --crack-length "1.5 um"
                    --crack-width "125 nm"
    daq predict void-limit --pressure "7 MPa" [--asr "10 ohm cm^2"]
    daq predict fracture --flaw "1 um" [--toughness "0.6 MPa m^0.5"]
    daq predict tip-current --growth-rate "1 um/s"
    daq predict filament --resistance "440 ohm" --thickness "1.2 mm"

Values are parsed to SI at this edge (daq.core.units) and the models work in SI; a bad value is refused in
one line that names the argument.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from daq.core import units as u
from daq.core.errors import ConfigError
from daq.models import ccd, cracks, voids
from daq.models.cell import LENGTHS, MAX_PRESSURE, MAX_TOUGHNESS, load_cell

CCD_UNIT = "mA/cm^2"
MICROSTRUCTURE = (  # option, Microstructure field, display unit
    ("pore-radius", "pore_radius", "um"),
    ("pore-separation", "pore_separation", "um"),
    ("crack-length", "crack_length", "um"),
    ("crack-width", "crack_width", "nm"),
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="model predictions (CCD, void-free limit, fracture, filament ...)",
        description="Physics model predictions; write every value with its unit.",
    )
    models = p.add_subparsers(dest="model", required=True, metavar="MODEL", parser_class=type(p))

    m = models.add_parser("ccd", help="critical current density from the electrolyte microstructure")
    m.add_argument("--cell", help="cell file whose [microstructure] to use")
    for option, _, unit in MICROSTRUCTURE:
        m.add_argument(f"--{option}", metavar="LENGTH", help=f'e.g. "1 {unit}" (overrides the cell file)')
    m.add_argument(
        "--toughness",
        metavar="K_IC",
        help='electrolyte fracture toughness, e.g. "0.23 MPa m^0.5" (default: cell file, else 0.23)',
    )
    m.set_defaults(func=cmd_ccd)

    m = models.add_parser("void-limit", help="highest stripping current density without voids")
    m.add_argument("--pressure", required=True, help='stack pressure, e.g. "7 MPa"')
    m.add_argument("--asr", default="10 ohm cm^2", help="interface area-specific resistance (default 10 ohm cm^2)")
    m.set_defaults(func=cmd_void_limit)

    m = models.add_parser("fracture", help="stress to propagate a flaw, and the overpotential that reaches it")
    m.add_argument("--flaw", required=True, help='flaw (crack) size, e.g. "1 um"')
    m.add_argument("--toughness", default="0.6 MPa m^0.5", help="fracture toughness (default LLZO, 0.6 MPa m^0.5)")
    m.set_defaults(func=cmd_fracture)

    m = models.add_parser("tip-current", help="current density at a dendrite tip from its growth rate")
    m.add_argument("--growth-rate", required=True, help='tip velocity, e.g. "1 um/s"')
    m.set_defaults(func=cmd_tip_current)

    m = models.add_parser("filament", help="Li filament diameter from the resistance of a shorted cell")
    m.add_argument("--resistance", required=True, help='filament (or shorted-cell) resistance, e.g. "440 ohm"')
    m.add_argument("--thickness", required=True, help='electrolyte thickness the filament crosses, e.g. "1.2 mm"')
    m.set_defaults(func=cmd_filament)


# Largest physically sensible value of each option (SI, display unit); lengths as in cell files.
_MAXIMA = {
    **{option: LENGTHS[name][1:] for option, name, _ in MICROSTRUCTURE},
    "toughness": (MAX_TOUGHNESS, "MPa m^0.5"),
    "pressure": (MAX_PRESSURE, "MPa"),
    "asr": (1e3, "ohm cm^2"),
    "flaw": (0.05, "mm"),
    "growth-rate": (1.0, "um/s"),
    "resistance": (1e12, "ohm"),
    "thickness": (0.05, "mm"),
}


def _value(args: argparse.Namespace, option: str, kind: u.Kind, positive: bool = True) -> float:
    text = getattr(args, option.replace("-", "_"))
    value = u.parse(text, kind, f"--{option}")
    if positive and not value > 0:
        raise ConfigError(f"--{option}", text, f"must be a positive {kind.name}")
    if not positive and value < 0:
        raise ConfigError(f"--{option}", text, "must not be negative")
    highest, unit = _MAXIMA.get(option, (None, ""))
    if highest is not None and value > highest:
        raise ConfigError(f"--{option}", text, f"must be at most {u.fmt(highest, unit)}")
    return value


def cmd_ccd(args: argparse.Namespace) -> int:
    cell = load_cell(args.cell) if args.cell else None
    values = {}
    for option, name, _ in MICROSTRUCTURE:
        if getattr(args, option.replace("-", "_")) is not None:
            values[name] = _value(args, option, u.LENGTH)
        elif cell is not None:
            values[name] = getattr(cell.microstructure, name)
        else:
            raise ConfigError(
                f"--{option}",
                None,
                "missing; give --cell CELLFILE or all of " + ", ".join(f"--{o}" for o, _, _ in MICROSTRUCTURE),
            )
    ms = ccd.Microstructure(**values)
    if args.toughness is not None:
        toughness = _value(args, "toughness", u.FRACTURE_TOUGHNESS)
    else:
        toughness = cell.electrolyte.fracture_toughness if cell else ccd.LITERATURE.fracture_toughness
    params = replace(ccd.calibrated(), fracture_toughness=toughness)
    pred = ccd.predict(ms, params)
    print(
        f"CCD {u.fmt(pred.value, CCD_UNIT, 3)} (band {u.to_unit(pred.low, CCD_UNIT):.3g}-"
        f"{u.to_unit(pred.high, CCD_UNIT):.3g} {CCD_UNIT})"
    )
    if pred.warning:
        print(f"  warning: {pred.warning}")
    source = f"cell {cell.cell_id} ({args.cell})" if cell else "command line"
    micro = ", ".join(f"{name.replace('_', ' ')} {u.fmt(values[name], unit)}" for _, name, unit in MICROSTRUCTURE)
    print(f"  microstructure from {source}: {micro}")
    print(
        f"  model: {ccd.MODEL_NAME} v{ccd.MODEL_VERSION}; K_IC {u.fmt(toughness, 'MPa m^0.5')}, "
        f"creep exponent {params.creep_exponent:.3g} (calibrated on published Li6PS5Cl CCDs)"
    )
    return 0


def cmd_void_limit(args: argparse.Namespace) -> int:
    pressure = _value(args, "pressure", u.PRESSURE)
    asr = _value(args, "asr", u.AREA_SPECIFIC_RESISTANCE)
    limit = voids.void_free_limit(pressure, asr)
    print(
        f"void-free stripping limit {u.fmt(limit, CCD_UNIT)} at {u.fmt(pressure, 'MPa')} stack pressure, "
        f"interface {u.fmt(asr, 'ohm cm^2')}"
    )
    return 0


def cmd_fracture(args: argparse.Namespace) -> int:
    flaw = _value(args, "flaw", u.LENGTH)
    toughness = _value(args, "toughness", u.FRACTURE_TOUGHNESS)
    stress = cracks.fracture_stress(flaw, toughness)
    print(
        f"fracture stress {u.fmt(stress, 'MPa')} for a {u.fmt(flaw, 'um')} flaw (K_IC {u.fmt(toughness, 'MPa m^0.5')})"
    )
    print(f"overpotential to crack {u.fmt(cracks.cracking_overpotential(stress), 'V')}")
    return 0


def cmd_tip_current(args: argparse.Namespace) -> int:
    rate = _value(args, "growth-rate", u.VELOCITY, positive=False)
    print(f"tip current density {u.fmt(cracks.tip_current_density(rate), CCD_UNIT)} at {u.fmt(rate, 'um/s')}")
    return 0


def cmd_filament(args: argparse.Namespace) -> int:
    resistance = _value(args, "resistance", u.RESISTANCE)
    thickness = _value(args, "thickness", u.LENGTH)
    d = cracks.filament_diameter(resistance, thickness)
    print(
        f"filament diameter {u.fmt(d, 'um')} (straight Li wire of {u.fmt(resistance, 'ohm')} "
        f"across {u.fmt(thickness, 'mm')})"
    )
    return 0
