"""Waiting for asynchronous state in tests: poll a condition until a generous deadline.

A fixed ``time.sleep`` before an assert fails on a busy machine (the other thread or process has not got
there yet) and wastes time on an idle one; polling returns as soon as the condition holds and fails only
after a deadline far beyond any normal delay. The deadline bounds a hang; it is not a speed requirement.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEADLINE = 30.0  # s: long enough for a loaded 2-core CI machine, short enough to end a hung test


def wait_until(condition: Callable[[], T], timeout: float = DEADLINE, interval: float = 0.01, what: str = "") -> T:
    """Return the first truthy value of ``condition()``; fail the test if none comes within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or condition}")
        time.sleep(interval)
