"""What the Gamry driver needs from GamryCOM besides the curves: loading it, reading its errors, event sinks.

comtypes is imported only when a real instrument is used (Windows); tests inject an emulator instead.
The HRESULT table lists Gamry's own codes (customer bit 0x20000000 set) and the COM/RPC codes seen when
GamryCOM.exe is missing, busy or crashed.
"""

from __future__ import annotations

import sys
from typing import Any

from daq.core.capabilities import Capabilities
from daq.core.errors import InstrumentError

TYPELIB = ["{BD962F0D-A990-4823-9CF5-284D1CDD9C6D}", 1, 0]
TYPELIB_PATHS = (
    r"C:\Program Files (x86)\Gamry Instruments\Framework\GamryCom.exe",
    r"C:\Program Files (x86)\Gamry Instruments\Framework 6\GamryCom.exe",
    r"C:\Windows\System32\GamryCOM.exe",
)

# HRESULT -> (name, meaning). Gamry's own codes have the customer bit (0x20000000) set.
HRESULTS: dict[int, tuple[str, str]] = {
    0xE0000002: ("GAMRY_DEVICE_LOAD", "device driver could not be loaded"),
    0xE0000003: ("GAMRY_ADDRESS_INVALID", "invalid device address"),
    0xE0000004: ("GAMRY_ADDRESS_USED", "device address already in use"),
    0xE0000005: ("GAMRY_DEVICE_ALLOCATION", "device allocation failed"),
    0xE0000006: ("GAMRY_DEVICE_NOT_RESPONDING", "device not responding (cable, power, USB)"),
    0xE0000007: ("GAMRY_IRQ_DEVICE_COUNT", "IRQ device count"),
    0xE0000008: ("GAMRY_IRQ_INVALID", "invalid IRQ"),
    0xE0000009: ("GAMRY_IRQ_DEVICE_INVALID", "invalid IRQ device"),
    0xE000000A: ("GAMRY_DEVICE_INIT", "device initialisation failed"),
    0xE000000B: ("GAMRY_BOARD_NUMBER_INVALID", "invalid board number"),
    0xE000000C: ("GAMRY_DEVICE_ACQ_MODE", "invalid acquisition mode"),
    0xE000000D: ("GAMRY_QUEUE_ALLOCATION", "data queue allocation failed"),
    0xE000000E: ("GAMRY_DEVICE_CONTROL_MODE", "invalid control mode"),
    0xE000000F: ("GAMRY_DEVICE_NOT_OPEN", "device not open"),
    0xE0000010: ("GAMRY_DEVICE_SIGNAL", "signal error"),
    0xE0000011: ("GAMRY_DEVICE_SIGNAL_CONTROL", "signal control error"),
    0xE0000012: ("GAMRY_DEVICE_SIGNAL_NO_DATA", "signal has no data"),
    0xE0000013: ("GAMRY_DEVICE_CREATE_EVENT", "cannot create device event"),
    0xE0000014: ("GAMRY_IRQ_VXD_LOAD", "IRQ driver load failed"),
    0xE0000015: ("GAMRY_IRQ_UNAVAILABLE", "IRQ unavailable"),
    0xE0000016: ("GAMRY_IRQ_DID_NOT_INSTALL", "IRQ did not install"),
    0xE0000017: ("GAMRY_IRQ_CREATE_THREAD", "IRQ thread creation failed"),
    0xE0000018: ("GAMRY_IRQ_CREATE_EVENT", "IRQ event creation failed"),
    0xE0000019: ("GAMRY_QUEUE_FULL", "data queue full (data not cooked fast enough)"),
    0xE000001A: ("GAMRY_QUEUE_EMPTY", "data queue empty"),
    0xE000001B: ("GAMRY_QUEUE_INVALID", "invalid data queue"),
    0xE000001C: ("GAMRY_QUEUE_EVENT", "data queue event error"),
    0xE000001D: ("GAMRY_ALLOC", "memory allocation failed"),
    0xE000001E: ("GAMRY_EVENT", "event error"),
    0xE000001F: ("GAMRY_INVALID_KEY", "invalid registry key"),
    0xE0000020: ("GAMRY_INVALID_CLASSNAME", "invalid class name"),
    0xE0000021: ("GAMRY_INVALID_DEVICE", "invalid device"),
    0xE0000022: ("GAMRY_DEVICE_LIST_LOAD", "device list could not be loaded"),
    0xE0000023: ("GAMRY_REGISTER_DEVICE_NOTIFY", "device notification registration failed"),
    0xE0000024: ("GAMRY_DEVICE_SERIAL_NOT_UNIQUE", "device serial number not unique"),
    0xE0000025: ("GAMRY_DEVICE_NOT_FOUND", "device not found (unplugged or wrong section name)"),
    0xE0000026: ("GAMRY_MEMORY_OBJECT", "memory object error"),
    0xE0000027: ("GAMRY_DEVICE_IN_USE", "device in use (Gamry Framework or another program has it open)"),
    0xE0000028: ("GAMRY_INVALID_DEVICE_TYPE", "invalid device type (Interface vs Reference pstat object)"),
    0xE0000029: ("GAMRY_INVALID_DEVICE_MODEL", "invalid device model"),
    0xE000002A: ("GAMRY_DEVICE_INTERFACE_NOT_FOUND", "device interface not found"),
    0xE000002B: ("GAMRY_DEVICE_NEEDS_RESET", "device needs a reset (power-cycle the instrument)"),
    0xE000002C: ("GAMRY_QUEUE_REGISTER", "data queue registration failed"),
    0xE000002D: ("GAMRY_LIST_INVALID", "invalid list"),
    0xE000002E: ("GAMRY_DEVICE_NOT_AUTHORIZED", "device not authorized for this technique (license)"),
    0xE00200A4: ("GAMRY_INVALID_SIGNAL_PARAMETERS", "invalid signal generation parameters (too many points?)"),
    0x80004001: ("E_NOTIMPL", "not implemented"),
    0x80004005: ("E_FAIL", "unspecified failure"),
    0x8000FFFF: ("E_UNEXPECTED", "catastrophic failure"),
    0x80070057: ("E_INVALIDARG", "invalid argument"),
    0x80040154: ("REGDB_E_CLASSNOTREG", "class not registered: GamryCOM is not installed"),
    0x800401F3: ("CO_E_CLASSSTRING", "invalid class string: GamryCOM is not installed"),
    0x80080005: (
        "CO_E_SERVER_EXEC_FAILURE",
        "GamryCOM server failed to start (also reported for a Reference-family version mismatch)",
    ),
    0x80010001: ("RPC_E_CALL_REJECTED", "call rejected by GamryCOM"),
    0x8001010A: ("RPC_E_SERVERCALL_RETRYLATER", "GamryCOM busy, retry later"),
    0x8001010E: ("RPC_E_WRONG_THREAD", "COM object used from the wrong thread"),
    0x80010108: ("RPC_E_DISCONNECTED", "GamryCOM object disconnected from its clients"),
    0x80010007: ("RPC_E_SERVER_DIED", "GamryCOM server died"),
    0x8001011F: ("RPC_E_TIMEOUT", "GamryCOM call timed out"),
    0x800706BA: ("RPC_S_SERVER_UNAVAILABLE", "the RPC server is unavailable: GamryCOM.exe stopped or crashed"),
    0x800706BE: ("RPC_S_CALL_FAILED", "the remote procedure call failed: GamryCOM.exe crashed during the call"),
}
SERVER_GONE = {0x800706BA, 0x800706BE, 0x80010108, 0x80010007}


def describe_hresult(hresult: int, text: str | None = None) -> str:
    """One readable line for an HRESULT (signed or unsigned)."""
    h = hresult & 0xFFFFFFFF
    if h in HRESULTS:
        name, meaning = HRESULTS[h]
        line = f"HRESULT 0x{h:08X} {name}: {meaning}"
    elif h & 0x20000000:
        line = f"HRESULT 0x{h:08X}: GamryCOM error not in the driver's table"
    else:
        line = f"HRESULT 0x{h:08X}: COM error"
    return f"{line} ({text})" if text else line


class ComtypesBridge:
    """The real GamryCOM through comtypes (Windows)."""

    def __init__(self) -> None:
        import comtypes
        import comtypes.client

        self._comtypes, self._client = comtypes, comtypes.client
        self.COMError = comtypes.COMError

    def GetModule(self, spec: Any) -> Any:
        try:
            return self._client.GetModule(spec)
        except Exception as first:  # noqa: BLE001 - comtypes raises COM and OS errors alike; try the known paths
            for path in TYPELIB_PATHS:
                try:
                    return self._client.GetModule(path)
                except Exception:  # noqa: BLE001 - try the next path
                    continue
            raise InstrumentError(
                "GamryCOM type library not found: install the Gamry software (Framework/"
                f"Echem Toolkit) on this PC ({first})"
            ) from None

    def CreateObject(self, progid: str) -> Any:
        return self._client.CreateObject(progid)

    def GetEvents(self, source: Any, sink: Any) -> Any:
        return self._client.GetEvents(source, sink)

    def PumpEvents(self, timeout: float) -> None:
        self._client.PumpEvents(timeout)

    def thread_init(self) -> None:
        self._comtypes.CoInitializeEx(self._comtypes.COINIT_APARTMENTTHREADED)

    def thread_exit(self) -> None:
        self._comtypes.CoUninitialize()


def load_gamrycom() -> Any:
    """comtypes bridge to GamryCOM, or an InstrumentError saying what is missing (never an ImportError)."""
    if sys.platform != "win32":
        raise InstrumentError(
            f"Gamry instruments need Windows with the Gamry software (GamryCOM) and the "
            f"comtypes package; this is {sys.platform}. Use the simulator or run on the "
            f"instrument PC."
        )
    try:
        return ComtypesBridge()
    except ImportError:
        raise InstrumentError(
            "the comtypes package is missing: install it with `pip install comtypes` "
            "(or the project's 'vendor' extra) to drive Gamry instruments"
        ) from None


def nominal_capabilities(reference: bool, f_lo: float = 1e-5, f_hi: float | None = None) -> Capabilities:
    """Interface 1010 class (1 A, 12 V, EIS to 2 MHz) or Reference 600+ class (0.6 A, 11 V, 5 MHz)."""
    return Capabilities(
        max_current=0.6 if reference else 1.0,
        current_resolution=1e-12,
        max_voltage=11.0 if reference else 12.0,
        min_sample_period=1e-3,
        galvanostatic=True,
        potentiostatic=True,
        eis_galvanostatic=True,
        eis_potentiostatic=True,
        eis_min_frequency=f_lo,
        eis_max_frequency=f_hi if f_hi is not None else (5e6 if reference else 2e6),
        reference_electrode=True,
        hardware_voltage_limit=True,
    )


class DtaqSink:
    """Event sink of a data acquisition (comtypes passes the interface pointer first)."""

    def __init__(self) -> None:
        self.available = False
        self.done = False

    def _IGamryDtaqEvents_OnDataAvailable(self, *args: Any) -> None:
        self.available = True

    def _IGamryDtaqEvents_OnDataDone(self, *args: Any) -> None:
        self.done = True


class ReadZSink:
    def __init__(self) -> None:
        self.done = False
        self.status: int | None = None

    def _IGamryReadZEvents_OnDataAvailable(self, *args: Any) -> None:
        pass

    def _IGamryReadZEvents_OnDataDone(self, *args: Any) -> None:
        self.status = int(args[-1]) if args else None
        self.done = True
