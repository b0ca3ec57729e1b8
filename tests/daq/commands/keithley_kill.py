"""Kill trials of a run on the real Keithley 2450 driver against the emulated 2450 (wall clock).

The emulator lives in the parent (it must outlive the killed run, as an instrument does); the child
``python -m tests.daq.commands.keithley_kill RESOURCE OUT DEADMAN`` runs the protocol below with the
driver over pyvisa-py, stop signals taking the abort path as ``daq run`` does, and prints ``sourcing``
once the first plating samples are stored. ``trial`` signals it at a chosen moment and measures, on the
emulator's clock, when the output went off; a SIGKILLed run is then resumed against the same emulator.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
CELL = ROOT / "protocols" / "examples" / "cells" / "li6ps5cl_99.toml"
CAPACITY = 0.002  # mAh/cm^2 per galvanostatic step: 6 s (24 samples) at 1.2 mA/cm^2
PROTOCOL = f"""
[protocol]
name = "Keithley kill test"
[defaults]
sample_period = "0.25 s"
[[steps]]
kind = "rest"
label = "rest"
duration = "1 s"
[[steps]]
kind = "galvanostatic"
label = "plate"
direction = "plate"
current_density = "1.2 mA/cm^2"
capacity = "{CAPACITY} mAh/cm^2"
[[steps]]
kind = "galvanostatic"
label = "strip"
direction = "strip"
current_density = "1.2 mA/cm^2"
capacity = "{CAPACITY} mAh/cm^2"
"""
SOURCING_SPAN = 12.0  # s of galvanostatic steps after the first plating samples (about)


def child(resource: str, out: str, deadman: float) -> None:
    from daq.commands.stopping import abort_on_signals
    from daq.core.clock import RealClock
    from daq.core.records import Samples
    from daq.engine.engine import RunControl
    from daq.engine.runner import run_protocol
    from daq.models.cell import cell_from_text
    from drivers.keithley2450 import Keithley2450
    from protocols.loader import protocol_from_text

    text = CELL.read_text()
    clock = RealClock()
    driver = Keithley2450(resource, clock, timeout=2.0, deadman_s=deadman)
    said = [False]

    def listener(record: Any) -> None:
        if not said[0] and isinstance(record, Samples) and int(record.columns["step"][-1]) == 1:
            said[0] = True
            print("sourcing", flush=True)

    control = RunControl()
    with abort_on_signals(control):
        run_protocol(
            protocol_from_text(PROTOCOL, "kill.toml"),
            cell_from_text(text),
            driver,
            clock,
            out,
            control=control,
            subscribers=[listener],
            cell_source=text,
        )
    print("ended", flush=True)


def start(resource: str, out: Path, deadman: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tests.daq.commands.keithley_kill", resource, str(out), str(deadman)]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def off_time(server: Any, limit: float) -> float | None:
    """Emulator-clock time of the output's last switch-off, waiting up to ``limit`` s for it."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with server.instrument.lock:
            server.instrument.advance()
            if not server.instrument.output:
                offs = [t for t, on in server.instrument.output_log if not on]
                return offs[-1] if offs else None
        time.sleep(0.002)
    return None


def plain_h5py_readable(path: Path) -> bool:
    """Every dataset of the file read by plain h5py (no SWMR flag)."""
    import h5py

    def read(_name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            obj[()]

    with h5py.File(path, "r") as f:
        f.visititems(read)
    return True


def trial(server: Any, out: Path, sig: signal.Signals, delay: float, deadman: float) -> dict[str, Any]:
    """Start the run, signal it ``delay`` s after it started sourcing; what happened to the output."""
    proc = start(server.resource, out, deadman)
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.strip() == "sourcing":
                break
        else:
            raise AssertionError(f"the run ended before sourcing: {proc.stderr.read()}")  # type: ignore[union-attr]
        time.sleep(delay)
        on = bool(server.instrument.output)
        t_sig = server.instrument.clock.now()
        os.kill(proc.pid, sig)
        t_off = off_time(server, deadman + 5.0)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return {
        "signal": sig.name,
        "delay": delay,
        "on_at_signal": on,
        "off_after": None if t_off is None else max(0.0, t_off - t_sig),
        "returncode": proc.returncode,
        "readable": plain_h5py_readable(out),
    }


def resume(server: Any, out: Path, deadman: float) -> dict[str, Any]:
    """Resume the killed run against the same emulator; each galvanostatic step's capacity."""
    from daq.core.clock import RealClock
    from daq.engine.runner import resume_protocol
    from daq.storage.reader import open_run
    from drivers.keithley2450 import Keithley2450

    with open_run(out) as run:
        point = run.resume_point()
    clock = RealClock()
    result = resume_protocol(out, Keithley2450(server.resource, clock, timeout=2.0, deadman_s=deadman), clock)
    with open_run(out) as run:
        steps = run.steps()
        area = run.cell["electrodes.working_area"]
        status = run.status
    galv = steps[steps.kind == "galvanostatic"]
    caps = (galv.Q.abs() / area / 36000).to_numpy()
    resumed = caps[galv["index"].to_numpy() >= point.steps_done]
    return {
        "outcome": result.outcome,
        "status": status,
        "interrupted_step": int(point.steps_done),
        "capacities": [float(c) for c in caps],
        "resumed_error": float(abs(resumed - CAPACITY).max()) if len(resumed) else 0.0,
    }


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2], float(sys.argv[3]))
