"""How EC-Lab impedance rows become sweeps: loops listed in the header and repeated sweeps that keep
Ns and the cycle number, in minimal synthetic exports compared with yadg (``yadg.extractors.extract``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from daq.importers import read_recording
from tests.daq.importers.yadg_reader import yadg_columns

GEIS_MPR = Path(__file__).resolve().parents[4] / "shared" / "data" / "real" / "eclab" / "geis.issue_149.mpr"

LABELS = ["freq/Hz", "Re(Z)/Ohm", "-Im(Z)/Ohm", "|Z|/Ohm", "Phase(Z)/deg", "time/s", "<Ewe>/V", "<I>/mA"]
LABELS += ["cycle number", "Ns"]
FREQS = [2.0e5, 2.0e4, 2.0e3, 2.0e2]


def _row(f: float, t: float, cycle: int, ns: int = 0) -> list[str]:
    z = complex(10.0 + 50.0 / (1.0 + 1j * f / 1e3))
    cells = [f, z.real, -z.imag, abs(z), np.degrees(np.angle(z)), t, 3.42, 0.025, float(cycle)]
    return [f"{v:.7E}" for v in cells] + [str(ns)]


def _peis(path: Path, rows: list[list[str]], loops: list[tuple[int, int]] = (), mode: str = "Potentio") -> Path:
    """A PEIS (or GEIS) export: settings, the parameter table, an optional loop block, the labels, the rows."""
    head = ["EC-Lab ASCII FILE", None, "", f"{mode} Electrochemical Impedance Spectroscopy", ""]
    head += ["Run on channel : 1 (SN 1)", "Acquisition started on : 01/10/2024 11:02:29.886"]
    head += ["Cycle Definition : Charge/Discharge alternance"]
    head += [f"{k:<20}{v:<20}" for k, v in [("Mode", "Single sine"), ("fi", "200.000"), ("unit fi", "kHz")]]
    head += [f"{k:<20}{v:<20}" for k, v in [("nc cycles", "0"), ("goto Ns'", "0"), ("nr cycles", "0")]]
    head += [f"{'inc. cycle':<20}{'0':<20}", ""]
    if loops:
        head += [f"Number of loops : {len(loops)}"]
        head += [f"Loop {i} from point number {a} to {b}" for i, (a, b) in enumerate(loops)] + [""]
    head += ["\t".join(LABELS) + "\t"]
    head[1] = f"Nb header lines : {len(head)}".ljust(44)
    path.write_bytes(("\r\n".join(head + ["\t".join(r) for r in rows]) + "\r\n").encode("cp1252"))
    return path


def _assert_matchesyadg_columns(path: Path, sizes: list[int]) -> None:
    rec = read_recording(path)
    ref = yadg_columns(path)
    assert [len(s) for s in rec.spectra] == sizes
    cat = {k: np.concatenate([getattr(s, k) for s in rec.spectra]) for k in ("frequency", "Z_re", "Z_im", "time")}
    np.testing.assert_allclose(cat["frequency"], ref["freq"], rtol=1e-6)
    np.testing.assert_allclose(cat["Z_re"], ref["Re(Z)"], rtol=1e-6)
    np.testing.assert_allclose(cat["Z_im"], -ref["-Im(Z)"], rtol=1e-6)
    np.testing.assert_allclose(cat["time"], ref["time"], rtol=1e-6)
    for s in rec.spectra:
        np.testing.assert_allclose(s.frequency, FREQS, rtol=1e-6)  # every sweep whole, none merged


def test_loops_listed_in_the_header_are_sweeps_even_when_the_cycle_number_stays(tmp_path: Path) -> None:
    """'Number of loops : 3' / 'Loop n from point number a to b' (as in dgbowl/yadg
    tests/test_x_eclab/peis.issue_149.mpt) start a sweep each, whatever the cycle number says."""
    rows = [_row(f, 10.0 * k + i, cycle=1) for k in range(3) for i, f in enumerate(FREQS)]
    p = _peis(tmp_path / "loops.mpt", rows, loops=[(0, 3), (4, 7), (8, 11)])
    _assert_matchesyadg_columns(p, [4, 4, 4])
    assert [s.metadata["cycle"] for s in read_recording(p).spectra] == [1, 1, 1]


def test_repeated_sweeps_with_the_same_ns_and_cycle_split_where_the_frequency_restarts(tmp_path: Path) -> None:
    """A sweep repeated within one Ns and cycle (no loop block) restarts at the high frequency: two
    sweeps, not one spectrum running 200 kHz -> 200 Hz -> 200 kHz -> 200 Hz."""
    rows = [_row(f, 10.0 * k + i, cycle=1) for k in range(2) for i, f in enumerate(FREQS)]
    _assert_matchesyadg_columns(_peis(tmp_path / "repeat.mpt", rows), [4, 4])


def test_ascending_sweeps_and_cycle_changes_keep_their_split(tmp_path: Path) -> None:
    """A low-to-high sweep is one spectrum; cycle changes still split; frequency-0 rows are left out."""
    up = [_row(f, float(i), cycle=1) for i, f in enumerate(FREQS[::-1])]
    hold = [_row(0.0, 5.0, cycle=1)]
    down = [_row(f, 10.0 + i, cycle=2) for i, f in enumerate(FREQS)]
    rec = read_recording(_peis(tmp_path / "updown.mpt", up + hold + down))
    assert [len(s) for s in rec.spectra] == [4, 4]
    np.testing.assert_allclose(rec.spectra[0].frequency, FREQS[::-1], rtol=1e-6)
    assert [s.metadata["cycle"] for s in rec.spectra] == [1, 2]
    assert all(np.all(s.frequency > 0) for s in rec.spectra)


@pytest.mark.skipif(not GEIS_MPR.is_file(), reason=f"shared recordings not available ({GEIS_MPR} is absent)")
def test_a_looped_geis_run_gives_the_same_sweeps_from_the_mpr_and_from_its_text_export(tmp_path: Path) -> None:
    """A GEIS run of 4 loops of 21 points (dgbowl/yadg tests/test_x_eclab/geis.issue_149.mpt and .mpr):
    the .mpr gives 4 sweeps, each yadg's reading of its rows; a text export of the same rows with the
    loop block EC-Lab writes ('Loop n from point number a to b') gives the same sweeps (float32: 1e-5)."""
    binary, ref = read_recording(GEIS_MPR), yadg_columns(GEIS_MPR)
    assert [len(s) for s in binary.spectra] == [21] * 4
    assert [s.metadata["cycle"] for s in binary.spectra] == [1, 2, 3, 4]
    for k, s in enumerate(binary.spectra):
        rows = slice(21 * k, 21 * k + 21)
        np.testing.assert_allclose(s.frequency, ref["freq"][rows], rtol=1e-5)
        np.testing.assert_allclose(s.Z_re, ref["Re(Z)"][rows], rtol=1e-5)
        np.testing.assert_allclose(s.Z_im, -ref["-Im(Z)"][rows], rtol=1e-5)
        np.testing.assert_allclose(s.time, ref["time"][rows], rtol=1e-5)
        np.testing.assert_array_equal(ref["cycle number"][rows], k + 1)
    cols = ["freq", "Re(Z)", "-Im(Z)", "|Z|", "Phase(Z)", "time", "<Ewe>", "<I>", "cycle number"]
    rows = [[f"{ref[c][i]:.7E}" for c in cols] + [str(int(ref["Ns"][i]))] for i in range(84)]
    text = read_recording(_peis(tmp_path / "geis.mpt", rows, [(21 * k, 21 * k + 20) for k in range(4)], "Galvano"))
    assert [len(s) for s in text.spectra] == [21] * 4
    for s, t in zip(text.spectra, binary.spectra):
        assert s.metadata["cycle"] == t.metadata["cycle"]
        for name in ("frequency", "Z_re", "Z_im", "time", "E_dc", "I_dc"):
            np.testing.assert_allclose(getattr(s, name), getattr(t, name), rtol=1e-5, err_msg=name)
