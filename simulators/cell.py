"""Physics twin of a Li | solid electrolyte | Li three-electrode cell (science.md; docs/simulated-cell.md).

Sign convention: positive current is oxidation at the working electrode (stripping), so plating
currents and plating polarisations are negative. State advances block by block with numpy, never one
Python call per sample:

- ohmic: spreading resistance of the working-electrode disc, 1/(4 sigma r), seen between WE and RE;
  the counter side adds t/(sigma A_CE) to the cell voltage;
- interface: Butler-Volmer charge transfer, eta = (2RT/F) asinh(i/2i0) with i0 = RT/(F R_s), divided by
  the contact fraction left by voids; SEI: an ohmic layer that grows at rest and stabilises;
- dendrites: once plating exceeds the cell's CCD (the CCD model, scattered by the seeded variability)
  and an incubation capacity has passed, a Li-filled crack grows with plated capacity, faster the more
  the CCD is exceeded; it shortens the bulk path; when it spans the electrolyte the cell shorts through
  a filament of a few hundred ohms and the WE polarisation collapses;
- voids: stripping faster than the void-free limit P V_m/(F R_s) loses contact area in proportion to
  the stripped capacity, all of it after the published effective stripping capacity (5, 4, 3,
  2 mAh/cm^2 at 1, 2, 5, 10 mA/cm^2, Lu 2022); plating refills voids;
- cell-to-cell variability (seeded): the CCD (the cell file's ``variability``), the crack growth per
  plated capacity (the disc's defect population) and the incubation capacity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from daq.models import ccd, voids
from daq.models.cell import Cell
from daq.models.constants import F, R

Q_UNIT = 36000.0  # C/m^2 in 1 mAh/cm^2 (3.6 C per 1e-4 m^2)
MA_CM2 = 10.0  # A/m^2 in 1 mA/cm^2

INCUBATION_CAPACITY = 0.1 * Q_UNIT  # over-critical plating before a crack starts to grow (median cell)
INCUBATION_SPREAD = 0.3  # 1 sigma of ln(incubation capacity) from cell to cell
CRACK_GROWTH_REFERENCE = 5.4 * Q_UNIT  # areal charge to grow a crack 1 mm at 1x the CCD (median cell)
CRACK_GROWTH_SPREAD = 0.18  # 1 sigma of ln(crack growth per capacity) from cell to cell (defect population)
CRACK_GROWTH_EXPONENT = 0.3  # growth per capacity ~ (i / i_c)^0.3
BULK_PATH_SHORTENING = 0.7  # fraction of the bulk resistance bypassed just before the short
SEI_TIME_CONSTANT = 3600.0  # s
# Published effective stripping capacities (Lu 2022): mA/cm^2 -> mAh/cm^2, interpolated in log(i).
STRIPPING_CURRENTS = np.log([1.0, 2.0, 5.0, 10.0])
STRIPPING_CAPACITIES = np.array([5.0, 4.0, 3.0, 2.0])
MIN_STRIPPING_CAPACITY = 0.5  # mAh/cm^2, floor of the extrapolation to high currents
VOID_REFILL_CAPACITY = 0.5 * Q_UNIT  # plated capacity that refills fully lost contact


def intervals(t: np.ndarray, t_prev: float) -> np.ndarray:
    """Time from each sample to the one before (the first from ``t_prev``): ``np.diff(t, prepend=t_prev)``
    with the same subtractions, without its per-call overhead."""
    dt = np.empty(len(t))
    if len(t):
        dt[0] = t[0] - t_prev
        np.subtract(t[1:], t[:-1], out=dt[1:])
    return dt


def _lognormal(rng: np.random.Generator, sigma: float) -> float:
    """A factor exp(sigma z), z standard normal truncated at 2 sigma (no freak cells)."""
    return float(np.exp(sigma * np.clip(rng.normal(), -2.0, 2.0)))


def stripping_capacity(current_density: np.ndarray | float) -> np.ndarray | float:
    """Effective stripping capacity (C/m^2) at a stripping current density (A/m^2): the published
    values interpolated linearly in log(i), extrapolated with the end slopes, at least 0.5 mAh/cm^2."""
    x = np.log(np.asarray(current_density, dtype=float) / MA_CM2)
    y = np.interp(x, STRIPPING_CURRENTS, STRIPPING_CAPACITIES)
    lo = STRIPPING_CAPACITIES[0] + (x - STRIPPING_CURRENTS[0]) * (STRIPPING_CAPACITIES[1] - STRIPPING_CAPACITIES[0]) / (
        STRIPPING_CURRENTS[1] - STRIPPING_CURRENTS[0]
    )
    hi = STRIPPING_CAPACITIES[-1] + (x - STRIPPING_CURRENTS[-1]) * (
        STRIPPING_CAPACITIES[-1] - STRIPPING_CAPACITIES[-2]
    ) / (STRIPPING_CURRENTS[-1] - STRIPPING_CURRENTS[-2])
    y = np.where(x < STRIPPING_CURRENTS[0], lo, np.where(x > STRIPPING_CURRENTS[-1], hi, y))
    return np.maximum(y, MIN_STRIPPING_CAPACITY) * Q_UNIT


@dataclass
class CellState:
    age: float = 0.0  # s since assembly (SEI growth)
    plated: float = 0.0  # C/m^2 plated on the WE in total
    over_critical: float = 0.0  # C/m^2 plated above the CCD
    crack_length: float = 0.0  # m
    void_damage: float = 0.0  # 0 = full contact, 1 = no contact
    shorted: bool = False
    short_time: float = math.nan  # cell age at the short


def _copy_state(state: CellState) -> CellState:
    """A shallow copy of a cell state (floats and a bool), a few times cheaper than copy.copy."""
    new = CellState.__new__(CellState)
    new.__dict__.update(state.__dict__)
    return new


@dataclass(frozen=True)
class Response:
    E_we: np.ndarray
    E_cell: np.ndarray
    short_index: int | None  # first sample measured with the cell shorted, if it happened in this block


class SimulatedCell:
    """A cell that answers currents with potentials and grows dendrites and voids as it is used."""

    def __init__(self, cell: Cell, parameters: ccd.CreepFractureParameters | None = None):
        self.spec = cell
        sim = cell.simulation
        rng = np.random.default_rng(sim.seed)
        self.rng = np.random.default_rng([sim.seed, 1])
        scatter = float(np.clip(rng.normal(), -2.0, 2.0)) * sim.variability
        micro = ccd.critical_current_density(cell.microstructure, parameters)
        self.predicted_ccd = micro
        self.ccd = micro * (1.0 + scatter)  # A/m^2, this cell's actual CCD
        self.short_resistance = sim.short_resistance * (1.0 + 0.2 * float(np.clip(rng.normal(), -2, 2)))
        # Drawn after the CCD and filament so that those stay what they were for every seed.
        self.crack_growth_reference = CRACK_GROWTH_REFERENCE * _lognormal(rng, CRACK_GROWTH_SPREAD)
        self.incubation_capacity = INCUBATION_CAPACITY * _lognormal(rng, INCUBATION_SPREAD)
        self.area = cell.electrodes.working_area
        sigma = cell.electrolyte.conductivity
        r_we = math.sqrt(self.area / math.pi)
        self.r_bulk_we = 1.0 / (4.0 * sigma * r_we)  # ohm, WE vs RE
        self.r_bulk_ce = cell.electrolyte.thickness / (sigma * cell.electrodes.counter_area)
        self.i0 = R * cell.temperature / (F * sim.interface_asr)  # A/m^2 exchange current density
        self.stack_pressure = cell.stack_pressure
        self.state = CellState()
        if sim.start_shorted:  # a cell that failed while no run watched it (rehearsing a resume)
            self.state = CellState(crack_length=cell.electrolyte.thickness, shorted=True, short_time=0.0)
        self.state.void_damage = sim.start_damage

    # --- derived quantities -------------------------------------------------------------------
    @property
    def void_free_limit(self) -> float:
        return voids.void_free_limit(self.stack_pressure, self.spec.simulation.interface_asr)

    def contact_fraction(self, damage: np.ndarray | float | None = None) -> np.ndarray | float:
        d = self.state.void_damage if damage is None else damage
        return np.minimum(np.maximum((1.0 - np.asarray(d)) ** 2, 1e-6), 1.0)  # np.clip, without its overhead

    def bulk_resistance(self, crack_length: np.ndarray | float | None = None) -> np.ndarray | float:
        L = self.state.crack_length if crack_length is None else crack_length
        frac = np.minimum(np.maximum(np.asarray(L) / self.spec.electrolyte.thickness, 0.0), 1.0)
        return self.r_bulk_we * (1.0 - BULK_PATH_SHORTENING * frac)

    def sei_asr(self, age: np.ndarray | float) -> np.ndarray | float:
        return self.spec.simulation.sei_asr * (0.2 + 0.8 * (1.0 - np.exp(-np.asarray(age) / SEI_TIME_CONSTANT)))

    def _void_damage(self, i: np.ndarray, dq: np.ndarray, q_plate: np.ndarray) -> np.ndarray:
        """Contact damage d after each sample (contact fraction (1 - d)^2).

        Stripping above the void-free limit takes away contact area in proportion to the stripped
        capacity: the contact fraction falls by drive dq / q_eff(i), q_eff the published effective
        stripping capacity, drive = 1 - (i_max/i)^2 (nothing at the limit, 1 well above it). As the
        interface resistance goes as 1/sqrt(contact), the polarisation diverges at q_eff whatever the
        cut-off, and the local current ratio passes 15 only in the last ~5 % of it. Plating refills voids.
        """
        st = self.state
        limit = self.void_free_limit
        if not i.size or i.max() <= max(limit, 0.0):  # no stripping above the limit: no contact lost
            return np.minimum(np.maximum(st.void_damage - np.cumsum(q_plate / VOID_REFILL_CAPACITY), 0.0), 1.0)
        stripping = i > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            q_eff = stripping_capacity(np.where(stripping, i, MA_CM2))
            drive = np.where(stripping & (i > limit), 1.0 - (limit / np.where(stripping, i, 1.0)) ** 2, 0.0)
        d_contact = drive * dq / q_eff
        if not d_contact.any():  # plating or rest: refill, linear in the plated capacity
            return np.clip(st.void_damage - np.cumsum(q_plate / VOID_REFILL_CAPACITY), 0.0, 1.0)
        d_damage = -q_plate / VOID_REFILL_CAPACITY
        if not d_damage.any():  # a block holds one step: stripping only
            contact = np.clip((1.0 - st.void_damage) ** 2 - np.cumsum(d_contact), 0.0, 1.0)
            return 1.0 - np.sqrt(contact)
        damage = np.empty(i.size)  # mixed signs (not from the engine): sample by sample
        d = st.void_damage
        for k in range(i.size):
            d = 1.0 - np.sqrt(max((1.0 - d) ** 2 - d_contact[k], 0.0)) if d_contact[k] else d + d_damage[k]
            d = min(max(d, 0.0), 1.0)
            damage[k] = d
        return damage

    def _eta(self, i: np.ndarray, contact: np.ndarray | float) -> np.ndarray:
        """Interfacial overpotential (V) at areal current i (A/m^2): Butler-Volmer on full contact, scaled
        by 1/sqrt(contact fraction) as the interface resistance is (science.md 2.2), so lost contact
        drives the polarisation to the cut-off."""
        return 2 * R * self.spec.temperature / F * np.arcsinh(i / (2 * self.i0)) / np.sqrt(contact)

    # --- time evolution -----------------------------------------------------------------------
    def advance(self, current: np.ndarray, dt: np.ndarray) -> Response:
        """Pass ``current[k]`` (A) during ``dt[k]`` (s) for each sample; potentials at the sample ends."""
        st = self.state
        n = len(current)
        i = current / self.area  # A/m^2, + = stripping
        dq = np.abs(i) * dt  # C/m^2 per sample
        plating = i < 0
        q_plate = np.where(plating, dq, 0.0)
        age = st.age + np.cumsum(dt)
        thickness = self.spec.electrolyte.thickness

        crack, over_end, crack_end = self._crack_growth(i, dq, plating)
        damage = self._void_damage(i, dq, q_plate)
        contact = self.contact_fraction(damage)

        # Short circuit: from the first sample at which the crack spans the electrolyte.
        short_index: int | None = None
        if st.shorted:
            shorted = True
        else:
            hits = np.flatnonzero(crack >= thickness)
            short_index = int(hits[0]) if hits.size else None
            shorted = short_index is not None

        r_b = self.bulk_resistance(crack)
        sei = self.sei_asr(age)
        r_sei = sei / self.area
        if shorted:
            e_we, e_cell = self._shorted_potentials(current, n, short_index, r_b, r_sei, sei, contact)
        else:
            e_we = current * (r_b + r_sei) + self._eta(current / self.area, contact)
            e_ce = current * self.r_bulk_ce + self._eta(current / self.spec.electrodes.counter_area, 1.0)
            e_cell = e_we + e_ce
        noise = self.spec.simulation.noise_voltage
        if noise > 0:
            e_we = e_we + self.rng.normal(0.0, noise, n)
            e_cell = e_cell + self.rng.normal(0.0, noise, n)

        # Commit the state at the end of the block.
        if n:
            st.age = float(age[-1])
            st.over_critical, st.crack_length = over_end, crack_end
            st.void_damage = float(damage[-1])
        st.plated += float(q_plate.sum())
        if short_index is not None:
            st.shorted = True
            st.short_time = float(age[short_index])
        return Response(e_we, e_cell, short_index)

    def _crack_growth(self, i: np.ndarray, dq: np.ndarray, plating: np.ndarray) -> tuple[np.ndarray, float, float]:
        """Dendrite growth: only while plating above this cell's CCD, after the incubation capacity.
        Returns the crack length at each sample (m), and the over-critical capacity and crack length at
        the block's end. Most blocks (stripping, rest, plating below the CCD) grow nothing: the crack
        and the over-critical capacity stay what they were, and the per-sample arrays are not built."""
        st, thickness, n = self.state, self.spec.electrolyte.thickness, len(i)
        if not (n and float(i.min()) < min(-self.ccd, 0.0)):
            return np.full(n, st.crack_length), st.over_critical, float(min(st.crack_length, thickness))
        over = plating & (-i > self.ccd)
        q_over_end = st.over_critical + np.cumsum(np.where(over, dq, 0.0))
        growing = over & (q_over_end > self.incubation_capacity)
        ratio = np.where(growing, -i / self.ccd, 1.0)
        growth = thickness / self.crack_growth_reference * ratio**CRACK_GROWTH_EXPONENT
        crack = st.crack_length + np.cumsum(np.where(growing, growth * dq, 0.0))
        return crack, float(q_over_end[-1]), float(min(crack[-1], thickness))

    def _shorted_potentials(
        self,
        current: np.ndarray,
        n: int,
        short_index: int | None,
        r_b: np.ndarray,
        r_sei: np.ndarray,
        sei: np.ndarray,
        contact: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(E_we, E_cell) of a block in which the cell is (or becomes, at ``short_index``) shorted: the
        filament carries most of the current; the ionic share sets E_we."""
        shorted = np.ones(n, dtype=bool)
        if short_index is not None:
            shorted[:short_index] = False
        r_ionic = r_b + self.r_bulk_ce + (self.spec.simulation.interface_asr + sei) / self.area
        ionic_share = np.where(shorted, self.short_resistance / (self.short_resistance + r_ionic), 1.0)
        i_ion = current * ionic_share
        e_we = i_ion * (r_b + r_sei) + self._eta(i_ion / self.area, contact)
        e_ce = i_ion * self.r_bulk_ce + self._eta(i_ion / self.spec.electrodes.counter_area, 1.0)
        e_cell = np.where(
            shorted, current * (self.short_resistance * r_ionic) / (self.short_resistance + r_ionic), e_we + e_ce
        )
        return e_we, e_cell

    def snapshot(self) -> tuple[CellState, dict]:
        """State and noise generator, to undo an advance (an instrument limit cutting a block short)."""
        # The generator's state property builds a new dict of ints on every call: no deep copy needed.
        return _copy_state(self.state), self.rng.bit_generator.state

    def restore(self, snap: tuple[CellState, dict]) -> None:
        self.state = _copy_state(snap[0])
        self.rng.bit_generator.state = snap[1]

    def current_for_potential(self, e_we: float) -> float:
        """Current (A) that holds E_we at ``e_we`` (V) in the present state (noise-free)."""
        st = self.state
        r = float(self.bulk_resistance()) + float(self.sei_asr(st.age)) / self.area
        contact = float(self.contact_fraction())
        lo, hi = -1.0, 1.0
        f = lambda i: i * r + float(self._eta(np.array(i / self.area), contact)) - e_we  # noqa: E731
        for _ in range(200):  # bisection: E_we(I) is monotonic
            mid = 0.5 * (lo + hi)
            if f(mid) > 0:
                hi = mid
            else:
                lo = mid
            if hi - lo < 1e-13:
                break
        return 0.5 * (lo + hi)

    def rest(self, dt: float) -> None:
        """Let time pass at open circuit (SEI keeps growing)."""
        self.state.age += dt

    # --- impedance ----------------------------------------------------------------------------
    def impedance(self, frequencies: np.ndarray, dc_current: float = 0.0) -> np.ndarray:
        """Complex impedance (ohm) WE vs RE of the cell in its present state.

        Bulk arc p(R_b, CPE_b) shrinking as a crack shortens the path, interface + SEI arc
        p(R_ct + R_sei, CPE_dl) whose charge-transfer part is the small-signal slope of the
        Butler-Volmer law at the DC current; after a short, everything in parallel with the filament.
        """
        st = self.state
        w = 2 * np.pi * np.asarray(frequencies, dtype=float)
        r_b = float(self.bulk_resistance())
        contact = float(self.contact_fraction())
        i_dc = dc_current / self.area
        slope = (2 * R * self.spec.temperature / F) / math.sqrt((2 * self.i0) ** 2 + i_dc**2)  # d eta/d i
        r_ct = slope / math.sqrt(contact) / self.area
        r_sei = float(self.sei_asr(st.age)) / self.area
        q_b, n_b = 2e-10, 0.9  # bulk/grain-boundary CPE: arc near 1 MHz
        q_dl, n_dl = 1e-7 * contact, 0.85  # double layer on the contacting area
        z_b = r_b / (1 + r_b * q_b * (1j * w) ** n_b)
        r_i = r_ct + r_sei
        z_i = r_i / (1 + r_i * q_dl * (1j * w) ** n_dl)
        z = 5.0 + z_b + z_i  # 5 ohm leads and current collectors
        if st.shorted:
            z = z * self.short_resistance / (z + self.short_resistance)
        return z
