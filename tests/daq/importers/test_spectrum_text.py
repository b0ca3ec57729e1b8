"""Plain-text spectrum layouts read by content, each on a minimal file written here, compared with
impedance.py's reader of the same layout (``impedance.preprocessing``) where it has one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from daq.core.errors import DataFileError
from daq.importers import read_recording

P = pytest.importorskip("impedance.preprocessing")

F = [1.0e5, 1.0e3, 1.0e1]
RE = [10.5, 60.25, 110.0]
IM = [-1.5, -40.75, -5.0]


def _same(rec, f, z) -> None:
    s = rec.spectra[0]
    np.testing.assert_allclose(s.frequency, f, rtol=1e-12)
    np.testing.assert_allclose(s.Z_re + 1j * s.Z_im, z, rtol=1e-12)
    np.testing.assert_allclose(s.frequency, F)
    np.testing.assert_allclose(s.Z_re + 1j * s.Z_im, np.array(RE) + 1j * np.array(IM))


@pytest.mark.parametrize(
    "first, names",
    [
        (
            '"ZPlotW Data File: Version 3.2c"',
            "  Freq(Hz)    Ampl     Bias   Time(Sec)   Z'(a)    Z''(b)    GD   Err   Range",
        ),
        (
            '"Z60W Data File: Version 1.1"',
            "  Freq (Hz)    Ampl     Bias   Time(Sec)   Z'(a)    Z''(b)    GD   Err   Range",
        ),
    ],
)
def test_zplot_for_windows_comma_rows(tmp_path: Path, first: str, names: str) -> None:
    rows = [
        f"{f:.6E}, 1.0000E-02, 0.0000E+00, {k + 1:.6E}, {r:.4E}, {i:.4E}, 0.0000E+00, 0, 5"
        for k, (f, r, i) in enumerate(zip(F, RE, IM))
    ]
    path = tmp_path / "a.z"
    path.write_text("\n".join([first, '"Raw Data"', '""', "0,3,0,1,300000,0.005", "3", f'"{names}"', *rows]) + "\n")
    rec = read_recording(path)
    assert rec.file_format == "zview-z"
    _same(rec, *P.readAutolab(path))
    np.testing.assert_allclose(rec.spectra[0].time, [1, 2, 3])
    assert rec.units["E_amp"] == "V"


def test_zview_rows_with_four_digit_exponents(tmp_path: Path) -> None:
    path = tmp_path / "b.z"
    names = "  Freq (Hz)    Ampl     Bias   Time(Sec)   Z'(a)    Z''(b)    GD   Err   Range"
    rows = [
        f" {f:.6E}, 0.0E+0000, 0.0E+0000, 1.0E+0000, {r:.6E}, {i:.6E}, 0.0E+0000, 0, 0" for f, r, i in zip(F, RE, IM)
    ]
    rows = [r.replace("E+0", "E+000").replace("E-0", "E-000") for r in rows]
    path.write_text('"ZView Calculated Data File: Version 1.1"\n' + f'"{names}"\n' + "\n".join(rows) + "\n")
    _same(read_recording(path), *P.readAutolab(path))


def test_chi_ac_impedance_text(tmp_path: Path) -> None:
    head = ["Feb. 20, 2020   15:55:08", "A.C. Impedance", "Instrument Model:  CHI660E", "", "Amplitude (V) = 0.005", ""]
    rows = [
        f"{f:.3e}, {r}, {i}, {abs(complex(r, i)):.4g}, {np.degrees(np.angle(complex(r, i))):.1f}"
        for f, r, i in zip(F, RE, IM)
    ]
    path = tmp_path / "chi.txt"
    path.write_text("\n".join([*head, "Freq/Hz, Z'/ohm, Z\"/ohm, Z/ohm, Phase/deg", "", *rows]) + "\n")
    rec = read_recording(path)
    assert rec.file_format == "chi-txt" and rec.header["Amplitude (V)"] == "0.005"
    _same(rec, *P.readCHInstruments(path))
    assert rec.units["phase"] == "rad"
    np.testing.assert_allclose(rec.spectra[0].extra["phase"], np.angle(np.array(RE) + 1j * np.array(IM)), atol=1e-3)


def test_powersuite_tab_table_with_header(tmp_path: Path) -> None:
    path = tmp_path / "ps.txt"
    path.write_text("Frequency\t Zre\t Zimg\n" + "".join(f"{f}\t {r}\t {i}\n" for f, r, i in zip(F, RE, IM)))
    rec = read_recording(path)
    assert rec.file_format == "spectrum-csv"
    _same(rec, *P.readPowerSuite(path))


def test_columns_chosen_by_name_with_minus_im_and_units(tmp_path: Path) -> None:
    """An Autolab NOVA export: index first, -Z'' (the negative of Im Z), semicolons, kilo-ohm columns."""
    path = tmp_path / "nova.txt"
    rows = [f"{k + 1};{f};{r / 1e3};{-i / 1e3};1;2;3" for k, (f, r, i) in enumerate(zip(F, RE, IM))]
    path.write_text("Index;Frequency (Hz);Z' (kΩ);-Z'' (kΩ);Z (Ω);-Phase (°);Time (s)\n" + "\n".join(rows) + "\n")
    s = read_recording(path).spectra[0]
    np.testing.assert_allclose(s.frequency, F)
    np.testing.assert_allclose(s.Z_re + 1j * s.Z_im, np.array(RE) + 1j * np.array(IM))


def test_table_without_named_spectrum_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("Index,Time,Potential,Current\n1,2,3,4\n")
    with pytest.raises(DataFileError, match=r"x\.csv: line 1: no frequency, Re Z and Im Z columns"):
        read_recording(path)


def _versa(segment_rows: list[list[str]]) -> str:
    definition = (
        "Definition=Segment #, Point #, E(V), I(A), Elapsed Time(s), ADC Sync Input(V), Current Range, Status, "
        "E Applied(V), Frequency(Hz), E Real, E Imag, I Real, I Imag, Z Real, Z Imag, AC Amplitude, 0"
    )
    out = ["<Application>", "Name=VersaStudio", "</Application>", "", "<Action0>", "Segments=0", "</Action0>"]
    for n, rows in enumerate(segment_rows, start=1):
        out += [f"<Action{n}>", f"Segments={n}", "Name=Potentiostatic EIS", f"</Action{n}>", ""]
        out += [f"<Segment{n}>", "Type=2", "Version=3", definition, *rows, f"</Segment{n}>", ""]
    return "\n".join(out) + "\n"


def test_versastudio_segments_by_definition_line(tmp_path: Path) -> None:
    rows = [f"0,{k},0.1,1e-6,{k + 1},0,5,53,0,{f},0,0,0,0,{r},{i},0.01" for k, (f, r, i) in enumerate(zip(F, RE, IM))]
    path = tmp_path / "v.par"
    path.write_text(_versa([rows]))
    rec = read_recording(path)
    assert rec.file_format == "versastudio-par"
    _same(rec, *P.readVersaStudio(path))
    np.testing.assert_allclose(rec.spectra[0].E_dc, 0.1)
    np.testing.assert_allclose(rec.spectra[0].time, [1, 2, 3])
    path.write_text(_versa([rows, rows[:2]]))
    assert [len(s) for s in read_recording(path).spectra] == [3, 2]


def test_versastudio_short_row_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "v.par"
    path.write_text(_versa([["0,0,0.1,1e-6,1,0,5,53,0,1000,10"]]))
    with pytest.raises(DataFileError, match=r"v\.par: line \d+: 11 values, expected 17"):
        read_recording(path)
