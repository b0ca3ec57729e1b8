"""BioLogic potentiostats (SP-200, SP-300, VMP-300, VMP3, VMP-3e ...) through the EC-Lab Development Package DLL.

One ``BiologicPotentiostat`` per channel; channels of one instrument share a ``BiologicConnection``
(drivers.biologic_connection). What is pushed into the instrument: the set point and its fixed current range
(checked against the channel's MaxIRange), the E_we window of a galvanostatic step or the current window of a
potentiostatic one as limit tests that stop the channel, and a technique duration of at most the dead-man
time (``deadman_s``), extended while the driver polls: if the PC or this process dies, the channel stops
sourcing by itself within ``deadman_s``. Every library call runs with a timeout; on any failure the driver
stops the channel (bounded) before reporting.

The DLL is loaded lazily (ctypes.WinDLL) at connect; tests inject an emulated function table with the same
signatures (simulators.eclib).
"""

from __future__ import annotations

import ctypes as C
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from daq.core.capabilities import EisRequest, InstrumentInfo, Potentiostat, check_setpoint, checked_frequencies
from daq.core.clock import Clock, RealClock
from daq.core.errors import ConfigError, InstrumentError
from daq.core.samples import FLAG_HW_LIMIT, EisPoint, SampleBlock
from drivers import biologic_layouts as L
from drivers import biologic_tables as T
from drivers.biologic_connection import BiologicConnection, CallTimeout
from drivers.biologic_setup import ChannelSetup
from drivers.biologic_structs import (  # noqa: F401 - the structures stay importable from here
    DEFAULT_DLL_DIR,
    ChannelInfos,
    CurrentValues,
    DataBuffer,
    DataInfos,
    DeviceInfos,
    EccParam,
    EccParams,
    load_eclib,
)
from drivers.biologic_sweep import ImpedanceSweeps
from drivers.biologic_techniques import MAX_SEGMENT, Run, Technique, ecc_params, ocv_technique, step_technique

__all__ = ["BiologicConnection", "BiologicPotentiostat", "MAX_SEGMENT", "channel_drivers", "load_eclib"]


class BiologicPotentiostat(ChannelSetup, ImpedanceSweeps, Potentiostat):
    """One channel (0-based ``channel``) of a BioLogic instrument."""

    def __init__(
        self,
        connection: BiologicConnection | str,
        channel: int,
        *,
        clock: Clock | None = None,
        dll: Any = None,
        poll_period: float = 0.2,
        safe_timeout: float = 10.0,
        deadman_s: float = 60.0,
        name: str | None = None,
    ):
        if not (isinstance(deadman_s, int | float) and 1.0 <= deadman_s <= MAX_SEGMENT):
            raise ConfigError("deadman_s", deadman_s, f"the dead-man time must be 1 s to {MAX_SEGMENT:g} s")
        self.conn = (
            connection if isinstance(connection, BiologicConnection) else BiologicConnection(connection, dll=dll)
        )
        self.channel, self.clock = channel, clock or RealClock()
        self.poll_period, self.safe_timeout, self._deadman = poll_period, safe_timeout, float(deadman_s)
        self.name = name or f"biologic:{self.conn.address}:ch{channel + 1}"
        # Nominal until connect() reads the model and the channel (the runner checks a protocol before connecting).
        self.capabilities = self._capabilities(T.DEFAULT_RATINGS, zboard=True, max_range=max(T.I_RANGES))
        self.board = 0
        self.i_ranges = (min(T.I_RANGES), max(T.I_RANGES))  # (MinIRange, MaxIRange) codes of the channel
        self.float_format = T.FLOAT_IEEE  # as the channel reports it; conversion is the library's
        self.warnings: list[str] = []
        self._connected = False
        self._run: Run | None = None
        self._pending: list[SampleBlock] = []
        self._t_out = -math.inf  # time of the last sample handed out

    @property
    def deadman_s(self) -> float:
        """Longest time (s) the channel keeps sourcing without this driver polling it."""
        return self._deadman

    @property
    def max_read_interval(self) -> float:
        """Longest time (s, on the driver's clock) between reads that keeps a step sourcing: the running
        technique is extended only at a read, once less than half the dead-man time is left."""
        return self._deadman / 3

    # --- interface ----------------------------------------------------------------------------------------
    def connect(self) -> InstrumentInfo:
        if self._connected:
            raise InstrumentError(f"{self.name}: already connected")
        self.conn.acquire()
        try:
            info = self._prepare_channel()
        except BaseException:
            self.conn.release()
            raise
        self._connected = True
        return info

    def apply_current(
        self, current: float, v_min: float, v_max: float, sample_period: float, duration: float | None = None
    ) -> None:
        self._check_connected()
        check_setpoint(
            self.name,
            self.capabilities,
            current=current,
            v_limits=(v_min, v_max),
            sample_period=sample_period,
            duration=duration,
            holder="channel",
        )
        self._i_range(current)  # refused here, before anything is loaded, if the channel cannot hold it
        with self._safety("starting the galvanostatic step"):
            run = Run("current", self.clock.now(), setpoint=current, limits=(v_min, v_max), period=sample_period)
            self._start_step(self._timed(run, duration))

    def apply_potential(
        self, potential: float, i_min: float, i_max: float, sample_period: float, duration: float | None = None
    ) -> None:
        self._check_connected()
        check_setpoint(
            self.name,
            self.capabilities,
            potential=potential,
            i_limits=(i_min, i_max),
            sample_period=sample_period,
            duration=duration,
            holder="channel",
        )
        with self._safety("starting the potentiostatic step"):
            run = Run("potential", self.clock.now(), setpoint=potential, limits=(i_min, i_max), period=sample_period)
            self._start_step(self._timed(run, duration))

    def open_circuit(self, sample_period: float | None = None) -> None:
        if not self._connected:
            return
        with self._safety("switching to open circuit"):
            self._stop_and_drain()
            if sample_period is None:
                return
            now = self.clock.now()
            run = Run("ocv", now, period=sample_period, segment_start=now, segment_duration=MAX_SEGMENT)
            self._start([ocv_technique(sample_period)], run)

    def read(self) -> SampleBlock:
        self._check_connected()
        with self._safety("reading data"):
            state = self._poll()
            self._maybe_rearm(state)
            self._extend(state)
        block = SampleBlock.concat(self._pending)
        self._pending = []
        if len(block):
            block.t = L.in_time_order(block.t, self._t_out)
            self._t_out = float(block.t[-1])
        return block

    def impedance(self, request: EisRequest) -> Iterator[EisPoint]:
        self._check_connected()
        return self._impedance(request, checked_frequencies(self.name, self.capabilities, request))

    def close(self) -> None:
        if not self._connected:
            return
        try:
            self._safe_stop()
        finally:
            self._connected = False
            self._run = None
            self.conn.release()

    # --- steps ----------------------------------------------------------------------------------------------
    def _i_range(self, current: float, headroom: float = 1.0) -> int:
        """Smallest fixed range of the channel (MinIRange..MaxIRange) holding ``headroom * |current|`` (or
        ``|current|`` if the headroom does not fit); an InstrumentError if even the largest cannot."""
        lo, hi = self.i_ranges
        for need in (abs(current) * headroom, abs(current)):
            for code in range(lo, hi + 1):
                if T.I_RANGES[code] >= need:
                    return code
        raise InstrumentError(
            f"{self.name}: {abs(current):g} A needs a current range above the channel's largest "
            f"({T.I_RANGES[hi]:g} A, MaxIRange {hi})"
        )

    def _step_technique(self, run: Run, duration: float) -> Technique:
        if run.kind == "current":
            return step_technique(run, duration, self._i_range(run.setpoint), T.e_range_for(*run.limits))
        bound = max(abs(run.limits[0]), abs(run.limits[1]))
        i_range = T.I_RANGE_AUTO if math.isinf(bound) else self._i_range(min(bound, T.I_RANGES[self.i_ranges[1]]))
        return step_technique(run, duration, i_range, T.e_range_for(-abs(run.setpoint), abs(run.setpoint)))

    @staticmethod
    def _timed(run: Run, duration: float | None) -> Run:
        if duration is not None:
            run.duration, run.end = duration, run.t0 + duration
        return run

    def _start_step(self, run: Run) -> None:
        """Load and start the step's technique for at most the dead-man time. A step of known duration
        ends ``duration`` after the channel started (not after the PC computed it), so the technique
        gets exactly that Duration_step and records its last sample."""
        self._stop_and_drain()
        timed = math.isfinite(run.duration)
        duration = min(run.duration if timed else run.end - self.clock.now(), self._deadman)
        tech = self._step_technique(run, duration)
        self._start([tech], run)
        run.segment_start, run.segment_duration = run.t0, duration
        if timed:
            run.end = run.t0 + run.duration

    def _update_step(self, run: Run, duration: float) -> None:
        """Set the running step technique's Duration_step (BL_UpdateParameters)."""
        c, tech = self.conn, self._step_technique(run, duration)
        c.check(
            c.call(
                "BL_UpdateParameters",
                c.conn_id,
                C.c_uint8(self.channel),
                run.step_index,
                ecc_params(c, tech, self.name),
                c.ecc_path(tech.tech_id, self.board),
            ),
            f"{self.name}: extending the step (dead-man re-arm)",
        )
        run.segment_duration = duration

    def _extend(self, state: int) -> None:
        """Dead-man re-arm: with less than half the dead-man time left, the running step technique gets a
        duration ending at most ``deadman_s`` from now (never beyond the step's own end)."""
        run = self._run
        if run is None or not run.sourcing or state != T.STATE_RUN or not math.isfinite(run.segment_start):
            return
        now = self.clock.now()
        if run.segment_end - now > self._deadman / 2 or run.segment_end >= run.end:
            return
        if self.conn.has("BL_UpdateParameters"):
            self._update_step(run, min(now + self._deadman, run.end) - run.segment_start)

    def _maybe_rearm(self, state: int) -> None:
        """After a drain that left the channel in ``state``: flag a limit stop, end a step whose duration is
        over, report a dead-man stop, continue an open-circuit record (or a step on an old library)."""
        run = self._run
        if run is None or run.kind == "eis":
            return
        now = self.clock.now()
        if now >= run.end:  # the step is over (the instrument's own bound may be later after an EIS sweep)
            self._stop_and_drain()
            return
        if state != T.STATE_STOP:
            return
        if run.sourcing and self._pending:
            last = self._pending[-1]
            x = last.E_we[-1] if run.kind == "current" else last.I[-1]
            lo, hi = run.limits
            if x <= lo or x >= hi:
                last.flags[-1] |= FLAG_HW_LIMIT  # the instrument's limit test stopped the channel here
                self._run = None
                return
        ended_by_duration = run.last_t >= run.segment_end - run.period - 1e-6
        if not ended_by_duration or run.end - run.segment_end <= run.period:
            self._run = None
            return
        if not run.sourcing:
            self.open_circuit(run.period)
        elif self.conn.has("BL_UpdateParameters") or now - run.segment_end > self._deadman / 2:
            self._run = None
            raise InstrumentError(
                f"{self.name}: the channel stopped itself at its dead-man time ({run.segment_end:.1f} s), "
                f"{now - run.segment_end:.1f} s before this read: it was not polled in time"
            )
        else:  # an old library cannot extend a running technique: the next segment follows at once
            self._start_step(
                Run(run.kind, now, setpoint=run.setpoint, limits=run.limits, period=run.period, end=run.end)
            )

    def _start(self, techniques: list[Technique], run: Run) -> None:
        """Load the chain (first/last flags) and start the channel; on a file/firmware mismatch reload the
        firmware for the board family the device model implies and retry once."""
        for attempt in range(2):
            code = self._load_chain(techniques)
            if code in (-401, -6) and attempt == 0:
                family = T.DEVICE_FAMILY.get(self.conn.device.DeviceCode)
                if family is not None and family != self.board:
                    self.warnings.append(
                        f"{T.error_text(code)} with {T.BOARD_NAMES[self.board]} files; "
                        f"retrying as {T.BOARD_NAMES[family]}"
                    )
                    self.board = family
                    self._load_firmware(force=True)
                    continue
            self.conn.check(
                code,
                f"{self.name}: loading {'+'.join(T.TECHNIQUE_NAMES[t.tech_id] for t in techniques)}"
                f" ({T.BOARD_NAMES.get(self.board, self.board)} files)",
            )
            break
        c = self.conn
        c.check(c.call("BL_StartChannel", c.conn_id, C.c_uint8(self.channel)), f"{self.name}: starting the channel")
        run.t0 = self.clock.now()
        run.chain = [t.tech_id for t in techniques]
        self._run = run

    def _load_chain(self, techniques: list[Technique]) -> int:
        c = self.conn
        for i, tech in enumerate(techniques):
            params = ecc_params(c, tech, self.name)
            path = c.ecc_path(tech.tech_id, self.board)
            code = c.call(
                "BL_LoadTechnique", c.conn_id, C.c_uint8(self.channel), path, params, i == 0, i == len(techniques) - 1,
                False,
            )  # fmt: skip
            if code < 0:
                return code
        return 0

    # --- data -------------------------------------------------------------------------------------------------
    def _get_data(self) -> tuple[DataInfos, CurrentValues, np.ndarray]:
        c = self.conn
        buf, infos, cv = DataBuffer(), DataInfos(), CurrentValues()
        c.check(
            c.call("BL_GetData", c.conn_id, C.c_uint8(self.channel), C.byref(buf), C.byref(infos), C.byref(cv)),
            f"{self.name}: reading data",
        )
        n_words = infos.NbRows * infos.NbCols
        if infos.NbRows < 0 or infos.NbCols < 0 or n_words > T.DATA_BUFFER_WORDS:
            raise InstrumentError(
                f"{self.name}: corrupt data from the instrument: {infos.NbRows} rows x "
                f"{infos.NbCols} columns do not fit the {T.DATA_BUFFER_WORDS}-word buffer"
            )
        words = np.frombuffer(buf.data, dtype=np.uint32, count=n_words).reshape(infos.NbRows, infos.NbCols).copy()
        return infos, cv, words

    def _decode(self, infos: DataInfos, words: np.ndarray, time_base: float) -> dict[str, np.ndarray]:
        run = self._run
        tech, process = infos.TechniqueID, infos.ProcessIndex
        if run is None or infos.TechniqueIndex >= len(run.chain) or run.chain[infos.TechniqueIndex] != tech:
            raise InstrumentError(
                f"{self.name}: corrupt data from the instrument: technique {tech} index "
                f"{infos.TechniqueIndex} process {process} was not loaded"
            )
        layout = L.row_layout(tech, process, self.board, infos.NbCols)
        if layout is None:
            raise InstrumentError(
                f"{self.name}: corrupt data from the instrument: {T.TECHNIQUE_NAMES.get(tech)} process {process} "
                f"rows have {infos.NbCols} columns, expected {' or '.join(map(str, L.expected_widths(tech, process)))}"
            )
        if layout.note and layout.note not in self.warnings:
            self.warnings.append(layout.note)
        out: dict[str, np.ndarray] = {}
        floats = [j for j, name in enumerate(layout.names) if name not in L.INTEGER_WORDS]
        values = self.conn.singles(words[:, floats].T.ravel(), self.board).reshape(len(floats), -1)
        for j, name in enumerate(layout.names):
            out[name] = words[:, j] if name in L.INTEGER_WORDS else values[floats.index(j)]
            if name not in L.INTEGER_WORDS and not np.all(np.isfinite(out[name])):
                raise InstrumentError(f"{self.name}: corrupt data from the instrument: non-finite {name}")
        if "t_high" in out:
            ticks = (out["t_high"].astype(np.uint64) << np.uint64(32)) + out["t_low"].astype(np.uint64)
            out["time"] = run.t0 + infos.StartTime + time_base * ticks.astype(np.float64)
        elif "t" in out:
            out["time"] = run.t0 + infos.StartTime + out["t"].astype(np.float64)
        return out

    def _poll(self, on_eis: Any = None) -> int:
        """Drain the instrument's buffer into pending samples (and EIS rows to ``on_eis``); channel state."""
        state = T.STATE_RUN
        for _ in range(10_000):
            infos, cv, words = self._get_data()
            state = cv.State
            if infos.NbRows == 0:
                break
            data = self._decode(infos, words, float(cv.TimeBase))
            if infos.ProcessIndex == 1:
                if on_eis is not None:
                    on_eis(infos, data)
                continue
            self._add_samples(infos, data)
        return state

    def _add_samples(self, infos: DataInfos, data: dict[str, np.ndarray]) -> None:
        run = self._run
        t = data["time"]
        n = len(t)
        if n == 0 or run is None:
            return
        if run.sourcing and infos.TechniqueIndex == run.step_index and not math.isfinite(run.segment_start):
            run.segment_start = run.t0 + infos.StartTime  # a step technique chained after a sweep
        current = data.get("I", np.zeros(n))
        self._pending.append(SampleBlock(t, data["Ewe"], L.cell_voltage(data), current, np.zeros(n, dtype=np.uint8)))
        run.last_t = float(t[-1])

    # --- safety ------------------------------------------------------------------------------------------------
    def _stop_and_drain(self) -> None:
        """Stop whatever runs and keep the data it buffered."""
        c = self.conn
        if self._run is not None:
            self._poll()
        c.check(c.call("BL_StopChannel", c.conn_id, C.c_uint8(self.channel)), f"{self.name}: stopping the channel")
        if self._run is not None:
            self._poll()
        self._run = None

    def _safe_stop(self) -> str | None:
        """Stop the channel, waiting (bounded) for a stuck call to clear first; the problem as text or None."""
        c = self.conn
        self._run = None
        if c.conn_id is None:
            return "no connection"
        try:
            code = c.call("BL_StopChannel", c.conn_id, C.c_uint8(self.channel), timeout=self.safe_timeout)
        except CallTimeout:
            return (
                f"the library did not answer within {self.safe_timeout:g} s, so the channel could not be "
                f"stopped from the PC; the technique's own duration (at most the {self._deadman:g} s dead-man "
                f"time) and limits remain in force"
            )
        except InstrumentError as exc:
            return str(exc)
        if code < 0:
            return f"stopping the channel failed: {T.error_text(code)}"
        return None

    def _safety(self, what: str) -> Safety:
        return Safety(self, what)

    def _check_connected(self) -> None:
        if not self._connected:
            raise InstrumentError(f"{self.name}: not connected")


class Safety:
    """Context: any failure stops the channel (bounded) and becomes one InstrumentError line."""

    def __init__(self, driver: BiologicPotentiostat, what: str):
        self.driver, self.what = driver, what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, GeneratorExit) or getattr(exc, "channel_made_safe", False):
            return False
        d = self.driver
        if isinstance(exc, CallTimeout):
            message = f"{d.name}: {self.what}: {exc}"
        elif isinstance(exc, InstrumentError):
            message = str(exc) if str(exc).startswith(d.name) else f"{d.name}: {self.what}: {exc}"
        else:
            message = f"{d.name}: {self.what}: unexpected {type(exc).__name__}: {exc}"
        problem = d._safe_stop()
        message += "; channel stopped" if problem is None else f"; WARNING: {problem}"
        error = InstrumentError(message)
        error.channel_made_safe = True  # type: ignore[attr-defined]
        raise error from exc


def channel_drivers(
    address: str, channels: Sequence[int], *, dll: Any = None, clock: Clock | None = None, **options: Any
) -> list[BiologicPotentiostat]:
    """Drivers for several channels of one instrument, sharing one connection."""
    conn_keys = ("dll_path", "firmware_dir", "call_timeout", "connect_timeout", "label_version")
    conn = BiologicConnection(address, dll=dll, **{k: v for k, v in options.items() if k in conn_keys})
    rest = {k: v for k, v in options.items() if k in ("poll_period", "safe_timeout", "deadman_s")}
    return [BiologicPotentiostat(conn, ch, clock=clock, **rest) for ch in channels]
