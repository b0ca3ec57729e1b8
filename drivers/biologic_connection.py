"""One BL_Connect to a BioLogic instrument, shared by its channel drivers; every library call goes through
one worker thread (the library refuses concurrent calls) and is bounded in time."""

from __future__ import annotations

import ctypes as C
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import numpy as np

from daq.core.errors import InstrumentError
from drivers import biologic_tables as T
from drivers.biologic_structs import OPTIONAL, SIGNATURES, DeviceInfos, EccParam, load_eclib


class CallTimeout(Exception):
    """A library call that did not return in time (the worker thread may still be stuck in it)."""


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
        for name, (restype, argtypes) in SIGNATURES.items():
            fn = getattr(dll, name, None)
            if fn is None:
                if name in OPTIONAL:
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
            except (InstrumentError, CallTimeout):
                pass
            self.conn_id = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    # --- calls ---------------------------------------------------------------------------------------------
    def has(self, name: str) -> bool:
        return name in self.fns

    def call(self, name: str, *args: Any, timeout: float | None = None) -> Any:
        """Run one library call on the worker thread; CallTimeout if it does not return in time."""
        if self._executor is None:
            raise InstrumentError(f"EClib connection to {self.address} is closed")
        future = self._executor.submit(self.fns[name], *args)
        try:
            return future.result(timeout=self.call_timeout if timeout is None else timeout)
        except FutureTimeout:
            raise CallTimeout(
                f"{name} did not return within {self.call_timeout if timeout is None else timeout:g} s"
            ) from None

    @staticmethod
    def check(code: int, what: str) -> None:
        if code < 0:
            raise InstrumentError(f"{what}: {T.error_text(code)}")

    def singles(self, words: np.ndarray, board: int) -> np.ndarray:
        """Data words to floats through BL_ConvertChannelNumericIntoSingle, as BioLogic's examples convert
        every value (the channel's float format is the library's business); one worker call per column."""
        fn = self.fns["BL_ConvertChannelNumericIntoSingle"]

        def convert() -> tuple[np.ndarray, int]:
            value, out = C.c_float(), np.empty(len(words))
            for i, w in enumerate(words.tolist()):
                code = fn(C.c_uint32(w), C.byref(value), C.c_uint32(board))
                if code < 0:
                    return out, code
                out[i] = value.value
            return out, 0

        if self._executor is None:
            raise InstrumentError(f"EClib connection to {self.address} is closed")
        future = self._executor.submit(convert)
        try:
            out, code = future.result(timeout=self.call_timeout)
        except FutureTimeout:
            raise CallTimeout(
                f"BL_ConvertChannelNumericIntoSingle did not return within {self.call_timeout:g} s"
            ) from None
        self.check(code, "converting data")
        return out

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
