"""One message-based VISA session (pyvisa + pyvisa-py) with bounded, interruptible waits.

Every wait for a reply runs in slices of at most ``SLICE`` s up to the caller's timeout, so Ctrl-C and
``interrupt()`` act within a slice even where a signal handler does not raise. VISA ``clear()`` is never
used: on a socket the peer has closed, pyvisa-py's ``clear`` loops for ever; ``drain`` discards late
replies with a deadline instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from daq.core.errors import InstrumentError

SLICE = 0.25  # s, longest single wait for a reply


class BadReply(Exception):
    """A reply that cannot be what the command returns."""


class Interrupted(Exception):
    """A wait for a reply ended by ``interrupt()``."""


class ScpiLink:
    """A VISA session to ``resource``; ``open_resource(resource, timeout)`` replaces pyvisa in tests."""

    def __init__(
        self,
        name: str,
        resource: str,
        timeout: float,
        visa_library: str = "@py",
        open_resource: Callable[[str, float], Any] | None = None,
    ):
        self.name, self.resource, self.timeout = name, resource, float(timeout)
        self.visa_library = visa_library
        self._open_resource = open_resource
        self._rm: Any = None
        self._session: Any = None
        self._visa_timeout = -1  # ms, last set on the session
        self._interrupt = threading.Event()
        self.reached = False  # the present session has carried at least one reply
        self.out_of_step = False  # a reply may still be in the pipe: drain before the next command
        self.last_query = ""
        self.last_timeout = self.timeout

    @property
    def connected(self) -> bool:
        return self._session is not None

    def interrupt(self) -> None:
        """End the present wait for a reply (thread-safe)."""
        self._interrupt.set()

    def clear_interrupt(self) -> None:
        self._interrupt.clear()

    def open(self, timeout: float | None = None) -> None:
        """Open the session; ``timeout`` (s) bounds the connection attempt (default: ``self.timeout``)."""
        timeout = self.timeout if timeout is None else timeout
        self.close()
        self.reached = self.out_of_step = False
        self._visa_timeout = -1
        try:
            if self._open_resource is not None:
                self._session = self._open_resource(self.resource, timeout)
                return
            import pyvisa  # imported here so the module loads where only the simulators are used

            self._rm = pyvisa.ResourceManager(self.visa_library)
            self._session = self._rm.open_resource(
                self.resource,
                open_timeout=int(timeout * 1000),
                timeout=int(SLICE * 1000),
                read_termination="\n",
                write_termination="\n",
            )
        except Exception as exc:  # noqa: BLE001 - pyvisa raises many types for a bad address
            self.close()
            what = "no answer" if is_timeout(exc) else one_line(exc)
            raise InstrumentError(f"{self.name}: cannot open {self.resource} within {timeout:g} s: {what}") from None

    def close(self) -> None:
        session, rm = self._session, self._rm
        self._session = self._rm = None
        for obj in (session, rm):
            if obj is not None:
                try:
                    obj.close()
                except Exception:  # noqa: BLE001 - releasing a broken link
                    pass

    def write(self, cmd: str) -> None:
        if self._session is None:
            raise InstrumentError(f"{self.name}: not connected")
        if self.out_of_step:
            self.drain(0.5)
        self._session.write(cmd)

    def query(self, cmd: str, timeout: float | None = None) -> str:
        """Write ``cmd`` and wait for its reply in slices, up to ``timeout`` s (default ``self.timeout``)."""
        self.write(cmd)
        self.last_query = cmd
        self.last_timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + self.last_timeout
        while True:
            self._set_visa_timeout(min(SLICE, max(0.01, deadline - time.monotonic())))
            try:
                raw = self._session.read_raw()
                break
            except Exception as exc:
                if not is_timeout(exc) or time.monotonic() >= deadline:
                    raise
                if self._interrupt.is_set():
                    self.out_of_step = True
                    raise Interrupted(f"interrupted while waiting for the reply to {cmd!r}") from None
        self.reached = True
        try:
            return raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise BadReply(f"unreadable reply {clip(repr(raw))} to {cmd!r}") from None

    def drain(self, limit: float) -> None:
        """Discard replies still in the pipe (a late answer to an abandoned query), for at most ``limit`` s."""
        self.out_of_step = False
        deadline = time.monotonic() + limit
        self._set_visa_timeout(0.05)
        while time.monotonic() < deadline:
            try:
                self._session.read_raw()
            except Exception as exc:
                if is_timeout(exc):
                    return
                raise

    def _set_visa_timeout(self, seconds: float) -> None:
        ms = max(1, int(seconds * 1000))
        if ms != self._visa_timeout:
            self._session.timeout = ms
            self._visa_timeout = ms


def is_timeout(exc: BaseException) -> bool:
    """A VISA (or fake session's) timeout."""
    if isinstance(exc, TimeoutError):
        return True
    try:
        from pyvisa import constants, errors
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, errors.VisaIOError) and exc.error_code == constants.StatusCode.error_timeout


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def clip(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[:n] + "..."
