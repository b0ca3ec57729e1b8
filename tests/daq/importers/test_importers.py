"""Vendor recordings -> Recording: real files checked against their own bytes/text and physics;
damaged files must fail with a DataFileError that names the file."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daq.core.errors import DataFileError
from daq.importers import Recording, read_recording

VENDOR = Path(__file__).resolve().parents[4] / "shared" / "data" / "vendor"  # shared/ sits beside the repo
DATA = Path(__file__).resolve().parents[2] / "data"
CHRONOP = VENDOR / "CHRONOP.DTA"
CSTC = VENDOR / "CstC_nesd.mpr"
GEIS = VENDOR / "GEIS_nesd.mpr"

needs_vendor = pytest.mark.skipif(not CSTC.exists(), reason="vendor recordings not available")

# Byte layout of the two .mpr files, established by walking their module headers:
# file header 0x34 bytes; "VMP data" module header at CSTC_DATA_MODULE / GEIS_DATA_MODULE, 65 bytes
# ("MODULE" + 10 + 25 + 4 x u4 + 8-byte date); records start 0x3EF bytes into the module data.
CSTC_DATA_MODULE, GEIS_DATA_MODULE = 0x1A9B, 0x1BCE
CSTC_RECORDS = CSTC_DATA_MODULE + 65 + 0x3EF
GEIS_RECORDS = GEIS_DATA_MODULE + 65 + 0x3EF
CSTC_RECORD_SIZE, GEIS_RECORD_SIZE = 61, 124


def _raw(path: Path) -> bytes:
    return path.read_bytes()


# ---------------------------------------------------------------- Gamry CHRONOP.DTA (values from the text)


@needs_vendor
def test_chronop_dta_matches_file_text() -> None:
    rec = read_recording(CHRONOP)
    assert rec.vendor == "gamry" and rec.technique == "chronopotentiometry"
    assert rec.n_samples == 11  # "CURVE TABLE 11", rows Pt 0..10
    t, e, i = rec.timeseries["t"], rec.timeseries["E_we"], rec.timeseries["I"]
    assert t[0] == 0.0 and t[-1] == 10.0 and np.all(np.diff(t) == 1.0)
    # First and last rows as printed: Vf 9.80423E-002 / 1.75093E-001 V, Im 2.10527E-008 / 2.00191E-005 A.
    assert e[0] == pytest.approx(9.80423e-2) and e[-1] == pytest.approx(1.75093e-1)
    assert i[0] == pytest.approx(2.10527e-8) and i[-1] == pytest.approx(2.00191e-5)
    assert e.min() == pytest.approx(9.80423e-2) and e.max() == pytest.approx(1.75093e-1)
    assert i.max() == pytest.approx(2.00198e-5)
    assert rec.units["E_we"] == "V" and rec.units["I"] == "A" and rec.units["t"] == "s"
    # Currents follow the programmed steps ISTEP1 = 1e-5 A (t 1..5 s), ISTEP2 = 2e-5 A (t 6..10 s).
    assert rec.metadata["current_setpoints"] == [0.0, 1e-5, 2e-5]
    assert rec.metadata_units["current_setpoints"] == "A"
    assert np.allclose(i[1:6], 1e-5, rtol=3e-3) and np.allclose(i[6:], 2e-5, rtol=3e-3)
    assert np.all(np.diff(e) > 0)  # potential rises under constant anodic current
    # Temperature column "deg C" 1489.52: no probe on this channel, left out and said so
    assert "temperature" not in rec.timeseries
    assert any("Temp: left out" in n and "1489.52" in n for n in rec.notes)


@needs_vendor
def test_chronop_dta_metadata() -> None:
    rec = read_recording(CHRONOP)
    m, u = rec.metadata, rec.metadata_units
    assert m["instrument_vendor"] == "Gamry"
    assert m["instrument_model"] == "IFC1010" and m["instrument_serial"] == "21185"
    assert m["start_time"] == "2023-11-16T10:40:42"  # DATE 16/11/2023, TIME 10:40:42
    assert rec.quantity("sample_period") == (1.0, "s")
    assert m["electrode_area"] == pytest.approx(1e-4) and u["electrode_area"] == "m^2"  # 1 cm^2
    assert rec.quantity("E_limit_min") == (0.0, "V") and rec.quantity("E_limit_max") == (1.0, "V")
    assert m["step_durations"] == [0.5, 5.0, 5.0]
    assert rec.header["entries"]["DECIMATE"]["value"] is False
    assert rec.header["entries"]["PSTATMODEL"]["value"] == 64
    assert rec.source_columns["E_we"] == "Vf (V vs. Ref.)"


# ---------------------------------------------------------------- BioLogic CstC_nesd.mpr


def _cstc_record(raw: bytes, k: int) -> dict:
    """Decode record k by hand: flags u1, time f8, control/mA f4, <Ewe> f4, I/mA f4, dq f8, dQ f8,
    (Q-Qo) f8 (mA.h), I Range u2, Ns u2, Q charge/discharge f8 (mA.h), half cycle u4."""
    off = CSTC_RECORDS + k * CSTC_RECORD_SIZE
    f = struct.unpack_from("<BdfffdddHHdI", raw, off)
    keys = ("flags", "t", "ctrl_mA", "ewe", "i_mA", "dq", "dQ", "q_mAh", "irange", "ns", "qcd", "half")
    return dict(zip(keys, f))


@needs_vendor
def test_cstc_mpr_layout_and_counts() -> None:
    raw = _raw(CSTC)
    assert raw[CSTC_DATA_MODULE : CSTC_DATA_MODULE + 16] == b"MODULEVMP data  "
    n_points, n_cols = struct.unpack_from("<IH", raw, CSTC_DATA_MODULE + 65)
    assert (n_points, n_cols) == (24, 17)
    assert CSTC_RECORDS + n_points * CSTC_RECORD_SIZE == CSTC_DATA_MODULE + 65 + 2471  # module length 2471
    rec = read_recording(CSTC)
    assert rec.vendor == "biologic" and rec.technique == "constant_current"
    assert rec.metadata["vendor_technique"] == "CstC"
    assert rec.n_samples == 24
    t = rec.timeseries["t"]
    assert t[0] == pytest.approx(70.05, abs=1e-5) and t[-1] == pytest.approx(140.0498, abs=1e-3)
    assert t[-1] - t[0] == pytest.approx(70.0, abs=1e-3)


@needs_vendor
@pytest.mark.parametrize("k", [0, 9, 10, 11, 23])
def test_cstc_mpr_records_match_hand_decoding(k: int) -> None:
    raw, rec = _raw(CSTC), read_recording(CSTC)
    r, ts = _cstc_record(raw, k), rec.timeseries
    assert ts["t"][k] == r["t"]
    assert ts["E_we"][k] == pytest.approx(r["ewe"], rel=1e-7)
    assert ts["I"][k] == pytest.approx(r["i_mA"] * 1e-3, rel=1e-7)  # mA -> A
    assert ts["control_I"][k] == pytest.approx(r["ctrl_mA"] * 1e-3, rel=1e-7)
    assert ts["Q"][k] == pytest.approx(r["q_mAh"] * 3.6, rel=1e-12)  # mA.h -> C
    assert ts["I_range_code"][k] == r["irange"] and ts["step"][k] == r["ns"]
    assert ts["mode"][k] == r["flags"] & 3


@needs_vendor
def test_cstc_mpr_physics() -> None:
    rec = read_recording(CSTC)
    ts, m = rec.timeseries, rec.metadata
    rest, cc = ts["mode"] == 3, ts["mode"] == 1
    assert rest.sum() == 11 and cc.sum() == 13
    # Programmed: 10 s rest sampled every 1 s, then 10 uA for 60 s sampled every 5 s.
    assert m["current_setpoints"] == pytest.approx([1e-5]) and rec.metadata_units["current_setpoints"] == "A"
    assert m["step_durations"] == [60.0] and m["rest_duration"] == 10.0
    assert m["sample_period"] == 5.0 and m["rest_sample_period"] == 1.0
    assert np.allclose(np.diff(ts["t"][:10]), 1.0, atol=1e-4)
    assert np.allclose(np.diff(ts["t"][11:]), 5.0, atol=1e-3)
    assert np.all(ts["I"][rest] == 0.0)
    assert np.allclose(ts["control_I"][cc], 1e-5, rtol=1e-6)  # the control column is the set-point
    i_cc = ts["I"][cc][1:]  # measured current settles within 25 % of 10 uA on the 10 mA range
    assert np.all(np.abs(i_cc - 1e-5) < 2.5e-6)
    # Charge bookkeeping: Q grows by the integral of the measured current (C, not mA.h).
    t, q, i = ts["t"][cc], ts["Q"][cc], ts["I"][cc]
    integral = np.sum(0.5 * (i[1:] + i[:-1]) * np.diff(t))
    assert q[-1] - q[0] == pytest.approx(np.sum(ts["dq"][cc][1:]), rel=1e-6)  # per-point increments
    assert q[-1] - q[0] == pytest.approx(integral, rel=0.05)  # EC-Lab integrates between samples too
    assert q[-1] == pytest.approx(6.995e-4, rel=1e-3)
    # Potential range of the dummy cell (V) and the E range programmed (+-2.5 V).
    assert ts["E_we"].min() == pytest.approx(4.755e-6, rel=1e-3)
    assert ts["E_we"].max() == pytest.approx(0.061370, rel=1e-4)
    assert rec.quantity("E_range_max") == (2.5, "V")


@needs_vendor
def test_cstc_mpr_settings_and_log() -> None:
    rec = read_recording(CSTC)
    m = rec.metadata
    assert m["start_time"] == "2024-10-09T13:36:20.501"  # OLE date in the log, module date 10/09/24
    assert m["instrument_serial"] == "1581" and m["channel"] == 1 and m["channel_serial"] == "41593"
    assert m["software_version"] == "11.50"
    assert rec.quantity("electrode_area") == (pytest.approx(1e-7), "m^2")  # EC-Lab's 0.001 cm^2
    assert rec.source_columns["E_we"] == "<Ewe>/V" and rec.source_columns["I"] == "I/mA"


# ---------------------------------------------------------------- BioLogic GEIS_nesd.mpr


@needs_vendor
def test_geis_mpr_counts_and_hand_decoding() -> None:
    raw = _raw(GEIS)
    n_points, n_cols = struct.unpack_from("<IH", raw, GEIS_DATA_MODULE + 65)
    assert (n_points, n_cols) == (228, 29)
    ids = struct.unpack_from("<29H", raw, GEIS_DATA_MODULE + 65 + 6)
    assert ids[:6] == (32, 37, 38, 36, 35, 4)  # freq, Re(Z), -Im(Z), |Z|, Phase(Z), time
    rec = read_recording(GEIS)
    assert rec.technique == "geis" and rec.n_samples == 228
    ts = rec.timeseries
    for k in (0, 18, 76, 227):
        off = GEIS_RECORDS + k * GEIS_RECORD_SIZE
        freq, re_z, m_im_z, mod_z, phase, t = struct.unpack_from("<fffffd", raw, off)
        assert ts["freq"][k] == pytest.approx(freq, rel=1e-7)
        assert ts["Z_re"][k] == pytest.approx(re_z, rel=1e-7)
        assert ts["Z_im"][k] == pytest.approx(-m_im_z, rel=1e-7)  # file stores -Im(Z)
        assert ts["Z_mod"][k] == pytest.approx(mod_z, rel=1e-7)
        assert ts["Z_phase"][k] == pytest.approx(math.radians(phase), rel=1e-6)
        assert ts["t"][k] == t
    assert ts["t"][0] == pytest.approx(227.8956, abs=1e-3) and ts["t"][-1] == pytest.approx(439.7546, abs=1e-3)
    assert (ts["E_we"].min(), ts["E_we"].max()) == pytest.approx((0.254174, 1.013701), rel=1e-5)
    assert (ts["I"].min(), ts["I"].max()) == pytest.approx((5.01624e-5, 2.001527e-4), rel=1e-5)
    assert ts["freq"].max() == pytest.approx(1000.32, abs=0.01)
    assert ts["freq"].min() == pytest.approx(1.000064, rel=1e-5)


@needs_vendor
def test_geis_mpr_spectra_physics() -> None:
    rec = read_recording(GEIS)
    m = rec.metadata
    assert m["current_setpoints"] == pytest.approx([5e-5, 1e-4, 2e-4])
    assert m["current_amplitudes"] == pytest.approx([1e-4] * 3)
    assert rec.quantity("frequency_initial") == (1000.0, "Hz") and rec.quantity("frequency_final") == (1.0, "Hz")
    assert m["points_per_decade"] == 6 and m["repeat_count"] == 3
    # 3 DC levels x (1 + 3 repeats) sweeps of 3 decades x 6 points + 1 = 19 frequencies.
    assert len(rec.spectra) == 12 and all(len(s) == 19 for s in rec.spectra)
    assert [s.metadata["step"] for s in rec.spectra] == [0] * 4 + [1] * 4 + [2] * 4
    for s in rec.spectra:
        ratio = s.frequency[:-1] / s.frequency[1:]
        assert np.allclose(ratio, 10 ** (1 / 6), rtol=0.01)  # log spacing, high to low
        assert np.all(s.Z_re > 0) and np.all(s.Z_im < 0)  # capacitive: Im(Z) < 0
        assert np.allclose(np.hypot(s.Z_re, s.Z_im), s.extra["Z_mod"], rtol=1e-4)
        assert np.allclose(np.arctan2(s.Z_im, s.Z_re), s.extra["Z_phase"], atol=1e-3)
        assert np.allclose(s.extra["E_we_amp"] / s.extra["I_amp"], s.extra["Z_mod"], rtol=1e-3)
        setpoint = s.metadata["I_dc_setpoint"]
        assert np.allclose(s.I_dc, setpoint, rtol=0.01)  # <I> follows the programmed DC current
        # DC resistance (E/I) equals the low-frequency impedance of this resistive dummy cell.
        assert np.median(s.E_dc / s.I_dc) == pytest.approx(s.extra["Z_mod"][-1], rel=0.01)
        assert 1400 < s.Z_re.min() < 1600 and 5000 < s.Z_re.max() < 5100
    assert m["start_time"] == "2024-10-25T11:48:00.118"


# ---------------------------------------------------------------- EC-Lab text exports (fixtures)


def test_mpt_constant_current_export_matches_binary() -> None:
    rec = read_recording(DATA / "cstc_export.mpt")
    assert rec.file_format == "biologic-mpt" and rec.technique == "constant_current"
    assert rec.n_samples == 24
    m = rec.metadata
    assert m["instrument_model"] == "SP-300" and m["instrument_serial"] == "1581" and m["channel"] == 1
    assert m["start_time"] == "2024-10-09T13:36:20.501"
    assert rec.quantity("electrode_area") == (pytest.approx(0.785e-4), "m^2")
    assert m["current_setpoints"] == pytest.approx([1e-5]) and m["step_durations"] == [60.0]
    assert m["sample_period"] == 5.0 and m["rest_duration"] == 10.0
    if CSTC.exists():  # same rows as the binary recording, via the text path
        binary = read_recording(CSTC)
        for key in ("t", "E_we", "I", "Q", "control_I", "mode", "step", "I_range_code"):
            assert np.allclose(rec.timeseries[key], binary.timeseries[key], rtol=1e-6, atol=1e-15), key


def test_mpt_eu_decimal_comma_geis() -> None:
    rec = read_recording(DATA / "geis_export_eu.mpt")
    assert rec.technique == "geis" and rec.n_samples == 38
    assert len(rec.spectra) == 2 and [s.metadata["step"] for s in rec.spectra] == [0, 1]
    s0 = rec.spectra[0]
    assert s0.frequency[0] == pytest.approx(1000.3202) and s0.Z_re[0] == pytest.approx(1488.2365, rel=1e-6)
    assert s0.Z_im[0] == pytest.approx(-131.77322, rel=1e-6)
    assert rec.units["I"] == "A" and rec.timeseries["I"][0] == pytest.approx(5.0217e-5, rel=1e-4)
    assert rec.metadata["current_setpoints"] == pytest.approx([5e-5, 1e-4, 2e-4])
    assert rec.metadata["current_amplitudes"] == pytest.approx([1e-4] * 3)  # "unit  Ia"
    assert rec.metadata["frequency_initial"] == 1000.0 and rec.metadata["frequency_final"] == 1.0
    assert rec.metadata["E_control_min"] == -2.5
    assert rec.metadata["electrode_area"] == pytest.approx(0.785e-4)


# ---------------------------------------------------------------- Gamry EIS, EU locale, extra tables


def test_dta_eu_galvanostatic_eis() -> None:
    rec = read_recording(DATA / "galv_eis_eu.DTA")
    assert rec.technique == "geis" and rec.n_samples == 9
    assert rec.metadata["start_time"] == "2024-04-03T09:15:02"  # 3.4.2024 is day.month.year
    assert rec.metadata["current_setpoints"] == [5e-5] and rec.metadata["current_amplitudes"] == [1e-5]
    assert rec.metadata["electrode_area"] == pytest.approx(0.785e-4)
    assert rec.header["notes"] == ["LLZO pellet, Li|Li", "stack pressure 5 MPa"]
    assert rec.header["entries"]["CONDIT"]["value"] == {"enabled": False, "values": [15.0, 0.0]}
    assert rec.header["entries"]["VINIT"]["value"] == {"value": 0.0, "vs_eoc": True}
    (s,) = rec.spectra
    assert s.frequency[0] == 10000.0 and s.frequency[-1] == 1.0
    assert np.all(s.Z_re > 0) and np.all(s.Z_im < 0)
    assert np.allclose(np.hypot(s.Z_re, s.Z_im), s.extra["Z_mod"], rtol=1e-5)
    assert np.allclose(np.arctan2(s.Z_im, s.Z_re), s.extra["Z_phase"], atol=1e-5)
    assert s.I_dc is not None and np.allclose(s.I_dc, 5e-5)
    ocv = rec.tables["OCVCURVE"]
    assert ocv["E_we"].tolist() == pytest.approx([3.2e-3, 3.21e-3, 3.22e-3])
    assert rec.table_units["OCVCURVE"]["temperature"] == "K"


MULTI_CURVE = (
    "EXPLAIN\r\nTAG\tCV\r\nTITLE\tLABEL\tCyclic Voltammetry\tTest Identifier\r\n"
    "DATE\tLABEL\t5/11/2016\tDate\r\nTIME\tLABEL\t17:47:03\tTime\r\n"
    "CURVE1\tTABLE\t2\r\n\tPt\tT\tVf\tIm\r\n\t#\ts\tV vs. Ref.\tA\r\n"
    "\t0\t0.1\t0.5\t1E-6\r\n\t1\t0.2\t0.6\t2E-6\r\n"
    "CURVE2\tTABLE\t2\r\n\tPt\tT\tVf\tIm\r\n\t#\ts\tV vs. Ref.\tA\r\n"
    "\t0\t0.3\t0.5\t-1E-6\r\n\t1\t0.4\t0.4\t-2E-6\r\n"
)


def test_dta_several_curves_are_concatenated(tmp_path: Path) -> None:
    p = tmp_path / "cv.DTA"
    p.write_text(MULTI_CURVE, encoding="latin-1")
    rec = read_recording(p)
    assert rec.technique == "cyclic_voltammetry"
    assert rec.timeseries["t"].tolist() == [0.1, 0.2, 0.3, 0.4]
    assert rec.timeseries["segment"].tolist() == [0, 0, 1, 1]
    assert rec.timeseries["I"].tolist() == [1e-6, 2e-6, -1e-6, -2e-6]
    assert rec.metadata["date_order"].startswith("month-day-year (assumed")


def test_dispatch_is_by_content_not_extension(tmp_path: Path) -> None:
    p = tmp_path / "renamed.txt"
    p.write_bytes((DATA / "cstc_export.mpt").read_bytes())
    assert read_recording(p).file_format == "biologic-mpt"
    q = tmp_path / "chrono.dat"
    q.write_text(MULTI_CURVE)
    assert read_recording(q).file_format == "gamry-explain-dta"


# ---------------------------------------------------------------- damaged files


def _expect_error(path: Path) -> DataFileError:
    with pytest.raises(DataFileError) as info:
        read_recording(path)
    assert path.name in str(info.value)
    return info.value


def _all_sources() -> list[Path]:
    files = [DATA / "cstc_export.mpt", DATA / "geis_export_eu.mpt", DATA / "galv_eis_eu.DTA"]
    return ([CHRONOP, CSTC, GEIS] if CSTC.exists() else []) + files


@pytest.mark.parametrize("src", _all_sources(), ids=lambda p: p.name)
def test_flipped_magic_is_refused(tmp_path: Path, src: Path) -> None:
    raw = bytearray(src.read_bytes())
    raw[0] ^= 0x20
    p = tmp_path / src.name
    p.write_bytes(bytes(raw))
    _expect_error(p)


@needs_vendor
@pytest.mark.parametrize("src", [CSTC, GEIS], ids=lambda p: p.name)
@pytest.mark.parametrize("keep", [0, 10, 0x34, 0x60, 0x200, 0x1B00, 0x2000, -100, -1])
def test_truncated_mpr_is_refused(tmp_path: Path, src: Path, keep: int) -> None:
    raw = src.read_bytes()
    p = tmp_path / src.name
    p.write_bytes(raw[:keep] if keep >= 0 else raw[: len(raw) + keep])
    _expect_error(p)


@needs_vendor
@pytest.mark.parametrize("marker", [b"TAG", b"PSTATMODEL", b"CURVE\tTABLE", b"\t#\ts", b"\t3\t3\t", b"\t9\t9\t"])
def test_truncated_dta_is_refused(tmp_path: Path, marker: bytes) -> None:
    raw = CHRONOP.read_bytes()
    cut = raw.index(marker) + len(marker) // 2
    p = tmp_path / "CHRONOP.DTA"
    p.write_bytes(raw[:cut])
    _expect_error(p)


@pytest.mark.parametrize("src", ["cstc_export.mpt", "geis_export_eu.mpt"])
def test_truncated_mpt_is_refused(tmp_path: Path, src: str) -> None:
    raw = (DATA / src).read_bytes()
    for cut in (30, len(raw) // 3, len(raw) // 2 + 7):
        p = tmp_path / src
        p.write_bytes(raw[:cut])
        _expect_error(p)


@needs_vendor
def test_unknown_column_id_is_refused(tmp_path: Path) -> None:
    raw = bytearray(CSTC.read_bytes())
    ids_at = CSTC_DATA_MODULE + 65 + 6
    assert struct.unpack_from("<H", raw, ids_at + 2 * 7)[0] == 20  # control/mA
    struct.pack_into("<H", raw, ids_at + 2 * 7, 250)  # in neither public table, nor is 250 + 256
    p = tmp_path / "CstC_nesd.mpr"
    p.write_bytes(bytes(raw))
    assert "unknown data column id 250" in str(_expect_error(p))


@needs_vendor
def test_empty_data_module_is_refused(tmp_path: Path) -> None:
    raw = bytearray(GEIS.read_bytes())
    struct.pack_into("<I", raw, GEIS_DATA_MODULE + 65, 0)
    p = tmp_path / "GEIS_nesd.mpr"
    p.write_bytes(bytes(raw))
    assert "empty" in str(_expect_error(p))


def test_empty_tables_are_refused(tmp_path: Path) -> None:
    dta = tmp_path / "empty.DTA"
    dta.write_text("EXPLAIN\nTAG\tCHRONOP\nCURVE\tTABLE\t0\n\tPt\tT\tVf\tIm\n\t#\ts\tV\tA\n")
    assert "empty" in str(_expect_error(dta))
    mpt = tmp_path / "empty.mpt"
    mpt.write_text("EC-Lab ASCII FILE\nNb header lines : 3\n\ntime/s\tEwe/V\tI/mA\t\n")
    assert "empty" in str(_expect_error(mpt))


@pytest.mark.parametrize("name", ["junk.mpr", "junk.DTA", "junk.mpt", "junk.bin"])
def test_garbage_and_missing_files_are_refused(tmp_path: Path, name: str) -> None:
    p = tmp_path / name
    p.write_bytes(bytes(range(256)) * 4)
    _expect_error(p)
    _expect_error(tmp_path / ("missing_" + name))
    empty = tmp_path / ("empty_" + name)
    empty.write_bytes(b"")
    _expect_error(empty)


def test_directory_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "run.mpr"
    d.mkdir()
    _expect_error(d)


# ---------------------------------------------------------------- fuzz: only DataFileError may escape

_FUZZ_SOURCES = {p.name: p.read_bytes() for p in _all_sources()}


@st.composite
def _mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(_FUZZ_SOURCES)))
    data = bytearray(_FUZZ_SOURCES[name])
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[pos] = draw(st.sampled_from([0x00, 0xFF, 0x09, 0x0A, 0x2C, 0x2E, 0x41]))
        elif kind == "cut":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[pos : pos + draw(st.integers(1, 16))]
    return name, bytes(data)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=_mutated())
def test_fuzzed_files_raise_only_data_file_error(tmp_path: Path, case: tuple[str, bytes]) -> None:
    name, data = case
    p = tmp_path / name
    p.write_bytes(data)
    try:
        rec = read_recording(p)
    except DataFileError as exc:
        assert name in str(exc)
    else:
        assert isinstance(rec, Recording) and rec.n_samples > 0
        assert set(rec.units) == set(rec.timeseries)
