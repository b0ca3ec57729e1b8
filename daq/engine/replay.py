"""Replay: a potentiostat that answers from a recorded run file instead of a cell (docs/replay.md).

Why: protocol logic (stop conditions, short-circuit thresholds, step sequencing) can then be tried
on real recordings, ours or imported from vendor software, in accelerated time, and a changed
threshold can be judged on the data that motivated it.

The recording is cut into *segments*, each one state of the instrument (open circuit, a current, a
potential) with the rows of /timeseries measured in it: from /transcript where the run kept one (the
commands and the blocks they produced), otherwise from /steps. The replay keeps the state the
replayed protocol has asked for and hands over recorded samples only while that state is the state
the recording was in, at the recorded times (and, with a transcript, in the recorded blocks).

The replay never invents data. When the protocol's state differs from the recording's over a stretch
of time in which the recording has samples (the *divergence*), the replay reports it and returns no
samples from then on: an open-circuit protocol simply gets empty blocks (the recording does not know
what the cell did at rest then); a protocol that keeps the cell on cannot be answered, so the first
read with nothing recorded left to hand over raises InstrumentError ("replay ended: ..."), which the
engine treats like any instrument that stops answering: current off, outcome ``fault``. Impedance is
answered with the next recorded sweep if the request matches it, and no longer after a divergence.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from daq.core.capabilities import (
    Calibration,
    Capabilities,
    EisRequest,
    InstrumentInfo,
    Potentiostat,
    PressureReading,
    PressureSensor,
)
from daq.core.clock import Clock, VirtualClock
from daq.core.errors import InstrumentError
from daq.core.samples import EisPoint, SampleBlock
from daq.engine.replay_source import EPS, OFF, EventSink, RecordedSpectrum, ReplaySource, Segment, State


@dataclass
class Divergence:
    """Where the replayed protocol left the recording: time (s), the recording's row, and why."""

    t: float
    sample: int
    message: str
    data: dict[str, Any]


class ReplayPotentiostat(Potentiostat):
    """Answers a protocol from a ReplaySource on ``clock`` (a VirtualClock: replays run in accelerated
    time). ``on_event(t, kind, message, data)`` receives divergences and notes for the run's /events."""

    def __init__(self, source: ReplaySource | str | Path, clock: Clock, on_event: EventSink | None = None):
        self.source = source if isinstance(source, ReplaySource) else ReplaySource(source)
        self.clock = clock
        self.on_event = on_event
        self._caps = self.source.capabilities()
        self._origin = 0.0  # clock time of replay time 0
        self._connected = False
        self._state = OFF
        self._since = 0.0
        self._cursor = 0  # next recorded row not yet handed over or passed
        self._out: list[tuple[int, int]] = []  # row ranges due for the next read
        self._last: list[tuple[int, int]] = []  # row ranges of the last read (a rewind may take some back)
        self._spectrum = 0
        self._suspect: Divergence | None = None  # found in a read a rewind may still undo
        self.divergence: Divergence | None = None
        self.ended = ""  # why the replay could not answer the protocol ('' while it can)
        self.events: list[dict[str, Any]] = []

    # --- plumbing -----------------------------------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        if self.divergence is not None or self._suspect is not None:  # no spectra describe the cell from then
            return replace(self._caps, eis_galvanostatic=False, eis_potentiostatic=False)
        return self._caps

    def _now(self) -> float:
        return self.clock.now() - self._origin

    def _event(self, t: float, kind: str, message: str, data: dict[str, Any]) -> None:
        self.events.append({"t": t, "kind": kind, "message": message, "data": data})
        if self.on_event is not None:
            self.on_event(t, kind, message, data)

    def _commit(self) -> None:
        """A suspected divergence that no rewind undid is real."""
        if self._suspect is not None:
            d, self._suspect = self._suspect, None
            self._diverge(d)

    def _diverge(self, d: Divergence) -> None:
        if self.divergence is not None:
            return
        self.divergence = d
        self._out = []
        self._event(d.t, "replay_divergence", d.message, d.data)

    def _end(self, message: str) -> InstrumentError:
        """The protocol keeps the cell on and the recording has nothing for it: the replay stops."""
        self.ended = message
        return InstrumentError(f"replay ended: {message}")

    def _settle(self, now: float, inclusive: bool) -> None:
        """Pass the recorded rows up to ``now`` under the present state: due rows go to the next read;
        the first row recorded in another state ends the pass (a divergence if it lies in the past)."""
        src = self.source
        if self.divergence is not None or self._suspect is not None:
            return
        limit = now + EPS if inclusive else now - EPS
        while self._cursor < src.n and src.t[self._cursor] <= limit:
            a = self._cursor
            seg_index = int(src.row_segment[a])
            if not src.segments[seg_index].admits(self._state):
                if src.t[a] < now - EPS:  # measured in another state while the protocol held this one
                    self._suspect = self._divergence(a, seg_index)
                break  # (recorded at this very instant: the protocol may still follow the change)
            end = int(src.run_end[a])  # within a run, times and arrivals do not decrease
            b = a + int(np.searchsorted(src.t[a:end], limit, side="right"))
            b = a + int(np.searchsorted(src.arrival[a:b], now + EPS, side="right"))  # not yet read: later
            if b == a:
                break
            if self._state.sampling:
                self._out.append((a, b))
            self._cursor = b
            if b < end:
                break

    def _divergence(self, k: int, seg_index: int) -> Divergence:
        src, seg, state = self.source, self.source.segments[seg_index], self._state
        t_div = max(self._since, seg.t_start)
        until = src.segment_end(seg_index)
        if self._since >= seg.t_start:
            message = (
                f"the protocol switched to {state.describe()} at {t_div:.6g} s while the recording kept "
                f"{seg.state.describe()} until {until:.6g} s: no recorded data describe the cell from here"
            )
        else:
            message = (
                f"the recording switched to {seg.state.describe()} at {t_div:.6g} s while the protocol "
                f"keeps {state.describe()}: no recorded data describe the cell from here"
            )
        message += "; the replay ends here" if state.on else "; the replay returns no further samples"
        return Divergence(
            t_div,
            k,
            message,
            {
                "t_divergence": t_div,
                "source_row": k,
                "recorded_state": seg.state.kind,
                "recorded_value": seg.state.value,
                "protocol_state": state.kind,
                "protocol_value": state.value,
                "recorded_until": until,
            },
        )

    def _command(
        self, state: State, limits: tuple[float, float] | None = None, sample_period: float | None = None
    ) -> None:
        self._commit()
        now = self._now()
        self._settle(now, inclusive=False)
        self._state, self._since = state, now
        self._note(state, limits, sample_period, now)

    def _note(self, state: State, limits: tuple[float, float] | None, period: float | None, now: float) -> None:
        """Differences the recorded data cannot show (limits, sample period) become notes, not divergences."""
        nxt = self._next_segment(now)
        if nxt is None or not nxt.admits(state):
            return
        diffs = {}
        if (
            limits is not None
            and nxt.limits is not None
            and any(
                a is not None and b is not None and not (math.isinf(a) and math.isinf(b)) and abs(a - b) > 1e-9
                for a, b in zip(limits, nxt.limits)
            )
        ):
            diffs["limits"] = (list(limits), list(nxt.limits))
        if period is not None and nxt.sample_period is not None and abs(period - nxt.sample_period) > 1e-9:
            diffs["sample_period"] = (period, nxt.sample_period)
        if diffs:
            text = "; ".join(f"{k}: protocol {a}, recording {b}" for k, (a, b) in diffs.items())
            self._event(
                now,
                "replay_note",
                f"settings the samples cannot reflect: {text}; the samples (and any "
                f"hardware-limit flags in them) are those of the recording's settings",
                {k: {"protocol": a, "recording": b} for k, (a, b) in diffs.items()},
            )

    def _next_segment(self, now: float) -> Segment | None:
        src = self.source
        if self._cursor < src.n:
            return src.segments[int(src.row_segment[self._cursor])]
        later = [s for s in src.segments if s.t_start >= now - EPS]
        return later[0] if later else None

    def _block(self, ranges: list[tuple[int, int]]) -> SampleBlock:
        src = self.source
        idx = np.concatenate([np.arange(a, b) for a, b in ranges]) if ranges else np.zeros(0, dtype=np.int64)
        return SampleBlock(
            src.t[idx] + self._origin,
            src.E_we[idx],
            src.E_cell[idx],
            src.I[idx],
            src.flags[idx],
            {k: v[idx] for k, v in src.aux.items()},
        )

    # --- the interface ------------------------------------------------------------------------
    def connect(self) -> InstrumentInfo:
        self._origin = self.clock.now()
        self._connected = True
        info = self.source.instrument
        return InstrumentInfo(
            "replay",
            f"replay of {info.get('vendor', '')} {info.get('model', '')}".strip(),
            str(info.get("serial", "")),
            str(info.get("firmware", "")),
            "daq.engine.replay",
            f"replay://{self.source.path}",
        )

    def apply_current(
        self, current: float, v_min: float, v_max: float, sample_period: float, duration: float | None = None
    ) -> None:
        self._check()
        self._command(State("current", current, True), (v_min, v_max), sample_period)

    def apply_potential(
        self, potential: float, i_min: float, i_max: float, sample_period: float, duration: float | None = None
    ) -> None:
        self._check()
        self._command(State("potential", potential, True), None, sample_period)

    def open_circuit(self, sample_period: float | None = None) -> None:
        self._command(State("off", sampling=sample_period is not None), None, sample_period)

    def read(self) -> SampleBlock:
        """Recorded samples due by now in the requested state. With none left while the protocol keeps
        the cell on, after a divergence or past the recording's end, the replay ends (InstrumentError)."""
        self._check()
        self._commit()
        now = self._now()
        self._settle(now, inclusive=True)
        rows, self._out = self._out, []
        if not rows and self._suspect is not None:
            self._commit()  # nothing handed over, so no stop in this block can rewind it away
        if not rows and self._state.on:
            if self.divergence is not None:
                if self.divergence.t >= self._since - EPS:
                    raise self._end(self.divergence.message)
                raise self._end(
                    f"after the divergence at {self.divergence.t:.6g} s the protocol applies "
                    f"{self._state.describe()} from {self._since:.6g} s; the recording has no data for it"
                )
            if self._cursor >= self.source.n and self._overdue(now):
                t_last = float(self.source.t[-1]) if self.source.n else 0.0
                message = (
                    f"the recording ends at {t_last:.6g} s while the protocol keeps "
                    f"{self._state.describe()}: no recorded data from here"
                )
                self._event(t_last, "replay_end", message, {"t_end": t_last})
                raise self._end(message)
        self._last = rows
        return self._block(rows)

    def _overdue(self, now: float) -> bool:
        """Past the recording's last sample by more than its sample period: a sample is missing."""
        src = self.source
        if not src.n:
            return True
        seg = src.segments[int(src.row_segment[-1])]
        period = seg.sample_period or (float(np.median(np.diff(src.t[-8:]))) if src.n > 2 else 1.0)
        return now > float(src.t[-1]) + 1.5 * period + EPS

    def impedance(self, request: EisRequest) -> Iterator[EisPoint]:
        self._check()
        self._commit()
        now = self._now()
        self._settle(now, inclusive=True)
        if self.divergence is not None:
            raise self._end(
                f"no recorded spectrum describes the cell after the divergence at {self.divergence.t:.6g} s"
            )
        spectra = self.source.spectra
        while self._spectrum < len(spectra) and spectra[self._spectrum].t_first < now - EPS:
            self._spectrum += 1  # sweeps the protocol did not ask for
        if self._spectrum >= len(spectra):
            raise self._end(
                f"the protocol asks for an impedance sweep at {now:.6g} s; the recording has none from then on"
            )
        spec = spectra[self._spectrum]
        why = spec.mismatch(request)
        seg = self.source.segments[spec.segment]
        if not why and not seg.admits(self._state):
            why = f"it was taken at {seg.state.describe()}, the protocol holds {self._state.describe()}"
        if why:
            raise self._end(
                f"the protocol's impedance sweep at {now:.6g} s is not the recorded one (spectrum at "
                f"{spec.t_first:.6g} s): {why}"
            )
        self._spectrum += 1
        return self._points(spec)

    def _points(self, spec: RecordedSpectrum) -> Iterator[EisPoint]:
        for k in range(len(spec.frequency)):
            self.clock.sleep(float(spec.t[k]) + self._origin - self.clock.now())
            yield EisPoint(
                float(spec.frequency[k]),
                float(spec.z_real[k]),
                float(spec.z_imag[k]),
                float(spec.t[k]) + self._origin,
                float(spec.E_dc[k]),
                float(spec.I_dc[k]),
                bool(spec.ok[k]),
            )

    def rewind(self, t: float) -> SampleBlock:
        """Take back the samples of the last read after clock time ``t`` (the engine reacting to a stop
        found inside a big block): the recording holds them, so nothing is recomputed."""
        if not isinstance(self.clock, VirtualClock):
            raise InstrumentError("only a virtual clock can be rewound")
        self.clock.rewind(t)
        cut = t - self._origin
        src = self.source
        lo = min([a for a, _ in self._last + self._out] + [self._cursor])
        back = lo + int(np.searchsorted(src.t[lo : self._cursor], cut + EPS, side="right"))
        self._cursor = min(self._cursor, back)  # the rows after the cut are recorded, not yet handed over

        def trim(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
            return [(a, min(b, back)) for a, b in ranges if a < back]

        self._last, self._out = trim(self._last), trim(self._out)
        if self._suspect is not None and src.t[self._suspect.sample] > cut + EPS:
            self._suspect = None  # the rows that contradicted the protocol come after the stop
        return self._block(self._last)

    def close(self) -> None:
        self._connected = False

    def _check(self) -> None:
        if not self._connected:
            raise InstrumentError("replay: not connected")


class ReplayTransducer(PressureSensor):
    """The recorded stack pressure, read as the recording read it: the value stored with the samples the
    replay handed over last. Attached when the recording had a transducer, so the engine runs as it did."""

    def __init__(self, pstat: ReplayPotentiostat):
        self.pstat = pstat
        src = pstat.source
        self.pressed_area = float(src.transducer.get("pressed_area", src.cell_attrs.get("pressed_area", math.nan)))
        self.calibration = Calibration(reference=f"replay of {src.path.name}")

    def connect(self) -> InstrumentInfo:
        info = self.pstat.source.transducer
        return InstrumentInfo(
            "replay",
            f"replay of {info.get('vendor', '')} {info.get('model', '')}".strip(),
            str(info.get("serial", "")),
            str(info.get("firmware", "")),
            "daq.engine.replay",
            f"replay://{self.pstat.source.path}",
        )

    def read(self) -> PressureReading:
        src, ranges = self.pstat.source, self.pstat._last
        k = ranges[-1][1] - 1 if ranges else max(self.pstat._cursor - 1, 0)
        pressure = float(src.aux["pressure"][k]) if "pressure" in src.aux and src.n else math.nan
        force = float(src.aux["force"][k]) if "force" in src.aux and src.n else None
        return PressureReading(self.pstat.clock.now(), pressure, force)

    def close(self) -> None:
        pass
