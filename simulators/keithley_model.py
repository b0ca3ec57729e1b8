"""The emulated Keithley 2450: instrument state, the cell it is wired to, and its SCPI commands.

Commands are dispatched through a table (canonical header -> handler), one small handler per command
family. Behaviour reproduced (2450 reference manual): ``*LANG?`` reports the command set and a
TSP-mode instrument ignores SCPI; ``*LANG`` takes effect after a power cycle; a current source clamps
at its voltage limit (``VLIM``) and reports it via ``:SOUR:CURR:VLIM:TRIP?``; the trigger model
(``simulators.keithley_trigger``) runs on the instrument's clock and can switch the output on and off
by itself; ``:TRAC:DATA?`` returns the requested elements flattened, comma separated; ``:SYST:ERR?``
pops the error queue (``0,"No error..."`` when empty).

Two-terminal measurement: the SMU sees the cell voltage (working vs counter), E_cell.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from daq.core.clock import Clock
from simulators.cell import SimulatedCell
from simulators.keithley_commands import COMMANDS
from simulators.keithley_trigger import TriggerModel
from simulators.scpi_parse import ScpiError, canonical, split_args, unquote

IDN = "KEITHLEY INSTRUMENTS INC.,MODEL 2450,04412345,1.7.12b"
MAX_CURRENT = 1.05  # A


@dataclass
class Fault:
    kind: str  # "no_reply" | "garbage" | "drop"
    on: str | None  # canonical header prefix it applies to (e.g. "TRAC:DATA?"); None = every query
    once: bool
    reply: bytes = b"\x8f#?\x00GARBAGE,,e+\n"


class Keithley2450Emulator:
    """Instrument state and the cell it is wired to; thread-safe (one lock around every command)."""

    def __init__(self, cell: SimulatedCell, clock: Clock, idn: str = IDN, lang: str = "SCPI"):
        self.cell, self.clock, self.idn = cell, clock, idn
        self.lang = lang  # active command set
        self.lang_after_reboot = lang
        self.lock = threading.RLock()
        self.errors: deque[tuple[int, str]] = deque()
        self.faults: list[Fault] = []
        self.commands: list[str] = []  # every message received, for tests
        self.output_log: list[tuple[float, bool]] = []  # (clock time, state) at every output change
        self._t_cell = clock.now()
        self.reset()

    # --- state ----------------------------------------------------------------------------------
    def reset(self) -> None:
        self.output = False
        self.off_mode = {"CURR": "NORM", "VOLT": "NORM"}
        self.source_function = "VOLT"
        self.source_level = {"CURR": 0.0, "VOLT": 0.0}
        self.source_range = {"CURR": 1e-8, "VOLT": 0.02}
        self.limit = {"CURR": 21.0, "VOLT": 1.05e-4}  # VLIM of the current source, ILIM of the voltage source
        self.sense_function = "CURR"
        self.precision = 0
        self.buffers: dict[str, list[tuple[float, float, float]]] = {"DEFBUFFER1": [], "DEFBUFFER2": []}
        self.capacity: dict[str, int] = {"DEFBUFFER1": 100_000, "DEFBUFFER2": 100_000}
        self.trigger = TriggerModel()
        self._pending: dict[str, list[float]] = {}
        self._t_first: dict[str, float] = {}
        self.clamped = False
        self._clamp_current = 0.0

    @property
    def running(self) -> bool:
        """The trigger model is running."""
        return self.trigger.running

    def power_cycle(self) -> None:
        with self.lock:
            self.advance()
            self.lang = self.lang_after_reboot
            self.reset()
            self.errors.clear()

    def push_error(self, code: int, message: str) -> None:
        """Put an entry in the error queue (what a real instrument does on a rejected setting)."""
        with self.lock:
            self.errors.append((code, message))

    def inject(self, kind: str, on: str | None = None, once: bool = True, reply: bytes | None = None) -> None:
        """Misbehave on the next (``once``) or every message whose canonical header starts with ``on``.

        ``no_reply``: queries get no answer (the driver times out); ``garbage``: the reply is replaced
        by unreadable bytes; ``drop``: the connection is closed when the message arrives.
        """
        if kind not in ("no_reply", "garbage", "drop"):
            raise ValueError(kind)
        with self.lock:
            self.faults.append(Fault(kind, on, once, reply or Fault.reply))

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    # --- time and the cell ----------------------------------------------------------------------
    def advance(self) -> None:
        """Run the trigger model up to the clock's now; carry the cell along when nothing measures."""
        with self.lock:
            now = self.clock.now()
            self.trigger.run(now, self)
            if not self.trigger.running:
                self.carry(now)

    def carry(self, t: float) -> None:
        """Move the cell to time ``t`` under the present output state, without a reading."""
        if t <= self._t_cell:
            return
        if self.output:
            self.cell.advance(np.array([self._present_current()]), np.array([t - self._t_cell]))
        else:
            self.cell.rest(t - self._t_cell)
        self._t_cell = t

    def _present_current(self) -> float:
        if self.source_function == "CURR":
            return self._clamp_current if self.clamped else self.source_level["CURR"]
        return self.cell.current_for_potential(self.source_level["VOLT"])

    # trigger-model actions (simulators.keithley_trigger.TriggerActions)
    def clear_buffer(self, name: str) -> None:
        self.buffers[name].clear()
        self._t_first.pop(name, None)

    def switch_output(self, on: bool, t: float) -> None:
        self.carry(t)
        self.set_output(on, t)

    def queue_reading(self, t: float, buffer: str) -> None:
        self._pending.setdefault(buffer, []).append(t)

    def flush_readings(self) -> None:
        for buffer, times in self._pending.items():
            if times:
                self._measure(np.array(times), buffer)
        self._pending.clear()

    def set_output(self, on: bool, t: float) -> None:
        if on and self.source_function == "CURR" and abs(self.source_level["CURR"]) > MAX_CURRENT:
            raise ScpiError(-222, "Data out of range")
        if not on:
            self.clamped = False
        if on != self.output:
            self.output_log.append((t, on))
        self.output = on

    def _measure(self, t: np.ndarray, buf: str) -> None:
        dt = np.diff(t, prepend=self._t_cell)
        if not self.output:  # the output off (relay open): the voltage of the cell at no current
            values = np.column_stack([self.cell.advance(np.zeros(len(t)), dt).E_cell, np.zeros(len(t))])
        elif self.source_function == "VOLT":
            i = np.full(len(t), self.cell.current_for_potential(self.source_level["VOLT"]))
            ilim = self.limit["VOLT"]
            i = np.clip(i, -ilim, ilim)
            self.cell.advance(i, dt)
            values = np.column_stack([i, np.full(len(t), self.source_level["VOLT"])])
        else:
            values = self._measure_current_source(t, dt)
        self._t_cell = float(t[-1])
        self._store(t, values, buf)

    def _measure_current_source(self, t: np.ndarray, dt: np.ndarray) -> np.ndarray:
        vlim = self.limit["CURR"]
        i = np.full(len(t), self._present_current())
        before = self.cell.snapshot()
        v = self.cell.advance(i, dt).E_cell
        over = np.flatnonzero(np.abs(v) > vlim)
        if over.size and not self.clamped:
            # Compliance: from the first sample over the limit the source clamps; the current falls
            # to what keeps |V| at the limit (ohmic estimate from that sample).
            k = int(over[0])
            self.cell.restore(before)
            self.clamped = True
            self._clamp_current = float(i[k] * vlim / abs(v[k]))
            i = np.concatenate([i[:k], np.full(len(t) - k, self._clamp_current)])
            v = self.cell.advance(i, dt).E_cell
        if self.clamped:
            v = np.clip(v, -vlim, vlim)
        return np.column_stack([v, i])

    def _store(self, t: np.ndarray, values: np.ndarray, buf: str) -> None:
        t_first = self._t_first.setdefault(buf, float(t[0]))
        store = self.buffers[buf]
        room = max(0, self.capacity[buf] - len(store))
        for tk, (reading, source) in zip(t[:room], values[:room]):
            store.append((float(reading), float(source), float(tk - t_first)))

    # --- messages -------------------------------------------------------------------------------
    def handle(self, message: str) -> tuple[str | None, Fault | None]:
        """Execute one program message; returns (reply or None, the fault to act out or None)."""
        with self.lock:
            self.commands.append(message)
            self.advance()
            replies: list[str] = []
            acted: Fault | None = None
            for cmd in (c.strip() for c in message.split(";")):
                if not cmd:
                    continue
                header, _, args = cmd.partition(" ")
                try:
                    key: str | None = canonical(header)
                except ScpiError as exc:
                    key = None
                    if self.lang == "SCPI":
                        self.errors.append((exc.code, exc.message))
                        continue
                fault = self._fault_for(key, header.endswith("?"))
                if fault is not None:
                    acted = fault
                    if fault.kind == "drop":
                        return None, fault
                if key is None or (self.lang != "SCPI" and key not in ("*IDN?", "*LANG?", "*LANG")):
                    continue  # a TSP-mode instrument does not understand SCPI: silence
                reply = self.execute(key, split_args(args))
                if reply is not None:
                    replies.append(reply)
            if acted is not None and acted.kind != "garbage":
                return None, acted
            return (";".join(replies) if replies else None), acted

    def execute(self, key: str, args: list[str]) -> str | None:
        """One command through the dispatch table; a refusal goes to the error queue."""
        handler = COMMANDS.get(key)
        try:
            if handler is None:
                raise ScpiError(-113, f"Undefined header {key}")
            return handler(self, key, args)
        except ScpiError as exc:
            self.errors.append((exc.code, exc.message))
            return None

    def _fault_for(self, key: str | None, query: bool) -> Fault | None:
        for fault in self.faults:
            applies = (key is not None and key.startswith(fault.on)) if fault.on else query
            if applies and (query or fault.kind == "drop"):
                if fault.once:
                    self.faults.remove(fault)
                return fault
        return None

    def fmt(self, x: float) -> str:
        return f"{x:.{max(self.precision, 7) - 1}e}" if self.precision else f"{x:.6e}"

    def buffer(self, name: str | None) -> str:
        key = unquote(name).upper() if name else "DEFBUFFER1"
        if key not in self.buffers:
            raise ScpiError(-285, f"Buffer {name} not found")
        return key
