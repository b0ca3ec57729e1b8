"""Dead-man switch of the Keithley 2450, measured: a client is SIGKILLed while sourcing, the emulated
2450 (real clock, its own timer) must switch its output off within the dead-man time by itself.

Each trial starts ``tests/drivers/keithley_client.py`` (the real driver through pyvisa-py over loopback
TCP: connect, a galvanostatic step, a read every 0.2 s), kills it with SIGKILL at a random moment
(0.1-3 s after the step started) and measures the time from the kill until the emulated output is
off (polled every 5 ms). Then the bounded waits: an unreachable address, a half-open connection, an
instrument that stops answering mid-step, and SIGINT while connecting.

    python scripts/keithley_deadman_test.py               # 20 kills, dead-man 2 s, period 0.25 s
    python scripts/keithley_deadman_test.py --kills 5 --deadman 4

Prints Markdown tables (docs/reliability.md, "Dead-man switch, Keithley 2450"); exit code 1 if any
kill left the output on longer than the dead-man time.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from daq.core.clock import RealClock  # noqa: E402
from daq.core.errors import InstrumentError  # noqa: E402
from daq.models.cell import load_cell  # noqa: E402
from drivers.keithley2450 import Keithley2450  # noqa: E402
from simulators.cell import SimulatedCell  # noqa: E402
from simulators.scpi_server import ScpiServer  # noqa: E402

CELL = ROOT / "protocols" / "examples" / "cells" / "li6ps5cl_99.toml"


def client(resource: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tests.drivers.keithley_client", resource, *args]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(proc: subprocess.Popen, text: str) -> None:
    for line in proc.stdout:  # type: ignore[union-attr]
        if line.strip() == text:
            return
    raise RuntimeError(f"client ended early: {proc.stderr.read()}")  # type: ignore[union-attr]


def off_after(server: ScpiServer, limit: float) -> float:
    started = time.monotonic()
    while server.instrument.output and time.monotonic() - started < limit:
        time.sleep(0.005)
    return time.monotonic() - started


def kills(n: int, deadman: float, period: float, seed: int) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    rows = []
    with ScpiServer(SimulatedCell(load_cell(CELL)), RealClock()) as server:
        for _ in range(n):
            proc = client(server.resource, str(deadman), str(period))
            wait_for(proc, "sourcing")
            moment = rng.uniform(0.1, 3.0)
            time.sleep(moment)
            on = server.instrument.output
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            rows.append((moment, off_after(server, 5 * deadman) if on else float("nan")))
    return rows


def timed(fn) -> tuple[float, str]:
    started = time.monotonic()
    try:
        fn()
        message = "no error"
    except InstrumentError as exc:
        message = str(exc)
    return time.monotonic() - started, message


def bounded_waits(timeout: float) -> list[tuple[str, float, str]]:
    rows = []
    k = Keithley2450("TCPIP::192.0.2.1::5025::SOCKET", RealClock(), timeout=timeout)
    rows.append(("unreachable address (192.0.2.1)", *timed(k.connect)))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    resource = f"TCPIP::127.0.0.1::{listener.getsockname()[1]}::SOCKET"
    rows.append(("half-open connection", *timed(Keithley2450(resource, RealClock(), timeout=timeout).connect)))
    with ScpiServer(SimulatedCell(load_cell(CELL)), RealClock()) as server:
        k = Keithley2450(server.resource, RealClock(), timeout=timeout, deadman_s=2.0)
        k.connect()
        k.apply_current(-50e-6, -2.0, 2.0, 0.25)
        time.sleep(0.5)
        k.read()
        server.inject("no_reply", once=False)
        rows.append(("instrument stops answering mid-step", *timed(k.read)))
    proc = client(resource, "2", "0.25", "30")
    wait_for(proc, "connecting")
    time.sleep(0.5)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=10)
    rows.append(("SIGINT while connecting (30 s timeout)", time.monotonic() - started, "KeyboardInterrupt"))
    listener.close()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--deadman", type=float, default=2.0)
    ap.add_argument("--period", type=float, default=0.25)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=2026)
    a = ap.parse_args()
    rows = kills(a.kills, a.deadman, a.period, a.seed)
    print(f"dead-man {a.deadman:g} s, sample period {a.period:g} s\n")
    print("| kill | killed after start (s) | output off after the kill (s) |\n|---|---|---|")
    for i, (moment, off) in enumerate(rows, 1):
        print(f"| {i} | {moment:.2f} | {off:.3f} |")
    offs = [off for _, off in rows]
    print(f"\nmin {min(offs):.3f} s, median {statistics.median(offs):.3f} s, max {max(offs):.3f} s\n")
    print(f"| case (timeout {a.timeout:g} s) | ended after (s) | message |\n|---|---|---|")
    for case, seconds, message in bounded_waits(a.timeout):
        print(f"| {case} | {seconds:.2f} | {message} |")
    return 0 if all(off <= a.deadman for off in offs) else 1


if __name__ == "__main__":
    sys.exit(main())
