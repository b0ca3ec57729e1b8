"""The exit codes of the ``daq`` command line (``daq run``, ``daq resume`` and the rest): one table, so a
script can tell a pass from a short circuit, a limit stop, a fault, an interlock or an abort.

Keyed by the values of ``daq.core.records.Outcome`` (a StrEnum, equal to these strings), so this module
stays free of numpy and the command line starts instantly. 130 for an abort is the shell's convention
for a process stopped by Ctrl-C (128 + SIGINT).
"""

from __future__ import annotations

COMPLETED = 0
BAD_INPUT = 2  # refused before any current flowed: a bad protocol, cell, rig or option, a missing file
INTERNAL_ERROR = 3  # a bug: the message says how to see where
SHORT_CIRCUIT = 4
LIMIT_STOP = 5
FAULT = 6
INTERLOCK = 7
ABORTED = 130

BY_OUTCOME: dict[str, int] = {
    "completed": COMPLETED,
    "short_circuit": SHORT_CIRCUIT,
    "voltage_limit": LIMIT_STOP,
    "current_limit": LIMIT_STOP,
    "fault": FAULT,
    "interlock": INTERLOCK,
    "aborted": ABORTED,
}

TABLE: tuple[tuple[int, str], ...] = (
    (COMPLETED, "completed: every step reached its end"),
    (BAD_INPUT, "bad input, refused before any current flowed (also an unsound cell refused by resume)"),
    (INTERNAL_ERROR, "internal error"),
    (SHORT_CIRCUIT, "short circuit detected, current switched off"),
    (LIMIT_STOP, "stopped at a voltage or current limit"),
    (FAULT, "fault (instrument or storage), the cell switched off"),
    (INTERLOCK, "stopped by an interlock that did not clear"),
    (ABORTED, "aborted by a signal: Ctrl-C, SIGTERM, SIGHUP, SIGQUIT"),
)


def for_outcome(outcome: str) -> int:
    """The exit code of a run that ended with ``outcome``; an outcome not in the table is a fault."""
    return BY_OUTCOME.get(str(outcome), FAULT)


def epilog() -> str:
    """The table as the text under a command's ``--help``."""
    return "exit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in TABLE)
