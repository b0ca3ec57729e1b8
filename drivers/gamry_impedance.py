"""Impedance on a Gamry potentiostat: one GamryReadZ point per frequency, galvanostatic or potentiostatic.

The request's amplitude is a peak value (drivers/eis_amplitude.py); ReadZ.Measure takes RMS, so the
driver passes peak / sqrt(2). Galvanostatic: fixed I/E range for |I_dc| + peak, the DC level set with
SetVoltage(IEResistor(range) * I_dc). Potentiostatic: at the requested DC potential, or "vs Eoc" (DC
None): the open-circuit potential is measured with the cell off (MeasureV) just before the cell is
switched on at it, and kept in ``last_eoc``. The Vch range covers |E_dc| + peak, so a negative DC
potential is not truncated. During a running step of the same control mode the sweep takes over without
switching the cell off and the step's curve is re-armed afterwards (operando impedance).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from daq.core.capabilities import EisRequest
from daq.core.errors import InstrumentError
from daq.core.samples import EisPoint, SampleBlock
from drivers.eis_amplitude import peak_to_rms
from drivers.gamry_com import ReadZSink
from drivers.gamry_curves import SOURCING, Curve, window_span


class GamryImpedance:
    """Mixin of GamryPotentiostat: impedance sweeps with GamryReadZ."""

    _gc: Any
    _pstat: Any
    _com: Any
    _step: Curve | None
    readz_retries: int
    z_guess: float
    call_timeout: float
    last_eoc: float | None

    def _measure_point_w(self, readz: Any, sink: ReadZSink, f: float, amplitude_rms: float) -> EisPoint:
        gc, com = self._gc, self._com
        status: int | None = None
        for _ in range(self.readz_retries + 1):
            sink.done, sink.status = False, None
            readz.Measure(f, amplitude_rms)
            span = 12.0 / f + 5.0
            deadline = self.clock.now() + span
            pump = min(0.5, max(0.01, 0.5 / f))
            while not sink.done:
                if self.clock.now() > deadline:
                    raise InstrumentError(f"no ReadZ result at {f:g} Hz within {span:g} s (events not arriving?)")
                com.PumpEvents(pump)
            status = sink.status
            if status == gc.ReadZStatusError:
                raise InstrumentError(f"ReadZ error at {f:g} Hz: {readz.StatusMessage() or 'no message'}")
            if status == gc.ReadZStatusOk:
                break
        return EisPoint(
            float(readz.Zfreq()),
            float(readz.Zreal()),
            float(readz.Zimag()),
            self.clock.now(),
            float(readz.Vdc()),
            float(readz.Idc()),
            status == gc.ReadZStatusOk,
        )

    def _new_readz_w(self) -> tuple[Any, ReadZSink, Any]:
        gc, com = self._gc, self._com
        readz = com.CreateObject("GamryCOM.GamryReadZ")
        readz.Init(self._pstat)
        sink = ReadZSink()
        events = com.GetEvents(readz, sink)
        readz.SetSpeed(gc.ReadZSpeedNorm)
        readz.SetGain(1.0)
        readz.SetINoise(0.0)
        readz.SetVNoise(0.0)
        readz.SetIENoise(0.0)
        readz.SetZmod(self.z_guess)
        readz.SetCycleLim(2, 10)
        return readz, sink, events

    def _setup_geis_w(self, readz: Any, request: EisRequest, i_dc: float) -> None:
        gc, p = self._gc, self._pstat
        peak = abs(request.amplitude)
        v_span = window_span((request.v_min, request.v_max), self.capabilities.max_voltage)
        rng = self._configure_w(gc.GstatMode, abs(i_dc) + peak, v_span)
        p.SetVoltage(float(p.IEResistor(rng)) * i_dc)  # DC level of the galvanostat
        readz.SetIdc(i_dc)
        p.SetCell(gc.CellOn)

    def _setup_peis_w(self, readz: Any, request: EisRequest, e_dc: float | None) -> None:
        gc, p = self._gc, self._pstat
        peak = abs(request.amplitude)
        if e_dc is None:  # "vs Eoc": the open-circuit potential, measured with the cell off
            p.SetCell(gc.CellOff)
            e_dc = float(p.MeasureV())
            self.last_eoc = e_dc
        caps = self.capabilities
        self._configure_w(gc.PstatMode, caps.max_current, abs(e_dc) + peak)
        p.SetVoltage(e_dc)
        p.SetCell(gc.CellOn)
        i_dc = float(p.MeasureI())  # the DC current at E_dc sets the measurement range
        p.SetIERange(int(p.TestIERange(1.05 * (abs(i_dc) + 2 * peak / self.z_guess))))
        readz.SetIdc(i_dc)

    def _impedance(self, request: EisRequest, freqs: list[float]) -> Iterator[EisPoint]:
        step = self._step
        resume = step if step is not None and step.kind in SOURCING else None
        galvano = request.mode == "galvanostatic"
        if galvano:
            i_dc = request.dc if request.dc is not None else (resume.setpoint if resume else 0.0)
            e_dc: float | None = None
        else:
            i_dc = 0.0
            e_dc = request.dc if request.dc is not None else (resume.setpoint if resume else None)
        amplitude_rms = peak_to_rms(abs(request.amplitude))
        holder: dict[str, Any] = {}
        done = False

        def setup() -> None:
            self._service_w()
            keep_on = resume is not None and self._step is resume  # not ended by a limit meanwhile
            self._end_step_w(cell_off=not keep_on)
            readz, sink, events = self._new_readz_w()
            holder.update(readz=readz, sink=sink, events=events)
            if galvano:
                self._setup_geis_w(readz, request, i_dc)
            else:
                self._setup_peis_w(readz, request, e_dc)

        def finish() -> None:
            holder["events"] = None
            if resume is not None and resume.end - self.clock.now() > resume.period:
                resume.left = resume.end - self.clock.now()
                self._start_curve_w(resume)  # the step goes on where the sweep left it
            else:
                self._pstat.SetCell(self._gc.CellOff)

        try:
            self._do(setup, "starting the impedance sweep", safe=True)
            for index, f in enumerate(freqs):
                budget = (self.readz_retries + 1) * (12.0 / f + 5.0) + self.call_timeout
                point = self._do(
                    lambda f=f: self._measure_point_w(holder["readz"], holder["sink"], f, amplitude_rms),
                    f"measuring impedance at {f:g} Hz",
                    safe=True,
                    timeout=budget,
                )
                with self._pending_lock:  # the DC level during the point is data too
                    self._pending.append(
                        SampleBlock(
                            np.array([point.t]), np.array([point.E_dc]), np.array([np.nan]), np.array([point.I_dc])
                        )
                    )
                if index == len(freqs) - 1:
                    self._do(finish, "finishing the impedance sweep", safe=True)
                    done = True
                yield point
        finally:
            if not done and self._connected:
                self._safe_off()


def sweep_conflict(step: Curve | None, mode: str) -> str | None:
    """Why an impedance sweep of ``mode`` cannot run during ``step``, or None."""
    if step is None or step.kind not in SOURCING:
        return None
    if mode == "potentiostatic" and step.kind == "current":
        return "potentiostatic impedance during a galvanostatic step"
    if mode == "galvanostatic" and step.kind == "potential":
        return "galvanostatic impedance during a potentiostatic step"
    return None
