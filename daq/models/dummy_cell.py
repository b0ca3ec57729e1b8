"""Dummy cells: a resistor, or a Randles RC network like the vendors' dummy cells, of known values.

A lab checks a channel on a dummy cell before trusting it with a real one (``daq selftest``): the dummy's
DC resistance tells whether the current is right, its impedance whether an EIS is right. The rig file
describes each dummy once::

    [dummy_cells.rc]
    series_resistance = "100 ohm"      # R_s
    parallel_resistance = "1 kohm"     # R_p, in parallel with C (omit both for a plain resistor)
    capacitance = "1 uF"
    tolerance = "1 %"                  # of the components: what the impedance is checked against
    test_currents = ["10 uA", "1 mA"]  # the currents (ranges) the lab's protocols use
    pressure = "5 MPa"                 # optional: what the channel's transducer should read
    pressure_tolerance = "0.5 MPa"

The simulators build the same network (simulators.dummy_cell), so a self test can itself be tested.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daq.core import units as u
from daq.core.errors import ConfigError
from daq.core.tables import ConfigTable

CAPACITANCE = u.Kind("capacitance", (-2, -1, 4, 2, 0, 0), "1 uF", "uF")
DEFAULT_TOLERANCE = 0.01  # 1 % components, as vendors' dummy cells are specified
DEFAULT_CURRENTS = (1e-5, 1e-4, 1e-3)  # A
MAX_TEST_CURRENTS = 12


@dataclass(frozen=True)
class DummyCellSpec:
    """R_s + (R_p || C); a plain resistor has R_p = C = None. SI units."""

    name: str
    series_resistance: float  # ohm
    parallel_resistance: float | None = None  # ohm
    capacitance: float | None = None  # F
    tolerance: float = DEFAULT_TOLERANCE  # relative
    test_currents: tuple[float, ...] = DEFAULT_CURRENTS  # A
    pressure: float | None = None  # Pa, the transducer's expected reading
    pressure_tolerance: float = 0.5e6  # Pa

    @property
    def kind(self) -> str:
        return "rc" if self.capacitance is not None else "resistor"

    @property
    def dc_resistance(self) -> float:
        return self.series_resistance + (self.parallel_resistance or 0.0)

    @property
    def time_constant(self) -> float:
        """s, R_p C (0 for a resistor)."""
        return (self.parallel_resistance or 0.0) * (self.capacitance or 0.0)

    def impedance(self, frequencies: np.ndarray) -> np.ndarray:
        """Complex impedance (ohm) at ``frequencies`` (Hz)."""
        w = 2 * np.pi * np.asarray(frequencies, dtype=float)
        z = np.full(w.shape, self.series_resistance, dtype=complex)
        if self.parallel_resistance is not None:
            c = self.capacitance or 0.0
            z = z + self.parallel_resistance / (1 + 1j * w * self.parallel_resistance * c)
        return z

    def describe(self) -> str:
        if self.kind == "resistor":
            return f"{self.series_resistance:g} ohm resistor"
        return (
            f"{self.series_resistance:g} ohm + ({self.parallel_resistance:g} ohm || "
            f"{u.fmt(self.capacitance or 0.0, 'uF')})"
        )


def dummy_cell_from_table(name: str, data: object, path: str) -> DummyCellSpec:
    """A ``[dummy_cells.NAME]`` table, checked; ``path`` is its dotted name for messages."""
    t = ConfigTable(data, path)
    t.unknown(
        {
            "description",
            "series_resistance",
            "parallel_resistance",
            "capacitance",
            "tolerance",
            "test_currents",
            "pressure",
            "pressure_tolerance",
        }
    )
    r_s = t.quantity("series_resistance", u.RESISTANCE, required=True, hi=1e9, unit="ohm")
    r_p = t.quantity("parallel_resistance", u.RESISTANCE, hi=1e9, unit="ohm")
    c = t.quantity("capacitance", CAPACITANCE, lo=1e-12, hi=1.0, unit="F")
    if (r_p is None) != (c is None):
        missing = "capacitance" if c is None else "parallel_resistance"
        raise ConfigError(t.at(missing), None, "an RC dummy needs both parallel_resistance and capacitance")
    tolerance = t.quantity("tolerance", u.FRACTION, DEFAULT_TOLERANCE, lo=1e-4, hi=0.2, unit="%")
    currents = DEFAULT_CURRENTS
    if "test_currents" in t.data:
        raw = t.data["test_currents"]
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_TEST_CURRENTS:
            raise ConfigError(
                t.at("test_currents"),
                raw,
                f'must be a list of 1 to {MAX_TEST_CURRENTS} currents, e.g. ["10 uA", "1 mA"]',
            )
        currents = tuple(u.parse(x, u.CURRENT, f"{t.at('test_currents')}[{i}]") for i, x in enumerate(raw))
        if any(not 0 < abs(i) <= 1.0 for i in currents):
            raise ConfigError(t.at("test_currents"), raw, "every current must be non-zero and at most 1 A")
    pressure = t.quantity("pressure", u.PRESSURE, positive=False, lo=0.0, hi=1e9, unit="MPa")
    p_tol = t.quantity("pressure_tolerance", u.PRESSURE, 0.5e6, hi=1e9, unit="MPa")
    return DummyCellSpec(name, r_s, r_p, c, float(tolerance), currents, pressure, float(p_tol))
