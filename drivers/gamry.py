"""Gamry potentiostats (Interface 1010 family, Reference 600+ family) through the GamryCOM toolkit.

Pushed into the instrument for a galvanostatic step: galvanostat mode, anodic-positive current convention
(the product's sign), a fixed I/E range chosen by TestIERange, a constant-current signal of the step's
duration (long or open-ended steps are re-armed in segments below the 262143-point curve limit) and
voltage stop criteria on the GamryDtaqCiiv acquisition. When a stop criterion trips, the instrument ends
the curve at that point (StopTest) but keeps the cell on at the last value, so the driver switches the
cell off as soon as it sees the end: at every read(), and with a real clock also from a watchdog that
pumps events in the background. Impedance is measured point by point with GamryReadZ; galvanostatic
points keep the DC (plating) current flowing through SetVoltage/SetIdc, so operando GEIS works.

All COM work happens on one worker thread (COM objects belong to the thread that created them) and every
call has a timeout; event pumping is always bounded. Any failure switches the cell off (bounded, with a
fresh pstat object if the GamryCOM server died) before an InstrumentError with the decoded HRESULT.

comtypes is imported only when a real instrument is used (Windows); tests inject an emulator.
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import numpy as np

from daq.core.capabilities import Capabilities, EisRequest, InstrumentInfo, Potentiostat, checked_frequencies
from daq.core.clock import Clock, RealClock
from daq.core.errors import InstrumentError
from daq.core.samples import FLAG_HW_LIMIT, FLAG_OVERLOAD, EisPoint, SampleBlock

TYPELIB = ["{BD962F0D-A990-4823-9CF5-284D1CDD9C6D}", 1, 0]
TYPELIB_PATHS = (
    r"C:\Program Files (x86)\Gamry Instruments\Framework\GamryCom.exe",
    r"C:\Program Files (x86)\Gamry Instruments\Framework 6\GamryCom.exe",
    r"C:\Windows\System32\GamryCOM.exe",
)
MAX_CURVE_POINTS = 262143
CIIV_COLUMNS = ("Time", "Vf", "Vu", "Im", "Vsig", "Ach", "IERange", "Overload", "StopTest")
OCV_COLUMNS = ("Time", "Vf", "Vm", "Vsig", "Ach", "Overload", "StopTest")  # then undocumented columns

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
_SERVER_GONE = {0x800706BA, 0x800706BE, 0x80010108, 0x80010007}


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


class _ComtypesBridge:
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
        return _ComtypesBridge()
    except ImportError:
        raise InstrumentError(
            "the comtypes package is missing: install it with `pip install comtypes` "
            "(or the project's 'vendor' extra) to drive Gamry instruments"
        ) from None


class _CallTimeout(Exception):
    pass


def _nominal_capabilities(reference: bool, f_lo: float = 1e-5, f_hi: float | None = None) -> Capabilities:
    """Interface 1010 class (1 A, 12 V, EIS to 2 MHz) or Reference 600+ class (0.6 A, 11 V, 5 MHz)."""
    return Capabilities(
        max_current=0.6 if reference else 1.0,
        current_resolution=1e-12,
        max_voltage=11.0 if reference else 12.0,
        min_sample_period=1e-3,
        galvanostatic=True,
        potentiostatic=False,
        eis_galvanostatic=True,
        eis_potentiostatic=True,
        eis_min_frequency=f_lo,
        eis_max_frequency=f_hi if f_hi is not None else (5e6 if reference else 2e6),
        reference_electrode=True,
        hardware_voltage_limit=True,
    )


class _DtaqSink:
    """Event sink of a data acquisition (comtypes passes the interface pointer first)."""

    def __init__(self) -> None:
        self.available = False
        self.done = False

    def _IGamryDtaqEvents_OnDataAvailable(self, *args: Any) -> None:
        self.available = True

    def _IGamryDtaqEvents_OnDataDone(self, *args: Any) -> None:
        self.done = True


class _ReadZSink:
    def __init__(self) -> None:
        self.done = False
        self.status: int | None = None

    def _IGamryReadZEvents_OnDataAvailable(self, *args: Any) -> None:
        pass

    def _IGamryReadZEvents_OnDataDone(self, *args: Any) -> None:
        self.status = int(args[-1]) if args else None
        self.done = True


@dataclass
class _Step:
    kind: str  # "current" | "ocv"
    current: float = 0.0
    limits: tuple[float, float] = (-math.inf, math.inf)
    period: float = 1.0
    end: float = math.inf  # clock time the step ends (duration)
    t0: float = 0.0  # clock time of the running curve's Run(True)
    segment_end: float = math.inf
    dtaq: Any = None
    signal: Any = None
    sink: _DtaqSink | None = None
    events: Any = None
    last_t: float = -math.inf
    tripped: bool = False


class GamryPotentiostat(Potentiostat):
    """One Gamry potentiostat (a GamryCOM "section" such as IFC1010-21185 or REF600-12345)."""

    def __init__(
        self,
        section: str | None = None,
        *,
        com: Any = None,
        clock: Clock | None = None,
        call_timeout: float = 10.0,
        safe_timeout: float = 10.0,
        readz_retries: int = 3,
        cook_chunk: int = 4096,
        cell_voltage_from_ach: bool = True,
        z_guess: float = 100.0,
        watchdog_period: float = 0.2,
        name: str | None = None,
    ):
        self.section, self._com_given, self.clock = section, com, clock or RealClock()
        self.call_timeout, self.safe_timeout, self.readz_retries = call_timeout, safe_timeout, readz_retries
        self.cook_chunk, self.cell_voltage_from_ach, self.z_guess = cook_chunk, cell_voltage_from_ach, z_guess
        self.watchdog_period = watchdog_period
        self.name = name or f"gamry:{section or 'first'}"
        # Nominal until connect() reads the instrument (the runner checks a protocol before connecting).
        self.capabilities = _nominal_capabilities(reference=bool(section and section.upper().startswith("REF")))
        self._com: Any = None
        self._gc: Any = None
        self._pstat: Any = None
        self._progid = ""
        self._executor: ThreadPoolExecutor | None = None
        self._step: _Step | None = None
        self._pending: list[SampleBlock] = []
        self._pending_lock = threading.Lock()
        self._connected = False
        self._watchdog: threading.Thread | None = None
        self._stop_watchdog = threading.Event()
        self._failure: InstrumentError | None = None  # raised by the watchdog, reported at the next call

    # --- interface ----------------------------------------------------------------------------------------
    def connect(self) -> InstrumentInfo:
        if self._connected:
            raise InstrumentError(f"{self.name}: already connected")
        self._com = self._com_given if self._com_given is not None else load_gamrycom()
        init = getattr(self._com, "thread_init", None)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gamrycom", initializer=init)
        try:
            info = self._do(self._connect_w, "connecting")
        except BaseException:
            if self._pstat is not None:  # opened but not usable: release it for the next attempt
                try:
                    self._do(lambda: self._pstat.Close(), "closing", timeout=self.safe_timeout)
                except (InstrumentError, _CallTimeout):
                    pass
                self._pstat = None
            self._shutdown_worker()
            raise
        self._connected = True
        if not self.clock.virtual and self.watchdog_period > 0:
            self._stop_watchdog.clear()
            self._watchdog = threading.Thread(target=self._watch, name="gamry-watchdog", daemon=True)
            self._watchdog.start()
        return info

    def apply_current(
        self, current: float, v_min: float, v_max: float, sample_period: float, duration: float | None = None
    ) -> None:
        self._check_connected()
        if abs(current) > self.capabilities.max_current:
            raise InstrumentError(
                f"{self.name}: {current:g} A beyond the instrument's {self.capabilities.max_current:g} A"
            )
        if not sample_period >= self.capabilities.min_sample_period:
            raise InstrumentError(f"{self.name}: sample period {sample_period:g} s too short")
        if not v_min < v_max:
            raise InstrumentError(f"{self.name}: voltage limits [{v_min:g}, {v_max:g}] V are empty")

        def work() -> None:
            self._end_step_w(cell_off=False)
            now = self.clock.now()
            step = _Step(
                "current", current, (v_min, v_max), sample_period, now + duration if duration is not None else math.inf
            )
            self._start_galvanostatic_w(step)

        self._do(work, "starting the galvanostatic step", safe=True)

    def apply_potential(
        self, potential: float, i_min: float, i_max: float, sample_period: float, duration: float | None = None
    ) -> None:
        raise InstrumentError(f"{self.name}: potentiostatic steps are not implemented for Gamry instruments")

    def open_circuit(self, sample_period: float | None = None) -> None:
        if not self._connected:
            return

        def work() -> None:
            self._end_step_w(cell_off=True)
            if sample_period is not None:
                self._start_ocv_w(_Step("ocv", period=sample_period))

        self._do(work, "switching to open circuit", safe=True)

    def read(self) -> SampleBlock:
        self._check_connected()
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure
        self._do(self._service_w, "reading data", safe=True)
        with self._pending_lock:
            block = SampleBlock.concat(self._pending)
            self._pending = []
        return block

    def impedance(self, request: EisRequest) -> Iterator[EisPoint]:
        self._check_connected()
        freqs = checked_frequencies(self.name, self.capabilities, request)
        if request.mode == "potentiostatic" and self._step is not None and self._step.kind == "current":
            raise InstrumentError(f"{self.name}: potentiostatic impedance during a galvanostatic step")
        return self._impedance(request, freqs)

    def close(self) -> None:
        if not self._connected:
            return
        self._stop_watchdog.set()
        try:
            problem = self._safe_off()
            if problem is None:
                try:
                    self._do(lambda: self._pstat.Close(), "closing", timeout=self.safe_timeout)
                except (InstrumentError, _CallTimeout):
                    pass
        finally:
            self._connected = False
            self._step = None
            self._shutdown_worker()

    # --- worker -------------------------------------------------------------------------------------------
    def _do(self, fn: Callable[[], Any], what: str, *, safe: bool = False, timeout: float | None = None) -> Any:
        """Run ``fn`` on the COM thread with a timeout; errors become one line (cell off first if ``safe``)."""
        if self._executor is None:
            raise InstrumentError(f"{self.name}: not connected")
        future = self._executor.submit(fn)
        try:
            return future.result(timeout=self.call_timeout if timeout is None else timeout)
        except BaseException as exc:
            if isinstance(exc, FutureTimeout):
                detail = f"GamryCOM did not answer within {self.call_timeout if timeout is None else timeout:g} s"
            elif isinstance(exc, InstrumentError):
                if getattr(exc, "cell_made_safe", False):
                    raise
                detail = str(exc).removeprefix(f"{self.name}: ")
            elif self._is_com_error(exc):
                detail = describe_hresult(exc.args[0], exc.args[1] if len(exc.args) > 1 else None)
            else:
                detail = f"unexpected {type(exc).__name__}: {exc}"
            message = f"{self.name}: {what}: {detail}"
            if safe:
                problem = self._safe_off()
                message += "; cell switched off" if problem is None else f"; WARNING: {problem}"
            error = InstrumentError(message)
            error.cell_made_safe = safe  # type: ignore[attr-defined]
            raise error from (None if isinstance(exc, FutureTimeout) else exc)

    def _is_com_error(self, exc: BaseException) -> bool:
        cls = getattr(self._com, "COMError", None)
        return (cls is not None and isinstance(exc, cls)) or (
            len(exc.args) >= 1 and isinstance(exc.args[0], int) and type(exc).__name__ == "COMError"
        )

    def _shutdown_worker(self) -> None:
        if self._executor is not None:
            exit_fn = getattr(self._com, "thread_exit", None)
            if exit_fn is not None:
                self._executor.submit(exit_fn)
            self._executor.shutdown(wait=False, cancel_futures=False)
            self._executor = None

    def _watch(self) -> None:
        """Real clocks only: switch the cell off promptly when a curve ends between reads."""
        while not self._stop_watchdog.wait(self.watchdog_period):
            if self._step is not None and self._step.kind == "current":
                try:
                    self._do(self._service_w, "watching the step", safe=True)
                except InstrumentError as exc:
                    self._failure = exc  # the cell is off; the engine learns it at its next read
                    return

    # --- COM-thread work ----------------------------------------------------------------------------------
    def _connect_w(self) -> InstrumentInfo:
        com = self._com
        try:
            gc = com.GetModule(TYPELIB)
        except InstrumentError:
            raise
        except Exception as exc:  # noqa: BLE001 - any loading failure means the same thing to the operator
            raise InstrumentError(f"GamryCOM type library not available: install the Gamry software ({exc})") from None
        self._gc = gc
        devices = com.CreateObject("GamryCOM.GamryDeviceList")
        sections = list(devices.EnumSections())
        if not sections:
            raise InstrumentError(
                "no Gamry instrument found: check USB cable and power, and that the Gamry Framework sees it"
            )
        section = self.section or sections[0]
        if section not in sections:
            raise InstrumentError(f"no instrument {section!r}; GamryCOM lists {', '.join(sections)}")
        self.section = section
        self.name = self.name.replace(":first", f":{section}")
        self._progid = "GamryCOM.GamryPC5Pstat" if section.upper().startswith("REF") else "GamryCOM.GamryPC6Pstat"
        pstat = com.CreateObject(self._progid)
        pstat.Init(section)
        pstat.Open()
        self._pstat = pstat
        pstat.SetCell(gc.CellOff)
        model, serial = str(pstat.ModelNo()), str(pstat.SerialNo())
        f_hi, f_lo = float(pstat.FreqLimitUpper()), float(pstat.FreqLimitLower())
        self.capabilities = _nominal_capabilities(self._progid.endswith("PC5Pstat"), f_lo, f_hi)
        return InstrumentInfo(
            "Gamry",
            model,
            serial,
            f"DC cal {pstat.CalDate(0)}, AC cal {pstat.CalDate(1)}",
            "drivers.gamry",
            f"gamrycom://{section}",
        )

    def _configure_galvanostat_w(self, current: float) -> int:
        gc, p = self._gc, self._pstat
        p.SetCtrlMode(gc.GstatMode)
        p.SetIEStability(gc.StabilityNorm)
        p.SetIConvention(gc.Anodic)  # positive = oxidation at the working electrode
        p.SetIERangeMode(False)
        rng = int(p.TestIERange(abs(current) * 1.05))
        p.SetIERange(rng)
        return rng

    def _start_galvanostatic_w(self, step: _Step) -> None:
        gc, p, com = self._gc, self._pstat, self._com
        self._configure_galvanostat_w(step.current)
        now = self.clock.now()
        seg = min(step.end - now, (MAX_CURVE_POINTS - 2) * step.period)
        signal = com.CreateObject("GamryCOM.GamrySignalConst")
        signal.Init(p, step.current, seg, step.period, gc.GstatMode)
        dtaq = com.CreateObject("GamryCOM.GamryDtaqCiiv")
        dtaq.Init(p)
        p.SetSignal(signal)
        p.InitSignal()
        v_min, v_max = step.limits
        dtaq.SetStopVMin(math.isfinite(v_min), v_min if math.isfinite(v_min) else 0.0)
        dtaq.SetStopVMax(math.isfinite(v_max), v_max if math.isfinite(v_max) else 0.0)
        sink = _DtaqSink()
        step.events = com.GetEvents(dtaq, sink)
        step.dtaq, step.signal, step.sink = dtaq, signal, sink
        p.SetCell(gc.CellOn)
        dtaq.Run(True)
        step.t0 = self.clock.now()
        step.segment_end, step.tripped = step.t0 + seg, False
        self._step = step

    def _start_ocv_w(self, step: _Step) -> None:
        gc, p, com = self._gc, self._pstat, self._com
        seg = (MAX_CURVE_POINTS - 2) * step.period
        signal = com.CreateObject("GamryCOM.GamrySignalConst")
        signal.Init(p, 0.0, seg, step.period, gc.PstatMode)
        dtaq = com.CreateObject("GamryCOM.GamryDtaqOcv")
        dtaq.Init(p)
        p.SetSignal(signal)
        p.InitSignal()
        sink = _DtaqSink()
        step.events = com.GetEvents(dtaq, sink)
        step.dtaq, step.signal, step.sink = dtaq, signal, sink
        p.SetCell(gc.CellOff)
        dtaq.Run(True)
        step.t0 = self.clock.now()
        step.segment_end = step.t0 + seg
        self._step = step

    def _cook_w(self, step: _Step) -> None:
        """Every point the acquisition holds, as arrays; refuses malformed data."""
        expected = CIIV_COLUMNS if step.kind == "current" else OCV_COLUMNS
        blocks = []
        for _ in range(100_000):
            count, columns = step.dtaq.Cook(self.cook_chunk)
            if count <= 0:
                break
            if (
                len(columns) < len(expected)
                or (step.kind == "current" and len(columns) != len(expected))
                or any(len(c) != count for c in columns[: len(expected)])
            ):
                raise InstrumentError(
                    f"malformed data from Cook: {len(columns)} columns of "
                    f"{sorted({len(c) for c in columns})} points, expected {len(expected)} "
                    f"columns of {count}"
                )
            try:
                data = np.asarray(columns[: len(expected)], dtype=float)
            except (TypeError, ValueError) as exc:
                raise InstrumentError(f"malformed data from Cook: {exc}") from None
            if not np.all(np.isfinite(data)):
                raise InstrumentError("malformed data from Cook: non-finite values")
            t = step.t0 + data[0]
            if np.any(np.diff(t) < 0) or t[0] < step.last_t - 1e-9:
                raise InstrumentError("malformed data from Cook: time goes backwards")
            step.last_t = float(t[-1])
            col = dict(zip(expected, data))
            flags = np.zeros(count, dtype=np.uint8)
            flags[col["Overload"] != 0] |= FLAG_OVERLOAD
            e_cell = col["Ach"] if self.cell_voltage_from_ach else np.full(count, np.nan)
            if step.kind == "current":
                stop = col["StopTest"] != 0
                if stop.any():
                    step.tripped = True
                    flags[stop] |= FLAG_HW_LIMIT
                blocks.append(SampleBlock(t, col["Vf"], e_cell, col["Im"], flags))
            else:
                blocks.append(SampleBlock(t, col["Vf"], e_cell, np.zeros(count), flags))
        if blocks:
            with self._pending_lock:
                self._pending.extend(blocks)

    def _service_w(self) -> None:
        """Dispatch events, cook, and act on the end of a curve (cell off, or the next segment)."""
        step = self._step
        if step is None or step.dtaq is None:
            return
        self._com.PumpEvents(0)
        self._cook_w(step)
        now = self.clock.now()
        if step.kind == "current" and step.tripped:
            self._end_step_w(cell_off=True)  # the stop criterion ended the curve: current off now
            return
        if step.kind == "current" and now >= step.end:
            self._end_step_w(cell_off=True)
            return
        if step.sink is not None and step.sink.done:
            self._cook_w(step)
            if step.tripped:
                self._end_step_w(cell_off=True)
            elif step.end - now > step.period and now >= step.segment_end - step.period:
                self._rearm_w(step)
            elif step.kind == "current":
                self._end_step_w(cell_off=True)
            else:
                self._rearm_w(step)

    def _rearm_w(self, step: _Step) -> None:
        step.events = None
        if step.kind == "current":
            self._start_galvanostatic_w(step)
        else:
            self._start_ocv_w(step)

    def _end_step_w(self, cell_off: bool) -> None:
        """Stop the running acquisition keeping its data; optionally switch the cell off."""
        step = self._step
        self._step = None
        if step is not None and step.dtaq is not None:
            if cell_off:
                self._pstat.SetCell(self._gc.CellOff)
            step.dtaq.Stop()
            self._cook_w(step)
            step.events = None
        if cell_off:
            self._pstat.SetCell(self._gc.CellOff)

    def _measure_point_w(self, readz: Any, sink: _ReadZSink, f: float, amplitude: float) -> tuple[EisPoint, bool]:
        gc, com = self._gc, self._com
        status: int | None = None
        for _ in range(self.readz_retries + 1):
            sink.done, sink.status = False, None
            readz.Measure(f, amplitude)
            span = 12.0 / f + 5.0
            deadline = self.clock.now() + span
            pump = min(0.5, max(0.01, 0.5 / f))
            while not sink.done:
                if self.clock.now() > deadline:
                    raise InstrumentError(f"no ReadZ result at {f:g} Hz within {span:g} s (events not arriving?)")
                com.PumpEvents(pump)
            status = sink.status
            if status == gc.ReadZStatusError:
                raise InstrumentError(f"ReadZ error at {f:g} Hz: {readz.StatusMessage() or 'no message'}")
            if status == gc.ReadZStatusOk:
                break
        point = EisPoint(
            float(readz.Zfreq()),
            float(readz.Zreal()),
            float(readz.Zimag()),
            self.clock.now(),
            float(readz.Vdc()),
            float(readz.Idc()),
            status == gc.ReadZStatusOk,
        )
        return point, status == gc.ReadZStatusOk

    # --- impedance ----------------------------------------------------------------------------------------
    def _impedance(self, request: EisRequest, freqs: list[float]) -> Iterator[EisPoint]:
        resume = self._step if self._step is not None and self._step.kind == "current" else None
        galvano = request.mode == "galvanostatic"
        i_dc = (request.dc if request.dc is not None else (resume.current if resume else 0.0)) if galvano else 0.0
        holder: dict[str, Any] = {}
        done = False

        def setup() -> None:
            gc, p, com = self._gc, self._pstat, self._com
            self._service_w()
            keep_on = resume is not None and self._step is resume  # not ended by a limit meanwhile
            self._end_step_w(cell_off=not keep_on)
            readz = com.CreateObject("GamryCOM.GamryReadZ")
            readz.Init(p)
            sink = _ReadZSink()
            holder.update(readz=readz, sink=sink, events=com.GetEvents(readz, sink))
            readz.SetSpeed(gc.ReadZSpeedNorm)
            readz.SetGain(1.0)
            readz.SetINoise(0.0)
            readz.SetVNoise(0.0)
            readz.SetIENoise(0.0)
            readz.SetZmod(self.z_guess)
            readz.SetCycleLim(2, 10)
            if galvano:
                rng = self._configure_galvanostat_w(abs(i_dc) + math.sqrt(2) * abs(request.amplitude))
                p.SetVoltage(float(p.IEResistor(rng)) * i_dc)  # DC level of the galvanostat
                readz.SetIdc(i_dc)
                p.SetCell(gc.CellOn)
            else:
                e_dc = request.dc if request.dc is not None else float(p.MeasureV())  # cell off: OCP
                p.SetCtrlMode(gc.PstatMode)
                p.SetIConvention(gc.Anodic)
                p.SetIERangeMode(False)
                p.SetIERange(int(p.TestIERange(2 * math.sqrt(2) * abs(request.amplitude) / self.z_guess)))
                p.SetVoltage(e_dc)
                p.SetCell(gc.CellOn)
                readz.SetIdc(float(p.MeasureI()))

        def finish() -> None:
            gc = self._gc
            holder["events"] = None
            now = self.clock.now()
            if resume is not None and resume.end - now > resume.period:
                self._start_galvanostatic_w(resume)  # plating goes on where the sweep left it
            else:
                self._pstat.SetCell(gc.CellOff)

        try:
            self._do(setup, "starting the impedance sweep", safe=True)
            for index, f in enumerate(freqs):
                budget = (self.readz_retries + 1) * (12.0 / f + 5.0) + self.call_timeout
                point, _ = self._do(
                    lambda f=f: self._measure_point_w(holder["readz"], holder["sink"], f, request.amplitude),
                    f"measuring impedance at {f:g} Hz",
                    safe=True,
                    timeout=budget,
                )
                with self._pending_lock:  # the DC level measured during the point is data too
                    self._pending.append(
                        SampleBlock(
                            np.array([point.t]), np.array([point.E_dc]), np.array([np.nan]), np.array([point.I_dc])
                        )
                    )
                if index == len(freqs) - 1:
                    self._do(finish, "finishing the impedance sweep", safe=True)
                    done = True
                yield point
        finally:
            if not done and self._connected:
                self._safe_off()

    # --- safety -------------------------------------------------------------------------------------------
    def _safe_off(self) -> str | None:
        """Cell off, bounded; a fresh pstat object if the server died. The problem as text, or None."""
        self._step = None

        def off() -> None:
            try:
                self._pstat.SetCell(self._gc.CellOff)
            except Exception as exc:
                if not (self._is_com_error(exc) and (exc.args[0] & 0xFFFFFFFF) in _SERVER_GONE):
                    raise
                pstat = self._com.CreateObject(self._progid)  # COM starts a new GamryCOM server
                pstat.Init(self.section)
                pstat.Open()
                pstat.SetCell(self._gc.CellOff)
                self._pstat = pstat

        if self._executor is None or self._pstat is None:
            return "no connection to the instrument"
        future = self._executor.submit(off)
        try:
            future.result(timeout=self.safe_timeout)
        except FutureTimeout:
            return (
                f"GamryCOM did not answer within {self.safe_timeout:g} s, so the cell could not be switched "
                f"off from the PC"
            )
        except Exception as exc:  # noqa: BLE001 - COM errors of every kind are reported, never raised, while making safe
            detail = (
                describe_hresult(exc.args[0], exc.args[1] if len(exc.args) > 1 else None)
                if self._is_com_error(exc)
                else str(exc)
            )
            return f"switching the cell off failed: {detail}"
        return None

    def _check_connected(self) -> None:
        if not self._connected:
            raise InstrumentError(f"{self.name}: not connected")
        if (
            self._watchdog is not None
            and not self._watchdog.is_alive()
            and not self._stop_watchdog.is_set()
            and self._failure is None
        ):
            self._watchdog = threading.Thread(target=self._watch, name="gamry-watchdog", daemon=True)
            self._watchdog.start()  # restart after a reported failure
