"""The techniques the BioLogic driver loads, as label -> value tables, and what a channel is running.

A galvanostatic step is CPLIMIT (plain CP without any window) with the E_we window as limit tests that stop
the channel; a potentiostatic step CALIMIT (plain CA without current limits) with the current window as limit
tests that stop it. Every step technique lasts at most the dead-man time: the driver extends it while it
polls, so the channel stops by itself when the PC stops polling.
"""

from __future__ import annotations

import ctypes as C
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from daq.core.capabilities import EisRequest
from daq.core.errors import InstrumentError
from drivers import biologic_tables as T
from drivers.biologic_structs import EccParam, EccParams

MAX_SEGMENT = 1.0e6  # s, longest single OCV technique; longer ones are re-armed
RECORD_OFF = 10.0  # V or A, Record_every_dE/dI large enough never to trigger: record on time only


@dataclass
class Technique:
    tech_id: int
    values: dict[str, Any | list[Any]]


@dataclass
class Run:
    """What the channel is doing, so data can be interpreted and a step extended, re-armed or resumed."""

    kind: str  # "current" | "potential" | "ocv" | "eis"
    t0: float  # clock time of BL_StartChannel
    chain: list[int] = field(default_factory=list)  # technique ids by index
    setpoint: float = 0.0  # A (current) or V (potential)
    limits: tuple[float, float] = (-math.inf, math.inf)  # V (current) or A (potential)
    period: float = 1.0
    end: float = math.inf  # clock time the step must end (duration), inf = open-ended
    # s the step lasts from the channel's start (the command's duration): the step's end is counted from
    # BL_StartChannel, so the technique plays the whole duration and its last sample (nan: use ``end``)
    duration: float = math.nan
    step_index: int = 0  # index of the step technique in the chain
    segment_start: float = math.nan  # clock time the step technique started (nan: not known yet)
    segment_duration: float = 0.0  # s, its Duration_step
    last_t: float = -math.inf

    @property
    def segment_end(self) -> float:
        return self.segment_start + self.segment_duration if math.isfinite(self.segment_start) else math.inf

    @property
    def sourcing(self) -> bool:
        return self.kind in ("current", "potential")


def step_technique(run: Run, duration: float, i_range: int, e_range: int) -> Technique:
    """CPLIMIT/CALIMIT (or CP/CA without limits) for ``duration`` s of the run's set point."""
    lo, hi = run.limits
    galvano = run.kind == "current"
    values: dict[str, Any] = {
        "Current_step" if galvano else "Voltage_step": run.setpoint,
        "vs_initial": False,
        "Duration_step": duration,
        "Step_number": 0,
        "Record_every_dT": run.period,
        "Record_every_dE" if galvano else "Record_every_dI": RECORD_OFF,
        "N_Cycles": 0,
        "I_Range": i_range,
        "E_Range": e_range,
        "Bandwidth": T.BANDWIDTH_DEFAULT,
    }
    if math.isinf(lo) and math.isinf(hi):
        return Technique(T.TECH_CP if galvano else T.TECH_CA, values)
    below, above = (T.TEST_EWE_BELOW, T.TEST_EWE_ABOVE) if galvano else (T.TEST_I_BELOW, T.TEST_I_ABOVE)
    tests = [
        (config, value) if math.isfinite(value) else (T.TEST_OFF, 0.0) for config, value in ((below, lo), (above, hi))
    ]
    values.update(
        {
            "Test1_Config": tests[0][0],
            "Test1_Value": tests[0][1],
            "Test2_Config": tests[1][0],
            "Test2_Value": tests[1][1],
            "Test3_Config": T.TEST_OFF,
            "Test3_Value": 0.0,
            "Exit_Cond": T.EXIT_STOP,
        }
    )
    return Technique(T.TECH_CPLIMIT if galvano else T.TECH_CALIMIT, values)


def ocv_technique(period: float) -> Technique:
    return Technique(
        T.TECH_OCV,
        {
            "Rest_time_T": MAX_SEGMENT,
            "Record_every_dE": RECORD_OFF,
            "Record_every_dT": period,
            "E_Range": T.E_RANGE_AUTO,
        },
    )


def frequency_groups(freqs: list[float]) -> list[tuple[float, float, int, bool]]:
    """(first, last, count, linear) per technique: one when evenly spaced (log or linear), else one each."""
    f = np.asarray(freqs)
    if len(f) == 1:
        return [(freqs[0], freqs[0], 1, False)]
    if np.all(f > 0) and np.allclose(np.diff(np.log(f)), np.log(f[1] / f[0]), rtol=1e-3, atol=1e-9):
        return [(freqs[0], freqs[-1], len(freqs), False)]
    if np.allclose(np.diff(f), f[1] - f[0], rtol=1e-3):
        return [(freqs[0], freqs[-1], len(freqs), True)]
    return [(x, x, 1, False) for x in freqs]


def eis_techniques(request: EisRequest, freqs: list[float], i_dc: float, i_range: int) -> list[Technique]:
    """GEIS around ``i_dc`` (fixed range ``i_range``) or PEIS at request.dc (None: the open-circuit
    potential, vs_initial) with auto range."""
    out = []
    for fi, ff, n, linear in frequency_groups(freqs):
        common = {
            "vs_final": False,
            "Duration_step": 0.0,
            "Step_number": 0,
            "Record_every_dT": 1.0,
            "Final_frequency": ff,
            "Initial_frequency": fi,
            "sweep": linear,
            "Frequency_number": n,
            "Average_N_times": 1,
            "Correction": False,
            "Wait_for_steady": 1.0,
            "E_Range": T.e_range_for(request.v_min, request.v_max),
            "Bandwidth": T.BANDWIDTH_DEFAULT,
        }
        if request.mode == "galvanostatic":
            vals = {
                **common,
                "vs_initial": False,
                "Initial_Current_step": i_dc,
                "Final_Current_step": i_dc,
                "Record_every_dE": RECORD_OFF,
                "Amplitude_Current": abs(request.amplitude),
                "I_Range": i_range,
            }
            out.append(Technique(T.TECH_GEIS, vals))
        else:
            at_ocv = request.dc is None
            vals = {
                **common,
                "vs_initial": at_ocv,
                "Initial_Voltage_step": 0.0 if at_ocv else request.dc,
                "Final_Voltage_step": 0.0 if at_ocv else request.dc,
                "Record_every_dI": 1.0,
                "Amplitude_Voltage": abs(request.amplitude),
                "I_Range": T.I_RANGE_AUTO,
            }
            out.append(Technique(T.TECH_PEIS, vals))
    return out


def ecc_params(conn: Any, tech: Technique, who: str) -> EccParams:
    """TEccParams for a technique, labels and types from the package version's table, each built by the
    library's own BL_Define*Parameter."""
    table = conn.labels
    labels = table.labels[tech.tech_id]
    params: list[EccParam] = []
    for label, value in tech.values.items():
        if label not in labels:
            raise InstrumentError(
                f"{who}: {label} is not a {T.TECHNIQUE_NAMES[tech.tech_id]} parameter in EClib {table.version}"
            )
        values = value if isinstance(value, list) else [value]
        for index, v in enumerate(values):
            params.append(conn.define(label, labels[label], v, index))
    array = (EccParam * len(params))(*params)
    holder = EccParams(len(params), C.cast(array, C.POINTER(EccParam)))
    holder._array = array  # keep the array alive with the struct
    return holder
