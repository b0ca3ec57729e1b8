"""Short-circuit response: samples from the short's onset to detection and to the current being off.

The CCD single-plating test at 10 mA/cm^2 on the simulated 99 % cell (above its CCD: a dendrite spans
the electrolyte after about 5.4 mAh/cm^2), 1 s sampling. Onset is the simulated cell's own record (the
first sample measured with the cell shorted, ``SimulatedCell.state.short_time``); detection is the
engine's tripping sample (the ``short_circuit`` event's ``sample``); current off is the first stored
sample with I == 0. Both rigs: with the press transducer (256-sample blocks) and the potentiostat alone
(65,536-sample blocks), to show that the response does not depend on the block size in accelerated time.

The reaction-time model (docs/simulated-cell.md): a real engine polls the instrument once a second and
switches the current off at the poll that brings the tripping sample, so one sample period (1 s) after
it at most. On a virtual clock the simulator is read in big blocks; when a stop trips inside a block,
the simulator and the clock are rewound to one reaction time (1 s) after the tripping sample, so the
stored record is what the real rig would have stored: the tripping sample, the one sample the
instrument took before the poll, then open circuit.

    python benchmarks/bench_short.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from daq.core.clock import VirtualClock
from daq.engine.runner import run_protocol
from daq.models.cell import load_cell
from daq.storage.reader import open_run
from protocols.loader import load_protocol
from simulators.rig import simulated_rig

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = ROOT / "protocols/examples/ccd_single_plating.toml"
CELL = ROOT / "protocols/examples/cells/li6ps5cl_99.toml"

Row = tuple[str, str, str, str, str, bool | None]


def response(out: Path, transducer: bool) -> dict[str, float]:
    """Rows of onset, trip and current off in /timeseries, and their times (s)."""
    protocol = load_protocol(PROTOCOL, {"current_density": "10 mA/cm^2"})
    cell = load_cell(CELL)
    clock = VirtualClock()
    sim, pstat, press = simulated_rig(cell, clock)
    result = run_protocol(protocol, cell, pstat, clock, out, transducer=press if transducer else None)
    if result.outcome != "short_circuit" or not sim.state.shorted:
        raise RuntimeError(f"the 99 % cell did not short at 10 mA/cm^2: {result.outcome}")
    with open_run(out) as run:
        t, current = run.column("t"), run.column("I")
        events = run.events()
    trip = json.loads(events[events.kind == "short_circuit"].data.iloc[0])["sample"]
    onset = int(np.searchsorted(t, sim.state.short_time - 1e-9))  # run time = clock time: the run starts at 0
    off = trip + int(np.flatnonzero(current[trip:] == 0.0)[0])
    return {
        "onset": onset,
        "trip": trip,
        "off": off,
        "t_onset": float(t[onset]),
        "t_off": float(t[off]),
        "t_last_on": float(t[off - 1]),
        "capacity": result.short["capacity"] / 36000,
    }  # type: ignore[index]


def rows() -> list[Row]:
    out: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for transducer, label in ((True, "256-sample blocks (with press)"), (False, "65536-sample blocks")):
            r = response(Path(tmp) / f"short{transducer}.h5", transducer)
            detect, off = r["trip"] - r["onset"], r["off"] - r["onset"]
            out.append(
                (
                    f"short circuit at 10 mA/cm^2 ({r['capacity']:.2f} mAh/cm^2), {label}: samples from onset "
                    "to detection (the tripping sample)",
                    f"{detect} samples",
                    "0 (the first shorted sample)",
                    "-",
                    "within one block",
                    0 <= detect < 256,
                )
            )
            out.append(
                (
                    f"short circuit, {label}: samples from onset to the first stored sample with I = 0",
                    f"{off} samples (current on for {r['t_last_on'] - r['t_onset']:.0f} s after onset)",
                    "2 (onset, 1 more before the 1 s poll)",
                    "-",
                    "off before the next sample after the detecting poll",
                    detect == 0 and off <= 2,
                )
            )
    return out


def main() -> list[Row]:
    result = rows()
    for row in result:
        print(" | ".join(str(x) for x in row), flush=True)
    return result


if __name__ == "__main__":
    main()
