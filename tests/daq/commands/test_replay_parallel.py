"""A replay study over several recordings: side by side in worker processes it writes the same replays
as one by one, and a recording that cannot be replayed is one line while the others are replayed."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from daq.cli import main
from tests.conftest import EXAMPLES, run_sim

PROTOCOL = EXAMPLES / "ccd_single_plating.toml"
STRICT = ["--set", "short_circuit.enabled=true", "--set", "short_circuit.collapse_fraction=0.9"]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Three recordings of 99 % cells: two short at 10 mA/cm^2 (seeds 1 and 2), one stays sound at 4."""
    d = tmp_path_factory.mktemp("study")
    for name, density, seed in (("a", "10", 1), ("b", "10", 2), ("c", "4", 1)):
        run_sim(
            PROTOCOL,
            d / f"{name}.h5",
            99,
            {"current_density": f"{density} mA/cm^2", "capacity": "6 mAh/cm^2"},
            {"simulation.seed": seed},
        )
    return [d / f"{n}.h5" for n in "abc"]


def replayed(folder, name) -> tuple[np.ndarray, str, str]:
    with h5py.File(folder / f"{name}-replay.h5", "r") as f:
        return f["timeseries/E_cell"][...], str(f.attrs["outcome"]), str(f.attrs["replay_of"])


def test_two_workers_write_the_same_replays_as_one(recordings, tmp_path, capsys):
    files = [str(p) for p in recordings]
    assert main(["replay", *files, *STRICT, "--out", str(tmp_path / "j1"), "--jobs", "1"]) == 0
    one = capsys.readouterr().out.splitlines()
    assert main(["replay", *files, *STRICT, "--out", str(tmp_path / "j2"), "--jobs", "2"]) == 0
    two = capsys.readouterr().out.splitlines()
    assert sorted(one) == sorted(l.replace("/j2/", "/j1/") for l in two) and len(one) == 3
    outcomes = []
    for name in "abc":
        (e1, o1, src1), (e2, o2, src2) = replayed(tmp_path / "j1", name), replayed(tmp_path / "j2", name)
        np.testing.assert_array_equal(e1, e2)
        assert (o1, src1) == (o2, src2) and src1.endswith(f"{name}.h5")
        outcomes.append(o1)
    assert outcomes == ["short_circuit", "short_circuit", "completed"]


def test_a_dask_cluster_writes_the_same_replays_as_one_by_one(recordings, tmp_path, capsys):
    distributed = pytest.importorskip("distributed")
    files = [str(p) for p in recordings[:2]]
    assert main(["replay", *files, *STRICT, "--out", str(tmp_path / "j1"), "--jobs", "1"]) == 0
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        assert main(["replay", *files, *STRICT, "--out", str(tmp_path / "dask"), "--dask", c.scheduler_address]) == 0
    capsys.readouterr()
    for name in "ab":
        (e1, o1, _), (e2, o2, _) = replayed(tmp_path / "j1", name), replayed(tmp_path / "dask", name)
        np.testing.assert_array_equal(e1, e2)
        assert o1 == o2 == "short_circuit"


def test_a_bad_recording_is_one_line_and_the_others_are_replayed(recordings, tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not a run file")
    files = [str(recordings[0]), str(bad), str(recordings[2])]
    assert main(["replay", *files, "--out", str(tmp_path / "out"), "--jobs", "2"]) == 2
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 3 and sum(l.startswith(f"{bad}: not replayed: ") for l in lines) == 1
    assert err == "daq: error: 1 of 3 recordings could not be replayed (the reasons are above)\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a-replay.h5", "c-replay.h5"]


def test_replays_that_would_collide_are_refused(recordings, tmp_path, capsys):
    code = main(["replay", str(recordings[0]), str(recordings[0]), "--out", str(tmp_path / "o")])
    assert code == 2 and "same file name" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_missing_recording_is_refused_before_any_replay(recordings, tmp_path, capsys):
    missing = tmp_path / "missing.h5"
    code = main(["replay", str(recordings[0]), str(missing), "--out", str(tmp_path / "o")])
    assert (code, capsys.readouterr()) == (2, ("", f"daq: error: '{missing}': no such run file\n"))
    assert not (tmp_path / "o").exists()
