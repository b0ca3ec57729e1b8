"""Instruments that ride out faults: bounded retries, safe reconnection, every fault on record.

Overnight runs meet USB hubs that reset, serial lines that garble a reply, LAN instruments that stop
answering for a few seconds. :class:`ResilientPotentiostat` and :class:`ResilientTransducer` wrap any
driver and retry a failed call (InstrumentError, OS/connection errors, unparsable replies) with bounded
exponential backoff, reconnecting when the link looks broken or the plain retry did not help.

Reconnection never switches the output on: after a reconnect the wrapper puts the cell at open circuit
(the safe state) and, if current was flowing, holds it there until the engine applies current again
with its own next command (:class:`RecoveryHold` is an interlock the runner adds: it trips once, the
engine records the hold, and re-applies what is left of the step). Samples that are not numbers, out of
any physical range or going back in time are dropped and reported, never stored or integrated. When
the retries are exhausted the wrapper raises InstrumentError: the engine makes the cell safe and stops
the run with a ``fault`` event that says which instrument was lost and why.

Each fault, retry, reconnection and recovery is reported through ``reporter(kind, message, data)``;
the runner points it at the run's event table (``bind_run``). Reports made before that (while
connecting) are kept and recorded when the run starts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from daq.core.capabilities import (
    Capabilities,
    EisRequest,
    InstrumentWrapper,
    Potentiostat,
    PressureReading,
    PressureSensor,
    RunHandle,
)
from daq.core.errors import InstrumentError
from daq.core.samples import EisPoint, SampleBlock
from drivers.retry import RETRYABLE, Reporter, RetryingInstrument, RetryPolicy, describe_error


class RecoveryHold:
    """An interlock (daq.engine.interlocks.Interlock interface) that trips once after a reconnection that
    cut a current step: the engine holds the cell at open circuit for one poll, records it, and re-applies
    the remaining step with its own command."""

    def __init__(
        self,
        device: ResilientPotentiostat,
        name: str = "instrument_recovery",
        clear_wait: float = 0.0,
        timeout: float = 3600.0,
    ):
        self.device, self.name, self.clear_wait, self.timeout = device, name, clear_wait, timeout

    def violation(self, cols: dict[str, np.ndarray]) -> str | None:
        return self.device.take_hold()


def valid_samples(
    block: SampleBlock, caps: Capabilities, t_last: float, now: float | None
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Times, (E_we, E_cell, I) as floats, and which samples are valid: finite, within ten times the
    instrument's ranges, not from the future (``now`` + 60 s) and later than every earlier valid sample
    (``t_last`` before the block). Raises TypeError/ValueError for columns that are not numbers or
    differ in length."""
    n = len(block)
    e_lim = 10.0 * max(caps.max_voltage, 1.0)
    i_lim = 10.0 * max(caps.max_current, 1e-9)
    t = np.asarray(block.t, dtype=float)
    cols = [np.asarray(c, dtype=float) for c in (block.E_we, block.E_cell, block.I)]
    if any(len(c) != n for c in cols) or len(block.flags) != n:
        raise ValueError("columns of different lengths")
    with np.errstate(invalid="ignore"):
        # E_cell is NaN where the instrument does not measure it (BioLogic rows without Ece).
        ok = np.isfinite(t) & np.isfinite(cols[0]) & np.isfinite(cols[2])
        ok &= (np.abs(cols[0]) <= e_lim) & (np.isnan(cols[1]) | (np.abs(cols[1]) <= e_lim))
        ok &= np.abs(cols[2]) <= i_lim
        if now is not None:
            ok &= t <= now + 60.0
        tt = np.where(ok, t, -np.inf)
        earlier = np.maximum.accumulate(np.concatenate([[t_last], tt[:-1]]))
        ok &= t > earlier
    return t, cols, ok


class ResilientPotentiostat(RetryingInstrument, InstrumentWrapper):
    """Any Potentiostat with retries, safe reconnection and sanity checks on what it returns."""

    role = "potentiostat"

    def __init__(
        self,
        inner: Potentiostat,
        clock: Any = None,
        policy: RetryPolicy | None = None,
        reporter: Reporter | None = None,
        name: str | None = None,
    ):
        super().__init__(inner, clock, policy, reporter, name)
        self._mode = "off"  # off | ocv | current | potential: the engine's last explicit order
        self._period: float | None = None
        self._hold: str | None = None
        self._t_last = -math.inf
        self._last_block = SampleBlock.empty()
        self._garbage_reads = 0

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return self.inner.capabilities

    # --- reconnection: safe state, and a hold when it cut a current step --------------------------
    def _after_reconnect(self) -> None:
        self.inner.open_circuit(self._period)
        if self._mode in ("current", "potential"):
            self._hold = (
                f"{self.name} reconnected after a fault; its output was left off (open circuit) "
                "until the step is applied again"
            )

    def _safe_state_text(self) -> str:
        if self._mode in ("current", "potential"):
            return "output left off (open circuit) until the protocol applies current again"
        return "cell at open circuit"

    def take_hold(self) -> str | None:
        """The pending hold message, once (see RecoveryHold)."""
        message, self._hold = self._hold, None
        return message

    def bind_run(self, engine: RunHandle) -> None:
        super().bind_run(engine)
        if not any(isinstance(i, RecoveryHold) and i.device is self for i in engine.interlocks):
            engine.interlocks.append(RecoveryHold(self))

    # --- commands -------------------------------------------------------------------------------
    def _command(self, call: str, mode: str, period: float | None, fn: Callable[[], None]) -> None:
        self._call(call, fn)
        self._mode, self._period, self._hold = mode, period, None  # the engine's own order supersedes a hold

    def apply_current(
        self, current: float, v_min: float, v_max: float, sample_period: float, duration: float | None = None
    ) -> None:
        self._command(
            "apply_current",
            "current",
            sample_period,
            lambda: self.inner.apply_current(current, v_min, v_max, sample_period, duration),
        )

    def apply_potential(
        self, potential: float, i_min: float, i_max: float, sample_period: float, duration: float | None = None
    ) -> None:
        self._command(
            "apply_potential",
            "potential",
            sample_period,
            lambda: self.inner.apply_potential(potential, i_min, i_max, sample_period, duration),
        )

    def open_circuit(self, sample_period: float | None = None) -> None:
        self._command(
            "open_circuit",
            "ocv" if sample_period is not None else "off",
            sample_period,
            lambda: self.inner.open_circuit(sample_period),
        )

    # --- data -----------------------------------------------------------------------------------
    def read(self) -> SampleBlock:
        block = self._call("read", self.inner.read)
        if not isinstance(block, SampleBlock):
            raise InstrumentError(f"{self.name}: read returned {type(block).__name__}, not samples")
        clean = self._sanitize(block)
        self._last_block = clean
        return clean

    def _sanitize(self, block: SampleBlock) -> SampleBlock:
        """Keep the samples that are numbers within the instrument's physical range, in time order."""
        n = len(block)
        if n == 0:
            self._garbage_reads = 0
            return block
        try:
            now = self.clock.now() if self.clock is not None else None
            t, cols, ok = valid_samples(block, self.capabilities, self._t_last, now)
        except (TypeError, ValueError) as exc:
            self.counts["faults"] += 1
            self._report(
                "instrument_fault",
                f"{self.name}: read returned malformed samples ({exc}); dropped",
                call="read",
                error=str(exc),
                attempt=1,
                delay=0.0,
                dropped=n,
            )
            return self._garbage(n)
        kept = int(ok.sum())
        if kept == n:
            self._garbage_reads = 0
            self._t_last = float(t[-1])
            return block
        self.counts["faults"] += 1
        self.counts["dropped_samples"] += n - kept
        self._report(
            "instrument_fault",
            f"{self.name}: read returned {n - kept} of {n} samples that are not valid "
            "numbers, out of range or out of time order; those samples were dropped",
            call="read",
            error="invalid samples",
            attempt=1,
            delay=0.0,
            dropped=n - kept,
        )
        if kept == 0:
            return self._garbage(n)
        self._garbage_reads = 0
        self._t_last = float(t[ok][-1])
        return SampleBlock(
            t[ok],
            cols[0][ok],
            cols[1][ok],
            cols[2][ok],
            np.asarray(block.flags)[ok],
            {k: np.asarray(v)[ok] for k, v in block.aux.items() if len(v) == n},
        )

    def _garbage(self, n: int) -> SampleBlock:
        self._garbage_reads += 1
        if self._garbage_reads >= self.policy.max_garbage_reads:
            self.lost = True
            message = f"{self.name} (potentiostat) lost: {self._garbage_reads} reads in a row returned no valid sample"
            self._report("instrument_lost", message, call="read", error="invalid samples")
            raise InstrumentError(message)
        return SampleBlock.empty()

    def rewind(self, t: float) -> SampleBlock:
        """Simulators only: rewind the inner instrument and cut the last block handed out to match."""
        self.inner.rewind(t)
        b = self._last_block
        keep = int(np.searchsorted(b.t, t + 1e-9))
        self._last_block = SampleBlock(
            b.t[:keep],
            b.E_we[:keep],
            b.E_cell[:keep],
            b.I[:keep],
            b.flags[:keep],
            {k: v[:keep] for k, v in b.aux.items()},
        )
        self._t_last = float(b.t[keep - 1]) if keep else self._t_last
        return self._last_block

    def impedance(self, request: EisRequest) -> Iterator[EisPoint]:
        """Points as the instrument yields them. A failure before the first point retries the sweep; a
        failure later ends it early (the points so far are kept) after reconnecting to the safe state."""
        attempt = 0
        yielded = 0
        t_first = self._now()
        points = iter(self.inner.impedance(request))
        while True:
            try:
                p = next(points)
            except StopIteration:
                break
            except RETRYABLE as exc:
                attempt += 1
                self.counts["faults"] += 1
                if yielded == 0 and attempt < self.policy.attempts and not self.lost:
                    delay = self.policy.delay(attempt)
                    self.counts["retries"] += 1
                    self._report(
                        "instrument_fault",
                        f"{self.name}: impedance failed ({describe_error(exc)}); retry "
                        f"{attempt} of {self.policy.attempts - 1} in {delay:g} s",
                        call="impedance",
                        error=describe_error(exc),
                        attempt=attempt,
                        delay=delay,
                    )
                    self._sleep(delay)
                    self._call("reconnect", lambda: self._reconnect("impedance"))
                    points = iter(self.inner.impedance(request))
                    continue
                if yielded == 0:
                    self._give_up("impedance", exc, attempt, t_first)
                self._report(
                    "instrument_fault",
                    f"{self.name}: impedance sweep cut short after {yielded} of "
                    f"{len(request.frequencies)} points ({describe_error(exc)})",
                    call="impedance",
                    error=describe_error(exc),
                    attempt=attempt,
                    delay=0.0,
                )
                self._call("reconnect", lambda: self._reconnect("impedance"))
                return
            values = (p.frequency, p.z_real, p.z_imag, p.t)
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
                self.counts["faults"] += 1
                self._report(
                    "instrument_fault",
                    f"{self.name}: impedance point at {p.frequency!r} Hz is not a number; dropped",
                    call="impedance",
                    error="invalid point",
                    attempt=1,
                    delay=0.0,
                )
                continue
            yielded += 1
            yield p


class _TransducerHold:
    """Interlock interface: holds the cell while the transducer is lost, when the protocol guards the
    pressure (a pressure window cannot be watched without a reading)."""

    def __init__(self, device: ResilientTransducer, timeout: float):
        self.device, self.name, self.clear_wait, self.timeout = device, "pressure_unknown", 0.0, timeout

    def violation(self, cols: dict[str, np.ndarray]) -> str | None:
        if self.device.lost:
            return f"{self.device.name} (transducer) lost: stack pressure unknown"
        return None


class ResilientTransducer(RetryingInstrument, PressureSensor):
    """Any PressureSensor with retries and reading checks. Once lost it reads NaN (a visible gap,
    never an invented pressure) and tries to reconnect every ``probe_interval``."""

    role = "transducer"
    PRESSURE_RANGE = 1e10  # Pa: anything beyond is not a reading

    def __init__(
        self,
        inner: PressureSensor,
        clock: Any = None,
        policy: RetryPolicy | None = None,
        reporter: Reporter | None = None,
        name: str | None = None,
    ):
        super().__init__(inner, clock, policy, reporter, name)
        self._next_probe = -math.inf

    @property
    def pressed_area(self) -> float:  # type: ignore[override]
        return self.inner.pressed_area

    @property
    def calibration(self) -> Any:  # type: ignore[override]
        return self.inner.calibration

    def bind_run(self, engine: RunHandle) -> None:
        super().bind_run(engine)
        guards = [i for i in engine.interlocks if getattr(i, "column", None) == "pressure"]
        if guards and not any(isinstance(i, _TransducerHold) for i in engine.interlocks):
            engine.interlocks.append(_TransducerHold(self, max(g.timeout for g in guards)))

    def _checked_read(self) -> PressureReading:
        reading = self.inner.read()
        p, force = reading.pressure, reading.force
        if not isinstance(p, (int, float)) or not math.isfinite(p) or abs(p) > self.PRESSURE_RANGE:
            raise InstrumentError(f"{self.name}: pressure reading {p!r} is not a valid number")
        if force is not None and (not isinstance(force, (int, float)) or not math.isfinite(force)):
            raise InstrumentError(f"{self.name}: force reading {force!r} is not a valid number")
        return reading

    def read(self) -> PressureReading:
        if self.lost:
            now = self._now()
            if now < self._next_probe:
                return PressureReading(now, math.nan, None)
            self._next_probe = now + self.policy.probe_interval
            try:
                return self._call("read", self._checked_read)
            except InstrumentError:
                return PressureReading(now, math.nan, None)
        try:
            return self._call("read", self._checked_read)
        except InstrumentError:
            self._next_probe = self._now() + self.policy.probe_interval
            raise


def wrap(
    potentiostat: Potentiostat,
    transducer: PressureSensor | None,
    clock: Any = None,
    policy: RetryPolicy | None = None,
) -> tuple[Potentiostat, PressureSensor | None]:
    """The instruments wrapped for resilience (instruments already wrapped are left as they are)."""
    if not isinstance(potentiostat, ResilientPotentiostat):
        potentiostat = ResilientPotentiostat(potentiostat, clock, policy)
    if transducer is not None and not isinstance(transducer, ResilientTransducer):
        transducer = ResilientTransducer(transducer, clock, policy)
    return potentiostat, transducer
