"""Every recording in ../shared/data/real and ../shared/data/vendor, imported by the product and by an
independent reader, compared value by value (t, E, I, Z to 1e-5 relative, in SI).

Independent readers (test-only dependencies): galvani (``galvani.BioLogic.MPRfile``) and yadg
(``yadg.extractors.extract``) for EC-Lab files, gamry-parser (``gamry_parser.GamryParser``) for Gamry
curves, impedance.py (``impedance.preprocessing``) for Gamry ZCURVE tables and plain spectra.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from daq.core.errors import DataFileError
from daq.importers import Recording, read_recording

SHARED = Path(__file__).resolve().parents[4] / "shared" / "data"
FILES = sorted(p for d in ("real", "vendor") for p in (SHARED / d).rglob("*") if p.is_file() and p.suffix != ".md")
LOCAL_SPECTRA = sorted((Path(__file__).resolve().parents[2] / "data" / "spectra").glob("*.z"))
RTOL = 1e-5

pytestmark = pytest.mark.skipif(not FILES, reason=f"shared recordings not available ({SHARED} is absent)")


def _close(ours: np.ndarray, ref: np.ndarray, what: str, path: Path) -> None:
    ours, ref = np.asarray(ours, dtype=float), np.asarray(ref, dtype=float)
    assert ours.shape == ref.shape, f"{path.name} {what}: {ours.shape} rows, independent reader {ref.shape}"
    both_nan = np.isnan(ours) & np.isnan(ref)
    np.testing.assert_allclose(ours[~both_nan], ref[~both_nan], rtol=RTOL, atol=0, err_msg=f"{path.name} {what}")


def _first(table, *names: str):
    for n in names:
        if n in table:
            return n
    return None


# ------------------------------------------------------------------ EC-Lab: galvani, then yadg


def _galvani(path: Path) -> dict[str, np.ndarray] | None:
    from galvani.BioLogic import MPRfile

    try:
        data = MPRfile(str(path)).data
    except (NotImplementedError, ValueError):
        return None
    return {n: np.asarray(data[n]) for n in data.dtype.names}


def _yadg(path: Path) -> dict[str, np.ndarray] | None:
    from yadg.extractors import extract

    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = extract(filetype="eclab." + path.suffix[1:], path=str(path)).to_dataset()
    finally:
        logging.disable(logging.NOTSET)
    out = {}
    for name in ds.data_vars:
        unit = ds[name].attrs.get("units")
        out[name + (f"/{unit}" if unit else "")] = np.asarray(ds[name].values)
    return out


_SCALE = {"mA": 1e-3, "A": 1.0, "V": 1.0, "s": 1.0, "Ohm": 1.0, "Ω": 1.0, "Hz": 1.0}


def _si(table: dict, name: str) -> np.ndarray:
    unit = name.rpartition("/")[2] if "/" in name else ""
    return np.asarray(table[name], dtype=float) * _SCALE.get(unit, 1.0)


def _compare_eclab(rec: Recording, ref: dict, path: Path) -> list[str]:
    compared = []
    pairs = [
        ("t", ("time/s",)),
        ("E_we", ("Ewe/V", "<Ewe>/V", "<Ewe/V>")),
        ("I", ("I/mA", "<I>/mA")),
        ("freq", ("freq/Hz",)),
        ("Z_re", ("Re(Z)/Ohm", "Re(Z)/Ω")),
    ]
    for ours, names in pairs:
        name = _first(ref, *names)
        if name is None:
            continue
        assert ours in rec.timeseries, f"{path.name}: the independent reader has {name}, the import has no {ours}"
        _close(rec.timeseries[ours], _si(ref, name), ours, path)
        compared.append(ours)
    if "control_I/mA" in ref and _first(ref, "I/mA", "<I>/mA") is None and "mode" in ref:
        # No current column (GCPL): under current control (mode 1) the current is the control value, yadg's
        # control_I; at rest (mode 3) it is 0. A text export's measured <I> follows the set-point to 5 %.
        mode = np.asarray(ref["mode"])
        control = _si(ref, "control_I/mA")
        tol = 1e-5 if path.suffix == ".mpr" else 5e-2
        steady = (mode == 1) & (control == np.roll(control, 1)) & (control == np.roll(control, -1))
        assert steady.sum() > 10
        np.testing.assert_allclose(rec.timeseries["I"][steady], control[steady], rtol=tol, err_msg=path.name)
        assert np.all(rec.timeseries["I"][mode == 3] == 0.0)
        compared.append("I")
    im = _first(ref, "-Im(Z)/Ohm", "-Im(Z)/Ω")
    if im:
        _close(rec.timeseries["Z_im"], -_si(ref, im), "Z_im", path)
        compared.append("Z_im")
    return compared


# ------------------------------------------------------------------ Gamry: gamry-parser, impedance.py


def _compare_gamry(rec: Recording, path: Path) -> list[str]:
    import gamry_parser
    from impedance.preprocessing import readGamry

    compared = []
    if rec.spectra:
        f, z = readGamry(str(path))
        s = rec.spectra[0]
        _close(s.frequency, f, "frequency", path)
        _close(s.Z_re, z.real, "Z_re", path)
        _close(s.Z_im, z.imag, "Z_im", path)
        compared += ["freq", "Z_re", "Z_im"]
        return compared
    parser = gamry_parser.GamryParser(str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parser.load()
    first = parser.get_curve_data(parser.get_curve_indices()[0])
    # the main timeseries is the first curve role; its numbered parts follow one another
    n = rec.n_samples
    assert len(first) <= n
    parts = [parser.get_curve_data(i) for i in parser.get_curve_indices()]
    # a ring-disk file's recording is its generator curve, wherever it stands in the file
    names = re.findall(r"^(CURVE[^\t\r\n]*)\tTABLE", path.read_text("latin-1"), re.M)
    if len(names) == len(parts) and any(x.startswith("CURVE GENERATOR") for x in names):
        parts = [p for x, p in zip(names, parts) if x.startswith("CURVE GENERATOR")]
    rows = 0
    chosen = []
    for p in parts:
        if rows >= n:
            break
        chosen.append(p)
        rows += len(p)
    assert rows == n, f"{path.name}: {n} rows imported, gamry-parser's curves give {rows}"
    for ours, col in (("t", "T"), ("E_we", "Vf"), ("I", "Im")):
        ref = np.concatenate([np.asarray(p[col], dtype=float) for p in chosen])
        _close(rec.timeseries[ours], ref, ours, path)
        compared.append(ours)
    return compared


# ------------------------------------------------------------------ plain spectra: impedance.py


def _compare_text_spectrum(rec: Recording, path: Path) -> list[str]:
    from impedance import preprocessing as P

    reader = {".csv": P.readCSV, ".z": P.readZPlot}[path.suffix.lower()]
    f, z = reader(str(path))
    s = rec.spectra[0]
    _close(s.frequency, f, "frequency", path)
    _close(s.Z_re, z.real, "Z_re", path)
    _close(s.Z_im, z.imag, "Z_im", path)
    return ["freq", "Z_re", "Z_im"]


def _independent(path: Path, rec: Recording) -> list[str]:
    suffix = path.suffix.lower()
    if suffix == ".mpr":  # both readers where they read the file; galvani refuses some ids (215)
        compared = _compare_eclab(rec, _yadg(path), path)
        galvani = _galvani(path)
        return compared + (_compare_eclab(rec, galvani, path) if galvani else [])
    if suffix == ".mpt":
        twin = path.with_suffix(".mpr")
        if _decimal_commas(path):  # yadg 7 drops decimal commas (3,4244580E+000 -> 34244580): use the twin
            assert twin.exists(), f"{path.name}: decimal commas and no .mpr of the same run to compare with"
            ref = _yadg(twin)
            return _compare_eclab(rec, ref, path)
        return _compare_eclab(rec, _yadg(path), path)
    if suffix == ".dta":
        return _compare_gamry(rec, path)
    return _compare_text_spectrum(rec, path)


def _decimal_commas(path: Path) -> bool:
    text = path.read_bytes().decode("latin-1")
    n = int(text.splitlines()[1].split(":")[1])
    return "," in text.splitlines()[n]


@pytest.mark.parametrize("path", FILES + LOCAL_SPECTRA, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_import_agrees_with_an_independent_reader(path: Path) -> None:
    rec = read_recording(path)
    compared = _independent(path, rec)
    assert "t" in compared or "freq" in compared, f"{path.name}: nothing compared"


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_column_is_silently_nan(path: Path) -> None:
    rec = read_recording(path)
    noted = " ".join(rec.notes)
    silent = [k for k, v in rec.timeseries.items() if v.dtype.kind == "f" and np.all(np.isnan(v)) and k not in noted]
    assert silent == [], f"{path.name}: columns NaN in every row without a note: {silent}"


def test_every_file_is_read_or_refused_with_file_and_part() -> None:
    for path in FILES:
        try:
            read_recording(path)
        except DataFileError as exc:
            assert path.name in str(exc) and ":" in str(exc), str(exc)
