"""Rig files: validation, the driver factory, and ``daq instruments`` against emulated instruments."""

from __future__ import annotations

import copy
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

from daq.cli import main
from daq.core.clock import VirtualClock
from daq.core.errors import ConfigError
from daq.engine.rig import build_channel, load_rig, rig_from_dict
from drivers.keithley2450 import Keithley2450
from drivers.modbus_transducer import ModbusTransmitter
from drivers.transducers import Mark10Gauge
from simulators.cell import SimulatedCell
from simulators.potentiostat import SimulatedPotentiostat
from simulators.rig import SimulatedTransducer
from simulators.scpi_server import ScpiServer
from simulators.transducer_emulators import Mark10Emulator, ModbusTransmitterEmulator

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "protocols" / "examples" / "rigs" / "glovebox_rig.toml"
CELL = ROOT / "protocols" / "examples" / "cells" / "li6ps5cl_99.toml"


@pytest.fixture
def doc():
    return tomllib.loads(EXAMPLE.read_text())


def test_example_rig(doc):
    rig = load_rig(EXAMPLE)
    assert rig.name == "glovebox A"
    assert {k: (c.instrument, c.channel, c.transducer) for k, c in rig.channels.items()} == {
        "A": ("smu", 1, "press_a"),
        "B": ("vmp", 1, "press_b"),
        "C": ("ifc", 1, "press_c"),
        "D": ("sim", 1, "press_sim"),
    }
    assert rig.channels["A"].cell.cell_id == "LPSCl-99-01"
    assert rig.instruments["smu"].options == {"timeout": 2.0}
    cal = rig.transducers["press_a"].calibration
    assert (cal.gain, cal.offset, cal.date) == (1.002, 0.12, "2025-03-14")
    regs = rig.transducers["press_b"].registers
    assert regs.unit_codes[3] == "psi" and regs.overflow == (32767, -32768)
    assert rig.transducers["press_b"].options["ram_area"] == pytest.approx(3.14e-4)
    assert rig.transducers["press_c"].pressed_area == pytest.approx(19.63e-6)
    # Without #CHANNEL a rig of several channels is refused with its channels, even when a cell matches.
    for kwargs in ({"cell_id": "LPSCl-95-01"}, {}):
        with pytest.raises(ConfigError, match=r"channels A \(.*\), B \(.*cell LPSCl-95-01\), C .*, D .*#CHANNEL"):
            rig.channel_for(**kwargs)


def _set(doc, dotted: str, value):
    *path, last = dotted.split(".")
    node = doc
    for key in path:
        node = node.setdefault(key, {})
    if value is None:
        del node[last]
    else:
        node[last] = value


BAD = [
    ("instruments.smu.kind", "keithley2400", "instruments.smu.kind = 'keithley2400': unknown instrument kind"),
    ("instruments.smu.resource", None, "instruments.smu.resource: missing"),
    ("instruments.smu.resource", "192.168.10.21", "instruments.smu.resource = '192.168.10.21': expected a VISA"),
    ("instruments.smu.timeout", 2, "instruments.smu.timeout = 2: a time needs its unit"),
    ("instruments.smu.colour", "red", "instruments.smu.colour = 'red': unknown field"),
    ("channels.A.instrument", "smux", "channels.A.instrument = 'smux': no such instrument (instruments: smu, vmp"),
    ("channels.A.channel", 2, "channels.A.channel = 2: a Keithley 2450 has one channel"),
    ("channels.A.channel", 0, "channels.A.channel = 0: must be at least 1"),
    ("channels.C.channel", 3, "channels.C.channel = 3: a Gamry potentiostat has one channel"),
    ("channels.A.cell", "nowhere.toml", "channels.A.cell = 'nowhere.toml': cell file not found"),
    ("channels.A.cell", None, "channels.A.cell: missing"),
    ("channels.A.transducer", "press_z", "channels.A.transducer = 'press_z': no such transducer"),
    ("channels.B.transducer", "press_a", "channels.B.transducer = 'press_a': already reads the press of channel 'A'"),
    ("channels.C.instrument", "smu", "channels.C.channel = 1: instrument 'smu' channel 1 already serves"),
    ("transducers.press_a.kind", "mark11", "transducers.press_a.kind = 'mark11': unknown transducer kind"),
    ("transducers.press_a.port", None, "transducers.press_a.port: missing"),
    (
        "transducers.press_a.calibration.offset",
        "0.1 MPa",
        "transducers.press_a.calibration.offset = '0.1 MPa': 'MPa' is not a unit of force",
    ),
    ("transducers.press_a.calibration.gain", -1.0, "calibration.gain = -1.0: must be a positive number"),
    ("transducers.press_a.capacity", "2500", "transducers.press_a.capacity = '2500': expected a force or pressure"),
    ("transducers.press_a.registers", {}, "transducers.press_a.registers = {}: unknown field"),
    ("transducers.press_b.registers.value_type", "int64", "transducers.press_b.registers.value_type = 'int64'"),
    ("transducers.press_b.registers.unit_codes.7", "furlongs", "registers.unit_codes.7 = 'furlongs': not a unit"),
    ("transducers.press_b.registers.bitrate", 9600, "transducers.press_b.registers.bitrate = 9600: unknown field"),
    ("transducers.press_b.registers.overflow", "32767", "registers.overflow = '32767': must be a list"),
    ("transducers.press_c.unit", "mA", "transducers.press_c.unit = 'mA': not a unit of force or pressure"),
    ("transducers.press_c.pressed_area", "-1 mm^2", "transducers.press_c.pressed_area = '-1 mm^2': must be a positive"),
]


@pytest.mark.parametrize("dotted, value, message", BAD, ids=[b[0] + "=" + repr(b[1]) for b in BAD])
def test_validation_names_the_field(doc, dotted, value, message):
    bad = copy.deepcopy(doc)
    _set(bad, dotted, value)
    with pytest.raises(ConfigError) as err:
        rig_from_dict(bad, EXAMPLE.parent)
    assert message.replace("'", "") in str(err.value).replace("'", "").replace('"', "")


def test_errors_from_a_file_name_the_file(tmp_path):
    path = tmp_path / "rig.toml"
    path.write_text('[channels.A]\ninstrument = "x"\ncell = "c.toml"\n')
    with pytest.raises(ConfigError, match=r"rig.toml: channels.A.instrument = 'x'"):
        load_rig(path)
    path.write_text("[rig\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_rig(path)
    with pytest.raises(ConfigError, match="file not found"):
        load_rig(tmp_path / "missing.toml")
    path.write_text("[rig]\nname = 'empty'\n")
    with pytest.raises(ConfigError, match="no channels"):
        load_rig(path)


def test_factory_builds_the_named_drivers():
    rig = load_rig(EXAMPLE)
    clock = VirtualClock()
    a = build_channel(rig, rig.channels["A"], clock)
    assert isinstance(a.potentiostat, Keithley2450)
    assert a.potentiostat.resource == "TCPIP::192.168.10.21::5025::SOCKET" and a.potentiostat.timeout == 2.0
    assert isinstance(a.transducer, Mark10Gauge)
    assert a.transducer.pressed_area == rig.channels["A"].cell.pressed_area  # default: the cell's
    assert a.transducer.calibration.gain == 1.002 and a.transducer.capacity == 2500.0
    b = rig.channels["B"]
    from daq.engine.rig import build_transducer

    modbus = build_transducer(rig, b, clock)
    assert isinstance(modbus, ModbusTransmitter) and modbus.registers.unit == 2
    vendor = copy.deepcopy(tomllib.loads(EXAMPLE.read_text()))
    vendor["channels"]["E"] = {"instrument": "vmp", "channel": 2, "cell": "../cells/li6ps5cl_99.toml"}
    vendor_rig = rig_from_dict(vendor, EXAMPLE.parent)
    b1 = build_channel(vendor_rig, vendor_rig.channels["B"], clock).potentiostat
    b2 = build_channel(vendor_rig, vendor_rig.channels["E"], clock).potentiostat
    assert type(b1).__name__ == "BiologicPotentiostat" and (b1.channel, b2.channel) == (0, 1)  # EClib counts from 0
    assert b1.conn is b2.conn  # one connection per instrument
    c = build_channel(rig, rig.channels["C"], clock).potentiostat
    assert type(c).__name__ == "GamryPotentiostat" and c.section == "IFC1010-31045" and c.clock is clock
    d = build_channel(rig, rig.channels["D"], clock)
    assert isinstance(d.potentiostat, SimulatedPotentiostat) and isinstance(d.transducer, SimulatedTransducer)
    assert d.potentiostat.cell is d.transducer.cell is d.sim_cell  # one simulated cell per channel


def test_vendor_modules_are_imported_only_when_built():
    code = (
        "import sys, daq.engine.rig; daq.engine.rig.load_rig(sys.argv[1]); "
        "print(any(m in sys.modules for m in ('drivers.gamry', 'drivers.biologic', 'pyvisa', 'pymodbus')))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(EXAMPLE)], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_daq_instruments_lists_what_answers(tmp_path, capsys):
    press = SimpleNamespace(stack_pressure=7e6)
    clock = VirtualClock()
    with (
        ScpiServer(SimulatedCell(load_rig(EXAMPLE).channels["A"].cell), clock) as smu,
        ScpiServer(SimulatedCell(load_rig(EXAMPLE).channels["A"].cell), clock) as busy_smu,
        Mark10Emulator(press, 19.635e-6) as gauge,
        ModbusTransmitterEmulator(press) as transmitter,
    ):
        busy_smu.instrument.output = True  # another run is using this one
        dead = ScpiServer(SimulatedCell(load_rig(EXAMPLE).channels["A"].cell), clock)
        dead_port = dead.port
        dead.stop()
        rig = tmp_path / "rig.toml"
        rig.write_text(f"""
[rig]
name = "test bench"
[instruments.smu]
kind = "keithley2450"
resource = "{smu.resource}"
timeout = "0.5 s"
[instruments.busy]
kind = "keithley2450"
resource = "{busy_smu.resource}"
[instruments.gone]
kind = "keithley2450"
resource = "TCPIP::127.0.0.1::{dead_port}::SOCKET"
timeout = "0.5 s"
[instruments.sim]
kind = "sim"
[transducers.gauge]
kind = "mark10"
port = "{gauge.port}"
timeout = "0.5 s"
pressed_area = "19.635 mm^2"
calibration = {{ gain = 1.0, offset = "0 N", date = 2025-06-01, reference = "cert 7" }}
[transducers.line]
kind = "modbus"
port = "{transmitter.port}"
timeout = "0.5 s"
[transducers.line.registers]
value = 0
decimals = 1
unit = 2
unit_codes = {{ 0 = "bar", 1 = "MPa", 2 = "kPa", 3 = "psi" }}
[transducers.unplugged]
kind = "dp41"
port = "{tmp_path / "ttyNOPE"}"
[channels.A]
instrument = "smu"
cell = "{CELL}"
transducer = "gauge"
[channels.B]
instrument = "busy"
cell = "{CELL}"
transducer = "line"
[channels.C]
instrument = "gone"
cell = "{CELL}"
transducer = "unplugged"
[channels.D]
instrument = "sim"
cell = "{CELL}"
""")
        rc = main(["instruments", str(rig)])
        out = capsys.readouterr().out
        assert rc == 1  # something did not answer
        assert not smu.instrument.output and busy_smu.instrument.output  # nothing switched on, nothing off
        commands = smu.instrument.commands + busy_smu.instrument.commands
        assert not any("OUTP ON" in c or "OUTP OFF" in c for c in commands)
    lines = out.splitlines()
    assert lines[0].startswith("Rig 'test bench'")
    text = "\n".join(lines)
    assert "smu: keithley2450 at TCPIP::127.0.0.1" in text
    assert "Keithley 2450, serial 04412345, firmware 1.7.12b; output off" in text
    assert "output ON (in use by another run?)" in text
    assert "ranges: +-1050 mA" in text and "no EIS" in text and "reference electrode: no (two-terminal)" in text
    gone_lines = text.split("gone: keithley2450")[1].splitlines()
    assert gone_lines[1] == "    dead-man time: 60 s (programmed into the instrument)"
    gone = gone_lines[2]
    assert "UNREACHABLE" in gone and ("cannot reach" in gone or "no reply" in gone)
    assert "simulated SimPstat-1" in text
    gauge_lines = text.split("gauge: mark10")[1].splitlines()
    assert "Mark-10 force gauge" in gauge_lines[1]
    assert "pressure 7 MPa (137.4 N on 19.64 mm^2)" in gauge_lines[2]
    assert "calibration: gain 1, offset 0 N, dated 2025-06-01, cert 7" in gauge_lines[3]
    assert "pressure 7 MPa (pressed area" in text.split("line: modbus")[1]
    assert "UNREACHABLE: unplugged: cannot open" in text


# --- running protocols through the real drivers -------------------------------------------------
PROTOCOL = ROOT / "protocols" / "examples" / "ccd_single_plating.toml"


def test_ccd_protocol_through_keithley_and_gauge_matches_the_simulator(tmp_path):
    """The CCD single-plating protocol on the emulated 2450 with the press read by an emulated Mark-10
    gives the simulator's outcome, the same cell voltages, and a pressure column in /timeseries."""
    import numpy as np

    from daq.engine.runner import run_protocol
    from daq.storage.reader import RunFile
    from protocols.loader import load_protocol
    from simulators.rig import simulated_rig

    protocol = load_protocol(PROTOCOL)
    cell = load_rig(EXAMPLE).channels["A"].cell
    clock = VirtualClock()
    with (
        ScpiServer(SimulatedCell(cell), clock) as smu,
        Mark10Emulator(smu.instrument.cell, cell.pressed_area, gain_error=0.98) as gauge,
    ):
        from daq.core.capabilities import Calibration

        pstat = Keithley2450(smu.resource, clock, timeout=1.0)
        transducer = Mark10Gauge(
            gauge.port, cell.pressed_area, Calibration(gain=0.98, date="2025-06-01"), clock, timeout=0.5
        )
        result = run_protocol(protocol, cell, pstat, clock, tmp_path / "keithley.h5", transducer=transducer)
        assert not smu.instrument.output
    clock_ref = VirtualClock()
    _, ref_pstat, ref_transducer = simulated_rig(cell, clock_ref)
    reference = run_protocol(protocol, cell, ref_pstat, clock_ref, tmp_path / "sim.h5", transducer=ref_transducer)

    assert result.outcome == reference.outcome == "completed"  # no short at 9 mA/cm^2
    assert result.plated_capacity == pytest.approx(reference.plated_capacity)
    with RunFile(tmp_path / "keithley.h5") as ours, RunFile(tmp_path / "sim.h5") as ref:
        a, b = ours.timeseries(), ref.timeseries()
        assert list(ours.steps()["end_reason"]) == list(ref.steps()["end_reason"])
        assert len(a) == len(b)
        np.testing.assert_allclose(a["t"], b["t"])
        np.testing.assert_allclose(a["E_cell"], b["E_cell"], atol=1e-12)
        np.testing.assert_allclose(a["I"], b["I"], rtol=1e-12)
        assert "pressure" in a.columns and "force" in a.columns
        np.testing.assert_allclose(a["pressure"], cell.stack_pressure, atol=0.001 / cell.pressed_area)
        assert ours.units()["pressure"] == "Pa"


def test_daq_run_on_a_simulated_rig_channel(tmp_path, capsys):
    rig = tmp_path / "rig.toml"
    rig.write_text(f"""
[rig]
name = "sim bench"
[instruments.sim]
kind = "sim"
[transducers.p]
kind = "sim"
[channels.A]
instrument = "sim"
cell = "{CELL}"
transducer = "p"
[channels.B]
instrument = "sim"
channel = 2
cell = "{ROOT / "protocols" / "examples" / "cells" / "li6ps5cl_83.toml"}"
""")
    out = tmp_path / "run.h5"
    assert main(["run", str(PROTOCOL), "--rig", f"{rig}#A", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "rig 'sim bench', channel A (sim)" in text and "completed" in text
    from daq.storage.reader import RunFile

    with RunFile(out) as f:
        assert f.attrs["channel"] == "A" and "pressure" in f.columns()
    assert main(["run", str(PROTOCOL), "--rig", f"{rig}#Z", "--out", str(tmp_path / "z.h5")]) == 2
    assert "channel = 'Z': not in the rig" in capsys.readouterr().err


@pytest.mark.timeout(60)
def test_daq_run_on_a_keithley_rig_in_real_time(tmp_path, capsys):
    """The CLI builds the 2450 and the gauge from the rig file; a shortened protocol on the wall clock."""
    from daq.core.clock import RealClock

    cell = load_rig(EXAMPLE).channels["A"].cell
    with (
        ScpiServer(SimulatedCell(cell), RealClock()) as smu,
        Mark10Emulator(SimpleNamespace(stack_pressure=7e6), cell.pressed_area) as gauge,
    ):
        rig = tmp_path / "rig.toml"
        rig.write_text(f"""
[instruments.smu]
kind = "keithley2450"
resource = "{smu.resource}"
timeout = "1 s"
[transducers.gauge]
kind = "mark10"
port = "{gauge.port}"
[channels.A]
instrument = "smu"
cell = "{CELL}"
transducer = "gauge"
""")
        out = tmp_path / "run.h5"
        rc = main(
            [
                "run",
                str(PROTOCOL),
                "--rig",
                str(rig),
                "--out",
                str(out),
                "--set",
                "steps.1.duration=2 s",
                "--set",
                "steps.2.capacity=0.005 mAh/cm^2",
            ]
        )
        assert not smu.instrument.output
    assert rc == 0, capsys.readouterr().err
    from daq.storage.reader import RunFile

    with RunFile(out) as f:
        ts = f.timeseries()
        assert f.attrs["rig"] == "rig" and len(ts) >= 3
        assert (ts["I"] < 0).any() and ts["pressure"].between(6.99e6, 7.01e6).all()
