"""Gamry potentiostats (Interface 1010 family, Reference 600+ family) through the GamryCOM toolkit.

Pushed into the instrument for a step: the control mode (galvanostat for current steps, potentiostat
for potential steps), anodic-positive current (the product's sign), a fixed I/E range (from the current,
or from the current limit), a fixed voltage channel range covering the window, a constant signal of the
step's duration (long or open-ended steps are re-armed in segments below the 262143-point curve limit),
and the limits as both thresholds and stop criteria on the acquisition (drivers/gamry_curves.py). Every
cooked point is also checked against the window by the driver, so a stop criterion that does not fire
still ends the step at the first point outside it. When a curve ends (a limit, or its duration) the
instrument keeps the cell on at the last value, so the driver switches the cell off as soon as it sees
the end: at every read(), and with a real clock also from a watchdog that services the acquisition in
the background. Impedance (drivers/gamry_impedance.py) is measured point by point with GamryReadZ.

All COM work happens on one worker thread (COM objects belong to the thread that created them) and every
call has a timeout; event pumping is always bounded. Any failure switches the cell off (bounded, with a
fresh pstat object if the GamryCOM server died) before an InstrumentError with the decoded HRESULT.

GamryCOM offers no instrument-side timeout that ends the output when the PC stops talking to it, so
this driver cannot guarantee a dead-man stop: ``deadman_guaranteed`` is False (docs/drivers.md).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from daq.core.capabilities import EisRequest, InstrumentInfo, Potentiostat, check_setpoint, checked_frequencies
from daq.core.clock import Clock, RealClock
from daq.core.errors import InstrumentError
from daq.core.samples import EisPoint, SampleBlock
from drivers.gamry_com import (
    HRESULTS,
    SERVER_GONE,
    TYPELIB,
    TYPELIB_PATHS,
    ComtypesBridge,
    describe_hresult,
    load_gamrycom,
    nominal_capabilities,
)
from drivers.gamry_curves import MAX_CURVE_POINTS, SOURCING, Curve, GamryCurves
from drivers.gamry_impedance import GamryImpedance, sweep_conflict

__all__ = [
    "HRESULTS",
    "MAX_CURVE_POINTS",
    "TYPELIB",
    "TYPELIB_PATHS",
    "ComtypesBridge",
    "GamryPotentiostat",
    "describe_hresult",
    "load_gamrycom",
]

DEADMAN_NOTE = (
    "no dead-man stop: GamryCOM has no instrument-side timeout, and a curve that ends holds the cell at "
    "its last value, so the current stops only when software switches the cell off"
)


class CallTimeout(Exception):
    """A COM call did not return within its time budget."""


class GamryPotentiostat(GamryCurves, GamryImpedance, Potentiostat):
    """One Gamry potentiostat (a GamryCOM "section" such as IFC1010-21185 or REF600-12345)."""

    deadman_guaranteed = False  # the instrument does not stop sourcing by itself if the PC dies
    deadman_s: float | None = None  # no bounded time after which it would
    deadman_note = DEADMAN_NOTE

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
        self.capabilities = nominal_capabilities(reference=bool(section and section.upper().startswith("REF")))
        self._com: Any = None
        self._gc: Any = None
        self._pstat: Any = None
        self._progid = ""
        self._executor: ThreadPoolExecutor | None = None
        self._step: Curve | None = None
        self.last_eoc: float | None = None  # V, open-circuit potential of the last PEIS "vs Eoc"
        self._pending: list[SampleBlock] = []
        self._pending_lock = threading.Lock()
        self._connected = False
        self._watchdog: threading.Thread | None = None
        self._stop_watchdog = threading.Event()
        self._failure: InstrumentError | None = None  # raised by the watchdog, reported at the next call
        # A read waits for a watchdog service in progress: a failure it meets (cell switched off) is then
        # recorded before the read looks, so the engine hears of it at this read, not the next one.
        self._service_lock = threading.Lock()

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
                except (InstrumentError, CallTimeout):
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
        check_setpoint(self.name, self.capabilities, current=current, v_limits=(v_min, v_max))
        self._start("current", current, (v_min, v_max), sample_period, duration, "starting the galvanostatic step")

    def apply_potential(
        self, potential: float, i_min: float, i_max: float, sample_period: float, duration: float | None = None
    ) -> None:
        """Hold E_we (vs reference) in potentiostat mode; the current limits end the step like a voltage
        limit ends a galvanostatic one (cell off, the sample flagged FLAG_HW_LIMIT)."""
        self._check_connected()
        caps = self.capabilities
        check_setpoint(self.name, caps, potential=potential, i_limits=(i_min, i_max))
        window = (max(i_min, -caps.max_current), min(i_max, caps.max_current))
        self._start("potential", potential, window, sample_period, duration, "starting the potentiostatic step")

    def _start(
        self,
        kind: str,
        setpoint: float,
        window: tuple[float, float],
        period: float,
        duration: float | None,
        what: str,
    ) -> None:
        """A sourcing step; the cell stays on from a step of the same kind, and goes off between kinds."""
        check_setpoint(self.name, self.capabilities, sample_period=period, duration=duration)

        def work() -> None:
            running = self._step
            self._end_step_w(cell_off=running is not None and running.kind != kind)
            left = duration if duration is not None else math.inf
            self._start_curve_w(Curve(kind, setpoint, window, period, left=left))

        self._do(work, what, safe=True)

    def open_circuit(self, sample_period: float | None = None) -> None:
        if not self._connected:
            return

        def work() -> None:
            self._end_step_w(cell_off=True)
            if sample_period is not None:
                self._start_ocv_w(Curve("ocv", period=sample_period))

        self._do(work, "switching to open circuit", safe=True)

    def read(self) -> SampleBlock:
        self._check_connected()
        with self._service_lock:
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
        conflict = sweep_conflict(self._step, request.mode)
        if conflict:
            raise InstrumentError(f"{self.name}: {conflict}")
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
                except (InstrumentError, CallTimeout):
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
            if self._step is not None and self._step.kind in SOURCING:
                with self._service_lock:
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
        self.capabilities = nominal_capabilities(self._progid.endswith("PC5Pstat"), f_lo, f_hi)
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

    # --- safety -------------------------------------------------------------------------------------------

    # --- safety -------------------------------------------------------------------------------------------
    def _safe_off(self) -> str | None:
        """Cell off, bounded; a fresh pstat object if the server died. The problem as text, or None."""
        self._step = None

        def off() -> None:
            try:
                self._pstat.SetCell(self._gc.CellOff)
            except Exception as exc:
                if not (self._is_com_error(exc) and (exc.args[0] & 0xFFFFFFFF) in SERVER_GONE):
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
