"""The neutral in-memory form every vendor importer produces.

Unit convention (one way, everywhere): numbers are SI, and the unit sits beside them in a parallel
``units`` dict keyed like the values. ``timeseries[k]`` is in ``units[k]``; ``metadata[k]`` is in
``metadata_units[k]`` when ``k`` has an entry there (a physical quantity); metadata keys without an entry
are labels, counts, flags or text. Dimensionless columns (counters, range codes, flags) carry ``"1"``.
Angles are in ``rad`` and temperatures in ``K``, like every other SI quantity.

Impedance follows the mathematical sign: ``Z_im`` is Im(Z), negative for a capacitive arc. BioLogic
stores -Im(Z); its importer flips the sign so all vendors agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TECHNIQUES = (
    "chronopotentiometry",
    "chronoamperometry",
    "constant_current",
    "constant_voltage",
    "galvanostatic_cycling",
    "geis",
    "peis",
    "open_circuit",
    "cyclic_voltammetry",
    "linear_sweep_voltammetry",
    "wait",
    "modulo_bat",
    "impedance",
    "unknown",
)
"""Technique names a Recording may carry (vendor names are kept in ``metadata['vendor_technique']``)."""


@dataclass
class Spectrum:
    """One impedance sweep: one row per frequency, SI units, Im(Z) with its mathematical sign.

    ``I_dc``/``E_dc`` are the DC current and potential during each frequency point when the file
    records them (BioLogic <I>/<Ewe>, Gamry Idc/Vdc); ``extra`` holds further per-point columns
    (|Z|, phase, amplitudes, ...) with units in ``units``. ``metadata`` says which sequence/cycle the
    sweep belongs to and its DC set-point where known.
    """

    frequency: np.ndarray  # Hz
    Z_re: np.ndarray  # ohm
    Z_im: np.ndarray  # ohm, Im(Z) (negative for capacitive behaviour)
    time: np.ndarray  # s, same time base as the recording's timeseries
    I_dc: np.ndarray | None = None  # A
    E_dc: np.ndarray | None = None  # V
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    metadata_units: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.frequency.size)

    def columns(self) -> dict[str, np.ndarray]:
        """All per-point columns by name (fixed ones first), for writers that store tables."""
        cols: dict[str, np.ndarray] = {
            "frequency": self.frequency,
            "Z_re": self.Z_re,
            "Z_im": self.Z_im,
            "time": self.time,
        }
        if self.I_dc is not None:
            cols["I_dc"] = self.I_dc
        if self.E_dc is not None:
            cols["E_dc"] = self.E_dc
        cols.update(self.extra)
        return cols

    def column_units(self) -> dict[str, str]:
        """Units of :meth:`columns`, same keys."""
        fixed = {"frequency": "Hz", "Z_re": "ohm", "Z_im": "ohm", "time": "s", "I_dc": "A", "E_dc": "V"}
        return {k: self.units.get(k, fixed.get(k, "1")) for k in self.columns()}


@dataclass
class Recording:
    """A vendor recording read into SI columns plus metadata, independent of the file format.

    ``timeseries`` always has ``t`` (s); ``E_we`` (V) and ``I`` (A) when the file records them, and
    ``Q`` (C) where the file has a charge column. ``source_columns`` maps each timeseries key back to
    the vendor's own column label, so nothing is renamed silently. ``tables`` holds further tables of
    the file (e.g. a Gamry pre-test OCVCURVE) in the same form as ``timeseries``. ``header`` is the
    vendor's raw settings, as read, for provenance; the physical values a program should use are in
    ``metadata``.
    """

    source: Path
    vendor: str  # "gamry" | "biologic" | "text" (plain spectra)
    file_format: str  # "gamry-explain-dta" | "biologic-mpr" | "biologic-mpt"
    technique: str  # one of TECHNIQUES
    metadata: dict[str, Any] = field(default_factory=dict)
    metadata_units: dict[str, str] = field(default_factory=dict)
    timeseries: dict[str, np.ndarray] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    source_columns: dict[str, str] = field(default_factory=dict)
    spectra: list[Spectrum] = field(default_factory=list)
    tables: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    table_units: dict[str, dict[str, str]] = field(default_factory=dict)
    header: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the reader could not map or had to assume

    @property
    def n_samples(self) -> int:
        """Rows in the timeseries."""
        t = self.timeseries.get("t")
        return 0 if t is None else int(t.size)

    def set_meta(self, key: str, value: Any, unit: str | None = None) -> None:
        """Store a metadata value; ``unit`` (SI) marks it as a physical quantity."""
        self.metadata[key] = value
        if unit is not None:
            self.metadata_units[key] = unit

    def quantity(self, key: str) -> tuple[Any, str | None]:
        """``(value, unit)`` of a metadata entry; unit is None for labels and counts."""
        return self.metadata[key], self.metadata_units.get(key)

    def add_column(self, name: str, values: np.ndarray, unit: str, source: str) -> None:
        """Add a timeseries column in SI with its unit and the vendor label it came from."""
        self.timeseries[name] = values
        self.units[name] = unit
        self.source_columns[name] = source
