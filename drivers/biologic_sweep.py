"""Impedance sweeps (GEIS/PEIS) of the BioLogic driver, operando included.

During a galvanostatic or potentiostatic step the sweep is loaded as the first techniques of a chain whose
last is the step's technique, so the current never stops; after the last point the step technique gets its
remaining duration (at most the dead-man time) through BL_UpdateParameters. A sweep alone ends the channel.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from daq.core.capabilities import EisRequest
from daq.core.errors import InstrumentError
from daq.core.samples import EisPoint, SampleBlock
from drivers import biologic_layouts as L
from drivers import biologic_tables as T
from drivers.biologic_techniques import Run, eis_techniques


class ImpedanceSweeps:
    """Mixed into BiologicPotentiostat: the sweep generator and what follows it."""

    def _impedance(self: Any, request: EisRequest, freqs: list[float]) -> Iterator[EisPoint]:
        resume = self._run if (self._run is not None and self._run.sourcing) else None
        i_dc = 0.0
        if request.mode == "galvanostatic":
            i_dc = (
                request.dc
                if request.dc is not None
                else (resume.setpoint if resume and resume.kind == "current" else 0.0)
            )
        points: list[EisPoint] = []
        done = False
        try:
            with self._safety("starting the impedance sweep"):
                run = self._start_sweep(request, freqs, i_dc, resume)

            def on_eis(infos: Any, data: dict[str, np.ndarray]) -> None:
                points.extend(_points(data))
                # The DC level of each point is data too: the charge bookkeeping sees the current that flowed.
                n = len(data["time"])
                self._pending.append(
                    SampleBlock(
                        data["time"].copy(), data["Ewe"].copy(), L.cell_voltage(data), data["I"].copy(),
                        np.zeros(n, dtype=np.uint8),
                    )
                )  # fmt: skip

            for index, f in enumerate(freqs):
                self._wait_point(index, f, len(freqs), points, on_eis)
                if index == len(freqs) - 1:  # finish before handing out the last point
                    with self._safety("finishing the impedance sweep"):
                        self._finish_sweep(run, points[-1].t)
                    done = True
                yield points[index]
        finally:
            if not done and self._connected:
                self._safe_stop()

    def _start_sweep(self: Any, request: EisRequest, freqs: list[float], i_dc: float, resume: Run | None) -> Run:
        self._poll()
        self._stop_and_drain()
        now = self.clock.now()
        i_range = self._i_range(abs(i_dc) + abs(request.amplitude), headroom=2.0)
        techniques = eis_techniques(request, freqs, i_dc, i_range)
        if resume is not None and resume.end - now > resume.period:
            run = Run(
                resume.kind,
                now,
                setpoint=resume.setpoint,
                limits=resume.limits,
                period=resume.period,
                end=resume.end,
                step_index=len(techniques),
            )
            techniques.append(self._step_technique(run, min(resume.end - now, self.deadman_s)))
        else:
            run = Run("eis", now, period=resume.period if resume else 1.0)
        self._start(techniques, run)
        return run  # a step technique starts after the sweep: its start is known from its first data

    def _wait_point(self: Any, index: int, f: float, n: int, points: list[EisPoint], on_eis: Any) -> None:
        wait = max((1.0 + 1 + 1) / f, 0.2)
        deadline = self.clock.now() + 3 * wait + 10.0 + 5 * self.poll_period
        while len(points) <= index:
            with self._safety("measuring impedance"):
                state = self._poll(on_eis)
            if len(points) > index:
                return
            if state == T.STATE_STOP:
                with self._safety("measuring impedance"):
                    raise InstrumentError(
                        f"{self.name}: the channel stopped after {len(points)} of {n} impedance points"
                    )
            if self.clock.now() > deadline:
                with self._safety("measuring impedance"):
                    raise InstrumentError(f"{self.name}: no impedance point at {f:g} Hz within {3 * wait + 10:g} s")
            self.clock.sleep(min(self.poll_period, wait / 4))

    def _finish_sweep(self: Any, run: Run, t_end: float) -> None:
        """After the last point: an operando step gets its remaining duration (at most the dead-man time)
        pushed into the running step technique, a plain sweep is drained and the channel is idle."""
        if run.kind == "eis":
            self._poll()
            self._run = None
            return
        if not self.conn.has("BL_UpdateParameters"):
            return  # an old library: the segment loaded with the chain bounds it
        self._update_step(run, min(max(run.end - t_end, 0.0), self.deadman_s))
        run.segment_start = math.nan  # known once the step's data tells when it started


def _points(data: dict[str, np.ndarray]) -> list[EisPoint]:
    """Process-1 rows as impedance points: Z = |Ewe| / |I| e^(i phase)."""
    phase = np.radians(data["Phase_Zwe"]) if L.PHASE_UNIT == "deg" else data["Phase_Zwe"]
    z = data["abs_Ewe"] / np.where(data["abs_I"] > 0, data["abs_I"], np.nan) * np.exp(1j * phase)
    return [
        EisPoint(
            float(data["freq"][k]), float(z[k].real), float(z[k].imag), float(data["time"][k]),
            float(data["Ewe"][k]), float(data["I"][k]), bool(np.isfinite(z[k])),
        )
        for k in range(len(z))
    ]  # fmt: skip
