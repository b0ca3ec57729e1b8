"""A Keithley 2450 source-measure unit on a loopback TCP socket, driving a SimulatedCell.

It speaks the SCPI subset the Keithley2450 driver uses, over the raw socket a real 2450 offers on
port 5025 (newline-terminated messages), so the driver is tested through pyvisa + pyvisa-py exactly as
it talks to the instrument. The cell advances as the run's Clock passes: with a VirtualClock the test
moves time and the instrument "measures" every sample that fell due, the same way SimulatedPotentiostat
does, so both give the same data for the same cell and seed.

Instrument behaviour reproduced (2450 reference manual): long/short SCPI mnemonics, ``;``-separated
commands; ``*LANG?`` reports the command set and a TSP-mode instrument ignores SCPI; ``*LANG`` changes
it only after a power cycle; a current source clamps at its voltage limit (``VLIM``) and reports it via
``:SOUR:CURR:VLIM:TRIP?``; the ``SimpleLoop`` trigger template clears its buffer, then makes ``count``
readings, each after ``delay``; ``:TRAC:DATA?`` returns the requested elements flattened, comma
separated; ``:SYST:ERR?`` pops the error queue (``0,"No error..."`` when empty).

Two-terminal measurement: the SMU sees the cell voltage (working vs counter), E_cell.

Fault injection for driver tests: silence on queries, garbage replies, dropped connections, entries in
the error queue, TSP mode (see ``inject``, ``push_error``, ``lang``).
"""

from __future__ import annotations

import re
import socket
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from daq.core.clock import Clock
from simulators.cell import SimulatedCell

IDN = "KEITHLEY INSTRUMENTS INC.,MODEL 2450,04412345,1.7.12b"

# Long forms of the mnemonics used; a header element may be written long or short (the capitals).
_MNEMONICS = [
    "SOURce",
    "SENSe",
    "CURRent",
    "VOLTage",
    "FUNCtion",
    "VLIMit",
    "ILIMit",
    "TRIPped",
    "LEVel",
    "RANGe",
    "AUTO",
    "READ",
    "BACK",
    "OUTPut",
    "STATe",
    "SMODe",
    "TRACe",
    "MAKE",
    "DATA",
    "ACTual",
    "POINts",
    "CLEar",
    "DELete",
    "TRIGger",
    "LOAD",
    "INITiate",
    "IMMediate",
    "ABORt",
    "SYSTem",
    "ERRor",
    "NEXT",
    "COUNt",
    "RELative",
    "FORMat",
    "ASCii",
    "PRECision",
    "NPLCycles",
    "MODE",
    "AMPLitude",
]
_SHORT = {}
for _long in _MNEMONICS:
    _short = "".join(c for c in _long if c.isupper())
    _SHORT[_long.upper()] = _short
    _SHORT[_short] = _short
_SHORT["NPLC"] = "NPLC"
_SHORT["NPLCYCLES"] = "NPLC"
# Optional nodes ([:LEVel], [:IMMediate], [:STATe] of OUTPut, [:MODE] of FUNCtion, [:AMPLitude]).
_OPTIONAL = {"LEV", "IMM", "AMPL"}

MAX_BUFFER = 250_000  # readings a 2450 buffer can hold (standard reading format)
MAX_CURRENT = 1.05  # A
MAX_VOLTAGE = 210.0  # V


@dataclass
class Fault:
    kind: str  # "no_reply" | "garbage" | "drop"
    on: str | None  # canonical header prefix it applies to (e.g. "TRAC:DATA?"); None = every query
    once: bool
    reply: bytes = b"\x8f#?\x00GARBAGE,,e+\n"


class _Error(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def canonical(header: str) -> str:
    """``:SOURce1:CURRent:VLIMit:LEVel:TRIPped?`` -> ``SOUR:CURR:VLIM:TRIP?``."""
    query = header.endswith("?")
    text = header.rstrip("?").lstrip(":").upper()
    if text.startswith("*"):
        return text + ("?" if query else "")
    parts = []
    for token in text.split(":"):
        token = re.sub(r"\d+$", "", token)  # SOUR1, OUTP1, TIM1 ...
        short = _SHORT.get(token)
        if short is None:
            raise _Error(-113, f"Undefined header {header}")
        if short in _OPTIONAL:
            continue
        parts.append(short)
    # Optional trailing nodes of a few subsystems.
    if parts[-1:] == ["STAT"] and parts[:1] == ["OUTP"]:
        parts.pop()
    if parts[-1:] == ["MODE"] and parts[-2:-1] == ["FUNC"]:
        parts.pop()
    if parts[-1:] == ["NEXT"] and parts[:2] == ["SYST", "ERR"]:
        parts.pop()
    return ":".join(parts) + ("?" if query else "")


def _split_args(text: str) -> list[str]:
    return [a.strip() for a in re.findall(r'"[^"]*"|[^,]+', text)] if text.strip() else []


def _unquote(arg: str) -> str:
    return arg.strip().strip('"').strip("'")


def _number(arg: str) -> float:
    try:
        value = float(arg)
    except ValueError:
        raise _Error(-104, f"Data type error: {arg!r}") from None
    if not np.isfinite(value):
        raise _Error(-222, "Data out of range")
    return value


def _bool(arg: str) -> bool:
    a = arg.strip().upper()
    if a in ("1", "ON"):
        return True
    if a in ("0", "OFF"):
        return False
    raise _Error(-224, f"Illegal parameter value {arg!r}")


class Keithley2450Emulator:
    """Instrument state and the cell it is wired to; thread-safe (one lock around every command)."""

    def __init__(self, cell: SimulatedCell, clock: Clock, idn: str = IDN, lang: str = "SCPI"):
        self.cell, self.clock, self.idn = cell, clock, idn
        self.lang = lang  # active command set
        self._lang_after_reboot = lang
        self.lock = threading.RLock()
        self.errors: deque[tuple[int, str]] = deque()
        self.faults: list[Fault] = []
        self.commands: list[str] = []  # every message received, for tests
        self._t_cell = clock.now()
        self._reset()

    # --- state ----------------------------------------------------------------------------------
    def _reset(self) -> None:
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
        self.trigger: tuple[str, int, float, str] | None = None  # template, count, delay, buffer
        self.running = False
        self._t_init = 0.0
        self._k = 0  # readings made by the running trigger model
        self._t_first: float | None = None
        self.clamped = False
        self._clamp_current = 0.0

    def power_cycle(self) -> None:
        with self.lock:
            self.advance()
            self.lang = self._lang_after_reboot
            self._reset()
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

    # --- the cell -------------------------------------------------------------------------------
    def advance(self) -> None:
        """Make every reading that fell due up to the clock's now; move the cell along."""
        now = self.clock.now()
        if self.output and self.running:
            _, count, delay, buf = self.trigger  # type: ignore[misc]
            due = int(np.floor((now - self._t_init) / delay + 1e-9)) if delay > 0 else count
            n = min(due, count) - self._k
            if n > 0:
                t = self._t_init + delay * np.arange(self._k + 1, self._k + n + 1)
                self._k += n
                self._measure(t, buf)
            if self._k >= count:
                self.running = False
        if now > self._t_cell:
            if self.output and not self.running:
                # Sourcing without measuring: the cell still carries the current.
                self.cell.advance(np.array([self._present_current()]), np.array([now - self._t_cell]))
                self._t_cell = now
            elif not self.output:
                self.cell.rest(now - self._t_cell)
                self._t_cell = now

    def _present_current(self) -> float:
        if self.source_function == "CURR":
            return self._clamp_current if self.clamped else self.source_level["CURR"]
        return self.cell.current_for_potential(self.source_level["VOLT"])

    def _measure(self, t: np.ndarray, buf: str) -> None:
        dt = np.diff(t, prepend=self._t_cell)
        if self.source_function == "VOLT":
            i = np.full(len(t), self.cell.current_for_potential(self.source_level["VOLT"]))
            ilim = self.limit["VOLT"]
            i = np.clip(i, -ilim, ilim)
            self.cell.advance(i, dt)
            values = np.column_stack([i, np.full(len(t), self.source_level["VOLT"])])
        else:
            vlim = self.limit["CURR"]
            i = np.full(len(t), self._present_current())
            before = self.cell.snapshot()
            resp = self.cell.advance(i, dt)
            v = resp.E_cell
            over = np.flatnonzero(np.abs(v) > vlim)
            if over.size and not self.clamped:
                # Compliance: from the first sample over the limit the source clamps; the current falls
                # to what keeps |V| at the limit (ohmic estimate from that sample).
                k = int(over[0])
                self.cell.restore(before)
                self.clamped = True
                self._clamp_current = float(i[k] * vlim / abs(v[k]))
                i = np.concatenate([i[:k], np.full(len(t) - k, self._clamp_current)])
                resp = self.cell.advance(i, dt)
                v = resp.E_cell
            if self.clamped:
                v = np.clip(v, -vlim, vlim)
            values = np.column_stack([v, i])
        self._t_cell = float(t[-1])
        if self._t_first is None:
            self._t_first = float(t[0])
        store = self.buffers[buf]
        for tk, (reading, source) in zip(t, values):
            if len(store) < self.capacity[buf]:
                store.append((float(reading), float(source), float(tk - self._t_first)))

    # --- commands -------------------------------------------------------------------------------
    def handle(self, message: str) -> tuple[str | None, Fault | None]:
        """Execute one program message; returns (reply or None, the fault to act out or None)."""
        with self.lock:
            self.commands.append(message)
            self.advance()
            replies: list[str] = []
            acted: Fault | None = None
            for command in (c.strip() for c in message.split(";")):
                if not command:
                    continue
                header, _, args = command.partition(" ")
                try:
                    key = canonical(header)
                except _Error as exc:
                    key = None
                    if self.lang == "SCPI":
                        self.errors.append((exc.code, exc.message))
                        continue
                fault = self._fault_for(key, header.endswith("?"))
                if fault is not None:
                    acted = fault
                    if fault.kind == "drop":
                        return None, fault
                if self.lang != "SCPI" and key not in ("*IDN?", "*LANG?", "*LANG"):
                    continue  # a TSP-mode instrument does not understand SCPI: silence
                if key is None:
                    continue
                try:
                    reply = self._execute(key, _split_args(args))
                except _Error as exc:
                    self.errors.append((exc.code, exc.message))
                    continue
                if reply is not None:
                    replies.append(reply)
            if acted is not None and acted.kind != "garbage":
                return None, acted
            return (";".join(replies) if replies else None), acted

    def _fault_for(self, key: str | None, query: bool) -> Fault | None:
        for fault in self.faults:
            applies = (key is not None and key.startswith(fault.on)) if fault.on else query
            if applies and (query or fault.kind == "drop"):
                if fault.once:
                    self.faults.remove(fault)
                return fault
        return None

    def _fmt(self, x: float) -> str:
        return f"{x:.{max(self.precision, 7) - 1}e}" if self.precision else f"{x:.6e}"

    def _buffer(self, name: str | None) -> str:
        key = _unquote(name).upper() if name else "DEFBUFFER1"
        if key not in self.buffers:
            raise _Error(-285, f"Buffer {name} not found")
        return key

    def _execute(self, key: str, args: list[str]) -> str | None:
        def need(n: int) -> None:
            if len(args) < n:
                raise _Error(-109, "Missing parameter")

        if key == "*IDN?":
            return self.idn
        if key == "*LANG?":
            return self.lang
        if key == "*LANG":
            need(1)
            lang = args[0].upper()
            if lang not in ("SCPI", "TSP", "SCPI2400"):
                raise _Error(-224, "Illegal parameter value")
            self._lang_after_reboot = lang  # effective after a power cycle
            return None
        if key == "*RST":
            self.advance()
            self._reset()
            return None
        if key == "*CLS":
            self.errors.clear()
            return None
        if key == "*OPC?":
            return "1"
        if key == "SYST:ERR?":
            if not self.errors:
                return '0,"No error;0;0"'
            code, msg = self.errors.popleft()
            return f'{code},"{msg};1;0"'
        if key == "SYST:ERR:COUN?":
            return str(len(self.errors))
        if key == "OUTP":
            need(1)
            on = _bool(args[0])
            if on and self.source_function == "CURR" and abs(self.source_level["CURR"]) > MAX_CURRENT:
                raise _Error(-222, "Data out of range")
            if self.output and not on:
                self.running = False
                self.clamped = False
            self.output = on
            return None
        if key == "OUTP?":
            return "1" if self.output else "0"
        if key in ("OUTP:SMOD", "OUTP:CURR:SMOD", "OUTP:VOLT:SMOD"):
            need(1)
            mode = args[0].upper()[:4]
            if mode not in ("NORM", "HIMP", "ZERO", "GUAR"):
                raise _Error(-224, "Illegal parameter value")
            functions = ["CURR", "VOLT"] if key == "OUTP:SMOD" else [key.split(":")[1]]
            for f in functions:
                self.off_mode[f] = mode
            return None
        if key in ("OUTP:SMOD?", "OUTP:CURR:SMOD?", "OUTP:VOLT:SMOD?"):
            f = self.source_function if key == "OUTP:SMOD?" else key.split(":")[1]
            return self.off_mode[f]
        if key == "SOUR:FUNC":
            need(1)
            f = canonical(args[0]) if args[0] else ""
            if f not in ("CURR", "VOLT"):
                raise _Error(-224, "Illegal parameter value")
            if self.output and f != self.source_function:
                raise _Error(5074, "Output must be off to change the source function")
            self.source_function = f
            return None
        if key == "SOUR:FUNC?":
            return self.source_function
        m = re.fullmatch(r"SOUR:(CURR|VOLT)(\?)?", key)
        if m:
            f = m[1]
            if m[2]:
                return self._fmt(self.source_level[f])
            need(1)
            value = _number(args[0])
            top = MAX_CURRENT if f == "CURR" else MAX_VOLTAGE
            if abs(value) > top:
                raise _Error(-222, "Data out of range")
            self.source_level[f] = value
            self.clamped = False
            return None
        m = re.fullmatch(r"SOUR:(CURR|VOLT):RANG(:AUTO)?(\?)?", key)
        if m:
            if m[3]:
                return self._fmt(self.source_range[m[1]])
            need(1)
            if not m[2]:
                self.source_range[m[1]] = _number(args[0])
            return None
        m = re.fullmatch(r"SOUR:(CURR:VLIM|VOLT:ILIM)(:TRIP)?(\?)?", key)
        if m:
            f = m[1][:4]
            if m[2]:
                return "1" if (self.clamped and self.source_function == f and self.output) else "0"
            if m[3]:
                return self._fmt(self.limit[f])
            need(1)
            value = _number(args[0])
            lo, hi = (0.02, MAX_VOLTAGE) if f == "CURR" else (1e-9, MAX_CURRENT)
            if not lo <= value <= hi:
                raise _Error(-222, "Data out of range")
            self.limit[f] = value
            return None
        if re.fullmatch(r"SOUR:(CURR|VOLT):READ:BACK", key):
            need(1)
            _bool(args[0])
            return None
        if key == "SENS:FUNC":
            need(1)
            f = canonical(_unquote(args[0]))
            if f not in ("CURR", "VOLT"):
                raise _Error(-224, "Illegal parameter value")
            self.sense_function = f
            return None
        if key == "SENS:FUNC?":
            return f'"{self.sense_function}:DC"'
        if re.fullmatch(r"SENS:(CURR|VOLT):(RANG(:AUTO)?|NPLC)", key):
            need(1)
            return None
        if key == "FORM:ASC:PREC":
            need(1)
            value = int(_number(args[0]))
            if not 0 <= value <= 16:
                raise _Error(-222, "Data out of range")
            self.precision = value
            return None
        if key == "TRAC:MAKE":
            need(2)
            name = _unquote(args[0]).upper()
            size = int(_number(args[1]))
            if name in self.buffers:
                raise _Error(1114, "Buffer name already exists")
            if not 10 <= size <= MAX_BUFFER:
                raise _Error(-222, "Data out of range")
            self.buffers[name], self.capacity[name] = [], size
            return None
        if key == "TRAC:DEL":
            need(1)
            name = self._buffer(args[0])
            if name.startswith("DEFBUFFER"):
                raise _Error(-224, "Default buffers cannot be deleted")
            del self.buffers[name], self.capacity[name]
            return None
        if key == "TRAC:CLE":
            self.buffers[self._buffer(args[0] if args else None)].clear()
            return None
        if key == "TRAC:ACT?":
            return str(len(self.buffers[self._buffer(args[0] if args else None)]))
        if key == "TRAC:POIN?":
            return str(self.capacity[self._buffer(args[0] if args else None)])
        if key == "TRAC:DATA?":
            need(2)
            start, end = int(_number(args[0])), int(_number(args[1]))
            name = self._buffer(args[2] if len(args) > 2 else None)
            store = self.buffers[name]
            if not 1 <= start <= end <= len(store):
                raise _Error(-222, "Data out of range")
            elements = [canonical(e) for e in args[3:]] or ["READ"]
            column = {"READ": 0, "SOUR": 1, "REL": 2}
            if any(e not in column for e in elements):
                raise _Error(-224, "Illegal buffer element")
            out = [self._fmt(row[column[e]]) for row in store[start - 1 : end] for e in elements]
            return ",".join(out)
        if key == "TRIG:LOAD":
            need(1)
            template = _unquote(args[0]).upper()
            if template == "EMPTY":
                self.trigger = None
                return None
            if template != "SIMPLELOOP":
                raise _Error(-224, f"Trigger model {template} not emulated")
            count = int(_number(args[1])) if len(args) > 1 else 1
            delay = _number(args[2]) if len(args) > 2 else 0.0
            name = self._buffer(args[3] if len(args) > 3 else None)
            if count < 1 or delay < 0:
                raise _Error(-222, "Data out of range")
            self.trigger = ("SIMPLELOOP", count, delay, name)
            return None
        if key == "INIT":
            if self.trigger is None:
                raise _Error(-221, "Settings conflict: trigger model empty")
            if self.running:
                raise _Error(-221, "Settings conflict: trigger model running")
            _, count, delay, name = self.trigger
            if delay <= 0:
                raise _Error(-221, "Settings conflict: emulator needs a delay > 0")
            self.buffers[name].clear()  # SimpleLoop starts with a buffer-clear block
            self._t_first = None
            self.running, self._t_init, self._k = True, self.clock.now(), 0
            return None
        if key == "ABOR":
            self.running = False
            return None
        if key == "TRIG:STAT?":
            state = "RUNNING" if self.running else ("IDLE" if self.trigger else "EMPTY")
            return f"{state};{state};{3 if self.running else 4}"
        raise _Error(-113, f"Undefined header {key}")


class ScpiServer:
    """The emulated 2450 on 127.0.0.1; ``resource`` is the VISA address the driver opens."""

    def __init__(self, cell: SimulatedCell, clock: Clock, port: int = 0, **kwargs):
        self.instrument = Keithley2450Emulator(cell, clock, **kwargs)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(4)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._clients: list[socket.socket] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.connections = 0

    @property
    def resource(self) -> str:
        return f"TCPIP::127.0.0.1::{self.port}::SOCKET"

    def __getattr__(self, name: str):  # inject, push_error, lang, output ... live on the instrument
        return getattr(self.instrument, name)

    def start(self) -> ScpiServer:
        t = threading.Thread(target=self._accept_loop, name=f"scpi-{self.port}", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        self.drop_connections()
        for t in self._threads:
            t.join(timeout=2.0)
        self._listener.close()

    def __enter__(self) -> ScpiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def drop_connections(self) -> None:
        """Close every client connection now (a cable pulled, a switch rebooted)."""
        for c in list(self._clients):
            self._close(c)

    def _close(self, c: socket.socket) -> None:
        try:
            c.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        c.close()
        if c in self._clients:
            self._clients.remove(c)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(0.05)
            self._clients.append(conn)
            self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        pending = b""
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                message = line.decode("ascii", "replace").strip()
                if not message:
                    continue
                reply, fault = self.instrument.handle(message)
                if fault is not None and fault.kind == "drop":
                    self._close(conn)
                    return
                if fault is not None and fault.kind == "garbage":
                    self._send(conn, fault.reply)
                elif reply is not None:
                    self._send(conn, reply.encode("ascii") + b"\n")
        self._close(conn)

    def _send(self, conn: socket.socket, data: bytes) -> None:
        try:
            conn.sendall(data)
        except OSError:
            pass
