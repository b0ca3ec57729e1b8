"""Gamry EXPLAIN features seen in public recordings, each rebuilt as a small synthetic file the test writes:
tables shorter than their declared count, channels with no temperature probe, header dates and times as
different PC locales write them, extra free-form header lines. Values are checked against the file text
and, where it reads the case, against gamry-parser or impedance.py."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from daq.core.errors import DataFileError
from daq.importers import read_recording

HEAD = (
    "EXPLAIN\r\nTAG\t{tag}\r\nTITLE\tLABEL\tTest\tTest Identifier\r\n"
    "DATE\tLABEL\t{date}\tDate\r\nTIME\tLABEL\t{time}\tTime\r\n"
)
ROWS = (
    "\t0\t5.00833\t2.05436E-002\t1.67396E-003\t..........a\t{t0}\r\n"
    "\t1\t10.0167\t2.05419E-002\t1.66898E-003\t..........a\t{t1}\r\n"
    "\t2\t15.025\t2.05313E-002\t1.66994E-003\t..........a\t{t2}\r\n"
)


def _ocp(tmp_path: Path, declared: str = "3", temps=("-327.62",) * 3, date="10-2-2020", time="17:18:00") -> Path:
    p = tmp_path / "OCP.DTA"
    text = HEAD.format(tag="CORPOT", date=date, time=time)
    text += f"CURVE\tTABLE\t{declared}\r\n\tPt\tT\tVf\tAch\tOver\tTemp\r\n\t#\ts\tV vs. Ref.\tV\tbits\tdeg C\r\n"
    text += ROWS.format(t0=temps[0], t1=temps[1], t2=temps[2])
    p.write_bytes(text.encode("cp1252"))
    return p


def _gamry_parser_curve(path: Path):
    import gamry_parser

    parser = gamry_parser.GamryParser(str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parser.load()
    return parser.get_curve_data(0)


def test_table_shorter_than_declared_is_read_and_marked_incomplete(tmp_path: Path) -> None:
    p = _ocp(tmp_path, declared="99999")
    rec = read_recording(p)
    assert rec.n_samples == 3 and rec.metadata["status"] == "incomplete"
    assert any("declares 99999 rows but holds 3" in n for n in rec.notes)
    ref = _gamry_parser_curve(p)
    np.testing.assert_allclose(rec.timeseries["t"], ref["T"], rtol=1e-5)
    np.testing.assert_allclose(rec.timeseries["E_we"], ref["Vf"], rtol=1e-5)
    np.testing.assert_allclose(rec.timeseries["aux"], ref["Ach"], rtol=1e-5)


def test_declared_count_matching_keeps_completed(tmp_path: Path) -> None:
    assert read_recording(_ocp(tmp_path, declared="3")).metadata["status"] == "completed"


def test_row_cut_mid_line_is_still_refused(tmp_path: Path) -> None:
    p = _ocp(tmp_path, declared="99999")
    p.write_bytes(p.read_bytes()[:-30])
    with pytest.raises(DataFileError, match="OCP.DTA.*values, expected 6"):
        read_recording(p)


def test_temperature_below_absolute_zero_is_no_measurement(tmp_path: Path) -> None:
    rec = read_recording(_ocp(tmp_path))
    assert "temperature" not in rec.timeseries
    assert any("Temp: left out" in n and "-327.62" in n for n in rec.notes)
    rec = read_recording(_ocp(tmp_path, temps=("25.5", "-327.62", "25.7")))
    T = rec.timeseries["temperature"]
    assert T[0] == pytest.approx(298.65) and np.isnan(T[1]) and T[2] == pytest.approx(298.85)
    assert rec.units["temperature"] == "K"


def test_temperature_above_a_thermocouple_range_is_no_measurement(tmp_path: Path) -> None:
    """Interface 1010 channels with no probe read ~1489 degC: left out like the sub-zero ones."""
    rec = read_recording(_ocp(tmp_path, temps=("1489.24",) * 3))
    assert "temperature" not in rec.timeseries
    assert any("Temp: left out" in n and "1489.24" in n for n in rec.notes)
    rec = read_recording(_ocp(tmp_path, temps=("25.5", "1488.88", "1371.0")))
    T = rec.timeseries["temperature"]
    assert T[0] == pytest.approx(298.65) and np.isnan(T[1]) and T[2] == pytest.approx(1644.15)


BIPOT_BLOCK = (
    "PSTAT {role}\tPSTAT\t{name}\tPotentiostat\r\nPSTATSECTION\tLABEL\t{section}\tPstat Section\r\n"
    "PSTATSERIALNO\tLABEL\t{serial}\tPstat Serial Number\r\n\r\n"
)
BIPOT_CURVE = (
    "CURVE {role}\tTABLE\t2\r\n\tPt\tT\tVf\tIm\tOver\t{extra}Temp\r\n\t#\ts\tV vs. Ref.\tA\tbits\t{unit}deg C\r\n"
)


def test_ring_disk_collection_file_reads_the_generator_as_its_curve(tmp_path: Path) -> None:
    """A COLLECT<technique> file: the generator (disk, running the technique) is the recording, the
    detector (ring, held at its own potential) a further table; the instrument is the generator's."""
    p = tmp_path / "3stepCACA.DTA"
    text = HEAD.format(tag="COLLECTCHRONOA", date="16/11/2023", time="11:01:36")
    text += BIPOT_BLOCK.format(role="GENERATOR", name="Louie", section="IFC1010-21185", serial="21185")
    text += BIPOT_BLOCK.format(role="COLLECTOR", name="Hare", section="IFC1000-06095", serial="06095")
    text += "VRING\tPOTEN\t2.00000E-001\tF\tRing E (V)\r\n"
    text += BIPOT_CURVE.format(role="DETECTOR", extra="Cycle\t", unit="#\t")
    text += "\t0\t0.1\t1.99880E-001\t-1.26240E-008\t...........\t0\t 0.00\r\n"
    text += "\t1\t0.2\t1.99883E-001\t-6.00476E-008\t...........\t0\t 0.00\r\n"
    text += BIPOT_CURVE.format(role="GENERATOR", extra="", unit="")
    text += "\t0\t-0.4\t2.92530E-004\t-1.62485E-005\t...........\t1488.88\r\n"
    text += "\t1\t-0.3\t2.57235E-004\t-1.62119E-005\t...........\t1488.88\r\n"
    p.write_bytes(text.encode("cp1252"))
    rec = read_recording(p)
    assert rec.technique == "chronoamperometry" and rec.metadata["vendor_technique"] == "COLLECTCHRONOA"
    assert (rec.metadata["instrument_model"], rec.metadata["instrument_serial"]) == ("IFC1010", "21185")
    import gamry_parser

    ref = gamry_parser.GamryParser(str(p))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.load()
    detector, generator = ref.get_curves()
    np.testing.assert_allclose(rec.timeseries["t"], generator["T"], rtol=1e-12)
    np.testing.assert_allclose(rec.timeseries["E_we"], generator["Vf"], rtol=1e-12)
    np.testing.assert_allclose(rec.timeseries["I"], generator["Im"], rtol=1e-12)
    assert "temperature" not in rec.timeseries
    ring = rec.tables["CURVE DETECTOR"]
    np.testing.assert_allclose(ring["I"], detector["Im"], rtol=1e-12)
    assert ring["temperature"].tolist() == [273.15, 273.15]


@pytest.mark.parametrize(
    ("date", "time", "start", "order"),
    [
        ("10-2-2020", "17:18:00", "2020-02-10T17:18:00", "day-month-year (assumed from the dashes)"),
        ("14.8.2025", "9:40:00", "2025-08-14T09:40:00", "day-month-year"),
        ("3/10/2019", "3:15:22 PM", "2019-03-10T15:15:22", "month-day-year (assumed: day and month both <= 12)"),
        ("3/10/2019", "12:05:00 AM", "2019-03-10T00:05:00", "month-day-year (assumed: day and month both <= 12)"),
        ("16/11/2023", "10:02:03", "2023-11-16T10:02:03", "day-month-year"),
    ],
)
def test_start_time_as_pc_locales_write_it(tmp_path: Path, date: str, time: str, start: str, order: str) -> None:
    rec = read_recording(_ocp(tmp_path, date=date, time=time))
    assert rec.metadata["start_time"] == start and rec.metadata["date_order"] == order


def test_decimal_commas_make_a_slash_date_day_first(tmp_path: Path) -> None:
    p = tmp_path / "CHRONOA.DTA"
    text = HEAD.format(tag="CHRONOA", date="3/10/2019", time="12:00:00")
    text += "FRAMEWORKVERSION\tQUANT\t6,33\tFramework Version\r\n"
    text += "CURVE\tTABLE\t5258\r\n\tPt\tT\tVf\tIm\r\n\t#\ts\tV vs. Ref.\tA\r\n"
    text += "\t0\t0\t-5,00000E-004\t-2,00000E-008\r\n\t1\t30\t4,99669E-001\t1,40441E-008\r\n"
    p.write_text(text, encoding="cp1252")
    rec = read_recording(p)
    assert rec.metadata["start_time"] == "2019-10-03T12:00:00"
    assert rec.metadata["date_order"] == "day-month-year (assumed from the decimal commas)"
    assert rec.metadata["software_version"] == "6.33"
    assert rec.timeseries["E_we"].tolist() == [-5e-4, 0.499669] and rec.timeseries["I"].tolist() == [-2e-8, 1.40441e-8]
    assert rec.metadata["status"] == "incomplete"


def test_free_form_header_lines_and_degree_celsius_column(tmp_path: Path) -> None:
    """A LIMS block (a bare keyword line, then KEY<TAB> LABEL<TAB>value) before the settings; a ZCURVE with a
    Temp column in °C; both readers agree on the spectrum."""
    from impedance.preprocessing import readGamry

    p = tmp_path / "EISPOT.DTA"
    text = HEAD.format(tag="EISPOT", date="16/11/2023", time="10:02:03")
    text += "NOMAD\r\nSAMPLEID\t LABEL\tCE-test\r\nAIRTEMPERATURE\t LABEL\t25\r\n"
    text += "VDC\tPOTEN\t0.00000E+000\tT\tDC Voltage (V)\r\nEOC\tQUANT\t0\tOpen Circuit (V)\r\nZCURVE\tTABLE\r\n"
    text += "\tPt\tTime\tFreq\tZreal\tZimag\tZsig\tZmod\tZphz\tIdc\tVdc\tIERange\tImod\tVmod\tTemp\r\n"
    text += "\t#\ts\tHz\tohm\tohm\tV\tohm\t°\tA\tV\t#\tA\tV\t°C\r\n"
    rows = [
        (1000020, 7.281014, -1.217636, 7.382127, -9.493971),
        (794355.5, 6.816936, -0.8171919, 6.865742, -6.83581),
        (0.997765, 89.91506, -572.2136, 579.2349, -81.06982),
    ]
    for k, (f, zr, zi, zm, ph) in enumerate(rows):
        text += f"\t{k}\t{4 + 2 * k}\t{f}\t{zr}\t{zi}\t1\t{zm}\t{ph}"
        text += "\t-0.0001755\t-0.0011003\t10\t0.0024935\t0.0176905\t0\r\n"
    p.write_bytes(text.encode("cp1252"))
    rec = read_recording(p)
    assert rec.header["entries"]["SAMPLEID"]["value"] == "CE-test"
    assert "voltage_dc" not in rec.metadata and "E_open_circuit" not in rec.metadata  # EOC 0: not measured
    assert rec.metadata["voltage_dc_vs_eoc"] == 0.0
    assert any("VDC is set against Eoc, which was not measured" in n for n in rec.notes)
    (s,) = rec.spectra
    f, z = readGamry(str(p))
    np.testing.assert_allclose(s.frequency, f, rtol=1e-5)
    np.testing.assert_allclose(s.Z_re, z.real, rtol=1e-5)
    np.testing.assert_allclose(s.Z_im, z.imag, rtol=1e-5)
    assert s.extra["temperature"].tolist() == [273.15] * 3
    np.testing.assert_allclose(s.extra["Z_phase"], np.radians([r[4] for r in rows]), rtol=1e-5)


VFP600 = (
    "VFP600\r\nTAG\tVFP600\r\nCTRLMODE\tIQUANT\t1\tControl Mode\r\n"
    "FREQ\tQUANT\t1.50000E+1\tAcquisition Frequency (Hz)\r\n"
    "VFPCURVE\tTABLE\r\n\tVoltage\tCurrent\r\n\tV\tA\r\n"
    "\t0.029996\t5.303752E-11\r\n\t0.029981\t5.419374E-11\r\n\t-0.010923\t4.493590E-10\r\n"
    "\t0.009008\t4.542570E-10\r\n"
)


def test_virtual_front_panel_file_times_come_from_the_acquisition_frequency(tmp_path: Path) -> None:
    import gamry_parser

    p = tmp_path / "vfp600.dta"
    p.write_bytes(VFP600.encode("cp1252"))
    rec = read_recording(p)
    assert rec.n_samples == 4 and rec.metadata["sample_period"] == pytest.approx(1 / 15)
    assert (rec.units["t"], rec.units["E_we"], rec.units["I"]) == ("s", "V", "A")
    assert any("acquisition frequency (15 Hz)" in n for n in rec.notes)
    ref = gamry_parser.VFP600(str(p))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.load()
    curve = ref.get_curve_data(0)
    np.testing.assert_allclose(rec.timeseries["t"], curve["T"], rtol=1e-12)
    np.testing.assert_allclose(rec.timeseries["E_we"], curve["Voltage"], rtol=1e-12)
    np.testing.assert_allclose(rec.timeseries["I"], curve["Current"], rtol=1e-12)


def test_virtual_front_panel_file_without_frequency_is_one_line(tmp_path: Path) -> None:
    p = tmp_path / "vfp600.dta"
    p.write_bytes(VFP600.replace("FREQ\tQUANT\t1.50000E+1\tAcquisition Frequency (Hz)\r\n", "").encode())
    with pytest.raises(DataFileError, match="has no time column") as err:
        read_recording(p)
    assert "\n" not in str(err.value)


def _eqcm(tmp_path: Path, offset: str | None = "58,025000", comma: bool = True, qcm: bool = True) -> Path:
    """A Framework 6 eQCM cyclic voltammetry: decimal commas, ``ACH`` in capitals, two CURVEn tables, then the
    resonator's header lines and its ``QCMCurve`` table of type DTABLE."""
    row = "\t{pt}\t{t}\t7,77691E-006\t{v}\t-2,14826E-004\t0,00000E+000\t-2,99997E-001\t1,50000E-003\t11"
    row += "\t...........\r\n"
    cols = "\tPt\tT\tQ\tVf\tIm\tVu\tSig\tACH\tIERange\tOver\r\n\t#\ts\tC\tV vs. Ref.\tA\tV\tV\tV\t#\tbits\r\n"
    text = HEAD.format(tag="CVEQCM", date="02/12/2016", time="11:02:38")
    text += "APPLICATION\tLABEL\tResonator\tData &Acquisition Application\r\nNOTES\tNOTES\t0\t&Notes...\r\n"
    text += "FRAMEWORKVERSION\tQUANT\t6.24\tFramework Version\r\n"
    text += "CURVE1\tTABLE\r\n" + cols
    text += row.format(pt=0, t="0,040000", v="-3,00559E-001") + row.format(pt=1, t="0,080000", v="-3,02829E-001")
    text += "CURVE2\tTABLE\r\n" + cols
    text += row.format(pt=2, t="0,120000", v="-3,05091E-001")
    text += "QCMDESCRIPTION\tLABEL\t\tDescription\r\nQCMDB\tLABEL\tResonator_db\tQCM Database\r\n"
    if offset is not None:
        text += f"QCMOFFSETTIME\tQUANT\t{offset}\tQCM Offset Time (s)\r\n"
    text += "QCMCurve\tDTABLE\r\n\tPt\tT\tfs\tfp\tchisq\tAs\tAp\r\n\t#\ts\tMHz\tMHz\tarb\tMag\tMag\r\n"
    text += "\t216\t58,025000\t10,01088249\t10,01849209\t0,000\t1,12382233\t1,54561317\r\n"
    text += "\t217\t58,295000\t10,01108629\t10,01849329\t0,000\t1,10657275\t1,54279590\r\n"
    if not qcm:
        text = text[: text.index("QCMDESCRIPTION")]
    if not comma:
        text = text.replace(",", ".")
    p = tmp_path / "QCM.DTA"
    p.write_bytes(text.encode("cp1252"))
    return p


def test_eqcm_cyclic_voltammetry_with_resonator_table(tmp_path: Path) -> None:
    rec = read_recording(_eqcm(tmp_path))
    assert rec.technique == "cyclic_voltammetry" and rec.metadata["vendor_technique"] == "CVEQCM"
    ts = rec.timeseries
    np.testing.assert_allclose(ts["t"], [0.04, 0.08, 0.12])
    np.testing.assert_allclose(ts["E_we"], [-0.300559, -0.302829, -0.305091])
    np.testing.assert_allclose(ts["aux"], 1.5e-3)  # ACH is the auxiliary channel, in V
    assert rec.units["aux"] == "V" and list(ts["segment"]) == [0, 0, 1]
    qcm = rec.tables["QCMCurve"]
    np.testing.assert_allclose(qcm["t"], [0.0, 0.27], atol=1e-9)  # resonator clock minus QCMOFFSETTIME
    np.testing.assert_allclose(qcm["fs"], [10.01088249e6, 10.01108629e6])
    assert rec.table_units["QCMCurve"]["fs"] == "Hz" and rec.table_units["QCMCurve"]["As"] == "Mag"
    assert rec.metadata["qcm_time_offset"] == pytest.approx(58.025)
    assert any("QCMOFFSETTIME" in n for n in rec.notes)


def test_eqcm_curves_match_gamry_parser(tmp_path: Path) -> None:
    p = _eqcm(tmp_path, comma=False, qcm=False)  # gamry-parser stops at the empty QCMDESCRIPTION label
    rec = read_recording(p)
    ref = _gamry_parser_curve(p)
    np.testing.assert_allclose(rec.timeseries["t"][:2], ref["T"], rtol=1e-6)
    np.testing.assert_allclose(rec.timeseries["E_we"][:2], ref["Vf"], rtol=1e-6)
    np.testing.assert_allclose(rec.timeseries["Q"][:2], ref["Q"], rtol=1e-6)


def test_resonator_table_without_offset_keeps_its_clock_and_says_so(tmp_path: Path) -> None:
    rec = read_recording(_eqcm(tmp_path, offset=None))
    np.testing.assert_allclose(rec.tables["QCMCurve"]["t"], [58.025, 58.295])
    assert "qcm_time_offset" not in rec.metadata
    assert any("resonator's own clock" in n for n in rec.notes)


def test_eoc_written_as_zero_is_not_a_measured_open_circuit_potential(tmp_path: Path) -> None:
    """EOC 0 (no open-circuit measurement before the test) gives no E_open_circuit; a set-point against Eoc then
    takes the OCVCURVE's last potential, and a measured EOC is kept."""
    rows = "\t0\t0.02\t1.0E-003\t2.0E-006\r\n\t1\t0.04\t3.0E-003\t4.0E-006\r\n"
    curve = "CURVE1\tTABLE\r\n\tPt\tT\tVf\tIm\r\n\t#\ts\tV vs. Ref.\tA\r\n" + rows
    cv = tmp_path / "CV.DTA"
    cv.write_text(
        HEAD.format(tag="CV", date="16/11/2023", time="10:47:58")
        + "VINIT\tPOTEN\t0.00000E+000\tF\tInitial E (V)\r\nEOC\tQUANT\t0\tOpen Circuit (V)\r\n"
        + curve
    )
    rec = read_recording(cv)
    assert "E_open_circuit" not in rec.metadata and rec.metadata["E_initial"] == 0.0
    ocv = "OCVCURVE\tTABLE\t2\r\n\tPt\tT\tVf\tVm\r\n\t#\ts\tV vs. Ref.\tV\r\n"
    ocv += "\t0\t0.5\t0.2001\t0.2001\r\n\t1\t1.0\t0.2003\t0.2003\r\n"
    for eoc, expected in (("0", 0.2003 + 0.05), ("0.1973726", 0.1973726 + 0.05)):
        p = tmp_path / f"CV_{eoc}.DTA"
        p.write_text(
            HEAD.format(tag="CV", date="16/11/2023", time="10:47:58")
            + f"VINIT\tPOTEN\t5.00000E-002\tT\tInitial E (V)\r\nEOC\tQUANT\t{eoc}\tOpen Circuit (V)\r\n"
            + ocv
            + curve
        )
        rec = read_recording(p)
        assert rec.metadata["E_initial"] == pytest.approx(expected)
        assert ("E_open_circuit" in rec.metadata) == (eoc != "0")
