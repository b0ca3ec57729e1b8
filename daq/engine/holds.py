"""Holding a run at open circuit: operator pauses and interlocks, as the engine's methods (see
daq.engine.engine). The cell is off while held; what is sampled meanwhile stays with the hold, and the
step re-applies its set point when the hold ends.
"""

from __future__ import annotations

import numpy as np

from daq.core.errors import InstrumentError
from daq.core.records import EventKind
from daq.engine.interlocks import Interlock
from daq.engine.step_runners import StopRun
from protocols import steps as S


class Holds:
    """Pauses and interlock holds of daq.engine.engine.Engine (a mixin: it uses the engine's state)."""

    def _check_control(
        self,
        between_steps: bool = False,
        cols: dict[str, np.ndarray] | None = None,
        period: float = 1.0,
        q: float = 0.0,
    ) -> str | None:
        """Handle abort, pause and interlocks after a block; returns 'paused' if the cell was made safe
        and the step must re-apply its current."""
        c = self.control
        if c.abort_requested:
            raise StopRun(S.ABORTED, c.reason or "aborted by the operator")
        if c.pause_requested == "now" or (between_steps and c.pause_requested == "step_end"):
            self.pstat.open_circuit(None)
            self.event("paused", c.reason or "paused", when=c.pause_requested)
            while c.pause_requested and not c.abort_requested:
                c.wait(0.2)  # the cell is off and not sampled: wait for the operator in wall time
            if c.abort_requested:
                raise StopRun(S.ABORTED, c.reason or "aborted by the operator")
            self.event("resumed", "resumed")
            return "paused"
        if between_steps and self.interlocks:
            # The last block of the step just ended, then a fresh reading: nothing starts while a
            # condition is present, however short the steps are.
            last, self._unchecked = self._unchecked, None
            for block in (last, self._fresh_reading()):
                if block is not None and self._interlocked(block, period, q):
                    return "paused"
        if cols is not None:
            self._unchecked = None
            if self._interlocked(cols, period, q):
                return "paused"
        return None

    def _interlocked(self, cols: dict[str, np.ndarray], period: float, q: float) -> bool:
        """Hold the cell at open circuit while an interlock's condition is present in ``cols``."""
        for interlock in self.interlocks:
            message = interlock.violation(cols)
            if message:
                self._hold(interlock, message, period, q)
                return True
        return False

    def _fresh_reading(self) -> dict[str, np.ndarray] | None:
        """The transducer's reading now, as a one-row block (None without a transducer)."""
        if self.transducer is None:
            return None
        try:
            reading = self.transducer.read()
        except InstrumentError as exc:
            self.event(EventKind.TRANSDUCER_FAULT, str(exc))
            return None
        cols = {"pressure": np.array([reading.pressure])}
        if reading.force is not None:
            cols["force"] = np.array([reading.force])
        return cols

    def _hold(self, interlock: Interlock, message: str, period: float, q: float) -> None:
        """Open circuit (still sampling; the step's charge stays at ``q``) until the interlock has been
        clear for its clear_wait."""
        self.pstat.open_circuit(period)
        self.event("interlock", f"{interlock.name}: {message}; cell at open circuit", interlock=interlock.name)
        t_trip = self._now()
        clear_since: float | None = None
        t_prev = t_trip
        while True:
            if self.control.abort_requested:
                raise StopRun(S.ABORTED, self.control.reason or "aborted by the operator")
            self._sleep(
                self._interval(period)
                if not self.clock.virtual
                else min(self._interval(period), max(interlock.clear_wait, period))
            )
            cols = self._columns(self.pstat.read(), q, t_prev)
            self._store(cols)
            if len(cols["t"]):
                t_prev = float(cols["t"][-1])
            now = self._now()
            if interlock.violation(cols):
                clear_since = None
            elif clear_since is None:
                clear_since = now
            if clear_since is not None and now - clear_since >= interlock.clear_wait:
                self.event(
                    "interlock_cleared",
                    f"{interlock.name} clear for {now - clear_since:.0f} s; resuming",
                    interlock=interlock.name,
                )
                self.pstat.open_circuit(None)
                self._drain(q, t_prev)  # the hold's samples stay with the hold
                return
            if now - t_trip > interlock.timeout:
                raise StopRun(
                    S.INTERLOCK,
                    f"{interlock.name} did not clear within {interlock.timeout:.0f} s: "
                    f"{message}; run stopped with the cell at open circuit",
                )
