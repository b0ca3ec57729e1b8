"""Plain impedance spectra written as text: CSV (frequency, Z', Z''), Scribner ZPlot ``.z`` and Parstat
(VersaStudio/PowerSuite style) tab-separated exports. Each becomes a :class:`Recording` whose rows are
the spectrum points, with one :class:`Spectrum`.

Formats, as public readers take them (impedance.py, ``impedance/preprocessing.py``: ``readCSV``,
``readZPlot``, ``readParstat``; repository ECSHackWeek/impedance.py):

- CSV: three numbers a row, frequency (Hz), Re Z and Im Z (ohm, mathematical sign: negative for a
  capacitive arc), no header. A header line is accepted; a third column named ``-Z''`` / ``-Im`` is
  read with its sign turned.
- ZPlot: ``ZPLOT2 ASCII``, ``key: value`` comments, a tab-separated column-name line with ``Freq(Hz)``,
  ``Z'(a)``, ``Z''(b)`` (``Time(Sec)``, ``Bias``, ``Ampl`` when present), then ``End Comments`` and
  tab-separated rows.
- Parstat: one tab-separated header line (``Potential (V)``, ``Current (A)``, ``Elapsed Time (s)``,
  ``Frequency (Hz)``, ``Zre (ohms)``, ``Zim (ohms)``...); rows with a frequency of 0 are the DC part of
  the experiment, the others the spectrum.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from daq.importers._common import fail, parse_number, si_conversion
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


def _recording(path: Path, fmt: str, cols: dict[str, np.ndarray], units: dict[str, str], labels: dict) -> Recording:
    rec = Recording(source=path, vendor="text", file_format=fmt, technique="impedance")
    n = cols["freq"].size
    if "t" not in cols:
        cols = {"t": np.full(n, np.nan), **cols}
        units = {"t": "s", **units}
        labels = {"t": "(not in the file)", **labels}
        rec.notes.append("the file states no time of each point; t is NaN")
    for k, v in cols.items():
        rec.add_column(k, v, units[k], labels[k])
    sel = np.isfinite(cols["freq"]) & (cols["freq"] > 0)
    if not np.any(sel):
        raise fail(path, "no impedance rows (no positive frequency)")
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


def read_csv_spectrum(path: str | Path) -> Recording:
    """A CSV spectrum: frequency (Hz), Re Z, Im Z (ohm) per row, optional header line."""
    path = Path(path)
    rows, sign = [], 1.0
    for i, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        cells = [c.strip() for c in re.split(r"[,;\t]", line.strip())]
        if i == 1 and not re.match(r"^[-+]?[\d.]", cells[0]):
            if len(cells) >= 3 and re.match(r"^-\s*(Z''|Im)", cells[2]):
                sign = -1.0
            continue
        if len(cells) < 3:
            raise fail(path, f"line {i}: {len(cells)} values, expected frequency, Z' and Z''")
        rows.append(_numbers(cells[:3], path, i))
    if not rows:
        raise fail(path, "no data rows (empty table)")
    a = np.array(rows)
    cols = {"freq": a[:, 0], "Z_re": a[:, 1], "Z_im": sign * a[:, 2]}
    units = {"freq": "Hz", "Z_re": "ohm", "Z_im": "ohm"}
    return _recording(path, "spectrum-csv", cols, units, {"freq": "column 1", "Z_re": "column 2", "Z_im": "column 3"})


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
    rows = []
    for i in range(start, len(lines)):
        if lines[i].strip():
            cells = [c.strip() for c in re.split(r"\t|, ", lines[i].strip())]
            if len(cells) != len(names):
                raise fail(
                    path, f"line {i + 1}: {len(cells)} values, expected {len(names)} (file truncated or damaged)"
                )
            rows.append(_numbers(cells, path, i + 1))
    if not rows:
        raise fail(path, "no data rows after 'End Comments' (empty table)")
    a = np.array(rows)
    cols, units, labels = {}, {}, {}
    for k, name in enumerate(names):
        key = _ZPLOT_COLUMNS.get(name, name)
        cols[key] = a[:, k]
        units[key] = {"freq": "Hz", "Z_re": "ohm", "Z_im": "ohm", "t": "s", "E_we": "V"}.get(key, "1")
        labels[key] = name
    if "E_amp" in cols:  # the AC amplitude, in V (0.01 for the 10 mV the comments state)
        units["E_amp"] = "V"
    return _recording(path, "zplot-z", cols, units, labels)


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
