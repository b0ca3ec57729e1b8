"""A recorded run file cut into the instrument states it went through, for replay (docs/replay.md).

The recording is cut into *segments*, each one state of the instrument (open circuit, a current, a
potential) with the rows of /timeseries measured in it: from /transcript where the run kept one (the
commands and the blocks they produced), otherwise from /steps.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from daq.core import units as u
from daq.core.capabilities import (
    Capabilities,
    EisRequest,
)
from daq.core.errors import DataFileError
from daq.storage.reader import open_run

EPS = 1e-6  # s: times closer than this are the same instant
SETPOINT_REL = 1e-3  # relative tolerance between a commanded and a recorded set-point
MEASURED_REL = 0.05  # ... when the recording only has the measured value (no set-point)
POTENTIAL_ABS = 1e-4  # V
FREQUENCY_REL = 0.02  # vendor sweeps land close to, not on, the nominal log-spaced frequencies
AMPLITUDE_REL = 0.02
AUX = ("pressure", "force", "temperature")


EventSink = Callable[[float, str, str, dict[str, Any]], None]  # (t, kind, message, data)


@dataclass(frozen=True)
class State:
    """What the instrument does to the cell: ``off`` (no current; ``sampling`` or not), ``current``
    (value in A) or ``potential`` (value in V vs reference)."""

    kind: str
    value: float = math.nan
    sampling: bool = False

    @property
    def on(self) -> bool:
        return self.kind != "off"

    def describe(self) -> str:
        if self.kind == "current":
            return f"a current of {u.to_unit(self.value, 'uA'):.6g} µA"
        if self.kind == "potential":
            return f"a potential of {self.value:.4g} V"
        return "open circuit"


OFF = State("off")


@dataclass(frozen=True)
class Segment:
    """One recorded state from ``t_start`` (s, replay time) with the tolerance its value is matched to."""

    state: State
    t_start: float
    tolerance: float = 0.0
    limits: tuple[float, float] | None = None
    sample_period: float | None = None

    def admits(self, state: State) -> bool:
        """True if the recorded samples also describe the cell under ``state``."""
        if state.kind != self.state.kind:
            return False
        return state.kind == "off" or abs(state.value - self.state.value) <= self.tolerance


@dataclass(frozen=True)
class RecordedSpectrum:
    """One recorded sweep: the request that made it and its points (times in replay time)."""

    mode: str
    dc: float | None
    amplitude: float
    frequency: np.ndarray
    z_real: np.ndarray
    z_imag: np.ndarray
    t: np.ndarray
    E_dc: np.ndarray
    I_dc: np.ndarray
    ok: np.ndarray
    segment: int

    @property
    def t_first(self) -> float:
        return float(self.t[0]) if len(self.t) else math.inf

    def mismatch(self, request: EisRequest) -> str:
        """Why ``request`` is not this sweep ('' if it is)."""
        if request.mode != self.mode:
            return f"mode {request.mode}, recorded {self.mode}"
        f = np.asarray(request.frequencies, dtype=float)
        if len(f) != len(self.frequency) or not np.all(np.abs(f / self.frequency - 1) <= FREQUENCY_REL):
            return (
                f"frequencies {len(f)} from {f[0]:.4g} to {f[-1]:.4g} Hz, recorded {len(self.frequency)} "
                f"from {self.frequency[0]:.4g} to {self.frequency[-1]:.4g} Hz"
            )
        a = self.amplitude
        if math.isfinite(a) and abs(request.amplitude - a) > AMPLITUDE_REL * abs(a):
            return f"amplitude {request.amplitude:.4g}, recorded {self.amplitude:.4g}"
        if (request.dc is None) != (self.dc is None) or (
            request.dc is not None
            and self.dc is not None
            and abs(request.dc - self.dc) > SETPOINT_REL * abs(self.dc) + 1e-12
        ):
            return f"dc {request.dc}, recorded {self.dc}"
        return ""


def optional_float(value: Any) -> float | None:
    """Arguments as the transcript stores them (infinities as text, None kept)."""
    return None if value is None else float(value)


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def commanded_segment(method: str, args: dict[str, Any], t: float) -> Segment | None:
    """The segment a successful command to the instrument began at ``t`` (None: not a sourcing command)."""
    if method == "apply_current":
        value = float(args["current"])
        return Segment(
            State("current", value, True),
            t,
            SETPOINT_REL * abs(value) + 1e-15,
            (optional_float(args["v_min"]), optional_float(args["v_max"])),  # type: ignore[arg-type]
            optional_float(args["sample_period"]),
        )
    if method == "apply_potential":
        return Segment(
            State("potential", float(args["potential"]), True),
            t,
            POTENTIAL_ABS,
            None,
            optional_float(args["sample_period"]),
        )
    if method == "open_circuit":
        period = optional_float(args.get("sample_period"))
        return Segment(State("off", sampling=period is not None), t, 0.0, None, period)
    return None


class ReplaySource:
    """A run file loaded for replay: samples, their segments and arrival times, spectra, provenance."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with open_run(self.path) as run:
            f = run.f
            self.attrs = run.attrs
            self.status = run.status
            self.imported = "imported_from" in self.attrs
            ts = {name: f["timeseries"][name][()] for name in f["timeseries"]}
            n = min((len(v) for v in ts.values()), default=0)
            ts = {k: v[:n] for k, v in ts.items()}
            self.n = n
            steps = run.steps()
            spectra = run.spectra()
            points = f["eis/points"][()]
            self.cell_attrs = run.cell
            self.cell_units = run.cell_units
            self.cell_source = run.cell_source
            self.cell_overrides = run.cell_overrides
            self.protocol_source = run.protocol_source
            self.protocol_overrides = run.protocol_overrides
            self.predictions = {name: run.prediction(name) for name in f["predictions"]}
            self.instrument, self.transducer = (
                {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f[f"instruments/{role}"].attrs.items()}
                if f"instruments/{role}" in f
                else {}
                for role in ("potentiostat", "transducer")
            )
            commands = reads = None
            if "transcript" in f and len(f["transcript/reads"]):
                commands, reads = f["transcript/commands"][()], f["transcript/reads"][()]
        if n == 0 and not len(spectra):
            raise DataFileError(f"{self.path}: the run holds no samples and no spectra; nothing to replay")
        # Imported recordings count time from the instrument's own origin (EC-Lab: the whole experiment);
        # the replay starts at the first recorded step.
        if self.imported:
            self.origin = float(steps.t_start.iloc[0]) if len(steps) else float(ts["t"][0]) if n else 0.0
        else:
            self.origin = 0.0
        self.t = ts["t"].astype(float) - self.origin
        self.E_we = ts.get("E_we", np.full(n, np.nan)).astype(float)
        self.E_cell = ts.get("E_cell", np.full(n, np.nan)).astype(float)
        self.I = ts.get("I", np.full(n, np.nan)).astype(float)
        self.flags = ts.get("flags", np.zeros(n, np.uint8)).astype(np.uint8)
        self.aux = {k: ts[k].astype(float) for k in AUX if k in ts}
        self.area = float(self.cell_attrs.get("electrodes.working_area", math.nan))
        self.arrival = self.t.copy()  # when the recording's software had each sample (s, replay time)
        self.row_segment = np.zeros(n, dtype=np.int64)
        self.segments: list[Segment] = [Segment(OFF, -math.inf)]
        self.spectra: list[RecordedSpectrum] = []
        self.has_transcript = reads is not None
        if reads is not None and commands is not None:
            self._from_transcript(commands, reads, spectra, points)
        else:
            self._from_steps(ts, steps, spectra, points)
        # run_end[k]: first row after the run of rows sharing row k's segment (rows are handed over by run)
        ends = np.append(np.flatnonzero(np.diff(self.row_segment)) + 1, n).astype(np.int64)
        self.run_end = np.repeat(ends, np.diff(np.concatenate([[0], ends])))
        self._checksum: str | None = None

    @property
    def checksum(self) -> str:
        """SHA-256 of the run file, so a replay names exactly which bytes it answered from."""
        if self._checksum is None:
            self._checksum = sha256(self.path)
        return self._checksum

    @property
    def start_time(self) -> str:
        return str(self.attrs.get("start_time", ""))

    # --- segmentation -------------------------------------------------------------------------
    def _spectrum(
        self,
        row: Any,
        points: np.ndarray,
        segment: int,
        mode: str,
        dc: float | None,
        amplitude: float,
        first: int,
        count: int,
    ) -> RecordedSpectrum:
        p = points[first : first + count]
        return RecordedSpectrum(
            mode,
            dc,
            amplitude,
            p["frequency"].astype(float),
            p["z_real"].astype(float),
            p["z_imag"].astype(float),
            p["t"].astype(float) - self.origin,
            p["E_dc"].astype(float),
            p["I_dc"].astype(float),
            p["ok"].astype(bool),
            segment,
        )

    def _from_transcript(self, commands: np.ndarray, reads: np.ndarray, spectra: Any, points: np.ndarray) -> None:
        """Segments from the commands the engine sent, samples and spectra from the reads that answered."""
        entries = [(int(c["seq"]), "command", c) for c in commands] + [(int(r["seq"]), "read", r) for r in reads]
        entries.sort(key=lambda e: e[0])
        sweep: dict[str, Any] | None = None
        for _, what, row in entries:
            t = float(row["t"]) - self.origin
            if what == "command":
                method, outcome = _text(row["method"]), _text(row["outcome"])
                args = json.loads(_text(row["arguments"]))
                if method == "impedance":
                    sweep = args
                elif outcome == "ok" and (seg := commanded_segment(method, args, t)) is not None:
                    self.segments.append(seg)
                continue
            first, count = int(row["first"]), int(row["n"])
            if _text(row["kind"]) == "samples":
                self.row_segment[first : first + count] = len(self.segments) - 1
                self.arrival[first : first + count] = t
            elif sweep is not None:
                dc = optional_float(sweep.get("dc"))
                self.spectra.append(
                    self._spectrum(
                        row,
                        points,
                        len(self.segments) - 1,
                        str(sweep["mode"]),
                        dc,
                        float(sweep["amplitude"]),
                        first,
                        count,
                    )
                )
                sweep = None

    def _measured(self, rows: np.ndarray, column: np.ndarray, t_start: float, kind: str) -> Segment:
        """A segment known only by what was measured in it (no set-point recorded)."""
        values = column[rows]
        value = float(np.nanmedian(values)) if values.size and np.isfinite(values).any() else math.nan
        if kind == "current" and (not math.isfinite(value) or abs(value) < 1e-12):
            return Segment(State("off", sampling=True), t_start)
        return Segment(State(kind, value, True), t_start, MEASURED_REL * abs(value) + 1e-12)

    def _from_steps(self, ts: dict[str, np.ndarray], steps: Any, spectra: Any, points: np.ndarray) -> None:
        """Segments from the stored steps' parameters (no transcript): one per step, and one for samples
        of a step that never got its row."""
        step_col = ts.get("step", np.zeros(self.n, dtype=np.int32))
        by_step: dict[int, int] = {}
        for i in range(len(steps)):
            params = json.loads(steps.parameters.iloc[i] or "{}")
            t_start = float(steps.t_start.iloc[i]) - self.origin
            rows = np.flatnonzero(step_col == int(steps["index"].iloc[i]))
            by_step[int(steps["index"].iloc[i])] = len(self.segments)
            self.segments.append(self._step_segment(steps.kind.iloc[i], params, rows, t_start))
            self.row_segment[rows] = len(self.segments) - 1
        unassigned = np.flatnonzero(~np.isin(step_col, list(by_step)))
        if unassigned.size:  # samples of a step that never got its row (an interrupted run)
            self.segments.append(self._measured(unassigned, self.I, float(self.t[unassigned[0]]), "current"))
            self.row_segment[unassigned] = len(self.segments) - 1
        for i in range(len(spectra)):
            row = spectra.iloc[i]
            mode = str(row["mode"])
            dc = float(row["dc"])
            dc_value = None if (mode == "potentiostatic" and not math.isfinite(dc)) else dc
            self.spectra.append(
                self._spectrum(
                    row,
                    points,
                    by_step.get(int(row["step"]), 0),
                    mode,
                    dc_value,
                    float(row["amplitude"]),
                    int(row["first_point"]),
                    int(row["n_points"]),
                )
            )

    def _step_segment(self, kind: str, params: dict[str, Any], rows: np.ndarray, t_start: float) -> Segment:
        """A step's segment from its set point, or from what was measured where none is stored."""
        if kind == "rest":
            return Segment(State("off", sampling=True), t_start, 0.0, None, params.get("sample_period"))
        if kind == "galvanostatic":
            current = params.get("I")
            if current is None and "current_density" in params and math.isfinite(self.area):
                density = float(params["current_density"])
                current = (-density if params.get("direction") == "plate" else density) * self.area
            if current is None:
                return self._measured(rows, self.I, t_start, "current")
            limits = (params["v_min"], params["v_max"]) if "v_min" in params and "v_max" in params else None
            return Segment(
                State("current", float(current), True),
                t_start,
                SETPOINT_REL * abs(current) + 1e-15,
                limits,
                params.get("sample_period"),
            )
        if kind == "potentiostatic":
            potential = params.get("potential")
            if potential is None:
                return self._measured(rows, self.E_we, t_start, "potential")
            return Segment(State("potential", float(potential), True), t_start, POTENTIAL_ABS)
        if kind == "eis":
            return self._eis_segment(params, t_start)
        return self._measured(rows, self.I, t_start, "current")

    def _eis_segment(self, params: dict[str, Any], t_start: float) -> Segment:
        """An impedance step holds its dc current or potential, or the cell at open circuit."""
        spec = params.get("spec") or {}
        if "I_dc" in params:
            dc = float(params["I_dc"])
            return Segment(State("current", dc, True), t_start, SETPOINT_REL * abs(dc) + 1e-15)
        if spec.get("mode") == "galvanostatic" and spec.get("dc") and math.isfinite(self.area):
            dc = float(spec["dc"]) * self.area
            return Segment(State("current", dc, True), t_start, SETPOINT_REL * abs(dc) + 1e-15)
        if spec.get("mode") == "potentiostatic" and spec.get("dc") is not None:
            return Segment(State("potential", float(spec["dc"]), True), t_start, POTENTIAL_ABS)
        return Segment(State("off", sampling=True), t_start)

    # --- what the recording can do ------------------------------------------------------------
    def capabilities(self) -> Capabilities:
        """Anything the recording could answer; what it cannot is found when the protocol asks."""
        modes = {s.mode for s in self.spectra}
        return Capabilities(
            max_current=math.inf,
            current_resolution=0.0,
            max_voltage=math.inf,
            min_sample_period=0.0,
            galvanostatic=True,
            potentiostatic=True,
            eis_galvanostatic="galvanostatic" in modes,
            eis_potentiostatic="potentiostatic" in modes,
            eis_min_frequency=0.0,
            eis_max_frequency=math.inf,
            reference_electrode=True,
            hardware_voltage_limit=True,
        )

    def segment_end(self, index: int) -> float:
        """Replay time of the last sample recorded in segment ``index`` (or its start if it has none)."""
        rows = np.flatnonzero(self.row_segment == index)
        return float(self.t[rows[-1]]) if rows.size else self.segments[index].t_start
