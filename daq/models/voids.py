"""Void-free stripping limit: the stack pressure must out-push the interfacial overpotential.

Void nucleation is driven by eta = i R_s (R_s: area-specific interface resistance); the stack pressure
suppresses voids while P > F i R_s / V_m, so the void-free stripping limit is

    i_max = P V_m / (F R_s)

With R_s = 10 ohm cm^2 this is about 0.07 mA/cm^2 at 5 MPa and 0.09 mA/cm^2 at 7 MPa (science.md 2.2),
which is why the lab strips at 0.05 mA/cm^2 under 7 MPa. The critical void radius
r_crit = 2 gamma V_m / (F i R_s) falls as 1/i (observed holes: 4.1, 2.4, 0.9, 0.4 um at 1, 2, 5, 10
mA/cm^2).
"""

from __future__ import annotations

from daq.models.constants import V_M_LI, F

MODEL_NAME = "void-free stripping limit (pressure vs interfacial overpotential)"
MODEL_VERSION = "1"
DEFAULT_INTERFACE_ASR = 1e-3  # ohm m^2 (10 ohm cm^2)
LI_SURFACE_ENERGY = 0.5  # J/m^2


def void_free_limit(stack_pressure: float, interface_asr: float = DEFAULT_INTERFACE_ASR) -> float:
    """Highest stripping current density (A/m^2) without void growth at ``stack_pressure`` (Pa)."""
    return stack_pressure * V_M_LI / (F * interface_asr)


def critical_void_radius(
    current_density: float, interface_asr: float = DEFAULT_INTERFACE_ASR, surface_energy: float = LI_SURFACE_ENERGY
) -> float:
    """Critical void radius (m) at a stripping current density (A/m^2)."""
    return 2 * surface_energy * V_M_LI / (F * current_density * interface_asr)
