"""An emulated EClib (EC-Lab Development Package DLL) driving SimulatedCells on a Clock.

The emulator hands out a function table whose entries are real C function pointers (ctypes callbacks)
with the DLL's signatures, so a driver calls it exactly as it calls ``ctypes.WinDLL("EClib64.dll")``:
same argtypes, structures passed by pointer or by value, output parameters, 32-bit raw data words and
negative error codes. Structures, layouts and constants are in simulators.eclib_structs (declared
independently of the driver), the channels running their techniques in simulators.eclib_channel.

Instrument behaviour modelled: channels plugged or not; the board family of the emulated model (ESSENTIAL,
PREMIUM, DIGICORE) with its kernel and technique files and its data row layouts (EIS rows of 15 or 14 words,
OCV rows with or without Ece); floats in IEEE or TI format; the channel's I range span (MinIRange,
MaxIRange); firmware state (none, library kernel, EC-Lab's interpreter); chained techniques (first/last)
running autonomously in the instrument (CP, CPLIMIT, CA, CALIMIT with limit tests and exit conditions, OCV,
GEIS, PEIS), each ending on its own duration whatever the PC does; data buffered in the instrument, drained
by BL_GetData at most 1000 words per call. Clock time drives everything (a VirtualClock: hours in ms).

Faults: error codes from chosen functions, calls that hang (real time) then answer ERR_COMM_WAITINGACK, a
communication loss (the instrument keeps running), garbage data, unplugged channels, EC-Lab's firmware left
on a channel, a board type that reads back wrong.
"""

from __future__ import annotations

import ctypes as C
import sys
import threading
from collections import deque

import numpy as np

from daq.core.clock import Clock
from simulators import eclib_structs as S
from simulators.cell import SimulatedCell
from simulators.eclib_channel import Channel, ChannelRunner, Technique
from simulators.eclib_structs import (  # noqa: F401 - names importable from here
    DIGICORE,
    ERROR_MESSAGES,
    ESSENTIAL,
    FIRM_INTERPR,
    FIRM_KERNEL,
    FIRM_NONE,
    FLOAT_IEEE,
    FLOAT_TI,
    PREMIUM,
    TChannelInfos,
    TCurrentValues,
    TDataInfos,
)

_HANG_CAP = 60.0  # s of real time: an injected permanent hang never outlives a test run


class EClibEmulator:
    """One emulated instrument (address) with a few channels. ``dll`` is the function table."""

    def __init__(
        self,
        clock: Clock,
        cells: dict[int, SimulatedCell | None],
        *,
        address: str = "USB0",
        device_code: int = 21,
        board: int | None = None,
        lib_version: str = "6.06",
        time_base: float = 2e-5,
        n_slots: int = 16,
        firmware: int = S.FIRM_NONE,
        float_format: int = S.FLOAT_IEEE,
        i_ranges: tuple[int, int] = (1, 10),
    ):
        """``board`` defaults to the family of ``device_code`` (SP-200: PREMIUM); ``float_format`` is how data
        words hold floats (FLOAT_TI: only BL_ConvertChannelNumericIntoSingle reads them right);
        ``i_ranges`` the channel's (MinIRange, MaxIRange) codes."""
        self.clock, self.address, self.device_code, self.lib_version = clock, address, device_code, lib_version
        self.board = board if board is not None else S.DEVICE_FAMILY.get(device_code, S.PREMIUM)
        self.time_base = float(np.float32(time_base))
        self.n_slots, self.float_format, self.i_ranges = n_slots, float_format, i_ranges
        encode = S.ti_words if float_format == S.FLOAT_TI else S.ieee_words
        self.runner = ChannelRunner(self.time_base, encode)
        self.channels = {
            ch: Channel(ch, cell, self.board, firmware=firmware if cell is not None else S.FIRM_NONE)
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
        self.channels[channel].firmware = S.FIRM_INTERPR

    def misreport_board(self, channel: int, board: int) -> None:
        self.channels[channel].reported_board = board

    # --- inspection (tests) --------------------------------------------------------------------------
    def settle(self) -> None:
        """Run every channel up to the clock's now (the instrument runs whether asked or not)."""
        with self._lock:
            for ch in self.channels.values():
                self.runner.advance(ch, self.clock.now())

    def output_on(self, channel: int) -> bool:
        self.settle()
        return self.channels[channel].output is not None

    def output_off_since(self, channel: int) -> float | None:
        """Clock time the channel's output last went off by itself or on command; None while it is on."""
        self.settle()
        return self.channels[channel].off_since

    def last_ewe(self, channel: int) -> float:
        self.settle()
        return self.channels[channel].last_ewe

    def loaded(self, channel: int) -> list[Technique]:
        """The techniques loaded on a channel (what the driver pushed into the instrument)."""
        return list(self.channels[channel].chain)

    def state(self, channel: int) -> int:
        self.settle()
        return self.channels[channel].state

    # --- the function table ---------------------------------------------------------------------------
    def _build_table(self) -> object:
        proto = C.WINFUNCTYPE if sys.platform == "win32" else C.CFUNCTYPE  # type: ignore[attr-defined]
        sigs = S.signatures()
        table = type("EClibFunctions", (), {})()
        self._keepalive = []
        for name, (restype, *argtypes) in sigs.items():
            impl = getattr(self, "_" + name)
            fp = proto(restype, *argtypes)(self._guard(name, impl, restype is C.c_bool))
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
                    return False if returns_bool else S.ERR_COMM_WAITINGACK
                queue = self._failures.get(name)
                if queue:
                    return False if returns_bool else queue.popleft()
                if name not in no_comm and self._comm_lost_at is not None:
                    if returns_bool:
                        return False
                    return S.ERR_COMM_CONNECTIONFAILED if name == "BL_Connect" else S.ERR_COMM_COMMFAILED
                with self._lock:
                    return impl(*args)
            except BaseException as exc:  # noqa: BLE001 - never let an exception cross the C boundary
                self.internal_errors.append(exc)
                return False if returns_bool else S.ERR_GEN_FUNCTIONFAILED

        return call

    # --- implementations ------------------------------------------------------------------------------
    def _channel(self, conn_id: int, ch: int) -> tuple[int, Channel | None]:
        if conn_id not in self._ids:
            return S.ERR_GEN_NOTCONNECTED, None
        channel = self.channels.get(ch)
        if channel is None or channel.cell is None:
            return S.ERR_GEN_CHANNELNOTPLUGGED, None
        return S.ERR_NOERROR, channel

    def _BL_GetLibVersion(self, buf, size):
        return S.copy_string(self.lib_version, buf, size)

    def _BL_GetErrorMsg(self, code, buf, size):
        if code not in S.ERROR_MESSAGES:
            return S.ERR_GEN_INVALIDPARAMETERS
        return S.copy_string(S.ERROR_MESSAGES[code], buf, size)

    def _BL_Connect(self, address, timeout, pid, pinfo):
        if address is None or address.decode() != self.address:
            return S.ERR_COMM_CONNECTIONFAILED
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
        return S.ERR_NOERROR

    def _BL_Disconnect(self, conn_id):
        if conn_id not in self._ids:
            return S.ERR_GEN_NOTCONNECTED
        self._ids.discard(conn_id)
        return S.ERR_NOERROR

    def _BL_TestConnection(self, conn_id):
        return S.ERR_NOERROR if conn_id in self._ids else S.ERR_GEN_NOTCONNECTED

    def _BL_GetChannelsPlugged(self, conn_id, buf, size):
        if conn_id not in self._ids:
            return S.ERR_GEN_NOTCONNECTED
        for i in range(size):
            ch = self.channels.get(i)
            buf[i] = 1 if ch is not None and ch.cell is not None else 0
        return S.ERR_NOERROR

    def _BL_IsChannelPlugged(self, conn_id, ch):
        return conn_id in self._ids and ch in self.channels and self.channels[ch].cell is not None

    def _BL_GetChannelInfos(self, conn_id, ch, pinfo):
        code, channel = self._channel(conn_id, ch)
        if channel is None:
            return code
        self.runner.advance(channel, self.clock.now())
        info = pinfo.contents
        info.Channel, info.BoardVersion, info.BoardSerialNumber = ch, 4, 10_000 + ch
        info.FirmwareCode, info.FirmwareVersion, info.XilinxVersion = channel.firmware, 1150, 0x0395
        info.AmpCode, info.NbAmps, info.Lcboard, info.Zboard = 0, 0, 0, 1
        info.MemSize, info.MemFilled = 1 << 20, 4 * sum(len(k.rows) * 5 for k in channel.chunks)
        info.State, info.MinIRange, info.MaxIRange, info.MaxBandwidth = channel.state, *self.i_ranges, 9
        info.NbOfTechniques, info.FloatFormat, info.CPUCIE = len(channel.chain), self.float_format, 0
        return S.ERR_NOERROR

    def _BL_GetChannelBoardType(self, conn_id, ch, ptype):
        code, channel = self._channel(conn_id, ch)
        if channel is None:
            return code
        ptype[0] = channel.reported_board or channel.board
        return S.ERR_NOERROR

    def _BL_GetChannelFloatFormat(self, conn_id, ch, pfmt):
        code, channel = self._channel(conn_id, ch)
        if channel is None:
            return code
        pfmt[0] = self.float_format
        return S.ERR_NOERROR

    def _BL_LoadFirmware(self, conn_id, pchannels, presults, length, show_gauge, force, bin_file, xlx_file):
        if conn_id not in self._ids:
            return S.ERR_GEN_NOTCONNECTED
        for i in range(length):
            if not pchannels[i]:
                continue
            channel = self.channels.get(i)
            if channel is None or channel.cell is None:
                presults[i] = S.ERR_GEN_CHANNELNOTPLUGGED
                continue
            if channel.state == S.STATE_RUN:
                presults[i] = S.ERR_GEN_CHANNEL_RUNNING
                continue
            kernel = (bin_file or S.KERNEL[channel.board].encode()).decode().replace("\\", "/").split("/")[-1]
            fpga = (xlx_file or S.FPGA[channel.board].encode()).decode().replace("\\", "/").split("/")[-1]
            if kernel.lower() != S.KERNEL[channel.board] or fpga.lower() != S.FPGA[channel.board]:
                presults[i] = S.ERR_FIRM_FIRMINVALIDFILE
                continue
            # Without force the library leaves a channel alone once any firmware is on it.
            if channel.firmware == S.FIRM_NONE or force:
                channel.firmware = S.FIRM_KERNEL
                channel.chain = []
            presults[i] = S.ERR_NOERROR
        return S.ERR_NOERROR

    def _BL_DefineBoolParameter(self, label, value, index, pparam):
        return S.define_param(label, S.PARAM_BOOLEAN, 1 if value else 0, index, pparam)

    def _BL_DefineSglParameter(self, label, value, index, pparam):
        raw = int(np.array([value], dtype=np.float32).view(np.int32)[0])
        return S.define_param(label, S.PARAM_SINGLE, raw, index, pparam)

    def _BL_DefineIntParameter(self, label, value, index, pparam):
        return S.define_param(label, S.PARAM_INT32, value, index, pparam)

    def _BL_LoadTechnique(self, conn_id, ch, fname, params, first, last, display):
        code, channel = self._channel(conn_id, ch)
        if channel is None:
            return code
        if channel.state == S.STATE_RUN:
            return S.ERR_GEN_CHANNEL_RUNNING
        if channel.firmware == S.FIRM_NONE:
            return S.ERR_FIRM_FIRMWARENOTLOADED
        name = (fname or b"").decode().replace("\\", "/").split("/")[-1].lower()
        stem = name[:-4] if name.endswith(".ecc") else ""
        base = stem.rstrip("45")
        tech_id = S.TECH_BY_FILE.get(base)
        if tech_id is None:
            return S.ERR_TECH_ECCFILENOTEXISTS
        if channel.firmware != S.FIRM_KERNEL or stem[len(base) :] != S.ECC_SUFFIX[channel.board]:
            return S.ERR_TECH_INCOMPATIBLEECC
        values = self._parse_params(tech_id, params)
        if values is None or not S.REQUIRED[tech_id] <= set(values):
            return S.ERR_GEN_INVALIDPARAMETERS
        technique = Technique(tech_id, name, values)
        if not self._ranges_ok(technique):
            return S.ERR_GEN_INVALIDPARAMETERS
        if first:
            channel.chain = []
        channel.chain.append(technique)
        return S.ERR_NOERROR

    def _ranges_ok(self, tech: Technique) -> bool:
        """A fixed I range within the channel's [MinIRange, MaxIRange]; current control needs a fixed range
        holding every step's current."""
        i_range = int(tech.get("I_Range", 0, S.I_RANGE_AUTO))
        lo, hi = self.i_ranges
        if i_range != S.I_RANGE_AUTO and not lo <= i_range <= hi:
            return False
        if tech.tech_id not in (S.TECH_CP, S.TECH_CPLIMIT):
            return True
        n = int(tech.get("Step_number", 0, 0))
        if i_range not in S.I_RANGES or not 0 <= n < 100:
            return False
        return all(abs(float(tech.get("Current_step", k, 0.0))) <= S.I_RANGES[i_range] * 1.0001 for k in range(n + 1))

    def _parse_params(self, tech_id: int, params) -> dict[str, dict[int, object]] | None:
        accepted = S.ACCEPTED[tech_id] | (S.NEWER_EXTRAS.get(tech_id, set()) if self._newer() else set())
        values: dict[str, dict[int, object]] = {}
        for i in range(params.len):
            p = params.pParams[i]
            label = p.ParamStr.decode()
            if label not in accepted:
                return None
            if p.ParamType == S.PARAM_SINGLE:
                value: object = float(np.array([p.ParamVal], dtype=np.int32).view(np.float32)[0])
            elif p.ParamType == S.PARAM_BOOLEAN:
                value = bool(p.ParamVal)
            elif p.ParamType == S.PARAM_INT32:
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
            return S.ERR_GEN_INVALIDPARAMETERS
        self.runner.advance(channel, self.clock.now())
        tech = channel.chain[index]
        name = (fname or b"").decode().replace("\\", "/").split("/")[-1].lower()
        if name != tech.file:
            return S.ERR_TECH_INCOMPATIBLEECC
        values = self._parse_params(tech.tech_id, params)
        if values is None:
            return S.ERR_GEN_INVALIDPARAMETERS
        for label, by_index in values.items():
            tech.params.setdefault(label, {}).update(by_index)
        return S.ERR_NOERROR

    def _newer(self) -> bool:
        try:
            return int(self.lib_version.split(".")[1][:2]) >= 4
        except (IndexError, ValueError):
            return False

    def _BL_StartChannel(self, conn_id, ch):
        code, channel = self._channel(conn_id, ch)
        if channel is None:
            return code
        if channel.state == S.STATE_RUN:
            return S.ERR_GEN_CHANNEL_RUNNING
        if not channel.chain:
            return S.ERR_GEN_FUNCTIONFAILED
        self.runner.advance(channel, self.clock.now())  # rest up to now
        self.runner.start(channel, self.clock.now())
        return S.ERR_NOERROR

    def _BL_StopChannel(self, conn_id, ch):
        code, channel = self._channel(conn_id, ch)
        if channel is None:
            return code
        self.runner.stop(channel, self.clock.now())
        return S.ERR_NOERROR

    def _fill_current_values(self, channel: Channel, cv) -> None:
        cv.State, cv.MemFilled, cv.TimeBase = channel.state, 0, self.time_base
        cv.Ewe, cv.Ece = channel.last_ewe, channel.last_ece
        cv.EweRangeMin, cv.EweRangeMax, cv.EceRangeMin, cv.EceRangeMax = -10.0, 10.0, -10.0, 10.0
        cv.Eoverflow, cv.Ioverflow, cv.Saturation, cv.OptErr, cv.OptPos = 0, 0, 0, 0, 0
        cv.I = channel.output or 0.0
        cv.IRange = 12
        cv.ElapsedTime = (self.clock.now() - channel.clock0) if channel.state == S.STATE_RUN else 0.0
        cv.Freq, cv.Rcomp = 0.0, 0.0

    def _BL_GetCurrentValues(self, conn_id, ch, pcv):
        code, channel = self._channel(conn_id, ch)
        if channel is None:
            return code
        self.runner.advance(channel, self.clock.now())
        self._fill_current_values(channel, pcv.contents)
        return S.ERR_NOERROR

    def _BL_GetData(self, conn_id, ch, pbuf, pinfo, pcv):
        code, channel = self._channel(conn_id, ch)
        if channel is None:
            return code
        self.runner.advance(channel, self.clock.now())
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
        return S.ERR_NOERROR

    def _BL_ConvertNumericIntoSingle(self, word, pvalue):
        pvalue[0] = S.ieee_value(word)
        return S.ERR_NOERROR

    def _BL_ConvertChannelNumericIntoSingle(self, word, pvalue, board):
        """Words of a TI-format channel are converted as such when the caller names its board type."""
        ti = self.float_format == S.FLOAT_TI and board == self.board
        pvalue[0] = S.ti_value(word) if ti else S.ieee_value(word)
        return S.ERR_NOERROR

    def _BL_ConvertTimeChannelNumericIntoSeconds(self, pwords, pseconds, time_base, board):
        pseconds[0] = time_base * ((int(pwords[0]) << 32) + int(pwords[1]))
        return S.ERR_NOERROR
