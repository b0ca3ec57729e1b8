"""Instrument transcripts: a Potentiostat wrapper that records every command and every data block.

Why: a run file's samples say what the cell did, not what the software asked of the instrument or
when. The transcript keeps both (commands with their arguments, outcome and clock time; reads with
the rows of /timeseries or /eis/points they delivered), so a run can be audited call by call and
replayed against its recording with another protocol (simulators/replay.py, docs/replay.md).

The wrapper adds one row per call and no I/O of its own: the sink (the run writer) buffers rows and
writes them with the samples. A read is held back until the next call, because a simulated instrument
may still cut that block short (``rewind``) and the row must name the samples that were kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any, Protocol

from daq.core.capabilities import Capabilities, EisRequest, InstrumentInfo, InstrumentWrapper, Potentiostat
from daq.core.samples import EisPoint, SampleBlock

SAMPLES, IMPEDANCE = "samples", "impedance"


class TranscriptSink(Protocol):
    """Where transcript rows go (daq.storage.writer.RunWriter, or MemoryTranscript)."""

    def add_command(
        self,
        t: float,
        method: str,
        arguments: dict[str, Any],
        outcome: str = "ok",
        error: str = "",
        latency: float = 0.0,
    ) -> None: ...

    def add_read(self, t: float, kind: str, first: int, n: int, latency: float = 0.0) -> None: ...

    def next_row(self, kind: str) -> int: ...


class MemoryTranscript:
    """A sink that keeps rows in lists (tests, diagnostics); assumes every delivered block is stored."""

    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []
        self.reads: list[dict[str, Any]] = []
        self._rows = [0, 0]
        self._seq = 0

    def add_command(
        self,
        t: float,
        method: str,
        arguments: dict[str, Any],
        outcome: str = "ok",
        error: str = "",
        latency: float = 0.0,
    ) -> None:
        self.commands.append(
            dict(seq=self._seq, t=t, method=method, arguments=arguments, outcome=outcome, error=error, latency=latency)
        )
        self._seq += 1

    def add_read(self, t: float, kind: str, first: int, n: int, latency: float = 0.0) -> None:
        self.reads.append(dict(seq=self._seq, t=t, kind=kind, first=first, n=n, latency=latency))
        self._rows[0 if kind == SAMPLES else 1] = first + n
        self._seq += 1

    def next_row(self, kind: str) -> int:
        return self._rows[0 if kind == SAMPLES else 1]


def _number(value: float | None) -> float | str | None:
    """JSON-safe: infinities become strings ("inf"), as json would otherwise write invalid tokens."""
    if value is None or math.isfinite(value):
        return value
    return str(value)


class TranscriptPotentiostat(InstrumentWrapper):
    """Wraps any Potentiostat; behaves exactly like it and logs each call to ``sink``.

    ``now`` gives the run time (s) for the rows; the runner points it at the engine's run clock.
    Attributes the interface does not define (driver extras) are forwarded to the wrapped instrument.
    """

    def __init__(self, inner: Potentiostat, sink: TranscriptSink, now: Callable[[], float]):
        self.inner = inner
        self.sink = sink
        self.now = now
        self._pending: list[Any] | None = None  # [t, first, n, latency] of the last read, not yet logged

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return self.inner.capabilities

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not yet set (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    # --- logging ------------------------------------------------------------------------------
    def _flush_read(self) -> None:
        if self._pending is not None:
            t, first, n, latency = self._pending
            self._pending = None
            self.sink.add_read(t, SAMPLES, first, n, latency)

    def _call(self, method: str, arguments: dict[str, Any], fn: Callable[[], Any]) -> Any:
        self._flush_read()
        t, start = self.now(), time.perf_counter()
        try:
            result = fn()
        except BaseException as exc:
            self.sink.add_command(
                t, method, arguments, "error", f"{type(exc).__name__}: {exc}", time.perf_counter() - start
            )
            raise
        self.sink.add_command(t, method, arguments, "ok", "", time.perf_counter() - start)
        return result

    # --- the interface ------------------------------------------------------------------------
    def connect(self) -> InstrumentInfo:
        info = self._call("connect", {}, self.inner.connect)
        return info

    def apply_current(
        self, current: float, v_min: float, v_max: float, sample_period: float, duration: float | None = None
    ) -> None:
        args = {
            "current": current,
            "v_min": _number(v_min),
            "v_max": _number(v_max),
            "sample_period": sample_period,
            "duration": _number(duration),
        }
        self._call(
            "apply_current", args, lambda: self.inner.apply_current(current, v_min, v_max, sample_period, duration)
        )

    def apply_potential(
        self, potential: float, i_min: float, i_max: float, sample_period: float, duration: float | None = None
    ) -> None:
        args = {
            "potential": potential,
            "i_min": _number(i_min),
            "i_max": _number(i_max),
            "sample_period": sample_period,
            "duration": _number(duration),
        }
        self._call(
            "apply_potential",
            args,
            lambda: self.inner.apply_potential(potential, i_min, i_max, sample_period, duration),
        )

    def open_circuit(self, sample_period: float | None = None) -> None:
        self._call("open_circuit", {"sample_period": sample_period}, lambda: self.inner.open_circuit(sample_period))

    def read(self) -> SampleBlock:
        self._flush_read()
        t, start = self.now(), time.perf_counter()
        first = self.sink.next_row(SAMPLES)
        try:
            block = self.inner.read()
        except BaseException as exc:
            self.sink.add_command(t, "read", {}, "error", f"{type(exc).__name__}: {exc}", time.perf_counter() - start)
            raise
        self._pending = [t, first, len(block), time.perf_counter() - start]
        return block

    def impedance(self, request: EisRequest) -> Iterator[EisPoint]:
        return self._impedance(request)

    def _impedance(self, request: EisRequest) -> Iterator[EisPoint]:
        self._flush_read()
        t, start = self.now(), time.perf_counter()
        first = self.sink.next_row(IMPEDANCE)
        args = {
            k: (list(map(float, v)) if k == "frequencies" else _number(v)) if not isinstance(v, str) else v
            for k, v in asdict(request).items()
        }
        count, outcome, error = 0, "ok", ""
        try:
            for point in self.inner.impedance(request):
                count += 1
                yield point
        except GeneratorExit:
            outcome = "stopped"  # the caller stopped the sweep (abort): the points taken are logged
            raise
        except BaseException as exc:
            outcome, error = "error", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            latency = time.perf_counter() - start
            self.sink.add_command(t, "impedance", args, outcome, error, latency)
            self.sink.add_read(t, IMPEDANCE, first, count, latency)

    def rewind(self, t: float) -> SampleBlock:
        """Forwarded; the held-back read is logged with the samples that were kept."""
        t_call = self.now()
        block = self.inner.rewind(t)
        if self._pending is not None:
            self._pending[2] = len(block)
        self._flush_read()
        self.sink.add_command(t_call, "rewind", {"clock_time": t, "kept": len(block)}, "ok", "")
        return block

    def close(self) -> None:
        self._call("close", {}, self.inner.close)
