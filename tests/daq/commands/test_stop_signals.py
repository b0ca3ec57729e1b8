"""A service stop, a closed SSH session and SIGQUIT end ``daq run`` the way Ctrl-C does: current off
within a second, and the run file records the abort (the interrupted step's row, an ``aborted`` event,
the open-circuit record, a last sample with no current)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daq.storage.reader import open_run

ROOT = Path(__file__).resolve().parents[3]


def start_run(out: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "daq.cli", "run", "--sim", "--speed", "50", "--set", "steps.1.duration=10 s"]
    return subprocess.Popen(cmd + ["--out", str(out)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)


def wait_for_plating(out: Path, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Until the file exists and the plating step (10 s of rest at 50x: 0.2 s) has run a while."""
    deadline = time.monotonic() + timeout
    while not out.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the run did not start"
        time.sleep(0.05)
    time.sleep(1.5)  # 75 s of plating at 50x


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT], ids=lambda s: s.name)
def test_stop_signal_aborts_and_records(tmp_path, sig):
    out = tmp_path / "run.h5"
    proc = start_run(out)
    try:
        wait_for_plating(out, proc)
        t_sent = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout=10)
        elapsed = time.monotonic() - t_sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert elapsed < 1.0, f"exit {elapsed:.2f} s after {sig.name}"
    assert proc.returncode == 0
    with open_run(out) as run:
        assert run.attrs["outcome"] == "aborted"
        steps = run.steps()
        plate = steps[steps.label == "plate"]
        assert list(plate.end_reason) == ["aborted"]
        assert plate.Q.iloc[0] < 0  # current had flowed and is counted up to the abort
        assert list(steps.label)[-1] == "open circuit after aborted"
        events = run.events()
        aborted = events[events.kind == "aborted"]
        assert len(aborted) == 1 and sig.name in aborted.message.iloc[0]
        ts = run.timeseries()
        last_step = int(steps["index"].iloc[-1])
        after = ts[ts.step == last_step]
        assert len(after) >= 1 and (after.I == 0).all()
        assert ts.I.iloc[-1] == 0.0
