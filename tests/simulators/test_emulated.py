"""Emulated rigs: lab protocols through the real drivers on emulated instruments, the dummy cell, daq emulate."""

from __future__ import annotations

import argparse
import threading

import h5py
import numpy as np
import pytest
import serial

from daq.cli import main
from daq.commands.emulate import cmd_emulate
from daq.engine.rig import load_rig
from daq.models.cell import load_cell
from daq.models.dummy_cell import DummyCellSpec
from protocols.loader import load_protocol
from simulators.cell import SimulatedCell
from simulators.dummy_cell import DummyCell

pytestmark = pytest.mark.timeout(240)

RIG = "protocols/examples/rigs/emulated_lab.toml"


def spectra(path):
    """(status, /eis/spectra rows, each spectrum's points, events) of a run file."""
    with h5py.File(path) as f:
        rows, points = f["eis/spectra"][:], f["eis/points"][:]
        events = [(e["kind"].decode(), e["message"].decode()) for e in f["events"][:]]
        status = f.attrs["status"]
    return status, rows, [points[r["first_point"] : r["first_point"] + r["n_points"]] for r in rows], events


def model_impedance(cell_file, t, frequencies):
    """The simulated cell's own impedance after resting ``t`` s (what the emulated channel measures)."""
    cell = SimulatedCell(load_cell(cell_file))
    cell.rest(t)
    return cell.impedance(frequencies)


def check_points(points, spec):
    """Every point of a spectrum: the protocol's frequencies in order, accepted, finite."""
    assert len(points) == len(spec.frequencies())
    np.testing.assert_allclose(points["frequency"], spec.frequencies(), rtol=1e-6)  # float32 on the wire
    assert np.all(points["ok"] == 1)
    assert np.all(np.isfinite(points["z_real"]) & np.isfinite(points["z_imag"]))
    assert np.all(np.diff(points["t"]) > 0)


def test_peis_runs_on_the_emulated_sp300_with_every_point(tmp_path):
    out = tmp_path / "peis.h5"
    assert main(["run", "protocols/examples/peis.toml", "--rig", f"{RIG}#sp300", "--out", str(out)]) == 0
    status, rows, points, events = spectra(out)
    assert status == "completed" and len(rows) == 2
    assert list(rows["n_points"]) == [61, 61]  # 1 MHz - 1 Hz, 10 per decade
    assert not [e for e in events if e[0].startswith("instrument")]  # no read refused, nothing lost
    spec = load_protocol("protocols/examples/peis.toml").steps[1].spec
    for row, pts in zip(rows, points, strict=True):
        check_points(pts, spec)
        assert row["amplitude"] == pytest.approx(5e-3)
        z = model_impedance("protocols/examples/cells/li6ps5cl_99.toml", pts["t"][0], pts["frequency"])
        np.testing.assert_allclose(pts["z_real"] + 1j * pts["z_imag"], z, rtol=0.015)  # 0.2 % noise per part
    with h5py.File(out) as f:
        t = f["timeseries/t"][:]
    assert np.all(np.diff(t) > 0)  # open-circuit records and the sweeps' DC levels in one time order
    assert rows["t_start"][0] == pytest.approx(3600) and rows["t_start"][1] == pytest.approx(rows["t_end"][0] + 3600)


def test_shortened_operando_geis_runs_on_the_premium_board(tmp_path):
    out = tmp_path / "geis.h5"
    protocol = "protocols/examples/operando_geis_plating.toml"
    overrides = ["--set", "steps.3.capacity=1 mAh/cm^2", "--set", "steps.1.duration=1 min"]
    assert main(["run", protocol, "--rig", f"{RIG}#sp300", "--out", str(out), *overrides]) == 0
    status, rows, points, events = spectra(out)
    assert status == "completed"
    assert len(rows) == 4  # before plating, then at 0.25, 0.5 and 0.75 mAh/cm^2
    assert not [e for e in events if e[0].startswith("instrument")]  # no dead-man stop, no sample refused
    assert events[-1][1].endswith("capacity reached (0.999 mAh/cm^2)")
    cell = load_cell("protocols/examples/cells/li6ps5cl_99.toml")
    i_plate = -0.01 * 1e4 * cell.electrodes.working_area  # 10 mA/cm^2
    spec = load_protocol(protocol).steps[1].spec
    for k, (row, pts) in enumerate(zip(rows, points, strict=True)):
        check_points(pts, spec)  # 7 MHz - 500 mHz, 10 per decade: 72, none refused as corrupt (14-word rows)
        assert row["amplitude"] == pytest.approx(0.05e-3 * 1e4 * cell.electrodes.working_area)
        assert row["dc"] == pytest.approx(0.0 if k == 0 else i_plate, rel=1e-6)
        np.testing.assert_allclose(pts["I_dc"], row["dc"], rtol=1e-6, atol=1e-12)
    assert np.all(np.diff(rows["Q"]) < 0)  # charge keeps flowing (plating) between and during the sweeps
    z = model_impedance("protocols/examples/cells/li6ps5cl_99.toml", points[0]["t"][0], points[0]["frequency"])
    np.testing.assert_allclose(points[0]["z_real"] + 1j * points[0]["z_imag"], z, rtol=0.015)  # before plating


def test_dummy_cell_answers_like_its_network():
    dummy = DummyCellSpec("rc", 100.0, 1000.0, 1e-6)
    cell = DummyCell(dummy, load_cell("protocols/examples/cells/li6ps5cl_99.toml"))
    e = cell.advance(np.full(20, 1e-3), np.full(20, 1e-3)).E_cell
    assert e[0] == pytest.approx(0.1 + 1.0 * (1 - np.exp(-1)), rel=1e-9)  # tau = 1 ms
    assert e[-1] == pytest.approx(1.1, rel=1e-6)
    f = np.array([1e-3, 159.15494, 1e6])
    z = cell.impedance(f)
    assert abs(z[0]) == pytest.approx(1100, rel=1e-6) and z[2].real == pytest.approx(100, rel=1e-6)
    assert z[1] == pytest.approx(100 + 1000 / (1 + 1j), rel=1e-6)  # at 1/(2 pi R C)


def test_emulated_entries_need_an_emulation_from_the_command():
    rig = load_rig(RIG)  # no emulation given: reading works, building is refused in one line
    from daq.core.clock import VirtualClock
    from daq.core.errors import ConfigError
    from daq.engine.rig import build_potentiostat

    with pytest.raises(ConfigError, match="instruments.sp300.emulate"):
        build_potentiostat(rig, rig.channels["sp300"], VirtualClock())


def test_daq_emulate_serves_the_wire_protocols(capsys):
    stop = threading.Event()
    result = {}
    t = threading.Thread(target=lambda: result.update(rc=cmd_emulate(argparse.Namespace(rig=RIG, speed=None), stop)))
    t.start()
    try:
        for _ in range(100):
            text = capsys.readouterr().out
            if "press_a" in text:
                break
            stop.wait(0.05)
        lines = {line.split(":")[0].strip(): line for line in text.splitlines() if ":" in line}
        visa = lines["smu"].rsplit(": ", 1)[1]
        port = lines["press_a"].rsplit(": ", 1)[1]
        assert visa.startswith("TCPIP::127.0.0.1::") and visa.endswith("::SOCKET")
        import pyvisa

        inst = pyvisa.ResourceManager("@py").open_resource(visa, read_termination="\n", write_termination="\n")
        assert inst.query("*IDN?").startswith("KEITHLEY INSTRUMENTS INC.,MODEL 2450,")
        inst.close()
        with serial.Serial(port, 115200, timeout=2) as s:
            s.write(b"?\r")
            assert s.readline().decode().strip() == "137.445 N"  # 7 MPa on 19.63 mm^2
        assert "in-process only" in lines["sp300"]
    finally:
        stop.set()
        t.join(10)
    assert result["rc"] == 0
