"""A Keithley 2450 source-measure unit on a loopback TCP socket, driving a SimulatedCell.

It speaks the SCPI subset the Keithley2450 driver uses, over the raw socket a real 2450 offers on
port 5025 (newline-terminated messages), so the driver is tested through pyvisa + pyvisa-py exactly as
it talks to the instrument. The instrument itself (state, commands, trigger model) lives in
``simulators.keithley_model``; this module is the socket server around it.

The cell advances as the run's Clock passes: with a VirtualClock the test moves time and the
instrument "measures" every sample that fell due, the same way SimulatedPotentiostat does, so both
give the same data for the same cell and seed. On a real (or scaled) clock a timer thread runs the
instrument's trigger model on its own, as a real 2450 does: a model whose last block switches the
output off does so on time even when the client has gone (killed, crashed, cable pulled).

Fault injection for driver tests: silence on queries, garbage replies, dropped connections, entries in
the error queue, TSP mode (see ``inject``, ``push_error``, ``lang``).
"""

from __future__ import annotations

import socket
import threading

from daq.core.clock import Clock
from simulators.cell import SimulatedCell
from simulators.keithley_model import IDN, Fault, Keithley2450Emulator
from simulators.scpi_parse import canonical

__all__ = ["IDN", "Fault", "Keithley2450Emulator", "ScpiServer", "canonical"]

TICK = 0.01  # s, how often the instrument's own timer runs the trigger model on a real clock


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
        if not self.instrument.clock.virtual:
            t = threading.Thread(target=self._tick_loop, name=f"scpi-timer-{self.port}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _tick_loop(self) -> None:
        """The instrument's own time base: trigger-model blocks run when due, client or not."""
        while not self._stop.wait(TICK):
            self.instrument.advance()

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
