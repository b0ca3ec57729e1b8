"""Replaying recorded runs (ours and imported) through protocols: identity, thresholds, divergence."""

import hashlib
import json

import h5py
import numpy as np
import pytest

from daq.analysis.postrun import analyse
from daq.cli import main
from daq.commands.replay import replay
from daq.storage.reader import open_run
from tests.conftest import EXAMPLES, VENDOR_DATA, run_sim

PROTOCOL = EXAMPLES / "ccd_single_plating.toml"
SHORT = {"current_density": "10 mA/cm^2"}  # above the 99 % cell's CCD: it shorts after ~5.4 mAh/cm^2
ON = {"short_circuit.enabled": True}
STRICT = {**ON, "short_circuit.collapse_fraction": 0.9, "short_circuit.window": "10 min"}
LOOSE = {**ON, "short_circuit.collapse_fraction": 0.05}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A recorded short (detector on, as the lab runs it) and the same cell and current recorded with the
    detector off, so plating went on through the filament until the capacity was reached."""
    d = tmp_path_factory.mktemp("replay")
    short = run_sim(PROTOCOL, d / "short.h5", 99, SHORT)
    through = run_sim(PROTOCOL, d / "through.h5", 99, {**SHORT, "short_circuit.enabled": False})
    return d, short, through


def _tables(path):
    with open_run(path) as run:
        return run.steps(), run.events(), run.timeseries(), run.spectra()


def _points(path):
    with h5py.File(path, "r") as f:
        return f["eis/points"][()]


def test_round_trip_gives_identical_steps_events_and_samples(runs):
    d, short, _ = runs
    res, pstat = replay(short.path, d / "rt.h5")
    assert pstat.divergence is None and not pstat.ended and pstat.source.has_transcript
    s0, e0, t0, sp0 = _tables(short.path)
    s1, e1, t1, sp1 = _tables(res.path)
    assert s0.equals(s1)  # kinds, end reasons, times, charges, parameters
    assert e0.equals(e1)  # the short: its time, sample index, capacity
    assert t0.equals(t1[t0.columns])
    assert sp0.drop(columns="dc").equals(sp1.drop(columns="dc")) and np.array_equal(
        _points(short.path), _points(res.path)
    )
    assert (res.outcome, res.short) == (short.outcome, short.short)
    with h5py.File(short.path, "r") as a, h5py.File(res.path, "r") as b:
        fields = ["t", "kind", "first", "n"]  # the replay was read in the recorded blocks
        assert np.array_equal(a["transcript/reads"][()][fields], b["transcript/reads"][()][fields])


@pytest.mark.parametrize("protocol,density", [("asymmetric_cycling.toml", 83), ("operando_geis_plating.toml", 99)])
def test_round_trip_of_loops_and_operando_spectra(tmp_path, protocol, density):
    rec = run_sim(EXAMPLES / protocol, tmp_path / "rec.h5", density)
    res, pstat = replay(rec.path, tmp_path / "rep.h5")
    assert pstat.divergence is None and res.outcome == rec.outcome == "short_circuit"
    s0, e0, t0, sp0 = _tables(rec.path)
    s1, e1, t1, sp1 = _tables(res.path)
    assert s0.equals(s1) and e0.equals(e1) and t0.equals(t1[t0.columns])
    assert len(sp0) == len(sp1) > 0 and np.array_equal(_points(rec.path), _points(res.path))


def test_replay_file_states_its_source(runs):
    d, short, _ = runs
    res, _ = replay(short.path, d / "src.h5")
    with open_run(res.path) as run, open_run(short.path) as src:
        attrs = run.attrs
        assert attrs["run_kind"] == "replay" and attrs["rig"] == "replay"
        assert attrs["replay_of"] == str(short.path) or attrs["replay_of"].endswith("short.h5")
        assert attrs["replay_source_start_time"] == src.attrs["start_time"]
        with open(short.path, "rb") as fh:
            assert attrs["replay_source_sha256"] == hashlib.sha256(fh.read()).hexdigest()
        assert attrs["replay_source_answered_from"] == "transcript"
        assert json.loads(attrs["replay_divergence"]) == {}
        assert run.prediction("ccd") == src.prediction("ccd")


def test_runs_without_a_transcript_replay_from_their_steps(runs, tmp_path):
    rec = run_sim(PROTOCOL, tmp_path / "plain.h5", 99, SHORT, transcript=False)
    res, pstat = replay(rec.path, tmp_path / "plain-replay.h5")
    assert not pstat.source.has_transcript and pstat.divergence is None
    s0, e0, t0, _ = _tables(rec.path)
    s1, e1, t1, _ = _tables(res.path)
    assert s0.equals(s1) and e0.equals(e1) and t0.equals(t1[t0.columns])


def _stop_sample(res):
    if res.short:
        return res.short["sample"]
    with open_run(res.path) as run:
        ts = run.timeseries()
        return int(np.flatnonzero(ts.step.values == 1)[-1])  # the plating step's last sample


def test_stricter_threshold_stops_earlier_looser_later(runs):
    d, short, through = runs
    ref, _ = replay(through.path, d / "ref.h5", overrides=ON)
    strict, strict_p = replay(through.path, d / "strict.h5", overrides=STRICT)
    loose, loose_p = replay(through.path, d / "loose.h5", overrides=LOOSE)
    # With the recorded run's own criteria the replay finds the short the live detector found.
    assert ref.short == short.short
    # Stricter: the gradual fall of polarisation as the crack shortens the bulk path counts as a short.
    assert strict.outcome == "short_circuit" and _stop_sample(strict) < _stop_sample(ref)
    # Looser: the one-sample collapse is missed; plating runs on, as recorded, to the capacity cut-off.
    assert loose.outcome == "completed" and loose.short is None and loose_p.divergence is None
    assert _stop_sample(loose) > _stop_sample(ref)
    s, _, _, _ = _tables(loose.path)
    assert list(s.end_reason) == ["time_reached", "capacity_reached"]
    # The stricter replay switched off while the recording kept plating: no invented rest samples.
    d_ = strict_p.divergence
    assert d_ is not None and d_.t == pytest.approx(strict.short["t"] + 1.0)
    s, e, ts, _ = _tables(strict.path)
    assert list(s.end_reason) == ["time_reached", "short_circuit", "time_reached"]
    assert not (ts.step == 2).any()  # the "open circuit after stop" step has no recorded samples
    assert list(e.kind) == ["short_circuit", "replay_divergence"]
    assert json.loads(e.data.iloc[1])["recorded_until"] == pytest.approx(3480.0)


def test_stricter_replay_of_a_short_skips_the_spectrum_it_cannot_answer(runs):
    d, short, _ = runs
    res, pstat = replay(short.path, d / "strict-short.h5", overrides=STRICT)
    assert res.outcome == "short_circuit" and res.short["sample"] < short.short["sample"]
    _, e, _, spectra = _tables(res.path)
    assert len(spectra) == 0  # the recorded post-short spectrum belongs to the other history
    assert "replay_divergence" in set(e.kind) and pstat.capabilities.eis_potentiostatic is False


def test_looser_replay_of_a_tripped_recording_ends_where_the_recording_does(runs):
    d, short, _ = runs
    res, pstat = replay(short.path, d / "loose-short.h5", overrides={"short_circuit.collapse_fraction": 0.05})
    # the replay stops like an instrument that has nothing more to say: current off, outcome fault
    assert res.outcome == "fault" and res.message.startswith("replay ended:")
    assert res.short is None and pstat.divergence.t == pytest.approx(2578.0)
    _, e, ts, _ = _tables(res.path)
    assert list(e.kind) == ["replay_divergence", "fault"]
    _, _, recorded, _ = _tables(short.path)
    plating = recorded[recorded.step == 1]
    assert ts.t.max() == plating.t.max()  # every sample the recording has for plating, none after
    assert np.array_equal(ts[ts.step == 1].E_we.values, plating.E_we.values)
    with open_run(res.path) as run:
        assert "switched to open circuit at 2578 s" in run.attrs["replay_ended"]


def test_another_current_than_recorded_is_not_answered(runs):
    d, short, _ = runs
    res, pstat = replay(short.path, d / "other.h5", overrides={"current_density": "9 mA/cm^2"})
    assert res.outcome == "fault" and pstat.divergence.t == pytest.approx(600.0)
    _, _, ts, _ = _tables(res.path)
    assert not (ts.step == 1).any()
    assert "a current of -70.6858 µA" in pstat.divergence.message


def test_settings_the_samples_cannot_show_become_notes(runs):
    d, short, _ = runs
    res, pstat = replay(short.path, d / "note.h5", overrides={"v_min": "-1 V"})
    assert pstat.divergence is None and res.short == short.short
    _, e, _, _ = _tables(res.path)
    assert list(e.kind) == ["replay_note", "short_circuit"]
    assert json.loads(e.data.iloc[0]) == {"limits": {"protocol": [-1.0, 2.0], "recording": [-2.0, 2.0]}}


# --- imported vendor recordings ------------------------------------------------------------------

CHRONOP = """
[protocol]
name = "Chronopotentiometry, two current steps"
[defaults]
sample_period = "1 s"
[[steps]]
kind = "rest"
duration = "0.5 s"
[[steps]]
kind = "galvanostatic"
direction = "strip"
current_density = "0.01 mA/cm^2"
duration = "5 s"
[[steps]]
kind = "galvanostatic"
direction = "strip"
current_density = "0.02 mA/cm^2"
duration = "5 s"
"""

CSTC = """
[protocol]
name = "Constant current after a rest"
[[steps]]
kind = "rest"
duration = "10 s"
sample_period = "1 s"
[[steps]]
kind = "galvanostatic"
direction = "strip"
current_density = "{cd} mA/cm^2"
duration = "60 s"
sample_period = "5 s"
"""


def _geis(amplitude="100 mA/cm^2"):
    text = '[protocol]\nname = "GEIS at three DC currents"\n'
    for dc in (50, 100, 200):
        text += (
            f'[[steps]]\nkind = "loop"\ncycles = 4\n  [[steps.steps]]\n  kind = "eis"\n  mode = "galvanostatic"\n'
            f'  f_start = "1 kHz"\n  f_end = "1 Hz"\n  points_per_decade = 6\n  amplitude = "{amplitude}"\n'
            f'  dc = "{dc} mA/cm^2"\n'
        )
    return text


VENDOR = [("CHRONOP.DTA", CHRONOP, 3), ("CstC_nesd.mpr", CSTC.format(cd=10), 2), ("GEIS_nesd.mpr", _geis(), 12)]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    if not VENDOR_DATA.exists():
        pytest.skip("vendor recordings not available")
    d = tmp_path_factory.mktemp("imported")
    out = {}
    for name, _, _ in VENDOR:
        path = d / f"{name.split('.')[0]}.h5"
        assert main(["import", str(VENDOR_DATA / name), "--out", str(path)]) == 0
        out[name] = path
    return d, out


@pytest.fixture(scope="module")
def replayed(imported):
    """Each vendor recording replayed once (`daq replay`) with a protocol of its technique."""
    d, files = imported
    out = {}
    for name, protocol, _ in VENDOR:
        proto = d / f"{name}.toml"
        proto.write_text(protocol)
        out[name] = d / f"{name}-replay.h5"
        assert main(["replay", str(files[name]), "--protocol", str(proto), "--out", str(out[name])]) == 0
    return out


@pytest.mark.parametrize("name,protocol,n_steps", VENDOR)
def test_imported_recordings_replay_with_a_matching_protocol(imported, replayed, name, protocol, n_steps):
    _, files = imported
    with open_run(files[name]) as src, open_run(replayed[name]) as run:
        assert run.attrs["outcome"] == "completed" and run.attrs["replay_source_answered_from"] == "steps"
        assert json.loads(run.attrs["replay_divergence"]) == {}
        a, b = src.timeseries(), run.timeseries()
        t0 = src.steps().t_start.iloc[0]  # replay time starts at the recording's first step
        assert np.allclose(b.t.values, a.t.values - t0, rtol=0, atol=1e-9)
        assert np.array_equal(b.E_we.values, a.E_we.values) and np.array_equal(b.I.values, a.I.values)
        assert len(run.steps()) == n_steps and (run.steps().end_reason != "aborted").all()
        assert len(run.spectra()) == len(src.spectra())
        for i in range(len(src.spectra())):
            assert np.array_equal(run.spectrum(i).z_real.values, src.spectrum(i).z_real.values)


def test_imported_replay_with_another_current_is_not_answered(imported):
    d, files = imported
    proto = d / "cstc20.toml"
    proto.write_text(CSTC.format(cd=20))
    res, pstat = replay(files["CstC_nesd.mpr"], d / "cstc20.h5", protocol_path=str(proto))
    assert res.outcome == "fault" and pstat.divergence.t == pytest.approx(10.0, abs=1e-6)
    with open_run(res.path) as run:
        assert not (run.timeseries().step == 1).any()


def test_imported_replay_with_another_sweep_faults_with_the_reason(imported):
    d, files = imported
    proto = d / "geis-amp.toml"
    proto.write_text(_geis("50 mA/cm^2"))
    res, _ = replay(files["GEIS_nesd.mpr"], d / "geis-amp.h5", protocol_path=str(proto))
    assert res.outcome == "fault" and "amplitude" in res.message and "not the recorded one" in res.message


def test_imported_geis_spectra_fit_like_ours(imported, replayed):
    _, files = imported
    path = files["GEIS_nesd.mpr"]
    analyse(path)
    with h5py.File(path, "r") as f:
        fits = f["analysis/eis_fits"][()]
    assert len(fits) == 12 and fits["success"].all()
    with open_run(path) as run:
        for row in fits:
            s = run.spectrum(int(row["spectrum"]))
            assert min(row["R0"], row["R1"], row["R2"]) > 0
            z_lf = s.z_real.values[np.argmin(s.frequency.values)]  # 1 Hz: the arc has nearly closed
            z_hf = s.z_real.values[np.argmax(s.frequency.values)]  # 1 kHz: the arcs above are not resolved
            assert row["R0"] + row["R1"] + row["R2"] == pytest.approx(z_lf, rel=0.02)
            assert row["R0"] + row["R1"] == pytest.approx(z_hf, rel=0.03)
            assert row["relative_residual"] < 0.01
    # the interface arc is the same at the three DC currents (R2 within 0.1 %)
    assert np.ptp(fits["R2"]) < 1e-3 * fits["R2"].mean()
    with h5py.File(replayed["GEIS_nesd.mpr"], "r") as f:  # analysed when the replay closed
        replayed = f["analysis/eis_fits"][()]
    assert np.array_equal(replayed[["R0", "R1", "R2"]], fits[["R0", "R1", "R2"]])


def test_cli_refusals_are_one_line(imported, tmp_path, capsys):
    _, files = imported
    assert main(["replay", str(files["CstC_nesd.mpr"]), "--out", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("daq: error:") and "--protocol" in err and err.count("\n") == 1
    assert main(["replay", str(tmp_path / "missing.h5")]) == 2
    src = str(files["CHRONOP.DTA"])
    assert main(["replay", src, "--protocol", str(EXAMPLES / "peis.toml"), "--out", src, "--force"]) == 2
