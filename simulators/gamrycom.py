"""An emulated GamryCOM (Gamry Electrochemistry Toolkit) object model driving a SimulatedCell on a Clock.

``GamryComEmulator`` stands in for what a driver reaches through comtypes: ``GetModule`` (the type library
namespace with the enum constants), ``CreateObject`` by ProgID (GamryCOM.GamryDeviceList,
GamryCOM.GamryPC6Pstat / GamryPC5Pstat, GamrySignalConst, GamryDtaqChrono, GamryDtaqCiiv, GamryDtaqOcv,
GamryReadZ, GamryDtaqCpiv), ``GetEvents`` (event sinks with ``_IGamryDtaqEvents_OnDataAvailable/OnDataDone`` and
``_IGamryReadZEvents_OnDataAvailable/OnDataDone(status)``), ``PumpEvents(timeout)`` and ``COMError``
(raised with a signed HRESULT first, as comtypes does).

The object model is split by what it holds: simulators/gamrycom_hardware.py (constants, HRESULTs, one
instrument's state), simulators/gamrycom_objects.py (device list, pstat, signal) and
simulators/gamrycom_dtaq.py (acquisitions and ReadZ); their public names are importable from here.

Behaviour follows the toolkit: ``Cook(n)`` returns ``(count, columns)`` with one tuple per column (Ciiv:
Time, Vf, Vu, Im, Vsig, Ach, IERange, Overload, StopTest; Chrono adds Q), until it returns 0 points; a
curve has at most 262143 points; stop criteria (SetStopVMin/VMax) end acquisition at the tripping point
(StopTest set) but, as with the Framework's "output state when finished" left on, the instrument keeps the
cell on at the last applied value until the software switches it off; the galvanostat current is
Vsig / Rm of the fixed I/E range (SetVoltage sets the DC level when no signal runs); the current sign
follows SetIConvention; events are delivered only while events are pumped; ReadZ measures one frequency
per Measure() and reports Ok / Retry / Error through OnDataDone. The rig's auxiliary input (Ach) is wired
across working and counter electrode, so Ach is the cell voltage.

Pumping events lets clock time pass (a VirtualClock jumps), which is how waiting for a ReadZ point costs
instrument time. Faults for tests: HRESULT errors from chosen methods, calls that hang (real time), a
GamryCOM server crash (old objects dead, new ones work), garbage from Cook, ReadZ statuses, events that
never come, overloads, stop criteria that never fire (``disable_stops``).
"""

from __future__ import annotations

import threading
from collections import deque
from types import SimpleNamespace
from typing import Any

from daq.core.clock import Clock
from simulators.cell import SimulatedCell
from simulators.gamrycom_dtaq import Dtaq, DtaqChrono, DtaqCiiv, DtaqCpiv, DtaqOcv, ReadZ
from simulators.gamrycom_hardware import (
    CO_E_CLASSSTRING,
    E_FAIL,
    E_INVALIDARG,
    GAMRY_DEVICE_IN_USE,
    GAMRY_DEVICE_NOT_FOUND,
    GAMRY_DEVICE_NOT_OPEN,
    GAMRY_INVALID_DEVICE_TYPE,
    GAMRY_INVALID_SIGNAL,
    GC,
    HANG_CAP,
    MAX_CURVE_POINTS,
    RPC_E_TIMEOUT,
    RPC_S_SERVER_UNAVAILABLE,
    TYPELIB_GUID,
    COMError,
    ComServer,
    EmulatedInstrument,
)
from simulators.gamrycom_objects import ComObject, DeviceList, Pstat, SignalConst, com_method

__all__ = [
    "CO_E_CLASSSTRING",
    "E_FAIL",
    "E_INVALIDARG",
    "GAMRY_DEVICE_IN_USE",
    "GAMRY_DEVICE_NOT_FOUND",
    "GAMRY_DEVICE_NOT_OPEN",
    "GAMRY_INVALID_DEVICE_TYPE",
    "GAMRY_INVALID_SIGNAL",
    "GC",
    "MAX_CURVE_POINTS",
    "RPC_E_TIMEOUT",
    "RPC_S_SERVER_UNAVAILABLE",
    "TYPELIB_GUID",
    "COMError",
    "ComObject",
    "DeviceList",
    "Dtaq",
    "DtaqChrono",
    "DtaqCiiv",
    "DtaqCpiv",
    "DtaqOcv",
    "EmulatedInstrument",
    "GamryComEmulator",
    "Pstat",
    "ReadZ",
    "SignalConst",
    "com_method",
]


class GamryComEmulator:
    """What a driver gets from comtypes, for a set of emulated instruments (section -> cell)."""

    COMError = COMError

    def __init__(self, clock: Clock, cells: dict[str, SimulatedCell]):
        self.clock = clock
        self.instruments = {
            section: EmulatedInstrument(section, cell, clock, serial=f"{21185 + i}")
            for i, (section, cell) in enumerate(cells.items())
        }
        self.lock = threading.RLock()
        self.server = ComServer()
        self.sinks: list[tuple[Any, Any]] = []  # (source object, sink)
        self.events: list[tuple[float, Any, str, tuple]] = []  # (due time, source, event, args)
        self.calls: list[str] = []
        self._hresults: dict[str, deque] = {}
        self._hangs: dict[str, float | None] = {}
        self._release = threading.Event()
        self._garbage: str | None = None
        self.stops_disabled = False
        self.excitations: list[tuple[str, float]] = []  # (mode, peak amplitude) of every ReadZ point
        self.readz_statuses: deque = deque()
        self.suppress_events = False
        self.registered = True

    # --- comtypes.client stand-ins -------------------------------------------------------------------------
    def GetModule(self, spec: Any) -> SimpleNamespace:
        if not self.registered:
            raise OSError("type library not registered")
        return GC

    def CreateObject(self, progid: str) -> Any:
        if not self.registered:
            raise COMError(CO_E_CLASSSTRING, "Invalid class string")
        if not self.server.alive:  # COM starts a fresh server for new objects
            self.server = ComServer()
        name = progid.split(".", 1)[-1]
        classes = {
            "GamryDeviceList": DeviceList,
            "GamryPC6Pstat": Pstat,
            "GamryPC5Pstat": Pstat,
            "GamrySignalConst": SignalConst,
            "GamryDtaqCiiv": DtaqCiiv,
            "GamryDtaqCpiv": DtaqCpiv,
            "GamryDtaqChrono": DtaqChrono,
            "GamryDtaqOcv": DtaqOcv,
            "GamryReadZ": ReadZ,
        }
        if not progid.startswith("GamryCOM.") or name not in classes:
            raise COMError(CO_E_CLASSSTRING, f"Invalid class string {progid}")
        obj = classes[name](self)
        if isinstance(obj, Pstat):
            obj.family = "Interface" if name == "GamryPC6Pstat" else "Reference"
        return obj

    def GetEvents(self, source: Any, sink: Any) -> Any:
        entry = (source, sink)
        self.sinks.append(entry)
        emulator = self

        class Connection:
            def disconnect(self) -> None:
                if entry in emulator.sinks:
                    emulator.sinks.remove(entry)

            def __del__(self) -> None:
                self.disconnect()

        return Connection()

    def PumpEvents(self, timeout: float) -> None:
        """Dispatch events while ``timeout`` seconds of clock time pass."""
        if timeout > 0:
            self.clock.sleep(timeout)
        with self.lock:
            for inst in self.instruments.values():
                inst.advance()
                if inst.readz is not None:
                    inst.readz.poll()
            if self.suppress_events:
                self.events.clear()
                return
            now = self.clock.now()
            due = sorted((e for e in self.events if e[0] <= now + 1e-12), key=lambda e: e[0])
            self.events = [e for e in self.events if e[0] > now + 1e-12]
        for _, source, event, args in due:
            for src, sink in list(self.sinks):
                if src is source:
                    handler = getattr(sink, event, None)
                    if handler is not None:
                        handler(None, *args)

    def post(self, source: Any, event: str, t: float, *args: Any) -> None:
        self.events.append((t, source, event, args))

    # --- fault injection ----------------------------------------------------------------------------------
    def fail(self, method: str, hresult: int, count: int = 1) -> None:
        """The next ``count`` calls of ``method`` (e.g. "Pstat.Open", "Cook") raise COMError(hresult)."""
        self._hresults.setdefault(method, deque()).extend([hresult] * count)

    def hang(self, method: str, seconds: float | None = None) -> None:
        """The next call of ``method`` blocks for ``seconds`` of real time (None: until release()), then
        fails with RPC_E_TIMEOUT."""
        self._hangs[method] = seconds

    def release(self) -> None:
        self._release.set()

    def crash_server(self) -> None:
        """GamryCOM.exe dies: existing objects fail with RPC_S_SERVER_UNAVAILABLE, the instrument keeps its
        output as it was (cell state is in the hardware), the device is no longer held open."""
        with self.lock:
            self.server.alive = False
            for inst in self.instruments.values():
                inst.advance()
                inst.owner = None
                if inst.dtaq is not None:
                    inst.dtaq.running = False
                    inst.dtaq = None
                inst.readz = None
            self.events.clear()

    def garbage(self, kind: str = "columns") -> None:
        """The next Cook with data returns "columns" (wrong column count), "nan" or "time" (time going back)."""
        self._garbage = kind

    def take_garbage(self) -> str | None:
        """The garbage kind for this Cook (once), or None."""
        kind, self._garbage = self._garbage, None
        return kind

    def disable_stops(self, disabled: bool = True) -> None:
        """Stop criteria armed on acquisitions never fire (a firmware or configuration fault)."""
        self.stops_disabled = disabled

    def overload(self, section: str) -> None:
        inst = self.instruments[section]
        inst.overload_from = self.clock.now()

    def check(self, obj: Any, method: str) -> None:
        """Called on every emulated method: server alive, injected hangs and HRESULTs."""
        self.calls.append(f"{type(obj).__name__}.{method}")
        for key in (f"{type(obj).__name__}.{method}", method):
            if key in self._hangs:
                seconds = self._hangs.pop(key)
                self._release.wait(HANG_CAP if seconds is None else seconds)
                raise COMError(RPC_E_TIMEOUT, "This operation returned because the timeout period expired.")
            queue = self._hresults.get(key)
            if queue:
                raise COMError(queue.popleft(), "")
        if obj.com_server is not self.server or not self.server.alive:
            raise COMError(RPC_S_SERVER_UNAVAILABLE, "The RPC server is unavailable.")

    # --- inspection (tests) ---------------------------------------------------------------------------------
    def settle(self) -> None:
        with self.lock:
            for inst in self.instruments.values():
                inst.advance()

    def cell_on(self, section: str) -> bool:
        self.settle()
        return self.instruments[section].cell_on
