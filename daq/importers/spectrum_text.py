"""Plain impedance spectra written as text, each read into a :class:`Recording` whose rows are the
spectrum points, with one :class:`Spectrum` (one per segment in a VersaStudio file).

Formats, as independent public readers take them (impedance.py = repository ECSHackWeek/impedance.py,
``impedance/preprocessing.py``):

- Delimited tables (``.csv``, or any text whose first line names a frequency column and the Re/Im Z
  columns): columns chosen by their header names, the third column being Im Z when there is no header
  (impedance.py ``readCSV``). A name beginning ``-`` (``-Z''``, ``-Im(Z)``) holds -Im Z; units in the
  name (``(Hz)``, ``/ohm``, ``(Ω)``) are applied. PowerSuite's ``Frequency<TAB> Zre<TAB> Zimg``
  (impedance.py ``readPowerSuite``) and Autolab NOVA's ``Index;Frequency (Hz);Z' (Ω);-Z'' (Ω);...``
  (repository Ir1n-a/plots-attempts, ``Makie_EIS.jl``, reads those names) are such tables.
- ZPlot: ``ZPLOT2 ASCII``, ``key: value`` comments, a tab-separated column-name line with ``Freq(Hz)``,
  ``Z'(a)``, ``Z''(b)`` (``Time(Sec)``, ``Bias``, ``Ampl`` when present), then ``End Comments`` and
  tab-separated rows (impedance.py ``readZPlot``).
- ZPlot for Windows / ZView data files: a quoted first line ``"ZPlotW Data File: ..."``,
  ``"Z60W Data File: ..."`` or ``"ZView Calculated Data File: ..."``, free header lines, a quoted
  column-name line (``Freq(Hz)`` or ``Freq (Hz)``, ``Ampl``, ``Bias``, ``Time(Sec)``, ``Z'(a)``,
  ``Z''(b)``, ...), then comma-separated rows (impedance.py ``readZPlot`` and ``readAutolab`` read
  columns 0, 4, 5 of such rows; repository mikexstudios/impconv, ``README.md``, shows the layout).
- CH Instruments ``A.C. Impedance`` text: ``key = value`` settings, the line
  ``Freq/Hz, Z'/ohm, Z"/ohm, Z/ohm, Phase/deg``, a blank line and comma-separated rows; Z" is Im Z
  (impedance.py ``readCHInstruments``).
- Parstat: one tab-separated header line (``Potential (V)``, ``Current (A)``, ``Elapsed Time (s)``,
  ``Frequency (Hz)``, ``Zre (ohms)``, ``Zim (ohms)``...); rows with a frequency of 0 are the DC part of
  the experiment, the others the spectrum (impedance.py ``readParstat``).
- VersaStudio ``.par``: ``<Application>`` with ``Name=VersaStudio``, then ``<SegmentN>`` blocks whose
  ``Definition=`` line names the comma-separated columns (``Frequency(Hz)``, ``Z Real``, ``Z Imag``,
  ``E(V)``, ``I(A)``, ``Elapsed Time(s)``...); Z Imag is Im Z (impedance.py ``readVersaStudio`` reads
  columns 9, 14, 15 of ``<Segment1>``). Z Real/Z Imag carry no unit in the file: ohm (unconfirmed by a
  vendor document).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from daq.importers._common import fail, parse_number, si_conversion, unique_name
from daq.importers.recording import Recording, Spectrum

ZPLOT_MAGIC = "ZPLOT2 ASCII"
_PARSTAT_KEYS = ("Frequency (Hz)", "Zre (ohms)", "Zim (ohms)")


def _lines(path: Path) -> list[str]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise fail(path, f"cannot be opened ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    return text.lstrip("\ufeff").splitlines()


def is_parstat(first_line: str) -> bool:
    return all(k in first_line for k in _PARSTAT_KEYS)


def _numbers(cells: list[str], path: Path, line: int) -> list[float]:
    try:
        return [parse_number(c) for c in cells]
    except ValueError:
        raise fail(path, f"line {line}: '{' '.join(cells)[:60]}' is not a row of numbers") from None


def _recording(
    path: Path,
    fmt: str,
    cols: dict[str, np.ndarray],
    units: dict[str, str],
    labels: dict,
    segments: list[np.ndarray] | None = None,
) -> Recording:
    """The recording of a spectrum table; ``segments`` (row indices) split it into several sweeps."""
    rec = Recording(source=path, vendor="text", file_format=fmt, technique="impedance")
    n = cols["freq"].size
    if "t" not in cols:
        cols = {"t": np.full(n, np.nan), **cols}
        units = {"t": "s", **units}
        labels = {"t": "(not in the file)", **labels}
        rec.notes.append("the file states no time of each point; t is NaN")
    for k, v in cols.items():
        rec.add_column(k, v, units[k], labels[k])
    ok = np.isfinite(cols["freq"]) & (cols["freq"] > 0)
    if not np.any(ok):
        raise fail(path, "no impedance rows (no positive frequency)")
    for rows in segments or [np.arange(n)]:
        sel = rows[ok[rows]]
        if not sel.size:
            continue
        extra = {k: v[sel] for k, v in cols.items() if k not in ("freq", "Z_re", "Z_im", "t", "I", "E_we")}
        rec.spectra.append(
            Spectrum(
                frequency=cols["freq"][sel],
                Z_re=cols["Z_re"][sel],
                Z_im=cols["Z_im"][sel],
                time=cols["t"][sel],
                I_dc=cols["I"][sel] if "I" in cols else None,
                E_dc=cols["E_we"][sel] if "E_we" in cols else None,
                extra=extra,
                units={k: units[k] for k in extra},
            )
        )
    return rec


def _name_unit(name: str) -> tuple[str, str, tuple[float, float, str] | None]:
    """``(base, unit, SI conversion)`` of a column name written ``base (unit)``, ``base(unit)`` or
    ``base/unit``; the whole name is the base when what looks like a unit is not one (``Re(Z)``)."""
    m = re.match(r"^(.*?)\s*(?:\(([^()]*)\)|/\s*([^/()]+))$", name.strip())
    if m and m.group(1):
        unit = (m.group(2) if m.group(2) is not None else m.group(3)).strip()
        conv = si_conversion(re.sub(r"(Ω|Ohm|ohms)$", "ohm", unit))
        if conv is not None:
            return m.group(1).strip(), unit, conv
    return name.strip(), "", None


_FREQ = re.compile(r"^freq(uency)?$", re.I)
_RE = re.compile(r"^(z'|zre|z_?re(al)?|z ?real|re\(?z\)?|real)$", re.I)
_IM = re.compile(r"^(-)?\s*(z''|z\"|zim|zimg|z_?im(ag)?|z ?imag|im\(?z\)?|imag(inary)?)$", re.I)


def _table_columns(header: list[str]) -> tuple[list[int], list[tuple[float, float, str] | None], float] | None:
    """Positions of frequency, Re Z and Im Z named in a header, their unit conversions and the sign
    turning the Im column into Im Z; None when the names are not those of a spectrum."""
    found: dict[str, tuple[int, tuple[float, float, str] | None]] = {}
    sign = 1.0
    for k, cell in enumerate(header):
        base, _, conv = _name_unit(cell)
        for key, pattern in (("freq", _FREQ), ("re", _RE), ("im", _IM)):
            m = pattern.match(base)
            if m and key not in found:
                found[key] = (k, conv)
                if key == "im" and m.group(1):
                    sign = -1.0
    if len(found) < 3:
        return None
    return [found[k][0] for k in ("freq", "re", "im")], [found[k][1] for k in ("freq", "re", "im")], sign


def _delimiter(line: str) -> str:
    return "\t" if "\t" in line else ";" if ";" in line else ","


def is_spectrum_table(first_line: str) -> bool:
    """A header line naming a frequency column and the real and imaginary impedance columns."""
    return _table_columns([c.strip() for c in first_line.split(_delimiter(first_line))]) is not None


def read_csv_spectrum(path: str | Path) -> Recording:
    """A delimited spectrum table: columns named by a header line, or frequency (Hz), Re Z and Im Z
    (ohm) in that order without one."""
    path = Path(path)
    lines = [(i, x) for i, x in enumerate(_lines(path), start=1) if x.strip()]
    if not lines:
        raise fail(path, "no data rows (empty table)")
    sep = _delimiter(lines[0][1])
    first = [c.strip() for c in lines[0][1].strip().split(sep)]
    where, convs, sign = [0, 1, 2], [None, None, None], 1.0
    labels = {"freq": "column 1", "Z_re": "column 2", "Z_im": "column 3"}
    if not re.match(r"^[-+]?[\d.]", first[0]):
        named = _table_columns(first)
        if named is None and len(first) != 3:
            raise fail(path, f"line {lines[0][0]}: no frequency, Re Z and Im Z columns named in '{lines[0][1][:80]}'")
        if named is not None:
            where, convs, sign = named
            labels = {k: first[j] for k, j in zip(("freq", "Z_re", "Z_im"), where)}
        lines = lines[1:]
    rows = []
    for i, line in lines:
        cells = [c.strip() for c in line.strip().split(sep)]
        if len(cells) <= max(where):
            raise fail(
                path,
                f"line {i}: {len(cells)} values, expected frequency, Z' and Z'' in columns {[w + 1 for w in where]}",
            )
        rows.append(_numbers([cells[j] for j in where], path, i))
    if not rows:
        raise fail(path, "no data rows (empty table)")
    a = np.array(rows)
    si = [(1.0, 0.0) if c is None else c[:2] for c in convs]
    cols = {k: a[:, j] * si[j][0] + si[j][1] for j, k in enumerate(("freq", "Z_re", "Z_im"))}
    cols["Z_im"] = sign * cols["Z_im"]
    units = {"freq": "Hz", "Z_re": "ohm", "Z_im": "ohm"}
    for k, c in zip(("freq", "Z_re", "Z_im"), convs):
        if c is not None and c[2] != units[k]:
            raise fail(path, f"column '{labels[k]}' is in {c[2]}, not {units[k]}")
    return _recording(path, "spectrum-csv", cols, units, labels)


_ZPLOT_COLUMNS = {
    "Freq(Hz)": "freq",
    "Z'(a)": "Z_re",
    "Z''(b)": "Z_im",
    "Time(Sec)": "t",
    "Bias": "E_we",
    "Ampl": "E_amp",
}


def read_zplot(path: str | Path) -> Recording:
    """A Scribner ZPlot ``.z`` file."""
    path = Path(path)
    lines = _lines(path)
    if not lines or lines[0].strip() != ZPLOT_MAGIC:
        raise fail(path, f"not a ZPlot file (first line is not '{ZPLOT_MAGIC}')")
    names_at = next((i for i, x in enumerate(lines) if "Freq(Hz)" in x), None)
    if names_at is None:
        raise fail(path, "no column-name line with 'Freq(Hz)'")
    names = [c.strip() for c in lines[names_at].split("\t")]
    for need in ("Freq(Hz)", "Z'(a)", "Z''(b)"):
        if need not in names:
            raise fail(path, f"line {names_at + 1}: no '{need}' column")
    start = next((i + 1 for i, x in enumerate(lines) if x.strip() == "End Comments"), names_at + 1)
    rows = _rows(lines, start, len(names), lambda x: re.split(r"\t|, ", x), path, "'End Comments'")
    return _zplot_recording(path, "zplot-z", names, rows)


def _rows(
    lines: list[str], start: int, width: int, split: Callable[[str], list[str]], path: Path, after: str
) -> list[list[float]]:
    """The numbers of the non-blank lines from ``start`` on, each ``width`` cells as ``split`` cuts it."""
    rows = []
    for i in range(start, len(lines)):
        if lines[i].strip():
            cells = [c.strip() for c in split(lines[i].strip())]
            if len(cells) != width:
                raise fail(path, f"line {i + 1}: {len(cells)} values, expected {width} (file truncated or damaged)")
            rows.append(_numbers(cells, path, i + 1))
    if not rows:
        raise fail(path, f"no data rows after {after} (empty table)")
    return rows


def _zplot_recording(path: Path, fmt: str, names: list[str], rows: list[list[float]]) -> Recording:
    a = np.array(rows)
    cols, units, labels = {}, {}, {}
    for k, name in enumerate(names):
        key = _ZPLOT_COLUMNS.get(name, name)
        cols[key] = a[:, k]
        units[key] = {"freq": "Hz", "Z_re": "ohm", "Z_im": "ohm", "t": "s", "E_we": "V"}.get(key, "1")
        labels[key] = name
    if "E_amp" in cols:  # the AC amplitude, in V (0.01 for the 10 mV the comments state)
        units["E_amp"] = "V"
    return _recording(path, fmt, cols, units, labels)


_ZPLOTW_MAGIC = re.compile(r'^"Z\w*( Calculated)? Data File')


def is_zplot_windows(first_line: str) -> bool:
    """The quoted first line of a ZPlot-for-Windows / ZView data file."""
    return _ZPLOTW_MAGIC.match(first_line.strip()) is not None


def read_zplot_windows(path: str | Path) -> Recording:
    """A ZPlot-for-Windows or ZView data file: quoted header lines, a quoted column-name line, comma rows."""
    path = Path(path)
    lines = _lines(path)
    if not lines or not is_zplot_windows(lines[0]):
        raise fail(path, "not a ZPlot/ZView data file (first line is not '\"... Data File: ...\"')")
    names_at = next((i for i, x in enumerate(lines) if "Z'(a)" in x and "Freq" in x), None)
    if names_at is None:
        raise fail(path, "no column-name line with 'Freq(Hz)' and 'Z'(a)'")
    names = lines[names_at].strip().strip('"').replace("Freq (Hz)", "Freq(Hz)").split()
    for need in ("Freq(Hz)", "Z'(a)", "Z''(b)"):
        if need not in names:
            raise fail(path, f"line {names_at + 1}: no '{need}' column")
    rows = _rows(lines, names_at + 1, len(names), lambda x: x.split(","), path, "the column names")
    return _zplot_recording(path, "zview-z", names, rows)


def is_chi(head: str) -> bool:
    """A CH Instruments impedance text export: its technique line or its column-name line."""
    return any(x.strip() == "A.C. Impedance" or x.startswith("Freq/Hz,") for x in head.splitlines()[:40])


_CHI_COLUMNS = {"Freq": "freq", "Z'": "Z_re", 'Z"': "Z_im", "Z": "Z_mod", "Phase": "phase"}


def read_chi(path: str | Path) -> Recording:
    """A CH Instruments ``A.C. Impedance`` text export: settings, ``Freq/Hz, Z'/ohm, ...`` and comma rows."""
    path = Path(path)
    lines = _lines(path)
    names_at = next((i for i, x in enumerate(lines) if x.startswith("Freq/Hz,")), None)
    if names_at is None:
        raise fail(path, "no column-name line starting 'Freq/Hz,' (not a CH Instruments impedance export)")
    names = [c.strip() for c in lines[names_at].split(",")]
    a = np.array(_rows(lines, names_at + 1, len(names), lambda x: x.split(","), path, "the column names"))
    cols, units, labels = {}, {}, {}
    for k, name in enumerate(names):
        base, unit, conv = _name_unit(name)
        key = _CHI_COLUMNS.get(base, base)
        if conv is None:
            raise fail(path, f"line {names_at + 1}: column '{name}' has no unit this reader knows")
        cols[key], units[key], labels[key] = a[:, k] * conv[0] + conv[1], conv[2], name
    for need in ("freq", "Z_re", "Z_im"):
        if need not in cols:
            raise fail(path, f"line {names_at + 1}: no {need} column among {', '.join(names)}")
    rec = _recording(path, "chi-txt", cols, units, labels)
    for line in lines[:names_at]:
        if " = " in line:
            key, value = line.split(" = ", 1)
            rec.header[key.strip()] = value.strip()
    return rec


def is_versastudio(head: str) -> bool:
    return head.startswith("<Application>") and "Name=VersaStudio" in head


_VERSA_COLUMNS = {
    "E(V)": ("E_we", "V"),
    "I(A)": ("I", "A"),
    "Elapsed Time(s)": ("t", "s"),
    "Frequency(Hz)": ("freq", "Hz"),
    "Z Real": ("Z_re", "ohm"),
    "Z Imag": ("Z_im", "ohm"),
}


def read_versastudio(path: str | Path) -> Recording:
    """A VersaStudio ``.par`` file: each ``<SegmentN>`` with impedance columns is one spectrum."""
    path = Path(path)
    lines = _lines(path)
    if not lines or not is_versastudio("\n".join(lines[:3])):
        raise fail(path, "not a VersaStudio file (no '<Application>' with 'Name=VersaStudio')")
    segments: list[tuple[list[str], list[list[float]]]] = []
    current: tuple[list[str], list[list[float]]] | None = None  # column names and rows of the open segment
    for i, line in enumerate(lines, start=1):
        x = line.strip()
        if re.match(r"^<Segment\d+>$", x):
            current = ([], [])
        elif re.match(r"^</Segment\d+>$", x):
            if current and current[1]:
                segments.append(current)
            current = None
        elif current is None or not x:
            continue
        elif x.startswith("Definition="):
            names = [c.strip() for c in x[len("Definition=") :].split(",")]
            while names and re.match(r"^\d+$", names[-1]):  # a trailing count, not a column
                names.pop()
            current = (names, [])
        elif current[0] and "=" not in x:
            cells = x.split(",")
            if len(cells) != len(current[0]):
                raise fail(
                    path, f"line {i}: {len(cells)} values, expected {len(current[0])} (file truncated or damaged)"
                )
            current[1].append(_numbers(cells, path, i))
    wanted = [(n, r) for n, r in segments if all(k in n for k in ("Frequency(Hz)", "Z Real", "Z Imag"))]
    if not wanted:
        raise fail(path, "no segment with Frequency(Hz), Z Real and Z Imag columns and data rows")
    names = wanted[0][0]
    if any(n != names for n, _ in wanted):
        raise fail(path, "impedance segments with different columns")
    a = np.array([row for _, r in wanted for row in r])
    cols, units, labels = {}, {}, {}
    unstated = []
    for k, name in enumerate(names):
        base, _, conv = _name_unit(name)
        if name in _VERSA_COLUMNS:
            (key, unit), values = _VERSA_COLUMNS[name], a[:, k]
        elif conv is not None:
            key, unit, values = base, conv[2], a[:, k] * conv[0] + conv[1]
        else:
            key, unit, values = name, "1", a[:, k]
            unstated.append(name)
        key = unique_name(key, cols)
        cols[key], units[key], labels[key] = values, unit, name
    starts = np.cumsum([0] + [len(r) for _, r in wanted])
    split = [np.arange(lo, hi) for lo, hi in zip(starts[:-1], starts[1:])]
    rec = _recording(path, "versastudio-par", cols, units, labels, split)
    if unstated:
        rec.notes.append(f"columns without a unit in the file, kept as numbers: {', '.join(unstated)}")
    return rec


def read_parstat(path: str | Path) -> Recording:
    """A Parstat tab-separated export: DC rows (frequency 0) and the impedance rows."""
    path = Path(path)
    lines = _lines(path)
    if not lines or not is_parstat(lines[0]):
        raise fail(path, f"not a Parstat export (the first line lacks {', '.join(_PARSTAT_KEYS)})")
    names = [c.strip() for c in lines[0].rstrip("\t ").split("\t")]
    rows = []
    for i, line in enumerate(lines[1:], start=2):
        if line.strip():
            cells = [c.strip() for c in line.rstrip("\t ").split("\t")]
            if len(cells) != len(names):
                raise fail(path, f"line {i}: {len(cells)} values, expected {len(names)} (file truncated or damaged)")
            rows.append(_numbers(cells, path, i))
    if not rows:
        raise fail(path, "no data rows (empty table)")
    a = np.array(rows)
    known = {
        "Potential": "E_we",
        "Current": "I",
        "Elapsed Time": "t",
        "Frequency": "freq",
        "Zre": "Z_re",
        "Zim": "Z_im",
    }
    cols, units, labels = {}, {}, {}
    for k, name in enumerate(names):
        m = re.match(r"^(.*?)\s*\((.*)\)$", name)
        base, unit = (m.group(1), m.group(2)) if m else (name, "")
        conv = si_conversion({"ohms": "ohm"}.get(unit, unit))
        key = known.get(base, base)
        if conv is None:
            cols[key], units[key] = a[:, k], unit or "1"
        else:
            cols[key], units[key] = a[:, k] * conv[0] + conv[1], conv[2]
        labels[key] = name
    return _recording(path, "parstat-txt", cols, units, labels)
