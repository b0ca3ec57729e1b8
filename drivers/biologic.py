"""BioLogic potentiostats (SP-200, SP-300, VMP-300, VMP3 ...) through the EC-Lab Development Package DLL.

One ``BiologicPotentiostat`` per channel; channels of one instrument share a ``BiologicConnection`` (one
BL_Connect, one worker thread that serialises every library call, because the library refuses concurrent
calls). What is pushed into the instrument: the current and its fixed range, the step duration, and the
E_we limits as CPLIMIT limit tests with "stop" as exit condition, so the channel switches the current
off by itself at the sample where E_we leaves [v_min, v_max], whatever the PC does. Every library call
runs with a timeout; on any failure the driver stops the channel (bounded) before reporting.

The DLL is loaded lazily (ctypes.WinDLL) at connect; tests inject an emulated function table with the same
signatures (simulators.eclib).
"""

from __future__ import annotations

import ctypes as C
import math
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from daq.core.capabilities import Capabilities, EisRequest, InstrumentInfo, Potentiostat, checked_frequencies
from daq.core.clock import Clock, RealClock
from daq.core.errors import InstrumentError
from daq.core.samples import FLAG_HW_LIMIT, EisPoint, SampleBlock
from drivers import biologic_tables as T

DEFAULT_DLL_DIR = r"C:\EC-Lab Development Package\lib"
MAX_SEGMENT = 1.0e6  # s, longest single technique; longer or open-ended steps are re-armed seamlessly
RECORD_DE_OFF = 10.0  # V, Record_every_dE large enough never to trigger: record on time only


# --- BLStructs.h (pack 4) --------------------------------------------------------------------------------
class DeviceInfos(C.Structure):
    _pack_ = 4
    _fields_ = [
        (n, C.c_int32)
        for n in (
            "DeviceCode",
            "RAMSize",
            "CPU",
            "NumberOfChannels",
            "NumberOfSlots",
            "FirmwareVersion",
            "FirmwareDate_yyyy",
            "FirmwareDate_mm",
            "FirmwareDate_dd",
            "HTdisplayOn",
            "NbOfConnectedPC",
        )
    ]


class ChannelInfos(C.Structure):
    _pack_ = 4
    _fields_ = [
        (n, C.c_int32)
        for n in (
            "Channel",
            "BoardVersion",
            "BoardSerialNumber",
            "FirmwareCode",
            "FirmwareVersion",
            "XilinxVersion",
            "AmpCode",
            "NbAmps",
            "Lcboard",
            "Zboard",
            "RESERVED",
            "RESERVED2",
            "MemSize",
            "MemFilled",
            "State",
            "MaxIRange",
            "MinIRange",
            "MaxBandwidth",
            "NbOfTechniques",
            "FloatFormat",
            "CPUCIE",
        )
    ]


class CurrentValues(C.Structure):
    _pack_ = 4
    _fields_ = [
        ("State", C.c_int32),
        ("MemFilled", C.c_int32),
        ("TimeBase", C.c_float),
        ("Ewe", C.c_float),
        ("EweRangeMin", C.c_float),
        ("EweRangeMax", C.c_float),
        ("Ece", C.c_float),
        ("EceRangeMin", C.c_float),
        ("EceRangeMax", C.c_float),
        ("Eoverflow", C.c_int32),
        ("I", C.c_float),
        ("IRange", C.c_int32),
        ("Ioverflow", C.c_int32),
        ("ElapsedTime", C.c_float),
        ("Freq", C.c_float),
        ("Rcomp", C.c_float),
        ("Saturation", C.c_int32),
        ("OptErr", C.c_int32),
        ("OptPos", C.c_int32),
    ]


class DataInfos(C.Structure):
    _pack_ = 4
    _fields_ = [
        ("IRQskipped", C.c_int32),
        ("NbRows", C.c_int32),
        ("NbCols", C.c_int32),
        ("TechniqueIndex", C.c_int32),
        ("TechniqueID", C.c_int32),
        ("ProcessIndex", C.c_int32),
        ("loop", C.c_int32),
        ("StartTime", C.c_double),
        ("MuxPad", C.c_int32),
    ]


class DataBuffer(C.Structure):
    _pack_ = 4
    _fields_ = [("data", C.c_uint32 * T.DATA_BUFFER_WORDS)]


class EccParam(C.Structure):
    _pack_ = 4
    _fields_ = [
        ("ParamStr", C.c_char * 64),
        ("ParamType", C.c_int32),
        ("ParamVal", C.c_int32),
        ("ParamIndex", C.c_int32),
    ]


class EccParams(C.Structure):
    _pack_ = 4
    _fields_ = [("len", C.c_int32), ("pParams", C.POINTER(EccParam))]


_P = C.POINTER
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "BL_GetLibVersion": (C.c_int32, [C.c_char_p, _P(C.c_uint32)]),
    "BL_GetErrorMsg": (C.c_int32, [C.c_int32, C.c_char_p, _P(C.c_uint32)]),
    "BL_Connect": (C.c_int32, [C.c_char_p, C.c_uint8, _P(C.c_int32), _P(DeviceInfos)]),
    "BL_Disconnect": (C.c_int32, [C.c_int32]),
    "BL_TestConnection": (C.c_int32, [C.c_int32]),
    "BL_IsChannelPlugged": (C.c_bool, [C.c_int32, C.c_uint8]),
    "BL_GetChannelInfos": (C.c_int32, [C.c_int32, C.c_uint8, _P(ChannelInfos)]),
    "BL_GetChannelBoardType": (C.c_int32, [C.c_int32, C.c_uint8, _P(C.c_uint32)]),
    "BL_GetChannelFloatFormat": (C.c_int32, [C.c_int32, C.c_uint8, _P(C.c_int32)]),
    "BL_LoadFirmware": (
        C.c_int32,
        [C.c_int32, _P(C.c_uint8), _P(C.c_int32), C.c_uint8, C.c_bool, C.c_bool, C.c_char_p, C.c_char_p],
    ),
    "BL_DefineBoolParameter": (C.c_int32, [C.c_char_p, C.c_bool, C.c_int32, _P(EccParam)]),
    "BL_DefineSglParameter": (C.c_int32, [C.c_char_p, C.c_float, C.c_int32, _P(EccParam)]),
    "BL_DefineIntParameter": (C.c_int32, [C.c_char_p, C.c_int32, C.c_int32, _P(EccParam)]),
    "BL_LoadTechnique": (C.c_int32, [C.c_int32, C.c_uint8, C.c_char_p, EccParams, C.c_bool, C.c_bool, C.c_bool]),
    "BL_StartChannel": (C.c_int32, [C.c_int32, C.c_uint8]),
    "BL_StopChannel": (C.c_int32, [C.c_int32, C.c_uint8]),
    "BL_GetCurrentValues": (C.c_int32, [C.c_int32, C.c_uint8, _P(CurrentValues)]),
    "BL_GetData": (C.c_int32, [C.c_int32, C.c_uint8, _P(DataBuffer), _P(DataInfos), _P(CurrentValues)]),
    "BL_ConvertChannelNumericIntoSingle": (C.c_int32, [C.c_uint32, _P(C.c_float), C.c_uint32]),
    "BL_UpdateParameters": (C.c_int32, [C.c_int32, C.c_uint8, C.c_int32, EccParams, C.c_char_p]),
}
_OPTIONAL = {
    "BL_GetChannelFloatFormat",
    "BL_ConvertChannelNumericIntoSingle",
    "BL_TestConnection",
    "BL_UpdateParameters",
}


def load_eclib(path: str | None = None) -> Any:
    """The EClib DLL via ctypes, or an InstrumentError saying what is missing (never an ImportError)."""
    if sys.platform != "win32":
        raise InstrumentError(
            f"BioLogic EClib needs Windows and the EC-Lab Development Package; this is "
            f"{sys.platform}. Use the simulator or run on the instrument PC."
        )
    name = "EClib64.dll" if sys.maxsize > 2**32 else "EClib.dll"
    full = path if path and path.lower().endswith(".dll") else os.path.join(path or DEFAULT_DLL_DIR, name)
    win_dll = getattr(C, "WinDLL", None)
    if win_dll is None:
        raise InstrumentError("this Python has no ctypes.WinDLL: BioLogic EClib needs a Windows Python")
    try:
        return win_dll(full)
    except OSError as exc:
        raise InstrumentError(
            f"cannot load {full}: install the EC-Lab Development Package or give the path to its lib folder ({exc})"
        ) from None


class _CallTimeout(Exception):
    pass


class BiologicConnection:
    """One BL_Connect to an instrument, shared by its channel drivers (reference counted)."""

    def __init__(
        self,
        address: str,
        *,
        dll: Any = None,
        dll_path: str | None = None,
        firmware_dir: str | None = None,
        call_timeout: float = 10.0,
        connect_timeout: int = 5,
        label_version: str | None = None,
    ):
        self.address, self.firmware_dir = address, firmware_dir
        self.call_timeout, self.connect_timeout = call_timeout, connect_timeout
        self._dll, self._dll_path, self._label_version = dll, dll_path, label_version
        self._users = 0
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self.conn_id: int | None = None
        self.device = DeviceInfos()
        self.lib_version = ""
        self.labels: T.LabelTable | None = None
        self.fns: dict[str, Any] = {}

    # --- lifetime -----------------------------------------------------------------------------------------
    def acquire(self) -> None:
        with self._lock:
            if self._users == 0:
                self._open()
            self._users += 1

    def release(self) -> None:
        with self._lock:
            if self._users == 0:
                return
            self._users -= 1
            if self._users == 0:
                self._shutdown()

    def _open(self) -> None:
        dll = self._dll if self._dll is not None else load_eclib(self._dll_path)
        self.fns = {}
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(dll, name, None)
            if fn is None:
                if name in _OPTIONAL:
                    continue
                raise InstrumentError(f"EClib has no {name}: the EC-Lab Development Package is too old")
            fn.restype, fn.argtypes = restype, argtypes
            self.fns[name] = fn
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"eclib-{self.address}")
        try:
            buf, size = C.create_string_buffer(64), C.c_uint32(64)
            self.check(self.call("BL_GetLibVersion", buf, C.byref(size)), "reading the library version")
            self.lib_version = buf.value.decode(errors="replace")
            table = T.LABEL_TABLES.get(self._label_version or "") or T.label_table_for(self.lib_version)
            if table is None:
                raise InstrumentError(
                    f"EClib version {self.lib_version!r} has no technique label table here; "
                    f"known tables: {', '.join(T.LABEL_TABLES)} (pass label_version= to force)"
                )
            self.labels = table
            conn = C.c_int32(-1)
            code = self.call(
                "BL_Connect",
                self.address.encode(),
                C.c_uint8(self.connect_timeout),
                C.byref(conn),
                C.byref(self.device),
                timeout=self.call_timeout + self.connect_timeout,
            )
            self.check(code, f"connecting to {self.address}")
            self.conn_id = conn.value
        except BaseException:
            self._shutdown()
            raise

    def _shutdown(self) -> None:
        if self.conn_id is not None:
            try:
                self.call("BL_Disconnect", self.conn_id, timeout=min(self.call_timeout, 5.0))
            except (InstrumentError, _CallTimeout):
                pass
            self.conn_id = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    # --- calls ---------------------------------------------------------------------------------------------
    def has(self, name: str) -> bool:
        return name in self.fns

    def call(self, name: str, *args: Any, timeout: float | None = None) -> Any:
        """Run one library call on the worker thread; _CallTimeout if it does not return in time."""
        if self._executor is None:
            raise InstrumentError(f"EClib connection to {self.address} is closed")
        future = self._executor.submit(self.fns[name], *args)
        try:
            return future.result(timeout=self.call_timeout if timeout is None else timeout)
        except FutureTimeout:
            raise _CallTimeout(
                f"{name} did not return within {self.call_timeout if timeout is None else timeout:g} s"
            ) from None

    @staticmethod
    def check(code: int, what: str) -> None:
        if code < 0:
            raise InstrumentError(f"{what}: {T.error_text(code)}")

    def define(self, label: str, kind: str, value: Any, index: int = 0) -> EccParam:
        """One TEccParam through the library's own BL_Define*Parameter (it knows the encoding)."""
        param = EccParam()
        fn = {"single": "BL_DefineSglParameter", "bool": "BL_DefineBoolParameter", "int": "BL_DefineIntParameter"}[kind]
        cast = {"single": float, "bool": bool, "int": int}[kind]
        self.check(self.call(fn, label.encode(), cast(value), index, C.byref(param)), f"defining {label}")
        return param

    def firmware_files(self, board: int) -> tuple[bytes | None, bytes | None]:
        files = T.BOARD_FILES[board]
        if self.firmware_dir is None:
            return files.firmware.encode(), files.fpga.encode() if files.fpga else None
        fpga = os.path.join(self.firmware_dir, files.fpga).encode() if files.fpga else None
        return os.path.join(self.firmware_dir, files.firmware).encode(), fpga

    def ecc_path(self, technique: int, board: int) -> bytes:
        name = T.technique_file(technique, board)
        return (os.path.join(self.firmware_dir, name) if self.firmware_dir else name).encode()


@dataclass
class _Technique:
    tech_id: int
    values: dict[str, Any | list[Any]]


@dataclass
class _Run:
    """What the channel is doing, so data can be interpreted and a step re-armed or resumed."""

    kind: str  # "current" | "ocv" | "eis"
    t0: float  # clock time of BL_StartChannel
    chain: list[int] = field(default_factory=list)  # technique ids by index
    current: float = 0.0
    limits: tuple[float, float] = (-math.inf, math.inf)
    period: float = 1.0
    end: float = math.inf  # clock time the step must end (duration), inf = open-ended
    segment_end: float = math.inf  # clock time the loaded technique ends by its duration
    cp_index: int = 0  # index of the CP technique in the chain
    segment_duration: float = 0.0  # s, Duration_step of the loaded CP technique
    last_t: float = -math.inf


class BiologicPotentiostat(Potentiostat):
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
        name: str | None = None,
    ):
        self.conn = (
            connection if isinstance(connection, BiologicConnection) else BiologicConnection(connection, dll=dll)
        )
        self.channel, self.clock = channel, clock or RealClock()
        self.poll_period, self.safe_timeout = poll_period, safe_timeout
        self.name = name or f"biologic:{self.conn.address}:ch{channel + 1}"
        # Nominal until connect() reads the model and the channel's impedance board (the runner checks a
        # protocol before connecting).
        r = T.DEFAULT_RATINGS
        self.capabilities = Capabilities(
            max_current=r.max_current,
            current_resolution=1e-12,
            max_voltage=r.max_voltage,
            min_sample_period=2e-4,
            potentiostatic=False,
            eis_galvanostatic=True,
            eis_potentiostatic=True,
            eis_min_frequency=r.eis_min_frequency,
            eis_max_frequency=r.eis_max_frequency,
            hardware_voltage_limit=True,
        )
        self.board = 0
        self.warnings: list[str] = []
        self._connected = False
        self._ieee = True
        self._run: _Run | None = None
        self._pending: list[SampleBlock] = []

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
        if abs(current) > self.capabilities.max_current:
            raise InstrumentError(
                f"{self.name}: {current:g} A beyond the channel's {self.capabilities.max_current:g} A"
            )
        if not sample_period >= self.capabilities.min_sample_period:
            raise InstrumentError(f"{self.name}: sample period {sample_period:g} s too short")
        if not v_min < v_max:
            raise InstrumentError(f"{self.name}: voltage limits [{v_min:g}, {v_max:g}] V are empty")
        with self._safety("starting the galvanostatic step"):
            self._stop_and_drain()
            now = self.clock.now()
            end = now + duration if duration is not None else math.inf
            run = _Run("current", now, current=current, limits=(v_min, v_max), period=sample_period, end=end)
            tech = self._cplimit(run, now)
            self._start([tech], run, [tech.tech_id])

    def apply_potential(
        self, potential: float, i_min: float, i_max: float, sample_period: float, duration: float | None = None
    ) -> None:
        raise InstrumentError(f"{self.name}: potentiostatic steps are not implemented for BioLogic channels")

    def open_circuit(self, sample_period: float | None = None) -> None:
        if not self._connected:
            return
        with self._safety("switching to open circuit"):
            self._stop_and_drain()
            if sample_period is None:
                return
            now = self.clock.now()
            run = _Run("ocv", now, period=sample_period)
            ocv = _Technique(
                T.TECH_OCV,
                {
                    "Rest_time_T": MAX_SEGMENT,
                    "Record_every_dE": RECORD_DE_OFF,
                    "Record_every_dT": sample_period,
                    "E_Range": T.E_RANGE_AUTO,
                },
            )
            run.segment_end = now + MAX_SEGMENT
            self._start([ocv], run, [T.TECH_OCV])

    def read(self) -> SampleBlock:
        self._check_connected()
        with self._safety("reading data"):
            self._maybe_rearm(self._poll())
        block = SampleBlock.concat(self._pending)
        self._pending = []
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

    # --- connect ------------------------------------------------------------------------------------------
    def _prepare_channel(self) -> InstrumentInfo:
        c, ch = self.conn, C.c_uint8(self.channel)
        device_code = c.device.DeviceCode
        board = C.c_uint32(0)
        code = c.call("BL_GetChannelBoardType", c.conn_id, ch, C.byref(board))
        if code in (-3, -103):
            raise InstrumentError(f"{self.name}: channel {self.channel + 1} is not plugged ({T.error_text(code)})")
        c.check(code, f"{self.name}: reading the board type")
        self.board = int(board.value)
        if self.board not in T.BOARD_FILES:
            raise InstrumentError(f"{self.name}: unknown board type {self.board}")
        family = T.DEVICE_FAMILY.get(device_code)
        if family is not None and family != self.board:
            self.warnings.append(
                f"board type reads {T.BOARD_NAMES[self.board]} but a "
                f"{T.DEVICE_CODES.get(device_code)} is {T.BOARD_NAMES[family]}"
            )
        try:
            self._load_firmware()
        except InstrumentError as exc:
            if family is None or family == self.board:
                raise
            # A board type that reads back wrong loads the wrong kernel: use the model's family instead.
            self.warnings.append(
                f"{exc}; retrying with the {T.BOARD_NAMES[family]} files of a {T.DEVICE_CODES.get(device_code)}"
            )
            self.board = family
            self._load_firmware(force=True)
        infos = self._channel_infos()
        if self.conn.has("BL_GetChannelFloatFormat"):
            fmt = C.c_int32(T.FLOAT_IEEE)
            c.check(c.call("BL_GetChannelFloatFormat", c.conn_id, ch, C.byref(fmt)), f"{self.name}: float format")
            self._ieee = fmt.value == T.FLOAT_IEEE
        cv = CurrentValues()
        c.check(c.call("BL_GetCurrentValues", c.conn_id, ch, C.byref(cv)), f"{self.name}: reading the channel")
        if cv.State != T.STATE_STOP:  # left running by someone else: stopping is the safe state
            c.check(c.call("BL_StopChannel", c.conn_id, ch), f"{self.name}: stopping a running channel")
        ratings = T.DEVICE_RATINGS.get(device_code, T.DEFAULT_RATINGS)
        self.capabilities = Capabilities(
            max_current=ratings.max_current,
            current_resolution=1e-12,
            max_voltage=ratings.max_voltage,
            min_sample_period=2e-4,
            galvanostatic=True,
            potentiostatic=False,
            eis_galvanostatic=bool(infos.Zboard),
            eis_potentiostatic=bool(infos.Zboard),
            eis_min_frequency=ratings.eis_min_frequency,
            eis_max_frequency=ratings.eis_max_frequency,
            reference_electrode=True,
            hardware_voltage_limit=True,
        )
        model = T.DEVICE_CODES.get(device_code, f"device {device_code}")
        return InstrumentInfo(
            "BioLogic",
            model,
            str(infos.BoardSerialNumber),
            f"channel {infos.FirmwareVersion}, comm {c.device.FirmwareVersion}, EClib {c.lib_version}",
            "drivers.biologic",
            f"eclib://{c.address}/ch{self.channel + 1}",
        )

    def _channel_infos(self) -> ChannelInfos:
        infos = ChannelInfos()
        self.conn.check(
            self.conn.call("BL_GetChannelInfos", self.conn.conn_id, C.c_uint8(self.channel), C.byref(infos)),
            f"{self.name}: reading channel information",
        )
        return infos

    def _load_firmware(self, force: bool = False) -> None:
        """Library kernel on this channel only. EC-Lab's own firmware is replaced (forced reload), because
        techniques fail with -401/-6 against it."""
        c = self.conn
        infos = self._channel_infos()
        if infos.FirmwareCode == T.FIRM_KERNEL and not force:
            return
        force = force or infos.FirmwareCode != T.FIRM_NONE
        for _ in range(2):
            mask = (C.c_uint8 * 16)()
            results = (C.c_int32 * 16)()
            mask[self.channel] = 1
            kernel, fpga = c.firmware_files(self.board)
            code = c.call(
                "BL_LoadFirmware",
                c.conn_id,
                mask,
                results,
                C.c_uint8(16),
                False,
                force,
                kernel,
                fpga,
                timeout=max(c.call_timeout, 60.0),
            )
            c.check(code, f"{self.name}: loading firmware")
            c.check(
                results[self.channel], f"{self.name}: loading firmware {kernel.decode()} on channel {self.channel + 1}"
            )
            code = self._channel_infos().FirmwareCode
            if code == T.FIRM_KERNEL:
                return
            force = True  # the library kept someone else's firmware: insist once
        raise InstrumentError(
            f"{self.name}: channel still runs {T.FIRMWARE_NAMES.get(code, code)} firmware after a forced reload"
        )

    # --- techniques -----------------------------------------------------------------------------------------
    def _cplimit(self, run: _Run, now: float) -> _Technique:
        """CPLIMIT with the E_we window as limit tests that stop the channel; plain CP without limits."""
        remaining = run.end - now
        seg = min(remaining, MAX_SEGMENT)
        run.segment_end, run.segment_duration = now + seg, seg
        v_min, v_max = run.limits
        values: dict[str, Any] = {
            "Current_step": run.current,
            "vs_initial": False,
            "Duration_step": seg,
            "Step_number": 0,
            "Record_every_dT": run.period,
            "Record_every_dE": RECORD_DE_OFF,
            "N_Cycles": 0,
            "I_Range": T.i_range_for(run.current),
            "E_Range": T.e_range_for(v_min, v_max),
            "Bandwidth": T.BANDWIDTH_DEFAULT,
        }
        if math.isinf(v_min) and math.isinf(v_max):
            return _Technique(T.TECH_CP, values)
        tests = [(T.TEST_EWE_BELOW, v_min), (T.TEST_EWE_ABOVE, v_max)]
        tests = [(config, value) if math.isfinite(value) else (T.TEST_OFF, 0.0) for config, value in tests]
        values.update(
            {
                "Test1_Config": tests[0][0],
                "Test1_Value": tests[0][1],
                "Test2_Config": tests[1][0],
                "Test2_Value": tests[1][1],
                "Test3_Config": T.TEST_OFF,
                "Test3_Value": 0.0,
                "Exit_Cond": T.EXIT_STOP,
            }
        )
        return _Technique(T.TECH_CPLIMIT, values)

    def _eis_techniques(self, request: EisRequest, freqs: list[float], i_dc: float) -> list[_Technique]:
        """One technique when the frequencies are evenly spaced (log or linear), else one per frequency."""
        groups: list[tuple[float, float, int, bool]] = []
        f = np.asarray(freqs)
        if len(f) == 1:
            groups = [(freqs[0], freqs[0], 1, False)]
        elif np.all(f > 0) and np.allclose(np.diff(np.log(f)), np.log(f[1] / f[0]), rtol=1e-3, atol=1e-9):
            groups = [(freqs[0], freqs[-1], len(freqs), False)]
        elif np.allclose(np.diff(f), f[1] - f[0], rtol=1e-3):
            groups = [(freqs[0], freqs[-1], len(freqs), True)]
        else:
            groups = [(x, x, 1, False) for x in freqs]
        out = []
        for fi, ff, n, linear in groups:
            common = {
                "vs_final": False,
                "Duration_step": 0.0,
                "Step_number": 0,
                "Record_every_dT": 1.0,
                "Final_frequency": ff,
                "Initial_frequency": fi,
                "sweep": linear,
                "Frequency_number": n,
                "Average_N_times": 1,
                "Correction": False,
                "Wait_for_steady": 1.0,
                "E_Range": T.e_range_for(request.v_min, request.v_max),
                "Bandwidth": T.BANDWIDTH_DEFAULT,
            }
            if request.mode == "galvanostatic":
                vals = {
                    **common,
                    "vs_initial": False,
                    "Initial_Current_step": i_dc,
                    "Final_Current_step": i_dc,
                    "Record_every_dE": RECORD_DE_OFF,
                    "Amplitude_Current": abs(request.amplitude),
                    "I_Range": T.i_range_for(abs(i_dc) + abs(request.amplitude), headroom=2.0),
                }
                out.append(_Technique(T.TECH_GEIS, vals))
            else:
                at_ocv = request.dc is None
                vals = {
                    **common,
                    "vs_initial": at_ocv,
                    "Initial_Voltage_step": 0.0 if at_ocv else request.dc,
                    "Final_Voltage_step": 0.0 if at_ocv else request.dc,
                    "Record_every_dI": 1.0,
                    "Amplitude_Voltage": abs(request.amplitude),
                    "I_Range": T.I_RANGE_AUTO,
                }
                out.append(_Technique(T.TECH_PEIS, vals))
        return out

    def _params(self, tech: _Technique) -> Any:
        """TEccParams for a technique, labels and types from the package version's table."""
        table = self.conn.labels
        assert table is not None
        labels = table.labels[tech.tech_id]
        params: list[EccParam] = []
        for label, value in tech.values.items():
            if label not in labels:
                raise InstrumentError(
                    f"{self.name}: {label} is not a {T.TECHNIQUE_NAMES[tech.tech_id]} parameter "
                    f"in EClib {table.version}"
                )
            values = value if isinstance(value, list) else [value]
            for index, v in enumerate(values):
                params.append(self.conn.define(label, labels[label], v, index))
        array = (EccParam * len(params))(*params)
        holder = EccParams(len(params), C.cast(array, C.POINTER(EccParam)))
        holder._array = array  # keep the array alive with the struct
        return holder

    def _start(self, techniques: list[_Technique], run: _Run, chain: list[int]) -> None:
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
        run.chain = chain
        self._run = run

    def _load_chain(self, techniques: list[_Technique]) -> int:
        c = self.conn
        for i, tech in enumerate(techniques):
            params = self._params(tech)
            code = c.call(
                "BL_LoadTechnique",
                c.conn_id,
                C.c_uint8(self.channel),
                c.ecc_path(tech.tech_id, self.board),
                params,
                i == 0,
                i == len(techniques) - 1,
                False,
            )
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
        words = (
            np.frombuffer(buf.data, dtype=np.uint32, count=n_words).reshape(infos.NbRows, infos.NbCols).copy()
            if n_words
            else np.zeros((0, max(infos.NbCols, 0)), dtype=np.uint32)
        )
        return infos, cv, words

    def _decode(self, infos: DataInfos, words: np.ndarray, time_base: float) -> dict[str, np.ndarray]:
        run = self._run
        names = T.data_columns(infos.TechniqueID, infos.ProcessIndex, self.board)
        if (
            run is None
            or names is None
            or infos.TechniqueIndex >= len(run.chain)
            or run.chain[infos.TechniqueIndex] != infos.TechniqueID
        ):
            raise InstrumentError(
                f"{self.name}: corrupt data from the instrument: technique "
                f"{infos.TechniqueID} index {infos.TechniqueIndex} process {infos.ProcessIndex} "
                f"was not loaded"
            )
        if len(names) != infos.NbCols:
            raise InstrumentError(
                f"{self.name}: corrupt data from the instrument: "
                f"{T.TECHNIQUE_NAMES.get(infos.TechniqueID)} process {infos.ProcessIndex} rows have "
                f"{infos.NbCols} columns, expected {len(names)}"
            )
        out: dict[str, np.ndarray] = {}
        for j, name in enumerate(names):
            col = words[:, j]
            if name in T.INTEGER_COLUMNS:
                out[name] = col
            else:
                out[name] = self._floats(col)
                if not np.all(np.isfinite(out[name])):
                    raise InstrumentError(f"{self.name}: corrupt data from the instrument: non-finite {name}")
        if "t_high" in out:
            ticks = (out["t_high"].astype(np.uint64) << np.uint64(32)) + out["t_low"].astype(np.uint64)
            out["time"] = run.t0 + infos.StartTime + time_base * ticks.astype(np.float64)
        elif "t" in out:
            out["time"] = run.t0 + infos.StartTime + out["t"].astype(np.float64)
        return out

    def _floats(self, col: np.ndarray) -> np.ndarray:
        if self._ieee:
            return col.view(np.float32).astype(np.float64)
        # Older boards encode floats in TI format: let the library convert them.
        value, out = C.c_float(), np.empty(len(col))
        for i, w in enumerate(col):
            self.conn.check(
                self.conn.call(
                    "BL_ConvertChannelNumericIntoSingle", C.c_uint32(int(w)), C.byref(value), C.c_uint32(self.board)
                ),
                f"{self.name}: converting data",
            )
            out[i] = value.value
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
        if run.kind == "current" and infos.TechniqueIndex == run.cp_index and run.segment_end == math.inf:
            run.segment_end = run.t0 + infos.StartTime + run.segment_duration  # CP chained after a sweep
        e_we = data["Ewe"]
        current = data.get("I", np.zeros(n))
        flags = np.zeros(n, dtype=np.uint8)
        self._pending.append(SampleBlock(t, e_we, np.full(n, np.nan), current, flags))
        run.last_t = float(t[-1])

    def _maybe_rearm(self, state: int) -> None:
        """After a drain that left the channel in ``state``: flag a limit stop, end a step whose duration
        is over, continue an open-ended or long step."""
        run = self._run
        if run is None or run.kind == "eis":
            return
        now = self.clock.now()
        if now >= run.end:  # the step is over (the instrument's own bound may be later after an EIS sweep)
            self._stop_and_drain()
            return
        if state != T.STATE_STOP:
            return
        if run.kind == "current" and self._pending:
            last = self._pending[-1]
            lo, hi = run.limits
            if last.E_we[-1] <= lo or last.E_we[-1] >= hi:
                last.flags[-1] |= FLAG_HW_LIMIT  # the instrument's limit test stopped the channel here
                self._run = None
                return
        ended_by_duration = run.last_t >= run.segment_end - run.period - 1e-6
        if ended_by_duration and run.end - run.segment_end > run.period:
            if run.kind == "current":
                tech = self._cplimit(run, now)
                self._start([tech], run, [tech.tech_id])
            else:
                self.open_circuit(run.period)
            return
        self._run = None

    # --- impedance ---------------------------------------------------------------------------------------------
    def _impedance(self, request: EisRequest, freqs: list[float]) -> Iterator[EisPoint]:
        resume = self._run if (self._run is not None and self._run.kind == "current") else None
        if request.mode == "galvanostatic":
            i_dc = request.dc if request.dc is not None else (resume.current if resume else 0.0)
        else:
            i_dc = 0.0
        points: list[EisPoint] = []
        done = False
        try:
            with self._safety("starting the impedance sweep"):
                self._poll()
                self._stop_and_drain()
                now = self.clock.now()
                techniques = self._eis_techniques(request, freqs, i_dc)
                chain = [t.tech_id for t in techniques]
                if resume is not None and resume.end - now > resume.period:
                    run = _Run(
                        "current",
                        now,
                        current=resume.current,
                        limits=resume.limits,
                        period=resume.period,
                        end=resume.end,
                        cp_index=len(techniques),
                    )
                    techniques.append(self._cplimit(run, now))
                    chain.append(techniques[-1].tech_id)
                else:
                    run = _Run("eis", now, period=resume.period if resume else 1.0)
                self._start(techniques, run, chain)
                if run.kind == "current":  # the CP segment starts after the sweep: its end is not known yet
                    run.segment_end = math.inf

            def on_eis(infos: DataInfos, data: dict[str, np.ndarray]) -> None:
                phase = np.radians(data["Phase_Zwe"]) if T.PHASE_UNIT == "deg" else data["Phase_Zwe"]
                z = data["abs_Ewe"] / np.where(data["abs_I"] > 0, data["abs_I"], np.nan) * np.exp(1j * phase)
                for k in range(len(z)):
                    ok = bool(np.isfinite(z[k]))
                    points.append(
                        EisPoint(
                            float(data["freq"][k]),
                            float(z[k].real),
                            float(z[k].imag),
                            float(data["time"][k]),
                            float(data["Ewe"][k]),
                            float(data["I"][k]),
                            ok,
                        )
                    )
                # The DC level of each point is data too: the charge bookkeeping sees the current that flowed.
                n = len(z)
                self._pending.append(
                    SampleBlock(
                        data["time"].copy(),
                        data["Ewe"].copy(),
                        np.full(n, np.nan),
                        data["I"].copy(),
                        np.zeros(n, dtype=np.uint8),
                    )
                )

            for index in range(len(freqs)):
                f = freqs[index]
                wait = max((1.0 + 1 + 1) / f, 0.2)
                deadline = self.clock.now() + 3 * wait + 10.0 + 5 * self.poll_period
                while len(points) <= index:
                    with self._safety("measuring impedance"):
                        state = self._poll(on_eis)
                    if len(points) > index:
                        break
                    if state == T.STATE_STOP:
                        with self._safety("measuring impedance"):
                            raise InstrumentError(
                                f"{self.name}: the channel stopped after {len(points)} of {len(freqs)} impedance points"
                            )
                    if self.clock.now() > deadline:
                        with self._safety("measuring impedance"):
                            raise InstrumentError(
                                f"{self.name}: no impedance point at {f:g} Hz within {3 * wait + 10:g} s"
                            )
                    self.clock.sleep(min(self.poll_period, wait / 4))
                if index == len(freqs) - 1:  # finish before handing out the last point
                    with self._safety("finishing the impedance sweep"):
                        self._finish_sweep(run, points[-1].t)
                    done = True
                yield points[index]
        finally:
            if not done and self._connected:
                self._safe_stop()

    def _finish_sweep(self, run: _Run, t_end: float) -> None:
        """After the last point: an operando step gets its exact remaining duration pushed into the running
        CP technique (BL_UpdateParameters), a plain sweep is drained and the channel is idle."""
        if run.kind == "eis":
            self._poll()
            self._run = None
            return
        remaining = max(run.end - t_end, 0.0)
        if run.end == math.inf or not self.conn.has("BL_UpdateParameters"):
            return  # open-ended, or an old library: the driver ends the step at the first read past its end
        run.segment_duration = min(remaining, MAX_SEGMENT)
        tech = self._cplimit(run, t_end)
        run.segment_end = math.inf  # known once the CP data tells when it started
        c = self.conn
        c.check(
            c.call(
                "BL_UpdateParameters",
                c.conn_id,
                C.c_uint8(self.channel),
                run.cp_index,
                self._params(tech),
                c.ecc_path(tech.tech_id, self.board),
            ),
            f"{self.name}: updating the step duration",
        )

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
        except _CallTimeout:
            return (
                f"the library did not answer within {self.safe_timeout:g} s, so the channel could not be "
                f"stopped from the PC; the technique's own duration and limits remain in force"
            )
        except InstrumentError as exc:
            return str(exc)
        if code < 0:
            return f"stopping the channel failed: {T.error_text(code)}"
        return None

    def _safety(self, what: str) -> _Safety:
        return _Safety(self, what)

    def _check_connected(self) -> None:
        if not self._connected:
            raise InstrumentError(f"{self.name}: not connected")


class _Safety:
    """Context: any failure stops the channel (bounded) and becomes one InstrumentError line."""

    def __init__(self, driver: BiologicPotentiostat, what: str):
        self.driver, self.what = driver, what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, GeneratorExit) or getattr(exc, "channel_made_safe", False):
            return False
        d = self.driver
        if isinstance(exc, _CallTimeout):
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
    conn = BiologicConnection(
        address,
        dll=dll,
        **{
            k: v
            for k, v in options.items()
            if k in ("dll_path", "firmware_dir", "call_timeout", "connect_timeout", "label_version")
        },
    )
    rest = {k: v for k, v in options.items() if k in ("poll_period", "safe_timeout")}
    return [BiologicPotentiostat(conn, ch, clock=clock, **rest) for ch in channels]
