"""A service stop, a closed SSH session and SIGQUIT end ``daq run`` the way Ctrl-C does: current off
within a second, and the run file records the abort (the interrupted step's row, an ``aborted`` event,
the open-circuit record, a last sample with no current)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from daq.core.errors import DataFileError
from daq.storage.reader import open_run
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[3]


def start_run(out: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "daq.cli", "run", "--sim", "--speed", "50", "--set", "steps.1.duration=10 s"]
    return subprocess.Popen(cmd + ["--out", str(out)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)


def plating_recorded(out: Path, proc: subprocess.Popen) -> bool:
    """True once the run file holds samples of the plating step (current flowing)."""
    assert proc.poll() is None, "the run ended before plating"
    if not out.exists():
        return False
    try:
        with open_run(out) as run:
            return bool((run.timeseries().I < 0).any())
    except DataFileError:  # created, not yet followable
        return False


def wait_for_plating(out: Path, proc: subprocess.Popen) -> None:
    """Until the plating step (after 10 s of rest at 50x: 0.2 s) has current recorded in the file."""
    wait_until(lambda: plating_recorded(out, proc), what="plating samples in the run file")


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
    assert proc.returncode == 130  # aborted
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


def test_stop_signal_while_connecting_to_a_silent_instrument(tmp_path):
    """A Keithley that accepts the connection and never answers (a half-open link), 30 s timeout: a
    service stop still ends the command within a second and leaves a readable file saying why."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: [accepted.append(server.accept()[0]) for _ in range(4)], daemon=True).start()
    port = server.getsockname()[1]
    cells = ROOT / "protocols" / "examples" / "cells"
    rig = tmp_path / "rig.toml"
    rig.write_text(
        f'[rig]\nname = "bench"\n[instruments.smu]\nkind = "keithley2450"\n'
        f'resource = "TCPIP::127.0.0.1::{port}::SOCKET"\ntimeout = "30 s"\n'
        f'[instruments.sim]\nkind = "sim"\n'
        f'[channels.A]\ninstrument = "smu"\ncell = "{cells / "li6ps5cl_99.toml"}"\n'
        f'[channels.B]\ninstrument = "sim"\ncell = "{cells / "li6ps5cl_95.toml"}"\n'
    )
    out = tmp_path / "run.h5"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "daq.cli", "run", "--rig", f"{rig}#A", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not accepted:  # the driver is connecting and waits for a reply
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)
        t_sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        elapsed = time.monotonic() - t_sent
    finally:
        if proc.poll() is None:
            proc.kill()
        server.close()
    assert elapsed < 1.0, f"exit {elapsed:.2f} s after SIGTERM while connecting"
    assert proc.returncode == 130 and "Traceback" not in err
    with open_run(out) as run:
        assert run.status == "failed" and run.attrs["outcome"] == "fault"
        assert run.attrs["deadman_s"] == 60.0
