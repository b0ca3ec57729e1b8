"""The run file's layout in one place: groups, columns, dtypes and units (docs/hdf5-layout.md)."""

from __future__ import annotations

import h5py
import numpy as np

SCHEMA_VERSION = "1.0"

STR = h5py.string_dtype()

# /timeseries columns: name -> (dtype, unit, description). Auxiliary channels are added per run.
TIMESERIES: dict[str, tuple[str, str, str]] = {
    "t": ("f8", "s", "time since the start of the run"),
    "step": ("i4", "1", "index of the executed step (row in /steps)"),
    "cycle": ("i4", "1", "loop cycle number (0 outside loops)"),
    "E_we": ("f8", "V", "working electrode vs reference"),
    "E_cell": ("f8", "V", "working vs counter electrode"),
    "I": ("f8", "A", "current, positive = oxidation (stripping) at the working electrode"),
    "Q": ("f8", "C", "charge passed since the start of the step (sign of I)"),
    "flags": ("u1", "1", "instrument flags: 1 = hardware limit switched the output off, 2 = overload"),
}
AUX: dict[str, tuple[str, str, str]] = {
    "pressure": ("f8", "Pa", "stack pressure on the pressed area"),
    "force": ("f8", "N", "force read by the transducer"),
    "temperature": ("f8", "K", "cell temperature"),
}

STEPS = np.dtype(
    [
        ("index", "i4"),
        ("kind", STR),
        ("label", STR),
        ("cycle", "i4"),
        ("t_start", "f8"),
        ("t_end", "f8"),
        ("Q", "f8"),
        ("end_reason", STR),
        ("parameters", STR),
    ]
)
STEP_UNITS = {"t_start": "s", "t_end": "s", "Q": "C", "parameters": "JSON, SI units"}

EVENTS = np.dtype([("t", "f8"), ("kind", STR), ("step", "i4"), ("message", STR), ("data", STR)])
EVENT_UNITS = {"t": "s", "data": "JSON, SI units"}

SPECTRA = np.dtype(
    [
        ("index", "i4"),
        ("t_start", "f8"),
        ("t_end", "f8"),
        ("step", "i4"),
        ("cycle", "i4"),
        ("Q", "f8"),
        ("mode", STR),
        ("dc", "f8"),
        ("amplitude", "f8"),
        ("first_point", "i8"),
        ("n_points", "i4"),
    ]
)
SPECTRA_UNITS = {"t_start": "s", "t_end": "s", "Q": "C", "dc": "A or V (by mode)", "amplitude": "A or V (by mode)"}
POINTS = np.dtype(
    [
        ("spectrum", "i4"),
        ("frequency", "f8"),
        ("z_real", "f8"),
        ("z_imag", "f8"),
        ("t", "f8"),
        ("E_dc", "f8"),
        ("I_dc", "f8"),
        ("ok", "u1"),
    ]
)
POINT_UNITS = {"frequency": "Hz", "z_real": "ohm", "z_imag": "ohm", "t": "s", "E_dc": "V", "I_dc": "A"}

# Run status (root attr ``status``). "running" with no live writer reads as "interrupted".
RUNNING, COMPLETED, INTERRUPTED = "running", "completed", "interrupted"
# What a plain reader needs to know about ``status`` (stored beside it as ``status_note``).
STATUS_NOTE = (
    "'interrupted' until the writer records the end ('completed' or 'failed'); a file being written also "
    "reads 'interrupted' here while its writer holds RUN.h5.lock (open_run reports it as 'running')"
)
