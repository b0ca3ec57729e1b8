"""The checks of ``daq selftest``: a channel against a dummy cell of known values.

Each check drives the channel's real driver and compares with what the dummy must give: its DC
resistance at each test current, the voltage limit cutting the current at the instrument, the output
off at the end of a step and after the dead-man time, its impedance spectrum, the transducer's reading.
Whether the instrument really sources is asked from what can tell it (an emulated instrument's output,
else the current the instrument measures at rest).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from daq.core import units as u
from daq.core.capabilities import EisRequest
from daq.core.clock import Clock
from daq.core.samples import FLAG_HW_LIMIT, SampleBlock
from daq.models.dummy_cell import DummyCellSpec

SAMPLE_PERIOD = 0.5  # s
STEP = 6.0  # s of sourcing per test current
LIMIT_MARGIN = 0.02  # V above the limit a sample may show (one sample of the instrument's reaction)
EIS_AMPLITUDE = 0.010  # V (RMS equivalent on every driver, drivers.eis_amplitude)
EIS_POINTS_PER_DECADE = 4


@dataclass
class Check:
    name: str
    passed: bool | None  # None: does not apply to this instrument
    measured: str
    expected: str
    data: dict[str, Any] = field(default_factory=dict)  # SI values for the run file


@dataclass
class Bench:
    """What the checks work with."""

    pstat: Any
    transducer: Any
    clock: Clock
    dummy: DummyCellSpec
    output_on: Callable[[], bool] | None  # an emulated instrument's real output state
    deadman_wall_time: bool = False  # the dead-man acts on wall time only (not on a virtual clock)
    blocks: list[SampleBlock] = field(default_factory=list)  # everything read, for the run file
    spectra: list[tuple[dict[str, Any], list[Any]]] = field(default_factory=list)

    def source(self, current: float, v_lim: float, seconds: float, duration: float | None) -> SampleBlock:
        self.pstat.apply_current(current, -v_lim, v_lim, SAMPLE_PERIOD, duration=duration)
        return self.wait(seconds)

    def wait(self, seconds: float) -> SampleBlock:
        got = []
        t_end = self.clock.now() + seconds
        while self.clock.now() < t_end - 1e-9:
            self.clock.sleep(min(1.0, t_end - self.clock.now()))
            got.append(self.pstat.read())
        block = SampleBlock.concat(got) if got else SampleBlock.empty()
        self.blocks.append(block)
        return block

    def rest(self) -> None:
        self.pstat.open_circuit(SAMPLE_PERIOD)
        self.wait(2.0)

    def is_on(self) -> bool:
        """Whether current flows: the emulated output, else the current measured at open circuit."""
        if self.output_on is not None:
            return self.output_on()
        block = self.wait(2.0)
        res = getattr(self.pstat.capabilities, "current_resolution", 1e-9)
        return bool(len(block) and np.nanmax(np.abs(block.I)) > 100 * res)


def voltage(block: SampleBlock) -> np.ndarray:
    """The voltage across the dummy: E_cell where measured (two-terminal instruments), else E_we."""
    return block.E_cell if np.isfinite(block.E_cell).any() else block.E_we


def current_accuracy(b: Bench, current: float) -> Check:
    r_dc, tol = b.dummy.dc_resistance, b.dummy.tolerance
    v_lim = min(max(3 * abs(current) * r_dc, 0.5), b.pstat.capabilities.max_voltage)
    block = b.source(current, v_lim, STEP, None)
    b.rest()
    name = f"current {u.fmt(current, 'uA' if abs(current) < 1e-3 else 'mA')}"
    settled = block.t >= block.t[0] + 5 * b.dummy.time_constant + SAMPLE_PERIOD if len(block) else block.t
    if not len(block) or not settled.any():
        return Check(name, False, "no samples", f"{r_dc:g} ohm")
    v, i = float(np.mean(voltage(block)[settled])), float(np.mean(block.I[settled]))
    r = v / current
    ok = abs(i / current - 1) <= tol and abs(r / r_dc - 1) <= tol
    measured = f"I {u.fmt(i, 'uA')}, V/I {r:.5g} ohm"
    return Check(name, ok, measured, f"V/I {r_dc:g} ohm +-{tol:.1%}", {"I": i, "V": v, "R": r})


def voltage_limit(b: Bench) -> Check:
    current = max(b.dummy.test_currents, key=abs)
    v_lim = 0.5 * abs(current) * b.dummy.dc_resistance
    block = b.source(current, v_lim, STEP, None)
    on = b.is_on()
    b.rest()
    name = "voltage limit"
    if not len(block):
        return Check(name, False, "no samples", f"|V| <= {v_lim:.3g} V, output off")
    flagged = (block.flags & FLAG_HW_LIMIT) != 0
    tripped = bool(flagged.any())
    # The sample that trips the limit may lie beyond it; no other may.
    over = int(((np.abs(voltage(block)) > v_lim + LIMIT_MARGIN) & ~flagged).sum())
    ok = tripped and not on and over == 0
    measured = (
        f"{'limit flagged' if tripped else 'no limit flag'}, {over} unflagged samples beyond, "
        f"output {'ON' if on else 'off'}"
    )
    return Check(name, ok, measured, f"stop at |V| = {v_lim:.3g} V, output off", {"v_limit": v_lim, "over": over})


def off_at_end(b: Bench) -> Check:
    current = min(b.dummy.test_currents, key=abs)
    b.source(current, 1.0 + 3 * abs(current) * b.dummy.dc_resistance, STEP + 4.0, STEP)
    on = b.is_on()
    b.rest()
    return Check("output off at step end", not on, f"output {'ON' if on else 'off'}", f"off after {STEP:g} s")


def off_after_deadman(b: Bench) -> Check:
    deadman = getattr(b.pstat, "deadman_s", None)
    name = "output off after dead-man time"
    if not deadman:
        return Check(name, None, "n/a", "the driver has no dead-man time")
    if b.deadman_wall_time and b.clock.virtual:
        return Check(name, None, "n/a", "a wall-time dead-man: run the self test with --speed")
    current = min(b.dummy.test_currents, key=abs)
    b.pstat.apply_current(current, -5.0, 5.0, SAMPLE_PERIOD, duration=20 * deadman)
    b.clock.sleep(1.0)
    b.pstat.read()
    on_before = b.output_on() if b.output_on is not None else True
    b.clock.sleep(1.5 * deadman + 2.0)  # the PC stops polling, as if this process had died
    on = b.is_on() if b.output_on is not None else None
    try:
        b.rest()
    except Exception:  # noqa: BLE001 - the instrument stopped by itself; the driver may refuse to resume
        pass
    if on is None:
        return Check(name, None, "n/a", "no way to see the output without polling")
    ok = on_before and not on
    silent = 1.5 * deadman + 2
    measured = f"on while polled: {'yes' if on_before else 'NO'}; after {silent:g} s silent: {'ON' if on else 'off'}"
    return Check(name, ok, measured, f"off within {deadman:g} s", {"deadman_s": deadman})


def impedance_spectrum(b: Bench) -> Check:
    caps = b.pstat.capabilities
    name = "impedance spectrum"
    if not (caps.eis_potentiostatic or caps.eis_galvanostatic) or not hasattr(b.pstat, "impedance"):
        return Check(name, None, "n/a", "the instrument measures no impedance")
    f_hi, f_lo = min(1e4, caps.eis_max_frequency), max(1.0, caps.eis_min_frequency)
    n = max(2, round(math.log10(f_hi / f_lo) * EIS_POINTS_PER_DECADE) + 1)
    freqs = list(np.logspace(math.log10(f_hi), math.log10(f_lo), n))
    if caps.eis_potentiostatic:
        request = EisRequest("potentiostatic", freqs, EIS_AMPLITUDE, 0.0)
    else:
        request = EisRequest("galvanostatic", freqs, EIS_AMPLITUDE / b.dummy.dc_resistance, 0.0)
    points = list(b.pstat.impedance(request))
    b.spectra.append(({"mode": request.mode, "amplitude": request.amplitude}, points))
    if len(points) != len(freqs):
        return Check(name, False, f"{len(points)} of {len(freqs)} points", "every point")
    z = np.array([p.z_real + 1j * p.z_imag for p in points])
    expected = b.dummy.impedance(np.array([p.frequency for p in points]))
    err = np.abs(z - expected) / np.abs(expected)
    tol = b.dummy.tolerance
    worst = int(np.argmax(err))
    ok = bool(err.max() <= tol and all(p.ok for p in points))
    measured = f"{len(points)} points, worst {err[worst]:.2%} at {points[worst].frequency:.4g} Hz"
    return Check(name, ok, measured, f"|Z - Z_dummy| <= {tol:.1%} |Z_dummy|", {"max_error": float(err.max())})


def transducer_reading(b: Bench) -> Check:
    name = "transducer"
    if b.transducer is None:
        return Check(name, None, "n/a", "no transducer on this channel")
    b.transducer.connect()
    try:
        p = b.transducer.read().pressure
    finally:
        b.transducer.close()
    expected, tol = b.dummy.pressure, b.dummy.pressure_tolerance
    if expected is None:
        ok = math.isfinite(p) and p >= -tol
        return Check(name, ok, u.fmt(p, "MPa"), "a finite reading", {"pressure": p})
    ok = math.isfinite(p) and abs(p - expected) <= tol
    return Check(name, ok, u.fmt(p, "MPa"), f"{u.fmt(expected, 'MPa')} +- {u.fmt(tol, 'MPa')}", {"pressure": p})
