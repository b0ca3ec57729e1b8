"""Data as instruments deliver it: blocks of samples as numpy arrays, impedance points."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Flags per sample (bit field), set by the instrument.
FLAG_HW_LIMIT = 1  # the instrument's own voltage/current limit switched the output off at this sample
FLAG_OVERLOAD = 2  # the instrument reported an overload (current or voltage out of range)


@dataclass
class SampleBlock:
    """Samples acquired since the previous read, as arrays of equal length (SI units).

    t is seconds on the run clock; E_we is the working electrode vs reference (V), E_cell working vs
    counter (V), I the current (A, positive = oxidation at the working electrode, i.e. stripping).
    ``aux`` holds auxiliary channels such as stack pressure (Pa) sampled at the same times.
    """

    t: np.ndarray
    E_we: np.ndarray
    E_cell: np.ndarray
    I: np.ndarray
    flags: np.ndarray = field(default=None)  # type: ignore[assignment]
    aux: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.flags is None:
            self.flags = np.zeros(len(self.t), dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.t)

    @classmethod
    def empty(cls) -> SampleBlock:
        z = np.zeros(0)
        return cls(z, z.copy(), z.copy(), z.copy())

    @classmethod
    def concat(cls, blocks: list[SampleBlock]) -> SampleBlock:
        if not blocks:
            return cls.empty()
        if len(blocks) == 1:
            return blocks[0]
        aux_keys = set().union(*(b.aux for b in blocks))
        return cls(
            np.concatenate([b.t for b in blocks]),
            np.concatenate([b.E_we for b in blocks]),
            np.concatenate([b.E_cell for b in blocks]),
            np.concatenate([b.I for b in blocks]),
            np.concatenate([b.flags for b in blocks]),
            {k: np.concatenate([b.aux.get(k, np.full(len(b), np.nan)) for b in blocks]) for k in aux_keys},
        )


@dataclass(frozen=True)
class EisPoint:
    """One impedance measurement at one frequency (Z in ohm, time on the run clock)."""

    frequency: float
    z_real: float
    z_imag: float
    t: float
    E_dc: float  # V, mean working-electrode potential during the point
    I_dc: float  # A, mean current during the point
    ok: bool = True  # the instrument judged the point valid (Gamry ReadZ status, EClib flags)
