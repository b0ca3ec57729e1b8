"""Seeded fault injection for the simulated rig: instruments that misbehave the way real ones do.

:class:`FaultyPotentiostat` and :class:`FaultyTransducer` wrap the simulated instruments (or any driver)
and, by a seeded random draw per call and/or at scheduled clock times, make a call

- ``timeout``: wait a bounded time (on the run's clock), then raise InstrumentError; the command did
  not reach the instrument;
- ``disconnect``: the link drops: this and every later call raise until the driver connects again
  (the instrument itself keeps doing what it was told, as real instruments do);
- ``garbage``: raise InstrumentError for an unparsable reply;
- ``transient``: raise InstrumentError for a one-off refusal ("busy");
- ``nan`` (reads): return the block (or pressure reading) with NaN in place of some values;
- ``garbage_values`` (potentiostat reads): return some samples with absurd values or times;
- ``dead`` (from ``dead_after`` on): never answer again, connect included.

Every injected failure is written to a :class:`FaultLog` so tests can check that each one was
recorded by the software under test.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from daq.core.capabilities import (
    Capabilities,
    EisRequest,
    InstrumentInfo,
    InstrumentWrapper,
    Potentiostat,
    PressureReading,
    PressureSensor,
)
from daq.core.clock import Clock
from daq.core.errors import InstrumentError
from daq.core.samples import EisPoint, SampleBlock

RAISING = ("timeout", "disconnect", "garbage", "transient")
POTENTIOSTAT_KINDS = RAISING + ("nan", "garbage_values")
TRANSDUCER_KINDS = RAISING + ("nan",)
_VALUE_KINDS = ("nan", "garbage_values")


@dataclass(frozen=True)
class FaultPlan:
    """When and how a simulated instrument fails."""

    rate: float = 0.0  # probability that one call fails
    kinds: tuple[str, ...] = RAISING  # drawn uniformly when a random fault fires
    schedule: tuple[tuple[float, str], ...] = ()  # (clock time s, kind): at the first fitting call after it
    dead_after: float = math.inf  # s of clock time after which the instrument never answers again
    timeout: float = 2.0  # s a timed-out call waits before raising
    seed: int = 0
    calls: tuple[str, ...] = ("connect", "read", "apply_current", "apply_potential", "open_circuit", "impedance")


@dataclass
class FaultLog:
    """Every failure injected: (clock time s, device, call, kind)."""

    entries: list[tuple[float, str, str, str]] = field(default_factory=list)

    def add(self, t: float, device: str, call: str, kind: str) -> None:
        self.entries.append((t, device, call, kind))

    def count(self, device: str | None = None, kind: str | None = None) -> int:
        return sum(1 for _, d, _, k in self.entries if (device is None or d == device) and (kind is None or k == kind))


class _Injector:
    def __init__(self, clock: Clock, plan: FaultPlan, name: str, log: FaultLog | None, value_kinds: tuple[str, ...]):
        self.clock, self.plan, self.name = clock, plan, name
        self.log = log if log is not None else FaultLog()
        self.rng = np.random.default_rng([plan.seed, 7])
        self.schedule = sorted(plan.schedule)
        self.value_kinds = value_kinds
        self.link_down = False

    def draw(self, call: str, reads_values: bool = False) -> str | None:
        """The fault to inject into this call, if any (recorded in the log by the caller's outcome)."""
        now = self.clock.now()
        if now >= self.plan.dead_after:
            return "dead"
        if self.link_down and call != "connect":
            return "disconnected"
        if call not in self.plan.calls:
            return None
        fitting = RAISING + (self.value_kinds if reads_values else ())
        for i, (t, kind) in enumerate(self.schedule):
            if t > now:
                break
            if kind in fitting:
                del self.schedule[i]
                return kind
        if self.plan.rate > 0 and self.rng.random() < self.plan.rate:
            kinds = [k for k in self.plan.kinds if k in fitting]
            if kinds:
                return str(kinds[int(self.rng.integers(len(kinds)))])
        return None

    def fail(self, call: str, kind: str) -> None:
        """Raise the failure ``kind`` for ``call`` (logging it)."""
        self.log.add(self.clock.now(), self.name, call, kind)
        if kind == "timeout":
            self.clock.sleep(self.plan.timeout)
            raise InstrumentError(f"{self.name}: no reply to {call} within {self.plan.timeout:g} s (timeout)")
        if kind == "disconnect":
            self.link_down = True
            raise InstrumentError(f"{self.name}: connection lost during {call}")
        if kind == "disconnected":
            raise InstrumentError(f"{self.name}: not connected (link down)")
        if kind == "garbage":
            junk = bytes(self.rng.integers(0, 256, 12, dtype=np.uint8)).hex()
            raise InstrumentError(f"{self.name}: unparsable reply to {call}: 0x{junk}")
        if kind == "transient":
            raise InstrumentError(f"{self.name}: instrument busy, {call} refused")
        if kind == "dead":
            raise InstrumentError(f"{self.name}: no response to {call} (instrument not answering)")
        raise ValueError(f"unknown fault kind {kind!r}")


class FaultyPotentiostat(InstrumentWrapper):
    """A potentiostat (usually SimulatedPotentiostat) that fails as planned."""

    def __init__(
        self, inner: Potentiostat, clock: Clock, plan: FaultPlan, name: str | None = None, log: FaultLog | None = None
    ):
        self.inner = inner
        self.name = name or str(getattr(inner, "name", "potentiostat"))
        self.injector = _Injector(clock, plan, self.name, log, _VALUE_KINDS)
        self.log = self.injector.log
        self._open = False  # the inner instrument has been connected (and not closed)

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return self.inner.capabilities

    def _gate(self, call: str) -> None:
        kind = self.injector.draw(call)
        if kind is not None:
            self.injector.fail(call, kind)

    def connect(self) -> InstrumentInfo:
        kind = self.injector.draw("connect")
        if kind is not None:
            self.injector.fail("connect", kind)
        self.injector.link_down = False
        info = (
            self.inner.connect()
            if not self._open
            else InstrumentInfo("simulated", "SimPstat-1", self.name, "1.0", "simulators.faults", f"sim://{self.name}")
        )
        self._open = True
        return info

    def apply_current(
        self, current: float, v_min: float, v_max: float, sample_period: float, duration: float | None = None
    ) -> None:
        self._gate("apply_current")
        self.inner.apply_current(current, v_min, v_max, sample_period, duration)

    def apply_potential(
        self, potential: float, i_min: float, i_max: float, sample_period: float, duration: float | None = None
    ) -> None:
        self._gate("apply_potential")
        self.inner.apply_potential(potential, i_min, i_max, sample_period, duration)

    def open_circuit(self, sample_period: float | None = None) -> None:
        self._gate("open_circuit")
        self.inner.open_circuit(sample_period)

    def read(self) -> SampleBlock:
        kind = self.injector.draw("read", reads_values=True)
        if kind is not None and kind not in _VALUE_KINDS:
            self.injector.fail("read", kind)
        block = self.inner.read()
        if kind in _VALUE_KINDS and len(block):
            block = self._spoil(block, kind)
            self.log.add(self.injector.clock.now(), self.name, "read", kind)
        return block

    def _spoil(self, block: SampleBlock, kind: str) -> SampleBlock:
        rng = self.injector.rng
        n = len(block)
        start = int(rng.integers(n))
        stop = min(n, start + 1 + int(rng.integers(max(1, n // 4))))
        t, e_we, e_cell, i = block.t.copy(), block.E_we.copy(), block.E_cell.copy(), block.I.copy()
        if kind == "nan":
            e_we[start:stop] = np.nan
            i[start:stop] = np.nan
        else:
            e_we[start:stop] = 1e30
            t[start] = -1e9  # a sample stamped before the run began
        return SampleBlock(t, e_we, e_cell, i, block.flags.copy(), dict(block.aux))

    def impedance(self, request: EisRequest) -> Iterator[EisPoint]:
        for p in self.inner.impedance(request):
            self._gate("impedance")
            yield p

    def rewind(self, t: float) -> SampleBlock:
        return self.inner.rewind(t)

    def close(self) -> None:
        """Never fails: with the link down the instrument is simply out of reach (its output unchanged)."""
        if self.injector.link_down or self.injector.clock.now() >= self.injector.plan.dead_after:
            self.injector.link_down = True
            return
        self.inner.close()
        self._open = False


class FaultyTransducer(PressureSensor):
    """A pressure transducer that fails as planned."""

    def __init__(
        self, inner: PressureSensor, clock: Clock, plan: FaultPlan, name: str = "press", log: FaultLog | None = None
    ):
        self.inner, self.name = inner, name
        self.pressed_area = inner.pressed_area
        self.calibration = inner.calibration
        self.injector = _Injector(clock, plan, name, log, ("nan",))
        self.log = self.injector.log

    def connect(self) -> InstrumentInfo:
        kind = self.injector.draw("connect")
        if kind is not None:
            self.injector.fail("connect", kind)
        self.injector.link_down = False
        return self.inner.connect()

    def read(self) -> PressureReading:
        kind = self.injector.draw("read", reads_values=True)
        if kind == "nan":
            self.log.add(self.injector.clock.now(), self.name, "read", kind)
            reading = self.inner.read()
            return PressureReading(reading.t, math.nan, None if reading.force is None else math.nan)
        if kind is not None:
            self.injector.fail("read", kind)
        return self.inner.read()

    def close(self) -> None:
        if not self.injector.link_down:
            self.inner.close()


def faulty_rig(
    sim_pstat: Potentiostat,
    transducer: PressureSensor | None,
    clock: Clock,
    pstat_plan: FaultPlan,
    transducer_plan: FaultPlan | None = None,
    log: FaultLog | None = None,
) -> tuple[FaultyPotentiostat, FaultyTransducer | None, FaultLog]:
    """Wrap a simulated rig's instruments with fault injection sharing one log."""
    log = log if log is not None else FaultLog()
    pstat = FaultyPotentiostat(sim_pstat, clock, pstat_plan, log=log)
    trans = None
    if transducer is not None:
        trans = FaultyTransducer(transducer, clock, transducer_plan or FaultPlan(), log=log)
    return pstat, trans, log
