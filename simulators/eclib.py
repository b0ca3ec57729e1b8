"""An emulated EClib (EC-Lab Development Package DLL) driving SimulatedCells on a Clock.

The emulator hands out a function table whose entries are real C function pointers (ctypes callbacks)
with the DLL's signatures, so a driver calls it exactly as it calls ``ctypes.WinDLL("EClib64.dll")``:
same argtypes, structures passed by pointer or by value, output parameters, 32-bit raw data words and
negative error codes. Structures follow BLStructs.h (packed to 4 bytes) and are defined here
independently of the driver, so a layout mistake on either side shows up as wrong data in the tests.

Instrument behaviour modelled: channels plugged or not, board family (ESSENTIAL / PREMIUM / DIGICORE)
with matching kernel and technique files, firmware state (none, library kernel, EC-Lab's interpreter),
chained techniques (first/last) running autonomously in the instrument (CP, CPLIMIT with Ewe limit tests
and exit conditions, OCV, GEIS, PEIS), data buffered in the instrument and drained by BL_GetData at most
1000 words per call, time as a 64-bit tick counter times the channel time base. A technique ends on its
duration or limits and the channel then stops with the cell disconnected, as the instrument does without
any PC involvement. Clock time drives everything: a VirtualClock makes hours pass in milliseconds.

Faults for tests: error codes returned by chosen functions, calls that hang (real time) and then answer
ERR_COMM_WAITINGACK, a communication loss (the instrument keeps running its technique), garbage data,
unplugged channels, EC-Lab's firmware left on a channel, a board type that reads back wrong.
"""

from __future__ import annotations

import ctypes as C
import math
import sys
import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from daq.core.clock import Clock
from simulators.cell import SimulatedCell

# --- BLStructs.h ---------------------------------------------------------------------------------------
# Declared here independently of drivers/biologic.py on purpose: the emulated DLL must not share the
# driver's structure layouts, or a layout mistake in the driver would pass its own tests.


class TDeviceInfos(C.Structure):
    _pack_ = 4
    _fields_ = [
        ("DeviceCode", C.c_int32),
        ("RAMSize", C.c_int32),
        ("CPU", C.c_int32),
        ("NumberOfChannels", C.c_int32),
        ("NumberOfSlots", C.c_int32),
        ("FirmwareVersion", C.c_int32),
        ("FirmwareDate_yyyy", C.c_int32),
        ("FirmwareDate_mm", C.c_int32),
        ("FirmwareDate_dd", C.c_int32),
        ("HTdisplayOn", C.c_int32),
        ("NbOfConnectedPC", C.c_int32),
    ]


class TChannelInfos(C.Structure):
    _pack_ = 4
    _fields_ = [
        (name, C.c_int32)
        for name in (
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


class TCurrentValues(C.Structure):
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


class TDataInfos(C.Structure):
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


class TDataBuffer(C.Structure):
    _pack_ = 4
    _fields_ = [("data", C.c_uint32 * 1000)]


class TEccParam(C.Structure):
    _pack_ = 4
    _fields_ = [
        ("ParamStr", C.c_char * 64),
        ("ParamType", C.c_int32),
        ("ParamVal", C.c_int32),
        ("ParamIndex", C.c_int32),
    ]


class TEccParams(C.Structure):
    _pack_ = 4
    _fields_ = [("len", C.c_int32), ("pParams", C.POINTER(TEccParam))]


# --- constants (values from the header) -----------------------------------------------------------------
ERR_NOERROR, ERR_GEN_NOTCONNECTED, ERR_GEN_CHANNELNOTPLUGGED, ERR_GEN_INVALIDPARAMETERS = 0, -1, -3, -4
ERR_GEN_FILENOTEXISTS, ERR_GEN_FUNCTIONFAILED, ERR_GEN_CHANNEL_RUNNING = -5, -6, -13
ERR_INSTR_RESPNOTPOSSIBLE = -103
ERR_COMM_COMMFAILED, ERR_COMM_CONNECTIONFAILED, ERR_COMM_WAITINGACK = -200, -201, -202
ERR_FIRM_FIRMINVALIDFILE, ERR_FIRM_FIRMWARENOTLOADED = -302, -308
ERR_TECH_ECCFILENOTEXISTS, ERR_TECH_INCOMPATIBLEECC, ERR_TECH_DATACORRUPTED = -400, -401, -404

# Every code the library can return, with its header comment: the driver's message map must cover these.
ERROR_MESSAGES: dict[int, str] = {
    0: "No Error",
    -1: "no instrument connected",
    -2: "connection in progress",
    -3: "selected channel(s) unplugged",
    -4: "invalid function parameters",
    -5: "selected file does not exist",
    -6: "function failed",
    -7: "no channel selected",
    -8: "invalid instrument configuration",
    -9: "EC-Lab firmware loaded on the instrument",
    -10: "library not correctly loaded in memory",
    -11: "USB library not correctly loaded in memory",
    -12: "function of the library already in progress",
    -13: "selected channel(s) already used",
    -14: "device not allowed",
    -15: "Invalid update function parameters",
    -101: "internal instrument communication failed",
    -102: "too many data to transfer from the instrument",
    -103: "selected channel(s) unplugged (device error)",
    -104: "instrument response error",
    -105: "invalid message size",
    -200: "communication failed with the instrument",
    -201: "cannot establish connection with the instrument",
    -202: "waiting for the instrument response",
    -203: "invalid IP address",
    -204: "cannot allocate memory in the instrument",
    -205: "cannot load firmware into selected channel(s)",
    -206: "communication firmware not compatible with the library",
    -207: "maximum number of allowed connections reached",
    -300: "cannot find kernel.bin file",
    -301: "cannot read kernel.bin file",
    -302: "invalid kernel.bin file",
    -303: "cannot load kernel.bin on the selected channel(s)",
    -304: "cannot find x100_01.txt file",
    -305: "cannot read x100_01.txt file",
    -306: "invalid x100_01.txt file",
    -307: "cannot load x100_01.txt file on the selected channel(s)",
    -308: "no firmware loaded on the selected channel(s)",
    -309: "loaded firmware not compatible with the library",
    -400: "cannot find the selected ECC file",
    -401: "ECC file not compatible with the channel firmware",
    -402: "ECC file corrupted",
    -403: "cannot load the ECC file",
    -404: "data returned by the instrument are corrupted",
    -405: "cannot load techniques: full memory",
}

ESSENTIAL, PREMIUM, DIGICORE = 1, 2, 3
_KERNEL = {ESSENTIAL: "kernel.bin", PREMIUM: "kernel4.bin", DIGICORE: "kernel.bin"}
_FPGA = {ESSENTIAL: "vmp_ii_0437_a6.xlx", PREMIUM: "vmp_iv_0395_aa.xlx", DIGICORE: ""}
_ECC_SUFFIX = {ESSENTIAL: "", PREMIUM: "4", DIGICORE: "5"}
FIRM_NONE, FIRM_INTERPR, FIRM_KERNEL = 0, 1, 5
STATE_STOP, STATE_RUN = 0, 1
PARAM_INT32, PARAM_BOOLEAN, PARAM_SINGLE = 0, 1, 2
TECH_OCV, TECH_CP, TECH_PEIS, TECH_GEIS, TECH_CPLIMIT = 100, 102, 104, 107, 155
_TECH_BY_FILE = {"ocv": TECH_OCV, "cp": TECH_CP, "peis": TECH_PEIS, "geis": TECH_GEIS, "cplimit": TECH_CPLIMIT}
_I_RANGES = {
    0: 100e-12,
    1: 1e-9,
    2: 10e-9,
    3: 100e-9,
    4: 1e-6,
    5: 10e-6,
    6: 100e-6,
    7: 1e-3,
    8: 10e-3,
    9: 100e-3,
    10: 1.0,
}

# Labels each technique accepts (anything else makes BL_LoadTechnique fail with invalid parameters).
_COMMON_HW = {"I_Range", "E_Range", "Bandwidth"}
_ACCEPTED = {
    TECH_OCV: {"Rest_time_T", "Record_every_dE", "Record_every_dT", "E_Range"},
    TECH_CP: {
        "Current_step",
        "vs_initial",
        "Duration_step",
        "Step_number",
        "Record_every_dT",
        "Record_every_dE",
        "N_Cycles",
    }
    | _COMMON_HW,
    TECH_GEIS: {
        "vs_initial",
        "vs_final",
        "Initial_Current_step",
        "Final_Current_step",
        "Duration_step",
        "Step_number",
        "Record_every_dT",
        "Record_every_dE",
        "Final_frequency",
        "Initial_frequency",
        "sweep",
        "Amplitude_Current",
        "Frequency_number",
        "Average_N_times",
        "Correction",
        "Wait_for_steady",
    }
    | _COMMON_HW,
    TECH_PEIS: {
        "vs_initial",
        "vs_final",
        "Initial_Voltage_step",
        "Final_Voltage_step",
        "Duration_step",
        "Step_number",
        "Record_every_dT",
        "Record_every_dI",
        "Final_frequency",
        "Initial_frequency",
        "sweep",
        "Amplitude_Voltage",
        "Frequency_number",
        "Average_N_times",
        "Correction",
        "Wait_for_steady",
    }
    | _COMMON_HW,
}
_ACCEPTED[TECH_CPLIMIT] = _ACCEPTED[TECH_CP] | {
    "Test1_Config",
    "Test1_Value",
    "Test2_Config",
    "Test2_Value",
    "Test3_Config",
    "Test3_Value",
    "Exit_Cond",
}
_REQUIRED = {
    TECH_OCV: {"Rest_time_T", "Record_every_dT"},
    TECH_CP: {"Current_step", "Duration_step", "Step_number", "Record_every_dT", "I_Range"},
    TECH_CPLIMIT: {"Current_step", "Duration_step", "Step_number", "Record_every_dT", "I_Range", "Exit_Cond"},
    TECH_GEIS: {
        "Initial_Current_step",
        "Duration_step",
        "Initial_frequency",
        "Final_frequency",
        "Amplitude_Current",
        "Frequency_number",
        "I_Range",
    },
    TECH_PEIS: {
        "Initial_Voltage_step",
        "Duration_step",
        "Initial_frequency",
        "Final_frequency",
        "Amplitude_Voltage",
        "Frequency_number",
    },
}
# Newer packages accept an extra-controls word on the impedance techniques.
_NEWER_EXTRAS = {TECH_GEIS: {"xctr"}, TECH_PEIS: {"xctr"}}

_HANG_CAP = 60.0  # s of real time: an injected permanent hang never outlives a test run


def _f32_bits(x: np.ndarray | float) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).view(np.uint32)


def _bits_f32(word: int) -> float:
    return float(np.array([word], dtype=np.uint32).view(np.float32)[0])


# --- channel model --------------------------------------------------------------------------------------
@dataclass
class _Technique:
    tech_id: int
    file: str
    params: dict[str, dict[int, object]]  # label -> {index: value}

    def get(self, label: str, index: int = 0, default: object = None) -> object:
        values = self.params.get(label)
        if not values:
            return default
        if index in values:
            return values[index]
        return values[max(values)] if index > max(values) else default


@dataclass
class _Chunk:
    tech_index: int
    tech_id: int
    process: int
    loop: int
    start_time: float  # s of experiment time at the technique start
    rows: deque = field(default_factory=deque)  # np.ndarray rows of uint32 words


@dataclass
class _Channel:
    number: int
    cell: SimulatedCell | None
    board: int
    firmware: int = FIRM_NONE
    chain: list[_Technique] = field(default_factory=list)
    state: int = STATE_STOP
    clock0: float = 0.0  # clock time of BL_StartChannel (experiment time 0)
    t_cell: float = 0.0  # clock time up to which the cell has been advanced
    tech_index: int = 0
    tech_start: float = 0.0  # experiment time the current technique started
    phase: dict = field(default_factory=dict)  # per-technique progress
    chunks: deque = field(default_factory=deque)
    output: float | None = None  # A through the cell, None = disconnected
    last_ewe: float = 0.0
    last_ece: float = 0.0
    reported_board: int | None = None  # a board type that reads back wrong (fault)


class EClibEmulator:
    """One emulated instrument (address) with a few channels. ``dll`` is the function table."""

    def __init__(
        self,
        clock: Clock,
        cells: dict[int, SimulatedCell | None],
        *,
        address: str = "USB0",
        device_code: int = 21,
        board: int = PREMIUM,
        lib_version: str = "6.06",
        time_base: float = 2e-5,
        n_slots: int = 16,
        firmware: int = FIRM_NONE,
    ):
        self.clock, self.address, self.device_code, self.lib_version = clock, address, device_code, lib_version
        self.time_base = float(np.float32(time_base))
        self.n_slots = n_slots
        self.channels = {
            ch: _Channel(ch, cell, board, firmware=firmware if cell is not None else FIRM_NONE)
            for ch, cell in cells.items()
        }
        self._lock = threading.RLock()
        self._ids: set[int] = set()
        self._next_id = 1
        self._failures: dict[str, deque] = {}
        self._hangs: dict[str, float | None] = {}
        self._release = threading.Event()
        self._comm_lost_at: float | None = None
        self._garbage: dict[str, str] = {}
        self.calls: list[str] = []  # names of every function called, in order
        self.internal_errors: list[BaseException] = []
        self.dll = self._build_table()

    # --- fault injection ----------------------------------------------------------------------------
    def fail(self, function: str, code: int, count: int = 1) -> None:
        """The next ``count`` calls of ``function`` return ``code``."""
        self._failures.setdefault(function, deque()).extend([code] * count)

    def hang(self, function: str, seconds: float | None = None) -> None:
        """The next call of ``function`` blocks (real time) for ``seconds`` (None: until release()), then
        answers ERR_COMM_WAITINGACK as the library does when the instrument never acknowledges."""
        self._hangs[function] = seconds

    def release(self) -> None:
        self._release.set()

    def lose_communication(self) -> None:
        """From now on the instrument no longer answers; it keeps running whatever technique it runs."""
        self._comm_lost_at = self.clock.now()

    def garbage(self, function: str = "BL_GetData", kind: str = "layout") -> None:
        """Corrupt the next data returned: "layout" (column count that matches no technique), "nan" (NaN
        floats), "overflow" (more words than the buffer holds)."""
        self._garbage[function] = kind

    def unplug(self, channel: int) -> None:
        self.channels[channel].cell = None

    def load_eclab_firmware(self, channel: int) -> None:
        """EC-Lab ran on this channel and left its own firmware loaded."""
        self.channels[channel].firmware = FIRM_INTERPR

    def misreport_board(self, channel: int, board: int) -> None:
        self.channels[channel].reported_board = board

    # --- inspection (tests) --------------------------------------------------------------------------
    def settle(self) -> None:
        """Run every channel up to the clock's now (the instrument runs whether asked or not)."""
        with self._lock:
            for ch in self.channels.values():
                self._advance(ch)

    def output_on(self, channel: int) -> bool:
        self.settle()
        return self.channels[channel].output is not None

    def state(self, channel: int) -> int:
        self.settle()
        return self.channels[channel].state

    # --- the function table ---------------------------------------------------------------------------
    def _build_table(self) -> object:
        proto = C.WINFUNCTYPE if sys.platform == "win32" else C.CFUNCTYPE  # type: ignore[attr-defined]
        i32, u8, u32, f32, b = C.c_int32, C.c_uint8, C.c_uint32, C.c_float, C.c_bool
        P = C.POINTER
        sigs = {
            # Output strings arrive as raw pointers (a c_char_p callback argument would be a copy).
            "BL_GetLibVersion": (i32, P(C.c_char), P(u32)),
            "BL_GetErrorMsg": (i32, i32, P(C.c_char), P(u32)),
            "BL_Connect": (i32, C.c_char_p, u8, P(i32), P(TDeviceInfos)),
            "BL_Disconnect": (i32, i32),
            "BL_TestConnection": (i32, i32),
            "BL_GetChannelsPlugged": (i32, i32, P(u8), u8),
            "BL_IsChannelPlugged": (b, i32, u8),
            "BL_GetChannelInfos": (i32, i32, u8, P(TChannelInfos)),
            "BL_GetChannelBoardType": (i32, i32, u8, P(u32)),
            "BL_GetChannelFloatFormat": (i32, i32, u8, P(i32)),
            "BL_LoadFirmware": (i32, i32, P(u8), P(i32), u8, b, b, C.c_char_p, C.c_char_p),
            "BL_DefineBoolParameter": (i32, C.c_char_p, b, i32, P(TEccParam)),
            "BL_DefineSglParameter": (i32, C.c_char_p, f32, i32, P(TEccParam)),
            "BL_DefineIntParameter": (i32, C.c_char_p, i32, i32, P(TEccParam)),
            "BL_LoadTechnique": (i32, i32, u8, C.c_char_p, TEccParams, b, b, b),
            "BL_UpdateParameters": (i32, i32, u8, i32, TEccParams, C.c_char_p),
            "BL_StartChannel": (i32, i32, u8),
            "BL_StopChannel": (i32, i32, u8),
            "BL_GetCurrentValues": (i32, i32, u8, P(TCurrentValues)),
            "BL_GetData": (i32, i32, u8, P(TDataBuffer), P(TDataInfos), P(TCurrentValues)),
            "BL_ConvertNumericIntoSingle": (i32, u32, P(f32)),
            "BL_ConvertChannelNumericIntoSingle": (i32, u32, P(f32), u32),
            "BL_ConvertTimeChannelNumericIntoSeconds": (i32, P(u32), P(C.c_double), f32, u32),
        }
        table = type("EClibFunctions", (), {})()
        self._keepalive = []
        for name, (restype, *argtypes) in sigs.items():
            impl = getattr(self, "_" + name)
            fp = proto(restype, *argtypes)(self._guard(name, impl, restype is b))
            self._keepalive.append(fp)
            setattr(table, name, fp)
        return table

    def _guard(self, name: str, impl, returns_bool: bool):
        no_comm = {
            "BL_GetLibVersion",
            "BL_GetErrorMsg",
            "BL_DefineBoolParameter",
            "BL_DefineSglParameter",
            "BL_DefineIntParameter",
            "BL_ConvertNumericIntoSingle",
            "BL_ConvertChannelNumericIntoSingle",
            "BL_ConvertTimeChannelNumericIntoSeconds",
        }

        def call(*args):
            self.calls.append(name)
            try:
                if name in self._hangs:
                    seconds = self._hangs.pop(name)
                    self._release.wait(_HANG_CAP if seconds is None else seconds)
                    return False if returns_bool else ERR_COMM_WAITINGACK
                queue = self._failures.get(name)
                if queue:
                    return False if returns_bool else queue.popleft()
                if name not in no_comm and self._comm_lost_at is not None:
                    if returns_bool:
                        return False
                    return ERR_COMM_CONNECTIONFAILED if name == "BL_Connect" else ERR_COMM_COMMFAILED
                with self._lock:
                    return impl(*args)
            except BaseException as exc:  # noqa: BLE001 - never let an exception cross the C boundary
                self.internal_errors.append(exc)
                return False if returns_bool else ERR_GEN_FUNCTIONFAILED

        return call

    # --- implementations ------------------------------------------------------------------------------
    def _channel(self, conn_id: int, ch: int) -> tuple[int, _Channel | None]:
        if conn_id not in self._ids:
            return ERR_GEN_NOTCONNECTED, None
        channel = self.channels.get(ch)
        if channel is None or channel.cell is None:
            return ERR_GEN_CHANNELNOTPLUGGED, None
        return ERR_NOERROR, channel

    @staticmethod
    def _copy_string(text: str, buf, size) -> int:
        data = text.encode()
        if not buf or size[0] < len(data) + 1:
            size[0] = len(data) + 1
            return ERR_GEN_INVALIDPARAMETERS
        C.memmove(buf, data + b"\0", len(data) + 1)
        size[0] = len(data)
        return ERR_NOERROR

    def _BL_GetLibVersion(self, buf, size):
        return self._copy_string(self.lib_version, buf, size)

    def _BL_GetErrorMsg(self, code, buf, size):
        if code not in ERROR_MESSAGES:
            return ERR_GEN_INVALIDPARAMETERS
        return self._copy_string(ERROR_MESSAGES[code], buf, size)

    def _BL_Connect(self, address, timeout, pid, pinfo):
        if address is None or address.decode() != self.address:
            return ERR_COMM_CONNECTIONFAILED
        conn = self._next_id
        self._next_id += 1
        self._ids.add(conn)
        pid[0] = conn
        info = pinfo.contents
        info.DeviceCode = self.device_code
        info.RAMSize, info.CPU = 64, 1
        info.NumberOfChannels = sum(1 for c in self.channels.values() if c.cell is not None)
        info.NumberOfSlots = self.n_slots
        info.FirmwareVersion = 1150
        info.FirmwareDate_yyyy, info.FirmwareDate_mm, info.FirmwareDate_dd = 2023, 6, 1
        info.HTdisplayOn, info.NbOfConnectedPC = 0, len(self._ids)
        return ERR_NOERROR

    def _BL_Disconnect(self, conn_id):
        if conn_id not in self._ids:
            return ERR_GEN_NOTCONNECTED
        self._ids.discard(conn_id)
        return ERR_NOERROR

    def _BL_TestConnection(self, conn_id):
        return ERR_NOERROR if conn_id in self._ids else ERR_GEN_NOTCONNECTED

    def _BL_GetChannelsPlugged(self, conn_id, buf, size):
        if conn_id not in self._ids:
            return ERR_GEN_NOTCONNECTED
        for i in range(size):
            ch = self.channels.get(i)
            buf[i] = 1 if ch is not None and ch.cell is not None else 0
        return ERR_NOERROR

    def _BL_IsChannelPlugged(self, conn_id, ch):
        return conn_id in self._ids and ch in self.channels and self.channels[ch].cell is not None

    def _BL_GetChannelInfos(self, conn_id, ch, pinfo):
        code, channel = self._channel(conn_id, ch)
        if channel is None:
            return code
        self._advance(channel)
        info = pinfo.contents
        info.Channel, info.BoardVersion, info.BoardSerialNumber = ch, 4, 10_000 + ch
        info.FirmwareCode, info.FirmwareVersion, info.XilinxVersion = channel.firmware, 1150, 0x0395
        info.AmpCode, info.NbAmps, info.Lcboard, info.Zboard = 0, 0, 0, 1
        info.MemSize, info.MemFilled = 1 << 20, 4 * sum(len(k.rows) * 5 for k in channel.chunks)
        info.State, info.MaxIRange, info.MinIRange, info.MaxBandwidth = channel.state, 10, 1, 9
        info.NbOfTechniques, info.FloatFormat, info.CPUCIE = len(channel.chain), 1, 0
        return ERR_NOERROR

    def _BL_GetChannelBoardType(self, conn_id, ch, ptype):
        code, channel = self._channel(conn_id, ch)
        if channel is None:
            return code
        ptype[0] = channel.reported_board or channel.board
        return ERR_NOERROR

    def _BL_GetChannelFloatFormat(self, conn_id, ch, pfmt):
        code, channel = self._channel(conn_id, ch)
        if channel is None:
            return code
        pfmt[0] = 1  # IEEE
        return ERR_NOERROR

    def _BL_LoadFirmware(self, conn_id, pchannels, presults, length, show_gauge, force, bin_file, xlx_file):
        if conn_id not in self._ids:
            return ERR_GEN_NOTCONNECTED
        for i in range(length):
            if not pchannels[i]:
                continue
            channel = self.channels.get(i)
            if channel is None or channel.cell is None:
                presults[i] = ERR_GEN_CHANNELNOTPLUGGED
                continue
            if channel.state == STATE_RUN:
                presults[i] = ERR_GEN_CHANNEL_RUNNING
                continue
            kernel = (bin_file or _KERNEL[channel.board].encode()).decode().replace("\\", "/").split("/")[-1]
            fpga = (xlx_file or _FPGA[channel.board].encode()).decode().replace("\\", "/").split("/")[-1]
            if kernel.lower() != _KERNEL[channel.board] or fpga.lower() != _FPGA[channel.board]:
                presults[i] = ERR_FIRM_FIRMINVALIDFILE
                continue
            # Without force the library leaves a channel alone once any firmware is on it.
            if channel.firmware == FIRM_NONE or force:
                channel.firmware = FIRM_KERNEL
                channel.chain = []
            presults[i] = ERR_NOERROR
        return ERR_NOERROR

    @staticmethod
    def _define(label, kind, raw, index, pparam) -> int:
        if label is None or len(label) >= 64:
            return ERR_GEN_INVALIDPARAMETERS
        p = pparam.contents
        p.ParamStr = label
        p.ParamType, p.ParamVal, p.ParamIndex = kind, raw, index
        return ERR_NOERROR

    def _BL_DefineBoolParameter(self, label, value, index, pparam):
        return self._define(label, PARAM_BOOLEAN, 1 if value else 0, index, pparam)

    def _BL_DefineSglParameter(self, label, value, index, pparam):
        raw = int(np.array([value], dtype=np.float32).view(np.int32)[0])
        return self._define(label, PARAM_SINGLE, raw, index, pparam)

    def _BL_DefineIntParameter(self, label, value, index, pparam):
        return self._define(label, PARAM_INT32, value, index, pparam)

    def _BL_LoadTechnique(self, conn_id, ch, fname, params, first, last, display):
        code, channel = self._channel(conn_id, ch)
        if channel is None:
            return code
        if channel.state == STATE_RUN:
            return ERR_GEN_CHANNEL_RUNNING
        if channel.firmware == FIRM_NONE:
            return ERR_FIRM_FIRMWARENOTLOADED
        name = (fname or b"").decode().replace("\\", "/").split("/")[-1].lower()
        stem = name[:-4] if name.endswith(".ecc") else ""
        base = stem.rstrip("45")
        tech_id = _TECH_BY_FILE.get(base)
        if tech_id is None:
            return ERR_TECH_ECCFILENOTEXISTS
        if channel.firmware != FIRM_KERNEL or stem[len(base) :] != _ECC_SUFFIX[channel.board]:
            return ERR_TECH_INCOMPATIBLEECC
        values = self._parse_params(tech_id, params)
        if values is None or not _REQUIRED[tech_id] <= set(values):
            return ERR_GEN_INVALIDPARAMETERS
        technique = _Technique(tech_id, name, values)
        if tech_id in (TECH_CP, TECH_CPLIMIT):
            i_range = int(technique.get("I_Range", 0, -1))
            if i_range not in _I_RANGES:  # current-controlled techniques need a fixed range
                return ERR_GEN_INVALIDPARAMETERS
            n = int(technique.get("Step_number", 0, 0))
            if not 0 <= n < 100:
                return ERR_GEN_INVALIDPARAMETERS
            for k in range(n + 1):
                if abs(float(technique.get("Current_step", k, 0.0))) > _I_RANGES[i_range] * 1.0001:
                    return ERR_GEN_INVALIDPARAMETERS
        if first:
            channel.chain = []
        channel.chain.append(technique)
        return ERR_NOERROR

    def _parse_params(self, tech_id: int, params) -> dict[str, dict[int, object]] | None:
        accepted = _ACCEPTED[tech_id] | (_NEWER_EXTRAS.get(tech_id, set()) if self._newer() else set())
        values: dict[str, dict[int, object]] = {}
        for i in range(params.len):
            p = params.pParams[i]
            label = p.ParamStr.decode()
            if label not in accepted:
                return None
            if p.ParamType == PARAM_SINGLE:
                value: object = float(np.array([p.ParamVal], dtype=np.int32).view(np.float32)[0])
            elif p.ParamType == PARAM_BOOLEAN:
                value = bool(p.ParamVal)
            elif p.ParamType == PARAM_INT32:
                value = int(p.ParamVal)
            else:
                return None
            values.setdefault(label, {})[int(p.ParamIndex)] = value
        return values

    def _BL_UpdateParameters(self, conn_id, ch, index, params, fname):
        """Change parameters of a loaded (possibly running) technique; a running step picks them up."""
        code, channel = self._channel(conn_id, ch)
        if channel is None:
            return code
        if not 0 <= index < len(channel.chain):
            return ERR_GEN_INVALIDPARAMETERS
        self._advance(channel)
        tech = channel.chain[index]
        name = (fname or b"").decode().replace("\\", "/").split("/")[-1].lower()
        if name != tech.file:
            return ERR_TECH_INCOMPATIBLEECC
        values = self._parse_params(tech.tech_id, params)
        if values is None:
            return ERR_GEN_INVALIDPARAMETERS
        for label, by_index in values.items():
            tech.params.setdefault(label, {}).update(by_index)
        return ERR_NOERROR

    def _newer(self) -> bool:
        try:
            return int(self.lib_version.split(".")[1][:2]) >= 4
        except (IndexError, ValueError):
            return False

    def _BL_StartChannel(self, conn_id, ch):
        code, channel = self._channel(conn_id, ch)
        if channel is None:
            return code
        if channel.state == STATE_RUN:
            return ERR_GEN_CHANNEL_RUNNING
        if not channel.chain:
            return ERR_GEN_FUNCTIONFAILED
        self._advance(channel)  # rest up to now
        now = self.clock.now()
        channel.state, channel.clock0, channel.t_cell = STATE_RUN, now, now
        channel.chunks.clear()
        self._begin(channel, 0, 0.0)
        return ERR_NOERROR

    def _BL_StopChannel(self, conn_id, ch):
        code, channel = self._channel(conn_id, ch)
        if channel is None:
            return code
        self._advance(channel)
        if channel.state == STATE_RUN:
            self._advance_output(channel, self.clock.now())
        channel.state, channel.output = STATE_STOP, None
        return ERR_NOERROR

    def _fill_current_values(self, channel: _Channel, cv) -> None:
        cv.State, cv.MemFilled, cv.TimeBase = channel.state, 0, self.time_base
        cv.Ewe, cv.Ece = channel.last_ewe, channel.last_ece
        cv.EweRangeMin, cv.EweRangeMax, cv.EceRangeMin, cv.EceRangeMax = -10.0, 10.0, -10.0, 10.0
        cv.Eoverflow, cv.Ioverflow, cv.Saturation, cv.OptErr, cv.OptPos = 0, 0, 0, 0, 0
        cv.I = channel.output or 0.0
        cv.IRange = 12
        cv.ElapsedTime = (self.clock.now() - channel.clock0) if channel.state == STATE_RUN else 0.0
        cv.Freq, cv.Rcomp = 0.0, 0.0

    def _BL_GetCurrentValues(self, conn_id, ch, pcv):
        code, channel = self._channel(conn_id, ch)
        if channel is None:
            return code
        self._advance(channel)
        self._fill_current_values(channel, pcv.contents)
        return ERR_NOERROR

    def _BL_GetData(self, conn_id, ch, pbuf, pinfo, pcv):
        code, channel = self._channel(conn_id, ch)
        if channel is None:
            return code
        self._advance(channel)
        info = pinfo.contents
        info.IRQskipped = info.NbRows = info.NbCols = info.TechniqueIndex = 0
        info.TechniqueID = info.ProcessIndex = info.loop = info.MuxPad = 0
        info.StartTime = 0.0
        while channel.chunks and not channel.chunks[0].rows:
            channel.chunks.popleft()
        if channel.chunks:
            chunk = channel.chunks[0]
            ncols = len(chunk.rows[0])
            nrows = min(len(chunk.rows), 1000 // ncols)
            words = np.concatenate([chunk.rows.popleft() for _ in range(nrows)]).astype(np.uint32)
            kind = self._garbage.pop("BL_GetData", None)
            if kind == "nan":
                words[2::ncols] = np.uint32(0x7FC00000)
            elif kind == "layout":
                ncols += 3
            elif kind == "overflow":
                nrows = 1000
            C.memmove(C.addressof(pbuf.contents), words.ctypes.data, min(words.nbytes, 4000))
            info.NbRows, info.NbCols = nrows, ncols
            info.TechniqueIndex, info.TechniqueID = chunk.tech_index, chunk.tech_id
            info.ProcessIndex, info.loop, info.StartTime = chunk.process, chunk.loop, chunk.start_time
        self._fill_current_values(channel, pcv.contents)
        return ERR_NOERROR

    def _BL_ConvertNumericIntoSingle(self, word, pvalue):
        pvalue[0] = _bits_f32(word)
        return ERR_NOERROR

    def _BL_ConvertChannelNumericIntoSingle(self, word, pvalue, board):
        pvalue[0] = _bits_f32(word)
        return ERR_NOERROR

    def _BL_ConvertTimeChannelNumericIntoSeconds(self, pwords, pseconds, time_base, board):
        pseconds[0] = time_base * ((int(pwords[0]) << 32) + int(pwords[1]))
        return ERR_NOERROR

    # --- the instrument running techniques ----------------------------------------------------------------
    def _begin(self, channel: _Channel, index: int, tau: float) -> None:
        """Start technique ``index`` of the chain at experiment time ``tau`` (or stop at the chain's end)."""
        if index >= len(channel.chain):
            channel.state, channel.output = STATE_STOP, None
            return
        channel.tech_index, channel.tech_start = index, tau
        tech = channel.chain[index]
        channel.phase = {"step": 0, "cycle": 0, "k": 0, "step_start": tau, "freq": 0, "dc_done": False}
        channel.chunks.append(_Chunk(index, tech.tech_id, 0, 0, tau))
        if tech.tech_id in (TECH_CP, TECH_CPLIMIT):
            channel.output = float(tech.get("Current_step", 0, 0.0))
        elif tech.tech_id == TECH_GEIS:
            channel.output = float(tech.get("Initial_Current_step", 0, 0.0))
        elif tech.tech_id == TECH_PEIS:
            e = float(tech.get("Initial_Voltage_step", 0, 0.0))
            if tech.get("vs_initial", 0, False):
                e += channel.last_ewe if channel.output is None else 0.0
            channel.phase["e_set"] = e
            channel.output = channel.cell.current_for_potential(e)
        else:
            channel.output = None

    def _chunk(self, channel: _Channel, process: int) -> _Chunk:
        tech = channel.chain[channel.tech_index]
        last = channel.chunks[-1] if channel.chunks else None
        if last is None or last.tech_index != channel.tech_index or last.process != process:
            last = _Chunk(channel.tech_index, tech.tech_id, process, channel.phase["cycle"], channel.tech_start)
            channel.chunks.append(last)
        return last

    def _ticks(self, channel: _Channel, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ticks = np.round((tau - channel.tech_start) / self.time_base).astype(np.uint64)
        return (ticks >> np.uint64(32)).astype(np.uint32), (ticks & np.uint64(0xFFFFFFFF)).astype(np.uint32)

    def _advance_output(self, channel: _Channel, t_to: float) -> None:
        """Let the present output act on the cell from t_cell to clock time t_to, without recording."""
        dt = t_to - channel.t_cell
        if dt <= 0 or channel.cell is None:
            return
        if channel.output is None:
            channel.cell.rest(dt)
        else:
            resp = channel.cell.advance(np.array([channel.output]), np.array([dt]))
            channel.last_ewe = float(resp.E_we[-1])
            channel.last_ece = float(resp.E_we[-1] - resp.E_cell[-1])
        channel.t_cell = t_to

    def _advance(self, channel: _Channel) -> None:
        """Run the channel's technique chain from where it was up to the clock's now."""
        now = self.clock.now()
        if channel.cell is None:
            return
        guard = 0
        while channel.state == STATE_RUN and guard < 100_000:
            guard += 1
            tech = channel.chain[channel.tech_index]
            tau_now = now - channel.clock0
            if tech.tech_id in (TECH_CP, TECH_CPLIMIT):
                progressed = self._run_cp(channel, tech, tau_now)
            elif tech.tech_id in (TECH_GEIS, TECH_PEIS):
                progressed = self._run_eis(channel, tech, tau_now)
            else:
                progressed = self._run_ocv(channel, tech, tau_now)
            if not progressed:
                break
        if channel.state != STATE_RUN:
            self._advance_output(channel, now)  # output is None: the cell rests

    def _record_block(
        self, channel: _Channel, tau: np.ndarray, current: float, tests: list[tuple[int, float]] | None = None
    ) -> tuple[int | None, np.ndarray, np.ndarray]:
        """Pass ``current`` with samples at experiment times ``tau``; returns (tripping index, E_we, E_cell),
        cut at the first sample where an active limit test fires."""
        t_clock = channel.clock0 + tau
        currents = np.full(len(tau), current)
        before = channel.cell.snapshot()
        resp = channel.cell.advance(currents, np.diff(t_clock, prepend=channel.t_cell))
        trip = None
        if tests:
            hit = np.zeros(len(tau), dtype=bool)
            for config, value in tests:
                if config & 1:
                    below = ((config >> 2) & 0b111) == 0
                    hit |= resp.E_we < value if below else resp.E_we > value
            idx = np.flatnonzero(hit)
            if idx.size:
                trip = int(idx[0])
                channel.cell.restore(before)
                t_clock, currents = t_clock[: trip + 1], currents[: trip + 1]
                resp = channel.cell.advance(currents, np.diff(t_clock, prepend=channel.t_cell))
        channel.t_cell = float(t_clock[-1])
        channel.last_ewe = float(resp.E_we[-1])
        channel.last_ece = float(resp.E_we[-1] - resp.E_cell[-1])
        return trip, resp.E_we, resp.E_cell

    def _run_cp(self, channel: _Channel, tech: _Technique, tau_now: float) -> bool:
        ph = channel.phase
        step = ph["step"]
        n_steps = int(tech.get("Step_number", 0, 0)) + 1
        current = float(tech.get("Current_step", step, 0.0))
        if tech.get("vs_initial", step, False) and step > 0:
            current += float(tech.get("Current_step", step - 1, 0.0))
        channel.output = current
        duration = float(tech.get("Duration_step", step, 0.0))
        dt = max(float(tech.get("Record_every_dT", 0, 1.0)), 1e-4)
        step_end = ph["step_start"] + duration
        t_last = min(tau_now, step_end)
        k_hi = int(math.floor((t_last - ph["step_start"]) / dt + 1e-9))
        if k_hi >= ph["k"]:
            ks = np.arange(ph["k"], k_hi + 1)
            tau = ph["step_start"] + ks * dt
            tests = None
            if tech.tech_id == TECH_CPLIMIT:
                tests = [
                    (int(tech.get(f"Test{i}_Config", step, 0)), float(tech.get(f"Test{i}_Value", step, 0.0)))
                    for i in (1, 2, 3)
                ]
            trip, e_we, _ = self._record_block(channel, tau, current, tests)
            if trip is not None:
                tau, e_we = tau[: trip + 1], e_we[: trip + 1]
            hi, lo = self._ticks(channel, tau)
            words = np.column_stack(
                [
                    hi,
                    lo,
                    _f32_bits(e_we),
                    _f32_bits(np.full(len(tau), current)),
                    np.full(len(tau), ph["cycle"], dtype=np.uint32),
                ]
            )
            self._chunk(channel, 0).rows.extend(words)
            ph["k"] = int(ks[len(tau) - 1]) + 1
            if trip is not None:
                exit_cond = int(tech.get("Exit_Cond", step, 0))
                t_trip = float(tau[-1])
                if exit_cond == 2:
                    channel.state, channel.output = STATE_STOP, None
                    return False
                if exit_cond == 1:
                    self._begin(channel, channel.tech_index + 1, t_trip)
                    return True
                return self._next_cp_step(channel, tech, n_steps, t_trip)
        if tau_now >= step_end - 1e-9:
            self._advance_output(channel, channel.clock0 + step_end)
            return self._next_cp_step(channel, tech, n_steps, step_end)
        return False

    def _next_cp_step(self, channel: _Channel, tech: _Technique, n_steps: int, tau: float) -> bool:
        ph = channel.phase
        ph["step"] += 1
        ph["k"], ph["step_start"] = 0, tau
        if ph["step"] >= n_steps:
            ph["cycle"] += 1
            ph["step"] = 0
            if ph["cycle"] > int(tech.get("N_Cycles", 0, 0)):
                self._begin(channel, channel.tech_index + 1, tau)
        return True

    def _eis_frequencies(self, tech: _Technique) -> np.ndarray:
        fi, ff = float(tech.get("Initial_frequency")), float(tech.get("Final_frequency"))
        n = max(int(tech.get("Frequency_number", 0, 1)), 1)
        if n == 1:
            return np.array([fi])
        if tech.get("sweep", 0, False):  # linear spacing
            return np.linspace(fi, ff, n)
        return np.logspace(math.log10(fi), math.log10(ff), n)

    def _run_eis(self, channel: _Channel, tech: _Technique, tau_now: float) -> bool:
        ph = channel.phase
        galvano = tech.tech_id == TECH_GEIS
        dc = channel.output or 0.0
        if not ph["dc_done"]:
            duration = float(tech.get("Duration_step", 0, 0.0))
            dt = max(float(tech.get("Record_every_dT", 0, 1.0)), 1e-4)
            end = channel.tech_start + duration
            t_last = min(tau_now, end)
            k_hi = int(math.floor((t_last - channel.tech_start) / dt + 1e-9)) if duration > 0 else -1
            if k_hi >= ph["k"]:
                ks = np.arange(ph["k"], k_hi + 1)
                tau = channel.tech_start + ks * dt
                _, e_we, _ = self._record_block(channel, tau, dc)
                hi, lo = self._ticks(channel, tau)
                words = np.column_stack([hi, lo, _f32_bits(e_we), _f32_bits(np.full(len(tau), dc))])
                self._chunk(channel, 0).rows.extend(words)
                ph["k"] = k_hi + 1
            if tau_now < end - 1e-9:
                return False
            self._advance_output(channel, channel.clock0 + end)
            ph["dc_done"], ph["f_start"] = True, end
        freqs = self._eis_frequencies(tech)
        wait = float(tech.get("Wait_for_steady", 0, 1.0))
        n_avg = max(int(tech.get("Average_N_times", 0, 1)), 1)
        i_f = ph["freq"]
        if i_f >= len(freqs):
            self._begin(channel, channel.tech_index + 1, ph["f_start"])
            return True
        f = float(freqs[i_f])
        point_end = ph["f_start"] + max((wait + n_avg + 1) / f, 0.2)
        if tau_now < point_end:
            return False
        self._advance_output(channel, channel.clock0 + point_end)
        z = complex(channel.cell.impedance(np.array([f]), dc)[0])
        rng = channel.cell.rng
        z *= 1 + rng.normal(0, 0.002) + 1j * rng.normal(0, 0.002)
        if galvano:
            i_ac = abs(float(tech.get("Amplitude_Current")))
            e_ac = abs(z) * i_ac
        else:
            e_ac = abs(float(tech.get("Amplitude_Voltage")))
            i_ac = e_ac / max(abs(z), 1e-12)
        i_range = int(tech.get("I_Range", 0, 12))
        floats = [
            f,
            e_ac,
            i_ac,
            math.degrees(math.atan2(z.imag, z.real)),
            channel.last_ewe,
            dc,
            0.0,
            0.0,
            0.0,
            0.0,
            channel.last_ece,
            0.0,
            0.0,
            point_end - channel.tech_start,
            float(i_range),
        ]
        words = _f32_bits(np.array(floats))
        words[[6, 11, 12]] = 0
        self._chunk(channel, 1).rows.append(words)
        ph["freq"], ph["f_start"] = i_f + 1, point_end
        return True

    def _run_ocv(self, channel: _Channel, tech: _Technique, tau_now: float) -> bool:
        ph = channel.phase
        channel.output = None
        duration = float(tech.get("Rest_time_T", 0, 0.0))
        dt = max(float(tech.get("Record_every_dT", 0, 1.0)), 1e-4)
        end = channel.tech_start + duration
        t_last = min(tau_now, end)
        k_hi = int(math.floor((t_last - channel.tech_start) / dt + 1e-9))
        if k_hi >= ph["k"]:
            ks = np.arange(ph["k"], k_hi + 1)
            tau = channel.tech_start + ks * dt
            channel.cell.rest(float(channel.clock0 + tau[-1] - channel.t_cell))
            channel.t_cell = float(channel.clock0 + tau[-1])
            ewe = np.zeros(len(tau)) + channel.cell.rng.normal(0, channel.cell.spec.simulation.noise_voltage, len(tau))
            hi, lo = self._ticks(channel, tau)
            cols = [hi, lo, _f32_bits(ewe)]
            if channel.board == ESSENTIAL:
                cols.append(_f32_bits(np.zeros(len(tau))))
            self._chunk(channel, 0).rows.extend(np.column_stack(cols))
            ph["k"] = k_hi + 1
        if tau_now >= end - 1e-9:
            self._begin(channel, channel.tech_index + 1, end)
            return True
        return False
