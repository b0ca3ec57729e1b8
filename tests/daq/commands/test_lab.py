"""Two simulated runs publishing to one real Mosquitto broker, which is killed and restarted mid-run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from daq.engine.labwatch import LabWatch
from daq.engine.publish import parse_url
from daq.storage.reader import open_run
from tests.daq.engine.broker import broker  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "DAQ_MQTT_PASSWORD": "never-stored-pw"}


def daq(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "daq.cli", *args], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def states(watch: LabWatch) -> dict[str, str]:
    return {v.key: v.status.get("state", "") for v in watch.snapshot()}


def test_two_runs_publish_through_a_broker_restart_unaffected(broker, tmp_path):  # noqa: F811
    reference = subprocess.run(
        [sys.executable, "-m", "daq.cli", "run", "--sim", "--out", str(tmp_path / "ref.h5")], env=ENV, check=True
    )
    assert reference.returncode == 0
    watch = LabWatch(parse_url(broker.url))
    wait_for(watch.connected.is_set)
    runs = {
        ch: daq(
            "run",
            "--sim",
            "--speed",
            "500",
            "--out",
            str(tmp_path / f"{ch}.h5"),
            "--publish",
            f"{broker.url}/lab/pc1/{ch}",
        )
        for ch in ("A", "B")
    }
    wait_for(lambda: all(s == "running" for s in states(watch).values()) and len(states(watch)) == 2)
    broker.stop()  # mid-run: the runs must not notice
    time.sleep(1.5)
    assert all(p.poll() is None for p in runs.values())
    broker.start()
    late = LabWatch(parse_url(broker.url))  # the restarted broker knows nothing: what it sees was re-published
    outputs = {ch: p.communicate(timeout=120) for ch, p in runs.items()}
    assert all(p.returncode == 0 for p in runs.values()), outputs
    wait_for(lambda: states(late) == {"pc1/A": "completed", "pc1/B": "completed"})
    with open_run(tmp_path / "ref.h5") as ref:
        ref_outcome, ref_end = ref.attrs["outcome"], ref.steps()["t_end"].iloc[-1]
        ref_gap = max(np.diff(ref.timeseries()["t"].to_numpy()))  # the sample period
    for ch in ("A", "B"):
        with open_run(tmp_path / f"{ch}.h5") as run:
            assert run.attrs["outcome"] == ref_outcome == "completed"
            assert abs(run.steps()["t_end"].iloc[-1] - ref_end) < 0.01 * ref_end
            ts = run.timeseries()
            late_samples = np.flatnonzero(np.diff(ts["t"].to_numpy()) > ref_gap + 0.01)
            starts = run.steps()["t_start"].to_numpy()  # in real time, a step's start can delay a sample
            delayed = ts["t"].to_numpy()[late_samples]
            assert all(min(abs(starts - t)) < 5.0 for t in delayed), delayed
        assert b"never-stored-pw" not in (tmp_path / f"{ch}.h5").read_bytes()
        view = next(v for v in watch.snapshot() if v.key == f"pc1/{ch}")
        assert view.messages["events"] >= 1 and view.messages["data"] >= 2 and len(view.data["E_we"]) > 0
        assert view.units["E_we"] == "V"
        lines = subprocess.run(
            [sys.executable, "-m", "daq.cli", "lab", broker.url, "--wait", "1"], env=ENV, capture_output=True, text=True
        ).stdout.splitlines()
        assert lines[0].split()[:3] == ["CHANNEL", "CELL", "PROTOCOL"]
        assert any(line.startswith(f"pc1/{ch}") and "completed" in line and "LPSCl-99-01" in line for line in lines)
    watch.close()
    late.close()
