"""EC-Lab Development Package (EClib) declarations for the emulated library: structures, constants, the
parameter labels each technique accepts, the data row layouts of each board family and the float encodings.

Declared here independently of drivers/biologic*.py on purpose: the emulated DLL must not share the driver's
layouts, or a layout mistake in the driver would pass its own tests. Where a layout comes from, is said next
to it (another project's code, by repository and path); tests pin these tables to those references.
"""

from __future__ import annotations

import ctypes as C

import numpy as np

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
# Firmware per board family (TChannelType_e 1/2/3), as BioLogic's C++ example of the package loads them
# (get_firmware_files: kernel.bin + Vmp_ii_0437_a6.xlx, kernel4.bin + vmp_iv_0395_aa.xlx, kernel5.bin
# without FPGA file); technique files carry no suffix / "4" / "5".
KERNEL = {ESSENTIAL: "kernel.bin", PREMIUM: "kernel4.bin", DIGICORE: "kernel5.bin"}
FPGA = {ESSENTIAL: "vmp_ii_0437_a6.xlx", PREMIUM: "vmp_iv_0395_aa.xlx", DIGICORE: ""}
ECC_SUFFIX = {ESSENTIAL: "", PREMIUM: "4", DIGICORE: "5"}
# Device code -> board family. BioLogic's kbio/kbio_types.py (as copied in CombiMatrix-AI/CombiMatrix.Py)
# groups VMP2, VMP3, BISTAT(2), MCS-200, VSP, SP-50, SP-150, FCT, CLB, HCP, MPG2xx and the e-series with the
# VMP3 (VMP3_FAMILY) and SP-100, SP-200, SP-300, VSP-300, VMP-300, SP-240, BP-300 with the VMP-300
# (VMP300_FAMILY); the e-series (VMP-3e, VSP-3e, SP-50e, SP-150e) have DIGICORE boards.
DEVICE_FAMILY = {
    **dict.fromkeys((1, 3, 4, 5, 6, 7, 10, 11, 13, 14, 15, 17, 18, 19, 22, 28, 29, 30, 31), ESSENTIAL),
    **dict.fromkeys((12, 16, 20, 21, 23, 27, 32), PREMIUM),
    **dict.fromkeys((33, 34, 35, 36), DIGICORE),
}
FIRM_NONE, FIRM_INTERPR, FIRM_KERNEL = 0, 1, 5
STATE_STOP, STATE_RUN = 0, 1
PARAM_INT32, PARAM_BOOLEAN, PARAM_SINGLE = 0, 1, 2
FLOAT_TI, FLOAT_IEEE = 0, 1
TECH_OCV, TECH_CA, TECH_CP, TECH_PEIS, TECH_GEIS, TECH_CPLIMIT, TECH_CALIMIT = 100, 101, 102, 104, 107, 155, 157
TECH_BY_FILE = {
    "ocv": TECH_OCV,
    "ca": TECH_CA,
    "cp": TECH_CP,
    "peis": TECH_PEIS,
    "geis": TECH_GEIS,
    "cplimit": TECH_CPLIMIT,
    "calimit": TECH_CALIMIT,
}
I_RANGES = {
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
I_RANGE_AUTO = 12

# --- data row layouts ------------------------------------------------------------------------------------
# Words of one BL_GetData row. "t_high"/"t_low"/"cycle"/"blank*" are integer words, the rest floats.
# Process 0 of CP/CA/CPLIMIT/CALIMIT, and of GEIS/PEIS: easy-biologic easy_biologic/lib/data_parser.py
# (VMP3_Fields and SP300_Fields alike); BioLogic's kbio/kbio_tech.py checks 3 words after the time for CP.
STEP_ROW = ("t_high", "t_low", "Ewe", "I", "cycle")
EIS_DC_ROW = ("t_high", "t_low", "Ewe", "I")
# Process 1 (one row per frequency): easy-biologic easy_biologic/lib/data_parser.py: VMP3_Fields.PEIS/GEIS
# carry 15 words ending with the current range, SP300_Fields.PEIS/GEIS 14 (no current range).
EIS_ROW_VMP3 = (
    "freq",
    "abs_Ewe",
    "abs_I",
    "Phase_Zwe",
    "Ewe",
    "I",
    "blank0",
    "abs_Ece",
    "abs_Ice",
    "Phase_Zce",
    "Ece",
    "blank1",
    "blank2",
    "t",
    "Irange",
)
EIS_ROW_VMP300 = EIS_ROW_VMP3[:14]
# OCV: BioLogic's kbio/kbio_tech.py get_experiment_data: one word after the time (Ewe) or two (Ewe, Ece, the
# "vmp3" case); easy-biologic VMP3_Fields.OCV has 4 words, SP300_Fields.OCV 3.
OCV_ROW_VMP3 = ("t_high", "t_low", "Ewe", "Ece")
OCV_ROW_VMP300 = ("t_high", "t_low", "Ewe")
# By board family; DIGICORE (e-series) is grouped with the VMP3 as BioLogic's VMP3_FAMILY does.
EIS_ROWS = {ESSENTIAL: EIS_ROW_VMP3, PREMIUM: EIS_ROW_VMP300, DIGICORE: EIS_ROW_VMP3}
OCV_ROWS = {ESSENTIAL: OCV_ROW_VMP3, PREMIUM: OCV_ROW_VMP300, DIGICORE: OCV_ROW_VMP3}
INTEGER_WORDS = frozenset({"t_high", "t_low", "cycle", "blank0", "blank1", "blank2"})


# --- float words ----------------------------------------------------------------------------------------
def ieee_words(x: np.ndarray | float) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).reshape(-1).view(np.uint32)


def ieee_value(word: int) -> float:
    return float(np.array([word], dtype=np.uint32).view(np.float32)[0])


def ti_words(x: np.ndarray | float) -> np.ndarray:
    """32-bit TI DSP floats (two's complement exponent byte, sign bit, 23-bit fraction): what channels
    reporting the TI float format put into data words, so only the library's conversion reads them right."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    out = np.full(len(x), 0x80000000, dtype=np.uint64)  # exponent -128: zero
    for k, v in enumerate(x):
        if v == 0 or not np.isfinite(v):
            continue
        a = abs(v)
        if v > 0:
            e = int(np.floor(np.log2(a)))
            f = int(round((a / 2.0**e - 1.0) * 2**23))
            sign = 0
        else:
            e = int(np.ceil(np.log2(a))) - 1
            f = int(round((2.0 - a / 2.0**e) * 2**23))
            sign = 1
        f = min(max(f, 0), 2**23 - 1)
        out[k] = ((e & 0xFF) << 24) | (sign << 23) | f
    return out.astype(np.uint32)


def ti_value(word: int) -> float:
    e = (word >> 24) & 0xFF
    e = e - 256 if e >= 128 else e
    if e == -128:
        return 0.0
    f = (word & 0x7FFFFF) / 2**23
    return (-2.0 + f) * 2.0**e if word & 0x800000 else (1.0 + f) * 2.0**e


# Labels each technique accepts; anything else makes BL_LoadTechnique fail with invalid parameters.
# easy-biologic easy_biologic/lib/technique_fields.py lists the same for OCV, CA, CP, CPLIMIT, CALIMIT, PEIS;
# the hardware labels I_Range/E_Range/Bandwidth are those BioLogic's kbio examples send.
COMMON_HW = {"I_Range", "E_Range", "Bandwidth"}
ACCEPTED = {
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
    | COMMON_HW,
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
    | COMMON_HW,
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
    | COMMON_HW,
}
ACCEPTED[TECH_CPLIMIT] = ACCEPTED[TECH_CP] | {
    "Test1_Config",
    "Test1_Value",
    "Test2_Config",
    "Test2_Value",
    "Test3_Config",
    "Test3_Value",
    "Exit_Cond",
}
ACCEPTED[TECH_CA] = {
    "Voltage_step",
    "vs_initial",
    "Duration_step",
    "Step_number",
    "Record_every_dT",
    "Record_every_dI",
    "N_Cycles",
} | COMMON_HW
ACCEPTED[TECH_CALIMIT] = ACCEPTED[TECH_CA] | {
    "Test1_Config",
    "Test1_Value",
    "Test2_Config",
    "Test2_Value",
    "Test3_Config",
    "Test3_Value",
    "Exit_Cond",
}
REQUIRED = {
    TECH_CA: {"Voltage_step", "Duration_step", "Step_number", "Record_every_dT"},
    TECH_CALIMIT: {"Voltage_step", "Duration_step", "Step_number", "Record_every_dT", "Exit_Cond"},
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
NEWER_EXTRAS = {TECH_GEIS: {"xctr"}, TECH_PEIS: {"xctr"}}


def copy_string(text: str, buf, size) -> int:
    """A string into a caller's buffer of *size bytes, as the DLL returns strings."""
    data = text.encode()
    if not buf or size[0] < len(data) + 1:
        size[0] = len(data) + 1
        return ERR_GEN_INVALIDPARAMETERS
    C.memmove(buf, data + b"\0", len(data) + 1)
    size[0] = len(data)
    return ERR_NOERROR


def define_param(label, kind, raw, index, pparam) -> int:
    """Fill a TEccParam, as BL_Define*Parameter does."""
    if label is None or len(label) >= 64:
        return ERR_GEN_INVALIDPARAMETERS
    p = pparam.contents
    p.ParamStr = label
    p.ParamType, p.ParamVal, p.ParamIndex = kind, raw, index
    return ERR_NOERROR


def signatures() -> dict[str, tuple]:
    """The DLL's functions as (restype, *argtypes) for ctypes callbacks (BLFunctions.h)."""
    P = C.POINTER
    i32, u8, u32, f32, b = C.c_int32, C.c_uint8, C.c_uint32, C.c_float, C.c_bool
    return {
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
