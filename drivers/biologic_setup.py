"""Connecting a BioLogic channel: board family, firmware, the channel's current ranges and capabilities.

The board family (BL_GetChannelBoardType) picks the kernel/FPGA and technique files; a board type that
disagrees with the device model's family (a known misread) is retried once with the family's files. The
channel's MaxIRange/MinIRange bound every current range the driver asks for.
"""

from __future__ import annotations

import ctypes as C
from typing import Any

from daq.core.capabilities import Capabilities, InstrumentInfo
from daq.core.errors import InstrumentError
from drivers import biologic_tables as T
from drivers.biologic_structs import ChannelInfos, CurrentValues


class ChannelSetup:
    """Mixed into BiologicPotentiostat: what connect() does on the channel."""

    # --- connect ------------------------------------------------------------------------------------------
    def _capabilities(self: Any, ratings: T.DeviceRatings, zboard: bool, max_range: int) -> Capabilities:
        return Capabilities(
            max_current=min(ratings.max_current, T.I_RANGES[max_range]),
            current_resolution=1e-12,
            max_voltage=ratings.max_voltage,
            min_sample_period=2e-4,
            galvanostatic=True,
            potentiostatic=True,
            eis_galvanostatic=zboard,
            eis_potentiostatic=zboard,
            eis_min_frequency=ratings.eis_min_frequency,
            eis_max_frequency=ratings.eis_max_frequency,
            reference_electrode=True,
            hardware_voltage_limit=True,
        )

    def _prepare_channel(self: Any) -> InstrumentInfo:
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
        self.i_ranges = self._channel_ranges(infos)
        if self.conn.has("BL_GetChannelFloatFormat"):
            fmt = C.c_int32(T.FLOAT_IEEE)
            c.check(c.call("BL_GetChannelFloatFormat", c.conn_id, ch, C.byref(fmt)), f"{self.name}: float format")
            self.float_format = fmt.value
        cv = CurrentValues()
        c.check(c.call("BL_GetCurrentValues", c.conn_id, ch, C.byref(cv)), f"{self.name}: reading the channel")
        if cv.State != T.STATE_STOP:  # left running by someone else: stopping is the safe state
            c.check(c.call("BL_StopChannel", c.conn_id, ch), f"{self.name}: stopping a running channel")
        ratings = T.DEVICE_RATINGS.get(device_code, T.DEFAULT_RATINGS)
        self.capabilities = self._capabilities(ratings, bool(infos.Zboard), self.i_ranges[1])
        model = T.DEVICE_CODES.get(device_code, f"device {device_code}")
        return InstrumentInfo(
            "BioLogic",
            model,
            str(infos.BoardSerialNumber),
            f"channel {infos.FirmwareVersion}, comm {c.device.FirmwareVersion}, EClib {c.lib_version}, "
            f"{T.BOARD_NAMES[self.board]} board, dead-man {self._deadman:g} s",
            "drivers.biologic",
            f"eclib://{c.address}/ch{self.channel + 1}",
        )

    def _channel_ranges(self: Any, infos: ChannelInfos) -> tuple[int, int]:
        """(MinIRange, MaxIRange) as fixed-range codes; a booster or unknown code caps at the 1 A range."""
        hi = infos.MaxIRange if infos.MaxIRange in T.I_RANGES else max(T.I_RANGES)
        lo = infos.MinIRange if infos.MinIRange in T.I_RANGES and infos.MinIRange <= hi else min(T.I_RANGES)
        if infos.MaxIRange not in T.I_RANGES:
            self.warnings.append(f"MaxIRange reads {infos.MaxIRange}: current ranges capped at 1 A")
        return lo, hi

    def _channel_infos(self: Any) -> ChannelInfos:
        infos = ChannelInfos()
        self.conn.check(
            self.conn.call("BL_GetChannelInfos", self.conn.conn_id, C.c_uint8(self.channel), C.byref(infos)),
            f"{self.name}: reading channel information",
        )
        return infos

    def _load_firmware(self: Any, force: bool = False) -> None:
        """Library kernel on this channel only. EC-Lab's own firmware is replaced (forced reload), because
        techniques fail with -401/-6 against it."""
        c = self.conn
        infos = self._channel_infos()
        if infos.FirmwareCode == T.FIRM_KERNEL and not force:
            return
        force = force or infos.FirmwareCode != T.FIRM_NONE
        for _ in range(2):
            mask, results = (C.c_uint8 * 16)(), (C.c_int32 * 16)()
            mask[self.channel] = 1
            kernel, fpga = c.firmware_files(self.board)
            code = c.call(
                "BL_LoadFirmware", c.conn_id, mask, results, C.c_uint8(16), False, force, kernel, fpga,
                timeout=max(c.call_timeout, 60.0),
            )  # fmt: skip
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
