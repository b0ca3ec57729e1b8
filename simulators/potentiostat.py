"""A simulated potentiostat channel driving a SimulatedCell on the run's Clock.

It behaves like a buffered instrument: samples accumulate at the sample period as clock time passes
and read() hands over what has accumulated. Limits and durations are enforced "in hardware" here, at
the sample where they happen, as real instruments with stop limits do, and a current source never
drives the cell beyond its compliance voltage: it clamps there and flags the overload.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from daq.core.capabilities import (
    Capabilities,
    EisRequest,
    InstrumentInfo,
    Potentiostat,
    check_setpoint,
    checked_frequencies,
)
from daq.core.clock import Clock, VirtualClock
from daq.core.errors import InstrumentError
from daq.core.samples import FLAG_HW_LIMIT, FLAG_OVERLOAD, EisPoint, SampleBlock
from simulators.cell import SimulatedCell, intervals

# Modelled on a Gamry Interface 1010 class instrument: 1 A ... 10 pA ranges, 1 MHz EIS; the
# simulator reaches 7 MHz so the lab's GEIS protocol runs unchanged.
SIM_CAPABILITIES = Capabilities(
    max_current=0.6,
    current_resolution=1e-11,
    max_voltage=12.0,
    min_sample_period=1e-3,
    galvanostatic=True,
    potentiostatic=True,
    eis_galvanostatic=True,
    eis_potentiostatic=True,
    eis_min_frequency=1e-5,
    eis_max_frequency=1e7,
    reference_electrode=True,
    hardware_voltage_limit=True,
)


class SimulatedPotentiostat(Potentiostat):
    def __init__(
        self, cell: SimulatedCell, clock: Clock, capabilities: Capabilities = SIM_CAPABILITIES, name: str = "sim0"
    ):
        self.cell, self.clock, self.capabilities, self.name = cell, clock, capabilities, name
        self._connected = False
        self._mode = "off"  # off | ocv | current | potential
        self._setpoint = 0.0
        self._limits = (-np.inf, np.inf)
        self._period = 1.0
        self._t_start = 0.0  # time of the mode change; sample k is at t_start + k * period
        self._k = 1
        self._end = np.inf
        self._t_cell = 0.0  # clock time up to which the cell has been advanced
        self._pending: list[SampleBlock] = []
        self._mark: tuple | None = None  # state at the last read or mode change
        self._checkpoint: tuple | None = None  # the mark in force when the last block began
        self._last_block = SampleBlock.empty()

    # --- interface ----------------------------------------------------------------------------
    def connect(self) -> InstrumentInfo:
        self._connected = True
        self._t_cell = self.clock.now()
        return InstrumentInfo(
            "simulated", "SimPstat-1", self.name, "1.0", "simulators.potentiostat", f"sim://{self.name}"
        )

    @property
    def mode(self) -> str:
        """What the output does now: "off", "ocv", "current" or "potential"."""
        return self._mode

    def apply_current(
        self, current: float, v_min: float, v_max: float, sample_period: float, duration: float | None = None
    ) -> None:
        self._check_connected()
        check_setpoint(self.name, self.capabilities, current=current, duration=duration)
        self._set_mode("current", current, (v_min, v_max), sample_period, duration)

    def apply_potential(
        self, potential: float, i_min: float, i_max: float, sample_period: float, duration: float | None = None
    ) -> None:
        self._check_connected()
        check_setpoint(self.name, self.capabilities, potential=potential, duration=duration)
        self._set_mode("potential", potential, (i_min, i_max), sample_period, duration)

    def open_circuit(self, sample_period: float | None = None) -> None:
        self._advance()
        if sample_period is None:
            self._mode = "off"
            self._save_mark()
            return
        self._set_mode("ocv", 0.0, (-np.inf, np.inf), sample_period, None)

    def read(self) -> SampleBlock:
        self._check_connected()
        self._checkpoint = self._mark
        self._advance()
        block = SampleBlock.concat(self._pending)
        self._pending = []
        self._last_block = block
        self._save_mark()
        return block

    def rewind(self, t: float) -> SampleBlock:
        """Restore the state saved at the last read or mode change, replay up to ``t`` (the simulation is
        deterministic, so replayed samples equal the originals) and drop what came after."""
        if self._checkpoint is None:
            raise InstrumentError(f"{self.name}: nothing to rewind")
        snap, mode_state, t_cell, t_ckpt = self._checkpoint
        if t < t_ckpt - 1e-9:
            raise InstrumentError(f"{self.name}: cannot rewind before {t_ckpt:g} s")
        self.cell.restore(snap)
        (self._mode, self._setpoint, self._limits, self._period, self._t_start, self._k, self._end) = mode_state
        self._t_cell = t_cell
        if not isinstance(self.clock, VirtualClock):
            raise InstrumentError("only a virtual clock can be rewound")
        self.clock.rewind(t)
        self._pending = []
        self._advance()
        self._pending = []
        keep = int(np.searchsorted(self._last_block.t, t + 1e-9))
        b = self._last_block
        self._last_block = SampleBlock(
            b.t[:keep],
            b.E_we[:keep],
            b.E_cell[:keep],
            b.I[:keep],
            b.flags[:keep],
            {k: v[:keep] for k, v in b.aux.items()},
        )
        self._save_mark()
        return self._last_block

    def _save_mark(self) -> None:
        mode_state = (self._mode, self._setpoint, self._limits, self._period, self._t_start, self._k, self._end)
        self._mark = (self.cell.snapshot(), mode_state, self._t_cell, self.clock.now())

    def impedance(self, request: EisRequest) -> Iterator[EisPoint]:
        """One point per frequency; clock time passes (about 3 periods, at least 0.2 s per point) while
        the DC level keeps flowing, so operando spectra are taken while plating continues."""
        self._check_connected()
        return self._sweep(checked_frequencies(self.name, self.capabilities, request))

    def _sweep(self, frequencies: list[float]) -> Iterator[EisPoint]:
        for f in frequencies:
            self.clock.sleep(max(3.0 / f, 0.2))
            self._advance()
            i_dc = self._setpoint if self._mode == "current" else 0.0
            z = complex(self.cell.impedance(np.array([f]), i_dc)[0])
            z *= 1 + self.cell.rng.normal(0, 0.002) + 1j * self.cell.rng.normal(0, 0.002)
            yield EisPoint(float(f), z.real, z.imag, self.clock.now(), 0.0, i_dc, True)

    def close(self) -> None:
        if self._connected:
            self.open_circuit(None)
        self._connected = False

    # --- simulation ---------------------------------------------------------------------------
    def _check_connected(self) -> None:
        if not self._connected:
            raise InstrumentError(f"{self.name}: not connected")

    def _set_mode(
        self, mode: str, setpoint: float, limits: tuple[float, float], period: float, duration: float | None
    ) -> None:
        if not period >= self.capabilities.min_sample_period:
            raise InstrumentError(
                f"{self.name}: sample period {period:g} s below {self.capabilities.min_sample_period:g} s"
            )
        self._advance()
        now = self.clock.now()
        self._mode, self._setpoint, self._limits, self._period = mode, setpoint, limits, period
        self._t_start, self._k = now, 1
        self._end = now + duration if duration is not None else np.inf
        self._last_block = SampleBlock.empty()
        self._save_mark()

    def _advance(self) -> None:
        """Generate every sample due up to the clock's now, mode by mode."""
        now = self.clock.now()
        while self._mode != "off":
            t_last = min(now, self._end)
            n = int(np.floor((t_last - self._t_start) / self._period + 1e-9)) - self._k + 1
            if n <= 0:
                break
            t = self._t_start + self._period * np.arange(self._k, self._k + n)
            self._k += n
            self._emit(t)
            if self._mode != "off" and self._t_cell >= self._end - 1e-9:
                self._mode = "off"  # the technique finished its duration
        if self._mode == "off" and now > self._t_cell:
            self.cell.rest(now - self._t_cell)
            self._t_cell = now

    def _emit(self, t: np.ndarray) -> None:
        if self._mode == "potential":
            current = np.full(len(t), self.cell.current_for_potential(self._setpoint))
            current = np.clip(current, *self._limits)
        else:
            current = np.full(len(t), self._setpoint if self._mode == "current" else 0.0)
        before = self.cell.snapshot()
        e_we, e_cell, current, flags, passed = self._drive(t, current)
        if self._mode == "current":
            lo, hi = self._limits
            out = np.flatnonzero((e_we < lo) | (e_we > hi) | passed)
            if out.size:
                # The output switches off at the tripping sample: replay the block up to it only.
                k = int(out[0])
                self.cell.restore(before)
                t = t[: k + 1]
                e_we, e_cell, current, flags, _ = self._drive(t, current[: k + 1])
                flags[k] |= FLAG_HW_LIMIT
                self._pending.append(SampleBlock(t, e_we, e_cell, current, flags))
                self._t_cell = float(t[-1])
                self._mode, self._setpoint, self._t_start, self._k = "ocv", 0.0, float(t[-1]), 1
                self._end = np.inf
                return
        self._pending.append(SampleBlock(t, e_we, e_cell, current, flags))
        self._t_cell = float(t[-1])

    def _drive(
        self, t: np.ndarray, current: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Pass ``current`` through the cell up to the sample times ``t``, within the compliance voltage.

        A current source cannot drive the cell beyond its compliance (``capabilities.max_voltage``): from
        the first sample that would need more, the output clamps there, the current falls to what holds
        the clamped voltage (ohmic estimate from that sample) and the samples carry FLAG_OVERLOAD.
        Returns E_we, E_cell, the current that flowed, the flags and, per sample, whether the voltage
        the set current needed passed the step's window (the instrument's limit trips there)."""
        dt = intervals(t, self._t_cell)
        before = self.cell.snapshot()
        resp = self.cell.advance(current, dt)
        flags = np.zeros(len(t), dtype=np.uint8)
        passed = np.zeros(len(t), dtype=bool)
        compliance = self.capabilities.max_voltage
        need = np.maximum(np.abs(resp.E_we), np.abs(resp.E_cell))
        over = np.flatnonzero(need > compliance)
        if self._mode != "current" or not over.size:
            return resp.E_we, resp.E_cell, current, flags, passed
        k = int(over[0])
        lo, hi = self._limits
        passed[k] = not lo <= float(resp.E_we[k]) <= hi
        current = current.copy()
        current[k:] *= compliance / float(need[k])
        self.cell.restore(before)
        resp = self.cell.advance(current, dt)
        flags[k:] |= FLAG_OVERLOAD
        return (
            np.clip(resp.E_we, -compliance, compliance),
            np.clip(resp.E_cell, -compliance, compliance),
            current,
            flags,
            passed,
        )
