"""EC-Lab Development Package (EClib) constants the BioLogic driver needs, in one place.

Everything here comes from the package's BLStructs.h / technique reference (enums, error codes, board
families, technique file names, data column layouts). Technique parameter *labels* are kept in one table
per package version because the vendor has changed them between releases; the driver picks the table
from BL_GetLibVersion at connect time and refuses to guess for a version it has no table for.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- error codes (TErrorCodes_e) -----------------------------------------------------------------------
# Every code the library documents, with the name from the header and a message an operator can act on.
ERROR_CODES: dict[int, tuple[str, str]] = {
    0: ("ERR_NOERROR", "no error"),
    # general
    -1: ("ERR_GEN_NOTCONNECTED", "no instrument connected"),
    -2: ("ERR_GEN_CONNECTIONINPROGRESS", "connection in progress"),
    -3: ("ERR_GEN_CHANNELNOTPLUGGED", "selected channel(s) unplugged"),
    -4: ("ERR_GEN_INVALIDPARAMETERS", "invalid function parameters"),
    -5: ("ERR_GEN_FILENOTEXISTS", "selected file does not exist"),
    -6: (
        "ERR_GEN_FUNCTIONFAILED",
        "function failed (often a technique file that does not match the board type or the loaded firmware)",
    ),
    -7: ("ERR_GEN_NOCHANNELSELECTED", "no channel selected"),
    -8: ("ERR_GEN_INVALIDCONF", "invalid instrument configuration"),
    -9: (
        "ERR_GEN_ECLAB_LOADED",
        "EC-Lab firmware loaded on the instrument (close EC-Lab or reload the library firmware)",
    ),
    -10: ("ERR_GEN_LIBNOTCORRECTLYLOADED", "library not correctly loaded in memory"),
    -11: ("ERR_GEN_USBLIBRARYERROR", "USB library not correctly loaded in memory"),
    -12: ("ERR_GEN_FUNCTIONINPROGRESS", "function of the library already in progress"),
    -13: ("ERR_GEN_CHANNEL_RUNNING", "selected channel(s) already used"),
    -14: ("ERR_GEN_DEVICE_NOTALLOWED", "device not allowed"),
    -15: ("ERR_GEN_UPDATEPARAMETERS", "invalid update function parameters"),
    # instrument
    -101: ("ERR_INSTR_VMEERROR", "internal instrument communication failed"),
    -102: ("ERR_INSTR_TOOMANYDATA", "too many data to transfer from the instrument"),
    -103: ("ERR_INSTR_RESPNOTPOSSIBLE", "selected channel(s) unplugged (device error)"),
    -104: ("ERR_INSTR_RESPERROR", "instrument response error"),
    -105: ("ERR_INSTR_MSGSIZEERROR", "invalid message size"),
    # communication
    -200: ("ERR_COMM_COMMFAILED", "communication failed with the instrument"),
    -201: (
        "ERR_COMM_CONNECTIONFAILED",
        "cannot establish connection with the instrument (check cable, "
        "address, and that no other program holds it; USB is less reliable "
        "than Ethernet)",
    ),
    -202: ("ERR_COMM_WAITINGACK", "waiting for the instrument response (no answer in time)"),
    -203: ("ERR_COMM_INVALIDIPADDRESS", "invalid IP address"),
    -204: ("ERR_COMM_ALLOCMEMFAILED", "cannot allocate memory in the instrument"),
    -205: ("ERR_COMM_LOADFIRMWAREFAILED", "cannot load firmware into selected channel(s)"),
    -206: ("ERR_COMM_INCOMPATIBLESERVER", "communication firmware not compatible with the library"),
    -207: ("ERR_COMM_MAXCONNREACHED", "maximum number of allowed connections reached"),
    # firmware
    -300: ("ERR_FIRM_FIRMFILENOTEXISTS", "cannot find the kernel firmware file"),
    -301: ("ERR_FIRM_FIRMFILEACCESSFAILED", "cannot read the kernel firmware file"),
    -302: ("ERR_FIRM_FIRMINVALIDFILE", "invalid kernel firmware file"),
    -303: ("ERR_FIRM_FIRMLOADINGFAILED", "cannot load the kernel firmware on the selected channel(s)"),
    -304: ("ERR_FIRM_XILFILENOTEXISTS", "cannot find the FPGA (xilinx) file"),
    -305: ("ERR_FIRM_XILFILEACCESSFAILED", "cannot read the FPGA (xilinx) file"),
    -306: ("ERR_FIRM_XILINVALIDFILE", "invalid FPGA (xilinx) file"),
    -307: ("ERR_FIRM_XILLOADINGFAILED", "cannot load the FPGA (xilinx) file on the selected channel(s)"),
    -308: ("ERR_FIRM_FIRMWARENOTLOADED", "no firmware loaded on the selected channel(s)"),
    -309: ("ERR_FIRM_FIRMWAREINCOMPATIBLE", "loaded firmware not compatible with the library"),
    # technique
    -400: ("ERR_TECH_ECCFILENOTEXISTS", "cannot find the selected technique (.ecc) file"),
    -401: (
        "ERR_TECH_INCOMPATIBLEECC",
        "technique (.ecc) file not compatible with the channel firmware (wrong board family or EC-Lab firmware loaded)",
    ),
    -402: ("ERR_TECH_ECCFILECORRUPTED", "technique (.ecc) file corrupted"),
    -403: ("ERR_TECH_LOADTECHNIQUEFAILED", "cannot load the technique file"),
    -404: ("ERR_TECH_DATACORRUPTED", "data returned by the instrument are corrupted"),
    -405: ("ERR_TECH_MEMFULL", "cannot load techniques: instrument memory full"),
}


def error_text(code: int) -> str:
    """One line naming an EClib return code; unknown codes are reported as such, never dropped."""
    if code in ERROR_CODES:
        name, message = ERROR_CODES[code]
        return f"{name} ({code}): {message}"
    return f"unknown EClib error code {code}"


# --- devices, boards, firmware --------------------------------------------------------------------------
DEVICE_CODES: dict[int, str] = {
    0: "VMP",
    1: "VMP2",
    2: "MPG",
    3: "BISTAT",
    4: "MCS-200",
    5: "VMP3",
    6: "VSP",
    7: "HCP-803",
    8: "EPP-400",
    9: "EPP-4000",
    10: "BISTAT2",
    11: "FCT-150S",
    12: "VMP-300",
    13: "SP-50",
    14: "SP-150",
    15: "FCT-50S",
    16: "SP-300",
    17: "CLB-500",
    18: "HCP-1005",
    19: "CLB-2000",
    20: "VSP-300",
    21: "SP-200",
    22: "MPG2",
    23: "SP-100",
    24: "MOSLED",
    26: "NIKITA",
    27: "SP-240",
    28: "MPG-205",
    29: "MPG-210",
    30: "MPG-220",
    31: "MPG-240",
    32: "BP-300",
    33: "VMP-3e",
    34: "VSP-3e",
    35: "SP-50e",
    36: "SP-150e",
    255: "unknown",
}

# Board families returned by BL_GetChannelBoardType (TChannelType_e).
ESSENTIAL, PREMIUM, DIGICORE = 1, 2, 3
BOARD_NAMES = {ESSENTIAL: "ESSENTIAL (VMP3 technology)", PREMIUM: "PREMIUM (VMP-300 technology)", DIGICORE: "DIGICORE"}


@dataclass(frozen=True)
class BoardFiles:
    firmware: str  # kernel file for BL_LoadFirmware
    fpga: str  # xilinx file ("" = none needed)
    ecc_suffix: str  # technique files: cp.ecc, cp4.ecc, cp5.ecc


# Firmware by board type as BioLogic's C++ example of the package loads it (get_firmware_files; seen in a
# public repository whose name the search did not give: unconfirmed by path); technique suffixes "", "4", "5"
# as PyExpLabSys PyExpLabSys/drivers/bio_logic.py (SP-300 series: "4") and easy-biologic's techniques-6.08
# folder (cplimit5.ecc, ca5.ecc ...) name them.
BOARD_FILES: dict[int, BoardFiles] = {
    ESSENTIAL: BoardFiles("kernel.bin", "Vmp_ii_0437_a6.xlx", ""),
    PREMIUM: BoardFiles("kernel4.bin", "Vmp_iv_0395_aa.xlx", "4"),
    DIGICORE: BoardFiles("kernel5.bin", "", "5"),
}

# Which family a device belongs to, to cross-check a board type that reads back wrong: BioLogic's
# kbio/kbio_types.py (CombiMatrix-AI/CombiMatrix.Py) VMP3_FAMILY and VMP300_FAMILY; PyExpLabSys's SP300SERIES
# also puts the SP-100 and SP-240 with the SP-300. The e-series (VMP3_FAMILY there) carry DIGICORE boards.
DEVICE_FAMILY: dict[int, int] = {
    **dict.fromkeys((1, 3, 4, 5, 6, 7, 10, 11, 13, 14, 15, 17, 18, 19, 22, 28, 29, 30, 31), ESSENTIAL),
    **dict.fromkeys((12, 16, 20, 21, 23, 27, 32), PREMIUM),
    **dict.fromkeys((33, 34, 35, 36), DIGICORE),
}

# TFirmwareCode_e
FIRM_NONE, FIRM_INTERPR, FIRM_UNKNOWN, FIRM_KERNEL, FIRM_INVALID, FIRM_ECAL = 0, 1, 4, 5, 8, 10
FIRMWARE_NAMES = {
    FIRM_NONE: "none",
    FIRM_INTERPR: "EC-Lab interpreter",
    FIRM_UNKNOWN: "unknown",
    FIRM_KERNEL: "library kernel",
    FIRM_INVALID: "invalid",
    FIRM_ECAL: "calibration",
}

# TChannelState_e
STATE_STOP, STATE_RUN, STATE_PAUSE = 0, 1, 2
# TParamType_e
PARAM_INT32, PARAM_BOOLEAN, PARAM_SINGLE = 0, 1, 2
# TFloatFormat_e
FLOAT_TI, FLOAT_IEEE = 0, 1

# --- ranges --------------------------------------------------------------------------------------------
# TIntensityRange_e: code -> full scale (A). AUTO (12) is not allowed for current-controlled techniques.
I_RANGES: dict[int, float] = {
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
# TVoltageRange_e: code -> +/- full scale (V)
E_RANGES: dict[int, float] = {0: 2.5, 1: 5.0, 2: 10.0}
E_RANGE_AUTO = 3
BANDWIDTH_DEFAULT = 5

# --- techniques ----------------------------------------------------------------------------------------
TECH_OCV, TECH_CA, TECH_CP, TECH_PEIS, TECH_GEIS, TECH_CPLIMIT, TECH_CALIMIT = 100, 101, 102, 104, 107, 155, 157
TECHNIQUE_NAMES = {
    0: "NONE",
    TECH_OCV: "OCV",
    TECH_CA: "CA",
    TECH_CP: "CP",
    TECH_PEIS: "PEIS",
    TECH_GEIS: "GEIS",
    TECH_CPLIMIT: "CPLIMIT",
    TECH_CALIMIT: "CALIMIT",
}
TECHNIQUE_FILES = {
    TECH_OCV: "ocv",
    TECH_CA: "ca",
    TECH_CP: "cp",
    TECH_PEIS: "peis",
    TECH_GEIS: "geis",
    TECH_CPLIMIT: "cplimit",
    TECH_CALIMIT: "calimit",
}


def technique_file(technique: int, board: int) -> str:
    """The .ecc file for a technique on a board family (cp.ecc / cp4.ecc / cp5.ecc)."""
    return f"{TECHNIQUE_FILES[technique]}{BOARD_FILES[board].ecc_suffix}.ecc"


MAX_STEPS = 100  # CP/CPLIMIT step tables
DATA_BUFFER_WORDS = 1000  # TDataBuffer_t

# Limit tests of CPLIMIT/CALIMIT: Test<n>_Config bit field (active bit 0, logic bit 1, sign bits 2.., variable
# bits 5-6: 00 = Ewe, 11 = I); Exit_Cond 0 = next step, 1 = next technique, 2 = stop the experiment.
# Unconfirmed: the encoding is that of a public kbio-based driver's get_test_magic (active + 2*and + 4*max +
# 96*current); no BioLogic document was found.
TEST_EWE_BELOW, TEST_EWE_ABOVE, TEST_OFF = 1, 5, 0
TEST_I_BELOW, TEST_I_ABOVE = 97, 101
EXIT_NEXT_STEP, EXIT_NEXT_TECHNIQUE, EXIT_STOP = 0, 1, 2

# --- parameter labels, per package version --------------------------------------------------------------
# label -> type ("int" | "bool" | "single"). A technique's table lists every label the driver sends.
_OCV = {"Rest_time_T": "single", "Record_every_dE": "single", "Record_every_dT": "single", "E_Range": "int"}
_CP = {
    "Current_step": "single",
    "vs_initial": "bool",
    "Duration_step": "single",
    "Step_number": "int",
    "Record_every_dT": "single",
    "Record_every_dE": "single",
    "N_Cycles": "int",
    "I_Range": "int",
    "E_Range": "int",
    "Bandwidth": "int",
}
_CA = {
    "Voltage_step": "single",
    "vs_initial": "bool",
    "Duration_step": "single",
    "Step_number": "int",
    "Record_every_dT": "single",
    "Record_every_dI": "single",
    "N_Cycles": "int",
    "I_Range": "int",
    "E_Range": "int",
    "Bandwidth": "int",
}
_TESTS = {
    "Test1_Config": "int",
    "Test1_Value": "single",
    "Test2_Config": "int",
    "Test2_Value": "single",
    "Test3_Config": "int",
    "Test3_Value": "single",
    "Exit_Cond": "int",
}
_CALIMIT = {**_CA, **_TESTS}
_CPLIMIT = {
    **_CP,
    "Test1_Config": "int",
    "Test1_Value": "single",
    "Test2_Config": "int",
    "Test2_Value": "single",
    "Test3_Config": "int",
    "Test3_Value": "single",
    "Exit_Cond": "int",
}
_GEIS = {
    "vs_initial": "bool",
    "vs_final": "bool",
    "Initial_Current_step": "single",
    "Final_Current_step": "single",
    "Duration_step": "single",
    "Step_number": "int",
    "Record_every_dT": "single",
    "Record_every_dE": "single",
    "Final_frequency": "single",
    "Initial_frequency": "single",
    "sweep": "bool",
    "Amplitude_Current": "single",
    "Frequency_number": "int",
    "Average_N_times": "int",
    "Correction": "bool",
    "Wait_for_steady": "single",
    "I_Range": "int",
    "E_Range": "int",
    "Bandwidth": "int",
}
_PEIS = {
    "vs_initial": "bool",
    "vs_final": "bool",
    "Initial_Voltage_step": "single",
    "Final_Voltage_step": "single",
    "Duration_step": "single",
    "Step_number": "int",
    "Record_every_dT": "single",
    "Record_every_dI": "single",
    "Final_frequency": "single",
    "Initial_frequency": "single",
    "sweep": "bool",
    "Amplitude_Voltage": "single",
    "Frequency_number": "int",
    "Average_N_times": "int",
    "Correction": "bool",
    "Wait_for_steady": "single",
    "I_Range": "int",
    "E_Range": "int",
    "Bandwidth": "int",
}


_TABLE = {
    TECH_OCV: _OCV,
    TECH_CP: _CP,
    TECH_CPLIMIT: _CPLIMIT,
    TECH_CA: _CA,
    TECH_CALIMIT: _CALIMIT,
    TECH_GEIS: _GEIS,
    TECH_PEIS: _PEIS,
}


@dataclass(frozen=True)
class LabelTable:
    """The parameter labels of one package version. ``optional`` labels exist in that version but the
    driver only sends them when asked (e.g. the EIS extra-controls word of newer packages)."""

    version: str
    labels: dict[int, dict[str, str]]
    optional: dict[int, dict[str, str]]


LABEL_TABLES: dict[str, LabelTable] = {
    # EC-Lab Development Package 6.0x (C/Delphi/LabVIEW era).
    "6.0": LabelTable("6.0", _TABLE, {}),
    # 6.04 and later (Python "kbio" examples): same core labels; EIS techniques accept an extra-controls word.
    "6.04": LabelTable(
        "6.04",
        _TABLE,
        {TECH_GEIS: {"xctr": "int"}, TECH_PEIS: {"xctr": "int"}},
    ),
}


def label_table_for(version: str) -> LabelTable | None:
    """Table for a BL_GetLibVersion string such as "6.06" or "6.03.2"; None when no table covers it."""
    parts = version.strip().split(".")
    try:
        major, minor = int(parts[0]), int(parts[1][:2]) if len(parts) > 1 else 0
    except (ValueError, IndexError):
        return None
    if major != 6:
        return None
    return LABEL_TABLES["6.04"] if minor >= 4 else LABEL_TABLES["6.0"]


def i_range_for(current: float, headroom: float = 1.0) -> int:
    """Smallest current range whose full scale holds ``headroom * |current|``."""
    need = abs(current) * headroom
    for code in sorted(I_RANGES, key=I_RANGES.get):
        if I_RANGES[code] >= need:
            return code
    raise ValueError(f"{current:g} A exceeds the largest current range (1 A)")


def e_range_for(v_min: float, v_max: float) -> int:
    span = max(abs(v_min), abs(v_max))
    for code in sorted(E_RANGES, key=E_RANGES.get):
        if E_RANGES[code] >= span:
            return code
    return E_RANGE_AUTO


@dataclass(frozen=True)
class DeviceRatings:
    """Nominal per-channel ratings by device model (datasheet values; the standard booster-less channel)."""

    max_current: float  # A
    max_voltage: float  # V compliance
    eis_max_frequency: float  # Hz (0 = no impedance board)
    eis_min_frequency: float = 10e-6


DEVICE_RATINGS: dict[int, DeviceRatings] = {
    5: DeviceRatings(0.4, 10.0, 1e6),  # VMP3 (with EIS board)
    12: DeviceRatings(0.4, 10.0, 7e6),  # VMP-300
    14: DeviceRatings(0.8, 10.0, 1e6),  # SP-150
    16: DeviceRatings(0.5, 10.0, 7e6),  # SP-300
    20: DeviceRatings(0.5, 10.0, 7e6),  # VSP-300
    21: DeviceRatings(0.5, 10.0, 7e6),  # SP-200
    36: DeviceRatings(0.8, 10.0, 1e6),  # SP-150e
}
DEFAULT_RATINGS = DeviceRatings(0.4, 10.0, 1e6)
