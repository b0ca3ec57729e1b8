"""``daq resume``: an interrupted run continues in its own file only if the cell is still sound."""

import dataclasses
import shutil

import numpy as np
import pytest

from daq.cli import main
from daq.core.clock import VirtualClock
from daq.engine.soundness import Reference, SoundnessLimits, check_cell, expected_bulk_resistance
from daq.models.cell import load_cell
from daq.storage.reader import open_run
from simulators.cell import SimulatedCell
from simulators.potentiostat import SIM_CAPABILITIES, SimulatedPotentiostat
from tests.conftest import CELLS, EXAMPLES, ROOT, kill_run


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """A CCD run killed in its plating step (600 s rest, then ~1300 s of plating recorded)."""
    return kill_run(tmp_path_factory.mktemp("killed") / "run.h5", "ccd_single_plating.toml", blocks=8)


@pytest.fixture
def run_file(killed, tmp_path):
    out = tmp_path / "run.h5"
    shutil.copy(killed, out)
    return out


def snapshot(path):
    with open_run(path) as run:
        ts = run.timeseries()
        return run.status, {c: ts[c].to_numpy().copy() for c in ts.columns}, run.events()


def one_line_error(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_sound_cell_resumes_to_the_full_capacity(run_file, capsys):
    assert main(["resume", str(run_file), "--sim"]) == 0
    out = capsys.readouterr().out
    assert "cell sound: open-circuit voltage" in out and "completed" in out
    with open_run(run_file) as run:
        assert run.status == "completed"
        steps, events = run.steps(), run.events()
        area = run.cell["electrodes.working_area"]
        assert list(steps.end_reason) == ["time_reached", "capacity_reached"]
        assert abs(steps.Q.iloc[1]) / area / 36000 == pytest.approx(8.0, rel=1e-6)
        assert np.all(np.diff(run.timeseries().t) > 0)
        check = events[events.kind == "soundness_check"]
        assert len(check) == 1 and "cell sound" in check.message.iloc[0]


def test_shorted_cell_is_refused_and_nothing_recorded_is_lost(run_file, capsys):
    status, before, events_before = snapshot(run_file)
    code = main(["resume", str(run_file), "--sim", "--set", "cell.simulation.start_shorted=true"])
    assert code == 2
    err = one_line_error(capsys)
    assert "not resumed: impedance collapsed: |Z| = " in err and "below the limit 0.5 x" in err
    assert "expected bulk resistance (2500 ohm" in err
    status_after, after, events = snapshot(run_file)
    assert status == status_after == "interrupted"
    for name, values in before.items():  # every recorded sample is still there, unchanged
        np.testing.assert_array_equal(after[name], values)
    refused = events[events.kind == "resume_refused"]
    assert len(events) == len(events_before) + 1 and len(refused) == 1
    assert "no current applied" in refused.message.iloc[0]
    # the file stays resumable: once the cell is sound again the run continues
    assert main(["resume", str(run_file), "--sim"]) == 0
    with open_run(run_file) as run:
        assert run.status == "completed"


def test_damaged_cell_is_refused(run_file, capsys):
    assert main(["resume", str(run_file), "--sim", "--set", "cell.simulation.start_damage=97 %"]) == 2
    err = one_line_error(capsys)
    assert "impedance too high" in err and "above the limit 10 x" in err


def test_open_circuit_voltage_outside_the_limit_is_refused(run_file, capsys):
    assert main(["resume", str(run_file), "--sim", "--ocv-max", "0.01 mV"]) == 2
    err = one_line_error(capsys)
    assert "open-circuit voltage" in err and "outside +/-0 mV" in err


@pytest.mark.parametrize(
    "args,needle",
    [
        ([], "choose where to continue"),
        (["--sim", "--set", "current_density=1 mA/cm^2"], "a resumed run keeps its protocol"),
        (["--sim", "--set", "cell.electrolyte.thickness=2 mm"], "only cell.simulation.* fields"),
        (["--sim", "--ocv-max", "banana"], "--ocv-max"),
        (["--sim", "--ocv-max", "-1 V"], "--ocv-max"),
        (["--sim", "--speed", "0"], "--speed"),
        (["--rig", "/nonexistent/rig.toml"], "file not found"),
        (["--sim", "--notify", "/nonexistent/notify.toml"], "file not found"),
    ],
)
def test_bad_arguments_refused_before_anything_runs(run_file, capsys, args, needle):
    _, before, _ = snapshot(run_file)
    assert main(["resume", str(run_file), *args]) == 2
    assert needle in one_line_error(capsys)
    status, after, _ = snapshot(run_file)
    assert status == "interrupted" and len(after["t"]) == len(before["t"])


def test_files_that_cannot_be_resumed(tmp_path, capsys):
    assert main(["resume", str(tmp_path / "missing.h5"), "--sim"]) == 2
    assert "no such run file" in one_line_error(capsys)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    assert main(["resume", str(junk), "--sim"]) == 2
    assert "junk.h5" in one_line_error(capsys)
    done = tmp_path / "done.h5"
    assert (
        main(
            [
                "run",
                str(EXAMPLES / "ccd_single_plating.toml"),
                "--sim",
                "--out",
                str(done),
                "--set",
                "capacity=0.1 mAh/cm^2",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["resume", str(done), "--sim"]) == 2
    assert "only interrupted runs can be resumed" in one_line_error(capsys)


def test_resume_on_a_rig_channel_checks_the_cell(run_file, tmp_path, capsys):
    rig = tmp_path / "rig.toml"
    rig.write_text(
        f'[rig]\nname = "bench"\n[instruments.sim]\nkind = "sim"\n'
        f'[channels.A]\ninstrument = "sim"\ncell = "{CELLS / "li6ps5cl_99.toml"}"\n'
        f'[channels.B]\ninstrument = "sim"\nchannel = 2\ncell = "{CELLS / "li6ps5cl_95.toml"}"\n'
    )
    assert main(["resume", str(run_file), "--rig", f"{rig}#B"]) == 2
    assert "channel B holds cell" in one_line_error(capsys)
    assert main(["resume", str(run_file), "--rig", str(rig)]) == 2  # never a guessed channel
    assert "channels A (sim, cell LPSCl-99-01), B (sim, cell LPSCl-95-01)" in one_line_error(capsys)
    assert main(["resume", str(run_file), "--rig", f"{rig}#A"]) == 0
    with open_run(run_file) as run:
        assert run.status == "completed"


# --- the check itself -----------------------------------------------------------------------------
def sim_instrument(overrides=None, capabilities=SIM_CAPABILITIES):
    cell = load_cell(CELLS / "li6ps5cl_99.toml", overrides)
    clock = VirtualClock()
    pstat = SimulatedPotentiostat(SimulatedCell(cell), clock, capabilities)
    pstat.connect()
    return cell, clock, pstat


def healthy_spectrum():
    cell, _, pstat = sim_instrument()
    f = np.logspace(6, 0, 31)
    return Reference(
        "spectrum", "the healthy spectrum", float(abs(pstat.cell.impedance(f)[-1])), f, pstat.cell.impedance(f)
    )


@pytest.mark.parametrize(
    "overrides,ok,needle",
    [
        ({}, True, ""),
        ({"simulation.start_shorted": True}, False, "impedance collapsed"),
        ({"simulation.start_damage": "97 %"}, False, "impedance too high"),
    ],
)
def test_check_against_an_earlier_spectrum(overrides, ok, needle):
    cell, clock, pstat = sim_instrument(overrides)
    report = check_cell(pstat, clock, cell, healthy_spectrum())
    assert report.ok is ok and needle in report.problem
    assert report.method == "eis" and len(report.frequencies) == 9
    if ok:
        assert report.ratio == pytest.approx(1.0, abs=0.05)
    assert pstat.mode == "off"  # left switched off either way
    assert abs(report.ocv) < 1e-3


@pytest.mark.parametrize("overrides,ok", [({}, True), ({"simulation.start_damage": "95 %"}, False)])
def test_dc_step_when_the_instrument_has_no_impedance(overrides, ok):
    caps = dataclasses.replace(SIM_CAPABILITIES, eis_potentiostatic=False)
    cell, clock, pstat = sim_instrument(overrides, caps)
    ref = Reference("bulk", "the bulk", expected_bulk_resistance(cell))
    report = check_cell(pstat, clock, cell, ref, SoundnessLimits())
    assert report.method == "dc_step" and report.ok is ok
    assert report.resistance == pytest.approx(3800, rel=0.2) if ok else report.ratio > 10
    assert pstat.mode == "off"


def test_expected_bulk_resistance():
    cell = load_cell(CELLS / "li6ps5cl_99.toml")
    # 2 mS/cm, 1 mm working disc: 1 / (4 * 0.2 S/m * 0.5 mm) = 2500 ohm
    assert expected_bulk_resistance(cell) == pytest.approx(2500.0)


def test_a_file_the_hdf5_library_cannot_finish_reading_is_refused(tmp_path):
    from daq.core.errors import DataFileError
    from daq.storage.probe import probe_readable
    from tests.conftest import run_sim

    done = run_sim(EXAMPLES / "ccd_single_plating.toml", tmp_path / "done.h5", 99, {"capacity": "0.1 mAh/cm^2"})
    probe_readable(tmp_path / "done.h5")  # a sound file passes
    data = bytearray((tmp_path / "done.h5").read_bytes())
    at = data.find(b"one point of a CCD")  # the protocol text, in a global heap of strings
    data[at : at + 2000] = bytes(2000)  # a zeroed span there makes the HDF5 library loop forever
    bad = tmp_path / "bad.h5"
    bad.write_bytes(bytes(data))
    with pytest.raises(DataFileError, match="did not finish within 3 s.*no current applied"):
        probe_readable(bad, timeout=3.0, consequence="nothing was changed and no current applied")
    assert done.status == "completed"


def test_an_imported_recording_is_not_resumed(tmp_path, capsys):
    src = ROOT / "tests" / "data" / "galv_eis_eu.DTA"
    assert main(["import", str(src), "--out", str(tmp_path / "imported.h5")]) == 0
    capsys.readouterr()
    assert main(["resume", str(tmp_path / "imported.h5"), "--sim"]) == 2
    assert "a recording of another program; only runs recorded by this rig can be resumed" in one_line_error(capsys)
