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
