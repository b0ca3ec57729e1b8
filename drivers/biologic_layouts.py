"""Layouts of BL_GetData rows, decided from the data: technique, process, board family and NbCols.

A row is NbCols 32-bit words. "t_high"/"t_low" are the two words of the time counter, "cycle"/"blank*" integer
words, the rest floats, which are converted through the library's BL_ConvertChannelNumericIntoSingle (the
channel's float format is the library's business, as in BioLogic's own examples).

Where the layouts come from (docs/drivers.md has the table):
- CP/CA/CPLIMIT/CALIMIT rows (5 words) and the process-0 rows of GEIS/PEIS (4 words): easy-biologic
  easy_biologic/lib/data_parser.py, the same for VMP3_Fields and SP300_Fields; BioLogic's kbio/kbio_tech.py
  (as copied in CombiMatrix-AI/CombiMatrix.Py) expects 3 words after the time for CP.
- Process-1 EIS rows: easy-biologic data_parser.py: 15 words ending with the current range on VMP3-family
  boards, 14 on SP-300-family (PREMIUM) boards.
- OCV rows: kbio_tech.py get_experiment_data decides from the row length: Ewe alone, or Ewe and Ece (its
  "vmp3" case); easy-biologic: VMP3_Fields.OCV 4 words, SP300_Fields.OCV 3.
- DIGICORE (e-series) boards are grouped with the VMP3 family, as BioLogic's kbio_types.py VMP3_FAMILY lists
  VMP3E, VSP3E, SP50E and SP150E.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drivers import biologic_tables as T

STEP_ROW = ("t_high", "t_low", "Ewe", "I", "cycle")
EIS_DC_ROW = ("t_high", "t_low", "Ewe", "I")
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
EIS_ROW_PREMIUM = EIS_ROW_VMP3[:-1]  # no current range word
OCV_ROW_VMP3 = ("t_high", "t_low", "Ewe", "Ece")
OCV_ROW_PREMIUM = ("t_high", "t_low", "Ewe")

# (technique, process) -> {board family: row}
LAYOUTS: dict[tuple[int, int], dict[int, tuple[str, ...]]] = {
    **{(t, 0): dict.fromkeys(T.BOARD_FILES, STEP_ROW) for t in (T.TECH_CP, T.TECH_CPLIMIT, T.TECH_CA, T.TECH_CALIMIT)},
    **{(tech, 0): dict.fromkeys(T.BOARD_FILES, EIS_DC_ROW) for tech in (T.TECH_GEIS, T.TECH_PEIS)},
    **{
        (tech, 1): {T.ESSENTIAL: EIS_ROW_VMP3, T.PREMIUM: EIS_ROW_PREMIUM, T.DIGICORE: EIS_ROW_VMP3}
        for tech in (T.TECH_GEIS, T.TECH_PEIS)
    },
    (T.TECH_OCV, 0): {T.ESSENTIAL: OCV_ROW_VMP3, T.PREMIUM: OCV_ROW_PREMIUM, T.DIGICORE: OCV_ROW_VMP3},
}
INTEGER_WORDS = frozenset({"t_high", "t_low", "cycle", "blank0", "blank1", "blank2"})
# s: how far two records' times may disagree through single-precision rounding alone (a float32 time of a few
# hours since the technique started, or ticks times a float32 TimeBase, is good to about 1 ms).
TIME_RESOLUTION = 1e-3
PHASE_UNIT = "deg"  # Phase_Zwe of process-1 EIS rows (unconfirmed: degrees as EC-Lab displays it)


@dataclass(frozen=True)
class Layout:
    names: tuple[str, ...]
    note: str = ""  # set when the row length, not the board family, decided the layout


def row_layout(technique: int, process: int, board: int, nb_cols: int) -> Layout | None:
    """The layout of rows of ``nb_cols`` words. The board family's own layout first; a row length that
    matches another family's layout of the same technique and process is read that way (the length is what
    the instrument sent: a board type can read back wrong) with a note; anything else is None (corrupt)."""
    by_board = LAYOUTS.get((technique, process))
    if by_board is None:
        return None
    own = by_board.get(board)
    if own is not None and len(own) == nb_cols:
        return Layout(own)
    for family, names in by_board.items():
        if len(names) == nb_cols:
            return Layout(
                names,
                f"{T.TECHNIQUE_NAMES.get(technique)} process {process} rows have {nb_cols} words, the "
                f"{T.BOARD_NAMES[family]} layout, on a board that reads as {T.BOARD_NAMES.get(board, board)}",
            )
    return None


def expected_widths(technique: int, process: int) -> list[int]:
    return sorted({len(n) for n in LAYOUTS.get((technique, process), {}).values()})


def cell_voltage(data: dict[str, np.ndarray]) -> np.ndarray:
    """E_cell (WE vs CE) of decoded rows: Ewe - Ece where the row carries Ece (Ece is the counter electrode
    vs the reference, EC-Lab's "Ewe-Ece"); NaN (not measured) where it does not."""
    if "Ece" in data:
        return data["Ewe"] - data["Ece"]
    return np.full(len(data["Ewe"]), np.nan)


def in_time_order(t: np.ndarray, t_prev: float, resolution: float = TIME_RESOLUTION) -> np.ndarray:
    """Sample times strictly after ``t_prev`` and each other where they fall behind by no more than the
    rounding of the instrument's single-precision times (a chained technique's first record at the instant
    of the sweep's last point, whose time is a float32); larger inversions are left for the caller to judge."""
    out = np.array(t, dtype=float)
    before = np.maximum.accumulate(np.concatenate([[t_prev], out[:-1]])) if len(out) else out
    behind = np.flatnonzero((out <= before) & (before - out <= resolution))
    if not behind.size:
        return out
    prev = float(before[behind[0]])
    for k in range(int(behind[0]), len(out)):
        value = out[k]
        if value <= prev and prev - value <= resolution:
            out[k] = np.nextafter(prev, np.inf)
        prev = max(prev, out[k])
    return out
