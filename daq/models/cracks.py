"""Crack and filament relations for Li dendrites in ceramic electrolytes (science.md 2.3).

Order-of-magnitude tools to read a failed cell and to judge whether a plating condition can crack the
electrolyte, not a growth model:

    filament diameter     d = sqrt(4 rho_Li t / (pi R))     straight Li wire of length t shorting the cell
    fracture stress       sigma = K_IC / sqrt(pi a)           flaw (crack) of size a, geometry factor 1
    cracking overpotential  dE = sigma V_m / F                electrodeposition stress sigma = F dE / V_m
    tip current density   j = z F (dx/dt) / V_m               Li needed to advance the tip at dx/dt

Published numbers they are meant to reproduce: a shorted Li | LLZTO | Li cell measured 487 ohm and the
filament alone 440 ohm (the difference is contacts and the remaining ionic path); through a 1.2 mm
pellet, 440 ohm is a filament about 0.57 um across. With the LLZO single-crystal fracture toughness
K_IC = 0.6 MPa m^0.5, a 1 um flaw breaks at about 340 MPa, reached at only about 46 mV of
overpotential: which is why dendrites crack garnets at modest currents when the interface is uneven.
"""

from __future__ import annotations

import math

from daq.models.constants import RESISTIVITY_LI, V_M_LI, F

MODEL_NAME = "crack and filament relations (science.md 2.3)"
MODEL_VERSION = "1"
LLZO_FRACTURE_TOUGHNESS = 0.6e6  # Pa m^0.5, LLZO single crystal
SHORTED_CELL_RESISTANCE = 487.0  # ohm, published shorted Li | LLZTO | Li cell
FILAMENT_RESISTANCE = 440.0  # ohm, the filament alone in that cell


def _positive(name: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def filament_diameter(resistance: float, thickness: float, resistivity: float = RESISTIVITY_LI) -> float:
    """Diameter (m) of a straight Li filament of length ``thickness`` (m) with ``resistance`` (ohm).

    Use the filament's own resistance where known: the whole shorted cell (487 ohm vs 440 ohm in the
    published case) includes contacts, which makes the filament look thinner. A real filament branches
    and tortuously crosses the pellet, so this is an equivalent straight-wire diameter.
    """
    _positive("resistance", resistance)
    _positive("thickness", thickness)
    _positive("resistivity", resistivity)
    return math.sqrt(4.0 * resistivity * thickness / (math.pi * resistance))


def fracture_stress(
    flaw_size: float, toughness: float = LLZO_FRACTURE_TOUGHNESS, geometry_factor: float = 1.0
) -> float:
    """Stress (Pa) that propagates a flaw of size ``flaw_size`` (m): K_IC / (Y sqrt(pi a))."""
    _positive("flaw size", flaw_size)
    _positive("fracture toughness", toughness)
    _positive("geometry factor", geometry_factor)
    return toughness / (geometry_factor * math.sqrt(math.pi * flaw_size))


def deposition_stress(overpotential: float) -> float:
    """Stress (Pa) Li electrodeposition can build at ``overpotential`` (V): F dE / V_m."""
    return F * overpotential / V_M_LI


def cracking_overpotential(stress: float) -> float:
    """Overpotential (V) whose deposition stress equals ``stress`` (Pa): sigma V_m / F."""
    return stress * V_M_LI / F


def tip_current_density(growth_rate: float, z: int = 1) -> float:
    """Current density (A/m^2) at a dendrite tip advancing at ``growth_rate`` (m/s): z F v / V_m.

    At 1 um/s this is about 7.4e3 A/m^2 (742 mA/cm^2), far above the applied current density: the
    current focuses onto the tip, which is why tip growth outruns the average plating rate.
    """
    if not (growth_rate >= 0 and math.isfinite(growth_rate)):
        raise ValueError(f"growth rate must be a non-negative finite number, got {growth_rate!r}")
    return z * F * growth_rate / V_M_LI
