"""Retries, reconnection and fault reports shared by the fault-tolerant instrument wrappers.

A call that fails is retried with bounded backoff (RetryPolicy); a link that looks lost is reopened;
every fault, retry and recovery is reported as ``reporter(kind, message, data)`` (the run's events
once the runner binds the run). The wrappers themselves are in drivers/resilient.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from daq.core.capabilities import (
    InstrumentInfo,
    RunHandle,
)
from daq.core.errors import InstrumentError

Reporter = Callable[[str, str, dict[str, Any]], None]
T = TypeVar("T")

# What a flaky instrument raises: its driver's InstrumentError, OS-level I/O and connection errors
# (TimeoutError, ConnectionError, serial and socket errors are OSError), a reply cut short (EOFError) or
# one that does not parse (ValueError). Anything else is a bug and is not retried.
RETRYABLE: tuple[type[BaseException], ...] = (InstrumentError, OSError, EOFError, ValueError)
_LINK_WORDS = ("connect", "closed", "broken pipe", "reset by peer", "no device", "not open", "eof")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before declaring an instrument lost (s on the run's clock)."""

    attempts: int = 5  # tries per call, the first included
    base_delay: float = 0.5  # s before the first retry
    factor: float = 2.0
    max_delay: float = 8.0  # s, cap of one wait
    max_garbage_reads: int = 5  # consecutive reads holding no valid sample before giving up
    probe_interval: float = 60.0  # s between reconnection attempts of a lost transducer

    def delay(self, retry: int) -> float:
        """Wait before retry number ``retry`` (1 = first retry)."""
        return min(self.base_delay * self.factor ** (retry - 1), self.max_delay)

    @property
    def budget(self) -> float:
        """Longest total wait of one call (s): the bound on how long a fault can stall the run."""
        return sum(self.delay(k) for k in range(1, self.attempts))


def _looks_like_link_loss(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, EOFError)):
        return True
    text = str(exc).lower()
    return any(word in text for word in _LINK_WORDS)


def describe_error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, InstrumentError) else f"{type(exc).__name__}: {text}"


class RetryingInstrument:
    """Retry, reconnect and reporting shared by both wrappers."""

    role = "instrument"

    def __init__(
        self,
        inner: Any,
        clock: Any = None,
        policy: RetryPolicy | None = None,
        reporter: Reporter | None = None,
        name: str | None = None,
    ):
        self.inner = inner
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.reporter = reporter
        self.name = name or str(getattr(inner, "name", "") or type(inner).__name__)
        self.lost = False
        self.counts = {"faults": 0, "retries": 0, "reconnects": 0, "recoveries": 0, "dropped_samples": 0}
        self._pending: list[tuple[str, str, dict[str, Any]]] = []
        self._info: InstrumentInfo | None = None

    # --- reporting ------------------------------------------------------------------------------
    def bind_run(self, engine: RunHandle) -> None:
        """Record reports as the run's events (called by the runner once the engine exists)."""
        self.reporter = engine.report
        pending, self._pending = self._pending, []
        for kind, message, data in pending:
            self._report(kind, message, **data)

    def _report(self, kind: str, message: str, **data: Any) -> None:
        data = {"device": self.name, "role": self.role, **data}
        if self.reporter is None:
            self._pending.append((kind, message, data))
            return
        try:
            self.reporter(kind, message, data)
        except Exception:  # noqa: BLE001 - a report that cannot be stored must not break the instrument path
            pass

    def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self.clock is not None:
            self.clock.sleep(seconds)
        else:
            time.sleep(seconds)

    def _now(self) -> float:
        return self.clock.now() if self.clock is not None else time.monotonic()

    # --- the retry loop -------------------------------------------------------------------------
    def _call(self, call: str, fn: Callable[[], T]) -> T:
        """``fn()`` with retries; a lost instrument gets one attempt (after reconnecting) per call.

        Re-sending a command after a reconnection is safe: it is the engine's own order, and a reconnection
        that happens meanwhile leaves the cell at open circuit until that order is carried out."""
        attempts = 1 if self.lost else self.policy.attempts
        reconnect = self.lost
        t_first = self._now()
        attempt = 0
        while True:
            attempt += 1
            try:
                if reconnect:
                    self._reconnect(call)
                    reconnect = False
                result = fn()
            except RETRYABLE as exc:
                self.counts["faults"] += 1
                if attempt >= attempts:
                    return self._give_up(call, exc, attempt, t_first)
                delay = self.policy.delay(attempt)
                reconnect = _looks_like_link_loss(exc) or attempt >= 2
                self.counts["retries"] += 1
                self._report(
                    "instrument_fault",
                    f"{self.name}: {call} failed ({describe_error(exc)}); retry {attempt} of "
                    f"{attempts - 1} in {delay:g} s{' after reconnecting' if reconnect else ''}",
                    call=call,
                    error=describe_error(exc),
                    attempt=attempt,
                    delay=delay,
                )
                self._sleep(delay)
                continue
            if attempt > 1 or self.lost:
                self.counts["recoveries"] += 1
                was_lost, self.lost = self.lost, False
                self._report(
                    "instrument_recovered",
                    f"{self.name}: {call} succeeded after "
                    f"{'being lost' if was_lost else f'{attempt - 1} failed attempt(s)'} "
                    f"({self._now() - t_first:.1f} s)",
                    call=call,
                    attempts=attempt,
                    downtime=self._now() - t_first,
                )
            return result

    def _give_up(self, call: str, exc: BaseException, attempt: int, t_first: float) -> Any:
        already = self.lost
        self.lost = True
        message = (
            f"{self.name} ({self.role}) lost: {call} failed {attempt} time(s) over "
            f"{self._now() - t_first:.1f} s; last error: {describe_error(exc)}"
        )
        if already:
            message = f"{self.name} ({self.role}) still lost: {call} failed ({describe_error(exc)})"
        self._report(
            "instrument_fault",
            f"{self.name}: {call} failed ({describe_error(exc)}); giving up",
            call=call,
            error=describe_error(exc),
            attempt=attempt,
            delay=0.0,
        )
        if not already:
            self._report("instrument_lost", message, call=call, error=describe_error(exc))
        raise InstrumentError(message) from exc

    def _reconnect(self, call: str) -> None:
        """Close and open the link again, then put the instrument in its safe state."""
        try:
            self.inner.close()
        except Exception:  # noqa: BLE001 - the link is broken; closing is best effort
            pass
        self.inner.connect()
        self._after_reconnect()
        self.counts["reconnects"] += 1
        self._report(
            "instrument_reconnected",
            f"{self.name}: reconnected while retrying {call}; {self._safe_state_text()}",
            call=call,
        )

    def _after_reconnect(self) -> None:
        pass

    def _safe_state_text(self) -> str:
        return "readings resume"

    # --- shared interface -----------------------------------------------------------------------
    def connect(self) -> InstrumentInfo:
        """Connect once (retrying); later calls return the first identity without touching the link,
        so a check before the run and the runner may both call it."""
        if self._info is None:
            self._info = self._call("connect", self.inner.connect)
        return self._info

    def close(self) -> None:
        """One attempt, no retries: the run is ending and the driver's close switches the cell off."""
        try:
            self.inner.close()
        except Exception as exc:  # noqa: BLE001 - the run is ending; the failure is reported, not raised
            self._report(
                "instrument_fault",
                f"{self.name}: close failed ({describe_error(exc)})",
                call="close",
                error=describe_error(exc),
                attempt=1,
                delay=0.0,
            )
        self._info = None

    def __getattr__(self, name: str) -> Any:  # driver-specific extras (name, resource, ...)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
