"""EC-Lab text exports in layouts seen in public files, written here as minimal synthetic files and
read by the product and by yadg (``yadg.extractors.extract``), compared value by value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from daq.importers import read_recording
from tests.daq.importers.yadg_reader import yadg_columns

RTOL = 1e-6


def _mpt(path: Path, technique: str, labels: list[str], rows: list[list[str]], settings: list[str] = ()) -> Path:
    """A complete export: header (its length counted), the label line ending in a tab, the rows."""
    head = ["EC-Lab ASCII FILE", None, "", technique, "", "Run on channel : 1 (SN 1)"]
    head += ["Acquisition started on : 01/10/2024 11:02:29.886", *settings]
    head += ["Cycle Definition : Charge/Discharge alternance", "", "\t".join(labels) + "\t"]
    head[1] = f"Nb header lines : {len(head)}".ljust(44)
    text = "\r\n".join(head + ["\t".join(r) for r in rows]) + "\r\n"
    path.write_bytes(text.encode("cp1252"))
    return path


def test_units_that_hold_a_slash_or_a_dot_product(tmp_path: Path) -> None:
    """EIS exports carry derived columns in mS/cm, Ohm.cm and S.cm-1: the unit is everything after the
    quantity, not the text after the last '/'."""
    labels = ["freq/Hz", "Re(Z)/Ohm", "-Im(Z)/Ohm", "time/s", "<Ewe>/V", "<I>/mA", "Re(Conductivity)/mS/cm"]
    labels += ["|Resistivity|/Ohm.cm", "Conductivity/S.cm-1", "Q charge/discharge/mA.h"]
    rows = [
        ["1.0E+003", "1.5E+001", "2.0E+000", "1.0E+000", "3.4E+000", "1.0E-003", "2.5E+000", "4.0E+001"]
        + ["2.5E-002", "1.0E-003"],
        ["1.0E+002", "1.8E+001", "4.0E+000", "2.0E+000", "3.4E+000", "1.0E-003", "2.0E+000", "5.0E+001"]
        + ["2.0E-002", "2.0E-003"],
    ]
    p = _mpt(tmp_path / "eis.mpt", "Potentio Electrochemical Impedance Spectroscopy", labels, rows)
    rec = read_recording(p)
    ts = rec.timeseries
    assert rec.notes == []
    assert rec.units["Re(Conductivity)"] == "S/m" and rec.source_columns["Re(Conductivity)"] == labels[6]
    np.testing.assert_allclose(ts["Re(Conductivity)"], [0.25, 0.2])  # 2.5 mS/cm = 0.25 S/m
    assert rec.units["|Resistivity|"] == "ohm m"
    np.testing.assert_allclose(ts["|Resistivity|"], [0.4, 0.5])  # 40 ohm cm = 0.4 ohm m
    np.testing.assert_allclose(ts["Conductivity"], [2.5, 2.0])  # 0.025 S/cm = 2.5 S/m
    np.testing.assert_allclose(ts["Q_charge_discharge"], [3.6e-3, 7.2e-3])
    ref = yadg_columns(p)
    np.testing.assert_allclose(ts["freq"], ref["freq"], rtol=RTOL)
    np.testing.assert_allclose(ts["Z_re"], ref["Re(Z)"], rtol=RTOL)
    np.testing.assert_allclose(ts["Z_im"], -ref["-Im(Z)"], rtol=RTOL)
    np.testing.assert_allclose(ts["Re(Conductivity)"], ref["Re(Conductivity)"] * 0.1, rtol=RTOL)
    np.testing.assert_allclose(ts["|Resistivity|"], ref["|Resistivity|"] * 0.01, rtol=RTOL)
    assert len(rec.spectra) == 1 and np.all(rec.spectra[0].Z_im < 0)


def test_cell_voltage_of_a_two_electrode_cycler_is_the_potential(tmp_path: Path) -> None:
    """BT-Lab (BCS cyclers) exports record Ecell/V and no Ewe: it is read as E_we, its label kept."""
    labels = ["mode", "ox/red", "error", "control changes", "time/s", "control/V/mA", "Ecell/V", "I/mA"]
    labels += ["cycle number"]
    rows = [
        ["1", "0", "0", "1", "7.280755286810044E+005", "-5.6999993E-001", "8.1357974E-001", "-5.7072818E-001"]
        + ["0.000000000000000E+000"],
        ["1", "0", "0", "1", "7.280759406810468E+005", "-5.6999993E-001", "8.0853951E-001", "-5.7019651E-001"]
        + ["0.000000000000000E+000"],
    ]
    p = _mpt(tmp_path / "bcd.mpt", "Battery Capacity Determination", labels, rows, ["Device : BCS-805 (SN 0168)"])
    rec = read_recording(p)
    assert rec.source_columns["E_we"] == "Ecell/V" and rec.units["E_we"] == "V"
    assert rec.metadata["vendor_technique"] == "BCD"
    ref = yadg_columns(p)
    np.testing.assert_allclose(rec.timeseries["E_we"], ref["Ecell"], rtol=RTOL)
    np.testing.assert_allclose(rec.timeseries["I"], ref["I"] * 1e-3, rtol=RTOL)
    np.testing.assert_allclose(rec.timeseries["t"], ref["time"], rtol=RTOL)


@pytest.mark.parametrize(
    ("name", "technique", "short"),
    [
        ("Cyclic Voltammetry Advanced", "cyclic_voltammetry", "CVA"),
        ("IR compensation (PEIS)", "peis", "ZIR"),
    ],
)
def test_technique_names_of_further_techniques(tmp_path: Path, name: str, technique: str, short: str) -> None:
    labels = ["mode", "time/s", "control/V", "Ewe/V", "<I>/mA"]
    rows = [["2", "3.3484E+000", "2.8652937E+000", "2.8663592E+000", "2.204511692980304E-004"]]
    rec = read_recording(_mpt(tmp_path / "t.mpt", name, labels, rows))
    assert (rec.technique, rec.metadata["vendor_technique"]) == (technique, short)
    assert rec.units["control_E"] == "V"


def test_software_version_and_decimal_comma_header(tmp_path: Path) -> None:
    """'EC-Lab for windows v11.52 (software)' has no ' : ' but still names the version; a decimal
    comma in the header numbers (area, E control range) reads as in the data rows."""
    path = _mpt(
        tmp_path / "cv.mpt",
        "Cyclic Voltammetry",
        ["mode", "time/s", "control/V", "Ewe/V", "<I>/mA", "cycle number"],
        [["2", "3,4512E+000", "2,8497E-001", "2,8496131E-001", "1,006409E-002", "1,0E+000"]],
        settings=[
            "Ewe ctrl range : min = -2,50 V, max = 2,50 V",
            "Device : SP-200 (SN 0315)",
            "EC-Lab for windows v11.52 (software)",
            "Internet server v11.52 (firmware)",
            "Electrode surface area : 0,001 cm²",
        ],
    )
    rec = read_recording(path)
    assert rec.technique == "cyclic_voltammetry"
    assert rec.metadata["software_version"] == "11.52" and rec.metadata["instrument_model"] == "SP-200"
    assert rec.quantity("E_control_min") == (-2.5, "V")
    assert rec.quantity("electrode_area") == (pytest.approx(1e-7), "m^2")
    assert rec.timeseries["I"][0] == pytest.approx(1.006409e-5, rel=RTOL)


def test_software_line_in_capitals(tmp_path: Path) -> None:
    """EC-Lab 11.61 writes 'EC-LAB for windows v11.61 (software)': the version is read all the same."""
    path = _mpt(
        tmp_path / "ocv.mpt",
        "Open Circuit Voltage",
        ["mode", "error", "time/s", "Ewe/V"],
        [["3", "0", "5.0E-001", "1.4686145E+000"]],
        settings=["EC-LAB for windows v11.61 (software)", "Internet server v11.61 (firmware)"],
    )
    assert read_recording(path).metadata["software_version"] == "11.61"


def _absolute_time_export(tmp_path: Path, time_format: str, stamps: list[str], start: str) -> Path:
    """A GCPL export whose time column holds date-times, as the 'Text export' block announces."""
    labels = ["mode", "ox/red", "error", "Ns", "time/s", "Ewe/V", "<I>/mA", "step time/s"]
    rows = [
        ["3", "0", "0", "0", s, f"{1.2487687 + 1e-4 * i:.7E}", "0.0E+000", f"{4608.50689 + i:.9E}"]
        for i, s in enumerate(stamps)
    ]
    path = _mpt(
        tmp_path / "gcpl.mpt",
        "Galvanostatic Cycling with Potential Limitation",
        labels,
        rows,
        settings=["Text export", "   Mode : Standard", f"   Time format : {time_format}"],
    )
    text = path.read_bytes().decode("cp1252").replace("01/10/2024 11:02:29.886", start)
    path.write_bytes(text.encode("cp1252"))
    return path


def test_absolute_time_stamps_are_seconds_since_the_acquisition_start(tmp_path: Path) -> None:
    """'Time format : Absolute MMDDYYYY' exports write time/s as date-times; they are read as the
    seconds since 'Acquisition started on' that the relative export holds (here equal to step time)."""
    stamps = ["12/12/2025 13:45:46.2109", "12/12/2025 13:45:47.2109", "12/12/2025 13:45:48.2109"]
    path = _absolute_time_export(tmp_path, "Absolute MMDDYYYY", stamps, "12/12/2025 12:28:57.704")
    rec = read_recording(path)
    np.testing.assert_allclose(rec.timeseries["t"], [4608.5069, 4609.5069, 4610.5069], rtol=0, atol=1e-6)
    np.testing.assert_allclose(rec.timeseries["t"], rec.timeseries["t_step"], rtol=0, atol=1e-3)
    assert rec.units["t"] == "s" and rec.metadata["start_time"] == "2025-12-12T12:28:57.704"
    assert any("date-times" in n for n in rec.notes)


def test_absolute_time_stamps_day_first_and_bad_stamp(tmp_path: Path) -> None:
    """A day-first time format reads day first; a cell that is neither seconds nor a date-time is one
    clear error naming the column and row."""
    from daq.core.errors import DataFileError

    stamps = ["13/12/2025 00:00:01.5", "13/12/2025 00:00:03.5"]
    path = _absolute_time_export(tmp_path, "Absolute DDMMYYYY", stamps, "12/13/2025 00:00:00.000")
    np.testing.assert_allclose(read_recording(path).timeseries["t"], [1.5, 3.5])
    bad = _absolute_time_export(tmp_path, "Absolute MMDDYYYY", ["12/12/2025 13:45:46.2", "soon"], "12/12/2025")
    with pytest.raises(DataFileError, match=r"column 5 'time/s', row 2: 'soon'"):
        read_recording(bad)


def test_eis_quality_indicators_not_computed_are_nan(tmp_path: Path) -> None:
    """EC-Lab writes THD/NSD/NSR as -1 % at frequencies where it computed no quality indicator (the
    harmonic amplitudes are 0 there): a ratio cannot be negative, so those rows are NaN, the others
    are fractions (yadg reads the same numbers in %)."""
    labels = ["freq/Hz", "Re(Z)/Ohm", "-Im(Z)/Ohm", "time/s", "<Ewe>/V", "<I>/mA", "cycle number"]
    labels += ["THD Ewe/%", "NSD Ewe/%", "NSR I/%", "|Ewe h2|/V"]
    rows = [
        ["2.0E+005", "1.27E+001", "9.6E-001", "8.0E+001", "3.42E+000", "2.5E-002", "1.0E+000", "-1", "-1", "-1", "0"],
        ["9.35E+004", "1.37E+001", "2.3E+000", "8.2E+001", "3.42E+000", "2.6E-002", "1.0E+000"]
        + ["2.12E-001", "1.25E-001", "2.68E+000", "1.1E-005"],
    ]
    p = _mpt(tmp_path / "peis.mpt", "Potentio Electrochemical Impedance Spectroscopy", labels, rows)
    rec = read_recording(p)
    ts = rec.timeseries
    ref = yadg_columns(p)
    for ours, theirs in (("THD_E_we", "THD Ewe"), ("NSD_E_we", "NSD Ewe"), ("NSR_I", "NSR I")):
        assert ref[theirs][0] == -1
        assert np.isnan(ts[ours][0])
        np.testing.assert_allclose(ts[ours][1], ref[theirs][1] / 100, rtol=RTOL)
    assert any(n.startswith("THD_E_we: 1 rows") for n in rec.notes)
    np.testing.assert_allclose(ts["Z_im"], -ref["-Im(Z)"], rtol=RTOL)
    assert len(rec.spectra) == 1 and rec.spectra[0].frequency.size == 2
