"""Operator requests to a running engine: abort, pause, resume; safe from any thread or signal handler."""

from __future__ import annotations

import threading


class RunControl:
    """Operator requests to a running engine, safe to call from any thread (GUI, signal handler)."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self.abort_requested = False
        self.running = False  # True while an engine runs the protocol (its loop acts on abort)
        self.pause_requested: str | None = None  # "now" | "step_end"
        self.reason = ""

    def abort(self, reason: str = "operator abort") -> None:
        with self._lock:
            self.abort_requested, self.reason = True, reason
            self._lock.notify_all()

    def pause(self, when: str = "now", reason: str = "operator pause") -> None:
        if when not in ("now", "step_end"):
            raise ValueError("pause when 'now' or 'step_end'")
        with self._lock:
            self.pause_requested, self.reason = when, reason
            self._lock.notify_all()

    def resume(self) -> None:
        with self._lock:
            self.pause_requested = None
            self._lock.notify_all()

    def wait(self, seconds: float) -> None:
        """Wait up to ``seconds`` of wall time; an abort ends the wait at once."""
        with self._lock:
            if not self.abort_requested:
                self._lock.wait(seconds)
