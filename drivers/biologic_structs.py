"""EClib (EC-Lab Development Package DLL) structures and function signatures, and loading the DLL.

Structures follow BLStructs.h, packed to 4 bytes; BioLogic's kbio/kbio_types.py (as copied in
CombiMatrix-AI/CombiMatrix.Py) declares the same fields in the same order for TDeviceInfos, TCurrentValues,
TDataInfos and TEccParam(s). TChannelInfos there ends at NbOfTechniques; the two words after it here
(FloatFormat, CPUCIE) are never read by the driver and only make the buffer larger than the library writes.
"""

from __future__ import annotations

import ctypes as C
import os
import sys
from typing import Any

from daq.core.errors import InstrumentError
from drivers import biologic_tables as T

DEFAULT_DLL_DIR = r"C:\EC-Lab Development Package\lib"


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


P = C.POINTER
SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "BL_GetLibVersion": (C.c_int32, [C.c_char_p, P(C.c_uint32)]),
    "BL_GetErrorMsg": (C.c_int32, [C.c_int32, C.c_char_p, P(C.c_uint32)]),
    "BL_Connect": (C.c_int32, [C.c_char_p, C.c_uint8, P(C.c_int32), P(DeviceInfos)]),
    "BL_Disconnect": (C.c_int32, [C.c_int32]),
    "BL_TestConnection": (C.c_int32, [C.c_int32]),
    "BL_IsChannelPlugged": (C.c_bool, [C.c_int32, C.c_uint8]),
    "BL_GetChannelInfos": (C.c_int32, [C.c_int32, C.c_uint8, P(ChannelInfos)]),
    "BL_GetChannelBoardType": (C.c_int32, [C.c_int32, C.c_uint8, P(C.c_uint32)]),
    "BL_GetChannelFloatFormat": (C.c_int32, [C.c_int32, C.c_uint8, P(C.c_int32)]),
    "BL_LoadFirmware": (
        C.c_int32,
        [C.c_int32, P(C.c_uint8), P(C.c_int32), C.c_uint8, C.c_bool, C.c_bool, C.c_char_p, C.c_char_p],
    ),
    "BL_DefineBoolParameter": (C.c_int32, [C.c_char_p, C.c_bool, C.c_int32, P(EccParam)]),
    "BL_DefineSglParameter": (C.c_int32, [C.c_char_p, C.c_float, C.c_int32, P(EccParam)]),
    "BL_DefineIntParameter": (C.c_int32, [C.c_char_p, C.c_int32, C.c_int32, P(EccParam)]),
    "BL_LoadTechnique": (C.c_int32, [C.c_int32, C.c_uint8, C.c_char_p, EccParams, C.c_bool, C.c_bool, C.c_bool]),
    "BL_StartChannel": (C.c_int32, [C.c_int32, C.c_uint8]),
    "BL_StopChannel": (C.c_int32, [C.c_int32, C.c_uint8]),
    "BL_GetCurrentValues": (C.c_int32, [C.c_int32, C.c_uint8, P(CurrentValues)]),
    "BL_GetData": (C.c_int32, [C.c_int32, C.c_uint8, P(DataBuffer), P(DataInfos), P(CurrentValues)]),
    "BL_ConvertChannelNumericIntoSingle": (C.c_int32, [C.c_uint32, P(C.c_float), C.c_uint32]),
    "BL_ConvertNumericIntoSingle": (C.c_int32, [C.c_uint32, P(C.c_float)]),
    "BL_UpdateParameters": (C.c_int32, [C.c_int32, C.c_uint8, C.c_int32, EccParams, C.c_char_p]),
}
OPTIONAL = {
    "BL_GetChannelFloatFormat",
    "BL_ConvertNumericIntoSingle",
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
