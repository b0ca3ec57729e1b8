"""Replay recorded (command, reply) pairs through a fake VISA session: pins a driver's exact SCPI.

In the manner of PyMeasure's ``pymeasure.test.expected_protocol``: each pair is one message the driver
must write, and the reply it then reads (None for a command without a reply). A write that differs
from the next expected message, a read with no reply due, or pairs left over at the end fail the test.
A reply of ``TIMEOUT`` makes the read time out (as a silent instrument does).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

TIMEOUT = object()


class FakeSession:
    """What the driver sees of a pyvisa message-based resource: write, read_raw, timeout, close."""

    def __init__(self, pairs: Sequence[tuple[str, object]]):
        self.pairs = list(pairs)
        self.timeout = 2000  # ms
        self.closed = False
        self._due: list[object] = []
        self.written: list[str] = []

    def write(self, message: str) -> None:
        self.written.append(message)
        assert self.pairs, f"unexpected write {message!r}: the protocol has ended"
        expected, reply = self.pairs.pop(0)
        assert message == expected, f"wrote {message!r}, expected {expected!r}"
        if reply is not None:
            self._due.append(reply)

    def read_raw(self) -> bytes:
        if not self._due or self._due[0] is TIMEOUT:
            if self._due:
                self._due.pop(0)
            raise TimeoutError("no reply")
        reply = self._due.pop(0)
        return reply if isinstance(reply, bytes) else f"{reply}\n".encode("ascii")

    def close(self) -> None:
        self.closed = True


@contextmanager
def expected_protocol(pairs: Sequence[tuple[str, object]]) -> Iterator[FakeSession]:
    """A FakeSession for ``open_resource=lambda resource, timeout: session``; checks all pairs were used."""
    session = FakeSession(pairs)
    yield session
    assert not session.pairs, f"messages expected but never written: {session.pairs}"
