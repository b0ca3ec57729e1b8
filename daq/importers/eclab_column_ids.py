"""EC-Lab .mpr data column ids: the binary type and label of each id, from the public tables.

Sources (both read independently of each other, cited by repository and path):

- galvani, ``galvani/BioLogic.py`` (``VMPdata_colID_dtype_map``), repository echemdata/galvani;
- yadg, ``src/yadg/extractors/eclab/mpr_columns.py`` (``data_columns``, ``conflict_columns``),
  repository dgbowl/yadg.

Where both list an id, galvani's label is kept (it carries EC-Lab's own unit); the labels the two
disagree on are noted inline. Ids of 256 and above that neither lists exactly are read as
``id - 256``, the rule yadg applies (``idd = id % 256`` in ``parse_columns``): e.g. 434/178 (Q-Qo),
438/182 (step time), 486/230 (|Ewe h2|) carry the same meaning in both tables. The meaning of a column
is then derived from its label (see ``label_column`` in _biologic.py), so a new id needs one line here.
"""

from __future__ import annotations

# id -> (EC-Lab label "name/unit", numpy dtype of the value in a record); "g" galvani, "y" yadg.
PUBLIC_COLUMN_IDS: dict[int, tuple[str, str]] = {
    4: ("time/s", "<f8"),  # g+y
    5: ("control/V/mA", "<f4"),  # g+y
    6: ("Ewe/V", "<f4"),  # g+y
    7: ("dq/mA.h", "<f8"),  # g+y
    8: ("I/mA", "<f4"),  # g+y
    9: ("Ece/V", "<f4"),  # g+y
    11: ("<I>/mA", "<f8"),  # g+y
    13: ("(Q-Qo)/mA.h", "<f8"),  # g+y
    15: ("Phase(Z1)/deg", "<f4"),  # y
    16: ("Analog IN 1/V", "<f4"),  # g+y
    17: ("Analog IN 2/V", "<f4"),  # g+y
    19: ("control/V", "<f4"),  # g+y
    20: ("control/mA", "<f4"),  # g+y
    23: ("dQ/mA.h", "<f8"),  # g+y
    24: ("cycle number", "<f8"),  # g+y
    26: ("Rapp/Ohm", "<f4"),  # g
    27: ("Ewe-Ece/V", "<f4"),  # g
    32: ("freq/Hz", "<f4"),  # g+y
    33: ("|Ewe|/V", "<f4"),  # g+y
    34: ("|I|/A", "<f4"),  # g+y
    35: ("Phase(Z)/deg", "<f4"),  # g+y
    36: ("|Z|/Ohm", "<f4"),  # g+y
    37: ("Re(Z)/Ohm", "<f4"),  # g+y
    38: ("-Im(Z)/Ohm", "<f4"),  # g+y
    39: ("I Range", "<u2"),  # g+y
    45: ("|Z1|/Ohm", "<f4"),  # y
    46: ("|Z2|/Ohm", "<f4"),  # y
    69: ("R/Ohm", "<f4"),  # g+y (yadg: Rwe/Ohm)
    70: ("P/W", "<f4"),  # g+y (yadg: Pwe/W)
    74: ("|Energy|/W.h", "<f8"),  # g+y
    75: ("Analog OUT/V", "<f4"),  # g+y
    76: ("<I>/mA", "<f4"),  # g+y
    77: ("<Ewe>/V", "<f4"),  # g+y
    78: ("Cs-2/µF-2", "<f4"),  # g+y
    96: ("|Ece|/V", "<f4"),  # g+y
    98: ("Phase(Zce)/deg", "<f4"),  # g+y
    99: ("|Zce|/Ohm", "<f4"),  # g+y
    100: ("Re(Zce)/Ohm", "<f4"),  # g+y
    101: ("-Im(Zce)/Ohm", "<f4"),  # g+y
    105: ("-Im(Z1)/Ohm", "<f4"),  # y
    106: ("-Im(Z2)/Ohm", "<f4"),  # y
    110: ("Energy ce/W.h", "<f8"),  # y
    112: ("Energy we/W.h", "<f8"),  # y
    115: ("Energy ce charge/W.h", "<f8"),  # y
    116: ("Energy ce discharge/W.h", "<f8"),  # y
    123: ("Energy charge/W.h", "<f8"),  # g+y
    124: ("Energy discharge/W.h", "<f8"),  # g+y
    125: ("Capacitance charge/µF", "<f8"),  # g+y
    126: ("Capacitance discharge/µF", "<f8"),  # g+y
    131: ("Ns", "<u2"),  # g+y
    135: ("<E1>/V", "<f4"),  # y
    136: ("<E2>/V", "<f4"),  # y
    163: ("|Estack|/V", "<f4"),  # g+y
    166: ("Phase(Zstack)/deg", "<f4"),  # y
    167: ("|Zstack|/Ohm", "<f4"),  # y
    168: ("Rcmp/Ohm", "<f4"),  # g+y
    169: ("Cs/µF", "<f4"),  # g+y
    172: ("Cp/µF", "<f4"),  # g+y
    173: ("Cp-2/µF-2", "<f4"),  # g+y
    174: ("<Ewe>/V", "<f4"),  # g+y
    175: ("|Zwe-ce|/Ohm", "<f4"),  # y
    176: ("Re(Zwe-ce)/Ohm", "<f4"),  # y
    177: ("-Im(Zwe-ce)/Ohm", "<f4"),  # y
    178: ("(Q-Qo)/C", "<f4"),  # g+y
    179: ("dQ/C", "<f4"),  # g+y
    182: ("step time/s", "<f8"),  # y
    185: ("<Ece>/V", "<f4"),  # y
    206: ("Temperature/°C", "<f4"),  # y
    211: ("Q charge/discharge/mA.h", "<f8"),  # g+y (yadg: unit C; mA.h checked on real files)
    212: ("half cycle", "<u4"),  # g+y
    213: ("z cycle", "<u4"),  # g+y
    215: ("<Ece>/V", "<f4"),  # y
    217: ("THD Ewe/%", "<f4"),  # g+y
    218: ("THD I/%", "<f4"),  # g+y
    219: ("THD Ece/%", "<f4"),  # y
    220: ("NSD Ewe/%", "<f4"),  # g+y
    221: ("NSD I/%", "<f4"),  # g+y
    222: ("NSD Ece/%", "<f4"),  # y
    223: ("NSR Ewe/%", "<f4"),  # g+y
    224: ("NSR I/%", "<f4"),  # g+y
    225: ("NSR Ece/%", "<f4"),  # y
    230: ("|Ewe h2|/V", "<f4"),  # g+y
    231: ("|Ewe h3|/V", "<f4"),  # g+y
    232: ("|Ewe h4|/V", "<f4"),  # g+y
    233: ("|Ewe h5|/V", "<f4"),  # g+y
    234: ("|Ewe h6|/V", "<f4"),  # g+y
    235: ("|Ewe h7|/V", "<f4"),  # g+y
    236: ("|I h2|/A", "<f4"),  # g+y
    237: ("|I h3|/A", "<f4"),  # g+y
    238: ("|I h4|/A", "<f4"),  # g+y
    239: ("|I h5|/A", "<f4"),  # g+y
    240: ("|I h6|/A", "<f4"),  # g+y
    241: ("|I h7|/A", "<f4"),  # g+y
    242: ("|E2|/V", "<f4"),  # g+y (yadg: |Ece h2|/V)
    243: ("|Ece h3|/V", "<f4"),  # y
    244: ("|Ece h4|/V", "<f4"),  # y
    245: ("|Ece h5|/V", "<f4"),  # y
    246: ("|Ece h6|/V", "<f4"),  # y
    247: ("|Ece h7|/V", "<f4"),  # y
    248: ("Rac/Ohm", "<f4"),  # y
    249: ("Rdc/Ohm", "<f4"),  # y
    253: ("Acir or Dcir Control", "<u1"),  # y
    271: ("Phase(Z1) / deg", "<f4"),  # g
    272: ("Phase(Z2) / deg", "<f4"),  # g
    301: ("|Z1|/Ohm", "<f4"),  # g
    302: ("|Z2|/Ohm", "<f4"),  # g
    331: ("Re(Z1)/Ohm", "<f4"),  # g
    332: ("Re(Z2)/Ohm", "<f4"),  # g
    361: ("-Im(Z1)/Ohm", "<f4"),  # g
    362: ("-Im(Z2)/Ohm", "<f4"),  # g
    391: ("<E1>/V", "<f4"),  # g
    392: ("<E2>/V", "<f4"),  # g
    422: ("Phase(Zstack)/deg", "<f4"),  # g
    423: ("|Zstack|/Ohm", "<f4"),  # g
    424: ("Re(Zstack)/Ohm", "<f4"),  # g
    425: ("-Im(Zstack)/Ohm", "<f4"),  # g
    426: ("<Estack>/V", "<f4"),  # g
    430: ("Phase(Zwe-ce)/deg", "<f4"),  # g
    431: ("|Zwe-ce|/Ohm", "<f4"),  # g
    432: ("Re(Zwe-ce)/Ohm", "<f4"),  # g
    433: ("-Im(Zwe-ce)/Ohm", "<f4"),  # g
    434: ("(Q-Qo)/C", "<f4"),  # g
    435: ("dQ/C", "<f4"),  # g
    438: ("step time/s", "<f8"),  # g
    441: ("<Ecv>/V", "<f4"),  # g
    462: ("Temperature/°C", "<f4"),  # g
    467: ("Q charge/discharge/mA.h", "<f8"),  # g
    468: ("half cycle", "<u4"),  # g
    469: ("z cycle", "<u4"),  # g
    471: ("<Ece>/V", "<f4"),  # g
    473: ("THD Ewe/%", "<f4"),  # g
    474: ("THD I/%", "<f4"),  # g
    476: ("NSD Ewe/%", "<f4"),  # g
    477: ("NSD I/%", "<f4"),  # g
    479: ("NSR Ewe/%", "<f4"),  # g
    480: ("NSR I/%", "<f4"),  # g
    486: ("|Ewe h2|/V", "<f4"),  # g
    487: ("|Ewe h3|/V", "<f4"),  # g
    488: ("|Ewe h4|/V", "<f4"),  # g
    489: ("|Ewe h5|/V", "<f4"),  # g
    490: ("|Ewe h6|/V", "<f4"),  # g
    491: ("|Ewe h7|/V", "<f4"),  # g
    492: ("|I h2|/A", "<f4"),  # g
    493: ("|I h3|/A", "<f4"),  # g
    494: ("|I h4|/A", "<f4"),  # g
    495: ("|I h5|/A", "<f4"),  # g
    496: ("|I h6|/A", "<f4"),  # g
    497: ("|I h7|/A", "<f4"),  # g
    498: ("Q charge/mA.h", "<f8"),  # g
    499: ("Q discharge/mA.h", "<f8"),  # g
    500: ("step time/s", "<f8"),  # g
    501: ("Efficiency/%", "<f8"),  # g
    502: ("Capacity/mA.h", "<f8"),  # g
    505: ("Rdc/Ohm", "<f4"),  # g
    509: ("Acir/Dcir Control", "<u1"),  # g
}

# yadg's conflict rule: id 174 is <Ewe>/V unless Ewe (6) or <Ewe> (77) is also recorded, when it is
# the phase of Z(we-ce).
CONFLICTS: dict[int, dict[int, tuple[str, str]]] = {
    174: {6: ("Phase(Zwe-ce)/deg", "<f4"), 77: ("Phase(Zwe-ce)/deg", "<f4")}
}


def public_column(cid: int, present: tuple[int, ...] = ()) -> tuple[str, str] | None:
    """(label, dtype) of a data column id, or None when no public table knows it."""
    for other, meaning in CONFLICTS.get(cid, {}).items():
        if other in present:
            return meaning
    if cid in PUBLIC_COLUMN_IDS:
        return PUBLIC_COLUMN_IDS[cid]
    if cid >= 256:
        return public_column(cid % 256, present)
    return None
