"""Every way an operator or a supervisor stops a run takes one path: RunControl.abort.

Ctrl-C (SIGINT), a service stop (SIGTERM), a closed SSH session (SIGHUP) and SIGQUIT all ask the engine
to abort: it switches the current off, records the interrupted step, an ``aborted`` event and the
open-circuit record, and closes the run file. Before the engine runs (connecting to an instrument that
may not answer), the signal also interrupts what the process is waiting on, so nothing hangs.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any

from daq.engine.engine import RunControl

STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name)
)
_WHY = {"SIGINT": "interrupted from the keyboard (Ctrl-C)", "SIGTERM": "stopped by SIGTERM (service stop)"}


@contextlib.contextmanager
def abort_on_signals(control: RunControl) -> Iterator[RunControl]:
    """While the block runs, the stop signals abort ``control``'s run; the previous handlers return after."""

    def handler(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        control.abort(_WHY.get(name, f"stopped by {name}"))
        if not control.running:  # connecting or checking: leave the blocking call now
            raise KeyboardInterrupt(name)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield control
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
