"""Acquisition pipeline throughput: samples per second from an instrument through stop conditions,
short-circuit detection and storage to disk.

The same pre-generated plating record (9 mA/cm^2 on a 1 mm electrode, -0.25 V with 0.2 mV noise, 1 s
sampling, no stop until the step's duration ends) goes through:

- this product: ``Engine`` + ``RunWriter`` (SWMR HDF5) on a ``VirtualClock``, reading a
  ``SyntheticPotentiostat`` that hands out views of the arrays, so the sample source costs nothing;
- PyMeasure: a ``Procedure`` run by its ``Worker`` writing its ``Results`` file, with the same checks
  (charge, short-circuit collapse over the preceding 10 s, voltage limits, hardware-limit flag, end of
  step) written as a PyMeasure user would: per sample, or with numpy per polled block emitted as
  'batch results';
- plain h5py in its best configuration for this load: the same columns appended with h5py's ordinary
  API (``ds.resize``, ``ds[a:b] = ...``), 262,144 samples per append to 65,536-sample chunks, SWMR
  and flushed after every append (so readers see the data, as the product's file); and the same
  without SWMR, flushed at close (information);
- page-cache ``write()``: the same bytes (every column of every sample) written with ``os.write`` in
  262,144-sample pieces, no fsync: what the machine's file system takes at most.

Rates are given per CPU second of the process (all its threads: ``time.process_time``), beside wall
time: the machine is shared, and CPU time is what the pipeline itself costs.

PyMeasure is a benchmark-only dependency (``pip install -e .[bench]``); the product never imports it.

    python benchmarks/bench_pipeline.py [--samples 2000000] [--pymeasure-samples 50000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from daq.core.capabilities import Capabilities, InstrumentInfo, Potentiostat
from daq.core.clock import Clock, VirtualClock
from daq.core.samples import FLAG_HW_LIMIT, SampleBlock
from daq.engine.engine import Engine
from daq.engine.runner import predictions, resolved
from daq.engine.safety import ShortCircuitDetector
from daq.engine.stream import RecordStream
from daq.models.cell import ATTR_UNITS, Cell, load_cell
from daq.storage import layout as L
from daq.storage import space
from daq.storage.writer import RunWriter
from drivers.transcript import TranscriptPotentiostat
from protocols.loader import protocol_from_text
from protocols.steps import ShortCircuitCriteria

ROOT = Path(__file__).resolve().parents[1]
CELL = ROOT / "protocols/examples/cells/li6ps5cl_99.toml"
PERIOD = 1.0  # s
BEST_CHUNK, BEST_APPEND = 65536, 262144  # the fastest plain-h5py configuration measured for this load
FIXED_SAMPLES = 10  # a run this short costs what any run costs, whatever its length
POLL = 256  # samples per instrument poll in the PyMeasure procedure (the engine's virtual-clock block)
V_MIN, V_MAX = -2.0, 2.0
CRITERIA = ShortCircuitCriteria()  # the protocol's [short_circuit] defaults: 0.5 x, 10 s, 5 mV

PROTOCOL = """
[protocol]
name = "pipeline benchmark"

[[steps]]
kind = "galvanostatic"
label = "plate"
direction = "plate"
current_density = "9 mA/cm^2"
duration = "{duration} s"
sample_period = "1 s"
v_min = "-2 V"
v_max = "2 V"
"""


class Record:
    """The pre-generated samples (SI), shared by every pipeline."""

    def __init__(self, n: int, current: float, seed: int = 7):
        rng = np.random.default_rng(seed)
        self.t = PERIOD * np.arange(1, n + 1, dtype=float)
        self.E_we = -0.25 + rng.normal(0.0, 2e-4, n)
        self.E_cell = -0.5 + rng.normal(0.0, 2e-4, n)
        self.I = np.full(n, current)
        self.flags = np.zeros(n, dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.t)

    def columns(self) -> dict[str, np.ndarray]:
        """The stored columns as the engine computes them (charge integrated, step 0, cycle 0)."""
        n = len(self)
        return {
            "t": self.t,
            "step": np.zeros(n, np.int32),
            "cycle": np.zeros(n, np.int32),
            "E_we": self.E_we,
            "E_cell": self.E_cell,
            "I": self.I,
            "Q": np.cumsum(self.I * PERIOD),
            "flags": self.flags,
        }


class SyntheticPotentiostat(Potentiostat):
    """An instrument whose buffer is a pre-generated record: read() returns views of the samples due by
    the clock's now, so the benchmark measures the pipeline, not the source. Rewinds like the simulator
    (it is Rewindable), which only matters if a stop trips."""

    capabilities = Capabilities(max_current=1.0, current_resolution=1e-12, max_voltage=10.0, min_sample_period=1e-3)

    def __init__(self, record: Record, clock: Clock):
        self.record, self.clock = record, clock
        self._on = False
        self._t_start = 0.0
        self._end = 0  # sample index where the technique's duration ends
        self._k = 0  # next sample to hand out
        self._k_block = 0  # first sample of the last block

    def connect(self) -> InstrumentInfo:
        return InstrumentInfo("synthetic", "record", "0", "1.0", "benchmarks.bench_pipeline", "mem://record")

    def apply_current(
        self, current: float, v_min: float, v_max: float, sample_period: float, duration: float | None = None
    ) -> None:
        self._on, self._t_start, self._k = True, self.clock.now(), 0
        due = math.inf if duration is None else duration / sample_period
        self._end = int(min(len(self.record), math.floor(due + 1e-9)))

    def apply_potential(
        self, potential: float, i_min: float, i_max: float, sample_period: float, duration: float | None = None
    ) -> None:
        raise NotImplementedError

    def open_circuit(self, sample_period: float | None = None) -> None:
        self._on = False

    def _due(self) -> int:
        return min(self._end, int(math.floor((self.clock.now() - self._t_start) / PERIOD + 1e-9)))

    def read(self) -> SampleBlock:
        if not self._on:
            return SampleBlock.empty()
        k0, k1 = self._k, max(self._k, self._due())
        self._k, self._k_block = k1, k0
        r = self.record
        t = r.t[k0:k1] if self._t_start == 0.0 else r.t[k0:k1] + self._t_start
        return SampleBlock(t, r.E_we[k0:k1], r.E_cell[k0:k1], r.I[k0:k1], r.flags[k0:k1])

    def rewind(self, t: float) -> SampleBlock:
        self.clock.rewind(t)  # type: ignore[attr-defined]
        k0, self._k = self._k_block, max(self._k_block, self._due())
        r = self.record
        return SampleBlock(
            r.t[k0 : self._k] + self._t_start,
            r.E_we[k0 : self._k],
            r.E_cell[k0 : self._k],
            r.I[k0 : self._k],
            r.flags[k0 : self._k],
        )

    def close(self) -> None:
        self._on = False


def product(record: Record, cell: Cell, path: Path) -> tuple[float, int]:
    """Wall time and samples stored: the engine running one plating step over the whole record, set up
    as daq.engine.runner does it (free-space check, chunk sizing, instrument transcript on), without the
    post-run analysis."""
    protocol = protocol_from_text(PROTOCOL.format(duration=len(record) * PERIOD))
    clock = VirtualClock()
    t0 = time.perf_counter()
    sizing = space.plan(protocol, path, [], True, virtual=True)
    writer = RunWriter(
        path,
        cell_attrs=cell.attrs(),
        cell_units=ATTR_UNITS,
        protocol_source=protocol.source_text,
        protocol_path="",
        protocol_resolved=resolved(protocol),
        predictions=predictions(cell),
        transcript=True,
        **sizing,
    )
    pstat = TranscriptPotentiostat(SyntheticPotentiostat(record, clock), writer, clock.now)
    writer.add_instrument("potentiostat", dataclasses.asdict(pstat.connect()))
    result = Engine(protocol, cell, pstat, clock, RecordStream(required=[writer]), str(path)).run()
    wall = time.perf_counter() - t0
    if result.outcome != "completed" or result.samples != len(record):
        raise RuntimeError(f"pipeline run ended {result.outcome} after {result.samples} samples: {result.message}")
    return wall, result.samples


def raw_h5py(record: Record, path: Path, swmr: bool, piece: int = BEST_APPEND) -> tuple[float, int]:
    """Wall time to append the engine's columns with h5py alone, ``piece`` samples per append to
    BEST_CHUNK-sample chunks; SWMR flushes after every append."""
    cols = record.columns()
    dtypes = {name: L.TIMESERIES[name][0] for name in cols}
    t0 = time.perf_counter()
    with h5py.File(path, "w", libver="latest" if swmr else "earliest", rdcc_nbytes=4 * BEST_CHUNK * 8) as f:
        g = f.create_group("timeseries")
        ds = {
            name: g.create_dataset(name, (0,), maxshape=(None,), chunks=(BEST_CHUNK,), dtype=dtypes[name])
            for name in cols
        }
        if swmr:
            f.swmr_mode = True
        n = len(record)
        for a in range(0, n, piece):
            b = min(n, a + piece)
            for name, values in cols.items():
                ds[name].resize((b,))
                ds[name][a:b] = values[a:b].astype(dtypes[name], copy=False)
            if swmr:
                f.flush()
    return time.perf_counter() - t0, len(record)


def storage_only(record: Record, cell: Cell, path: Path, block: int = space.MAX_CHUNK) -> tuple[float, int]:
    """Wall time of the run writer alone, fed the record in the engine's block size (information: the
    storage's share of the pipeline; the engine's stop and short-circuit checks are the rest)."""
    cols = record.columns()
    t0 = time.perf_counter()
    writer = RunWriter(
        path,
        cell_attrs=cell.attrs(),
        cell_units=ATTR_UNITS,
        protocol_source="",
        protocol_path="",
        protocol_resolved={},
        predictions={},
        expected_samples=len(record),
    )
    writer.start()
    for a in range(0, len(record), block):
        writer.append({name: values[a : a + block] for name, values in cols.items()})
    writer.close()
    return time.perf_counter() - t0, len(record)


def page_cache_write(record: Record, path: Path, piece: int = BEST_APPEND) -> tuple[float, int]:
    """Wall time to write the same bytes (every column, in the layout's dtypes) with os.write."""
    cols = record.columns()
    dtypes = {name: L.TIMESERIES[name][0] for name in cols}
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        n = len(record)
        for a in range(0, n, piece):
            b = min(n, a + piece)
            for name, values in cols.items():
                os.write(fd, values[a:b].astype(dtypes[name], copy=False).tobytes())
    finally:
        os.close(fd)
    return time.perf_counter() - t0, len(record)


def _pymeasure_procedure(record: Record, cell: Cell, batch: bool) -> Any:
    from pymeasure.experiment import Procedure  # benchmark-only dependency

    current = float(record.I[0])
    width = max(int(math.ceil(CRITERIA.window / PERIOD)), 1)
    duration = len(record) * PERIOD

    class Plating(Procedure):
        """Galvanostatic plating with the same stop and short-circuit checks as the engine."""

        DATA_COLUMNS = ["t (s)", "step", "cycle", "E_we (V)", "E_cell (V)", "I (A)", "Q (C)", "flags"]

        def startup(self) -> None:
            self.stored, self.reason = 0, ""

        def polls(self):
            for a in range(0, len(record), POLL):
                b = min(len(record), a + POLL)
                yield record.t[a:b], record.E_we[a:b], record.E_cell[a:b], record.I[a:b], record.flags[a:b]

        def execute(self) -> None:
            (self._batched if batch else self._per_sample)()

        def _per_sample(self) -> None:
            q, t_prev = 0.0, 0.0
            window: deque[float] = deque(maxlen=width)
            for ts, es, cs, is_, fs in self.polls():
                for t, e, c, i, flag in zip(ts.tolist(), es.tolist(), cs.tolist(), is_.tolist(), fs.tolist()):
                    q += i * (t - t_prev)
                    t_prev = t
                    self.emit(
                        "results",
                        {
                            "t (s)": t,
                            "step": 0,
                            "cycle": 0,
                            "E_we (V)": e,
                            "E_cell (V)": c,
                            "I (A)": i,
                            "Q (C)": q,
                            "flags": flag,
                        },
                    )
                    self.stored += 1
                    flowing = abs(i) >= 0.5 * abs(current)
                    mag = abs(e) if flowing else 0.0
                    ref = max(window) if window else 0.0
                    window.append(mag)
                    if flowing and mag < CRITERIA.collapse_fraction * ref and ref - mag > CRITERIA.min_drop:
                        self.reason = "short_circuit"
                    elif flag & FLAG_HW_LIMIT or not V_MIN <= e <= V_MAX:
                        self.reason = "voltage_limit"
                    elif t >= duration - 1e-9:
                        self.reason = "time_reached"
                    if self.reason or self.should_stop():
                        return

        def _batched(self) -> None:
            q, t_prev = 0.0, 0.0
            detector = ShortCircuitDetector(CRITERIA, PERIOD, current)
            for ts, es, cs, is_, fs in self.polls():
                qs = q + np.cumsum(is_ * np.diff(ts, prepend=t_prev))
                stops = [
                    k
                    for k in (
                        detector.check(es, is_),
                        int(np.argmax(fs & FLAG_HW_LIMIT)) if np.any(fs & FLAG_HW_LIMIT) else None,
                        int(np.argmax((es < V_MIN) | (es > V_MAX))) if np.any((es < V_MIN) | (es > V_MAX)) else None,
                    )
                    if k is not None
                ]
                n = min(stops) + 1 if stops else len(ts)
                self.emit(
                    "batch results",
                    {
                        "t (s)": ts[:n],
                        "step": np.zeros(n, int),
                        "cycle": np.zeros(n, int),
                        "E_we (V)": es[:n],
                        "E_cell (V)": cs[:n],
                        "I (A)": is_[:n],
                        "Q (C)": qs[:n],
                        "flags": fs[:n],
                    },
                )
                self.stored += n
                q, t_prev = float(qs[-1]), float(ts[-1])
                if stops or t_prev >= duration - 1e-9 or self.should_stop():
                    self.reason = "stopped" if stops else "time_reached"
                    return

    return Plating()


def pymeasure(record: Record, cell: Cell, path: Path, batch: bool) -> tuple[float, int]:
    """Wall time and samples written: the Procedure run by PyMeasure's Worker into its Results CSV."""
    from pymeasure.experiment import Results, Worker  # benchmark-only dependency

    procedure = _pymeasure_procedure(record, cell, batch)
    t0 = time.perf_counter()
    worker = Worker(Results(procedure, str(path)))
    worker.start()
    threading.Thread.join(worker)
    wall = time.perf_counter() - t0
    if procedure.reason != "time_reached" or procedure.stored != len(record):
        raise RuntimeError(f"PyMeasure run stopped ({procedure.reason}) after {procedure.stored} samples")
    return wall, procedure.stored


def measure(samples: int, pm_samples: int, repeat: int) -> dict[str, tuple[float, float, float, int]]:
    """Name -> (samples per wall s, samples per CPU s, bytes per sample, samples) for every pipeline: the
    best of ``repeat`` runs each, into fresh files. The pipelines take turns (one run of each per round),
    so a change in the machine's other load affects them alike and their ratios stay comparable."""
    cell = load_cell(CELL)
    current = cell.current(-90.0)  # 9 mA/cm^2, plating
    big, small, tiny = Record(samples, current), Record(pm_samples, current), Record(FIXED_SAMPLES, current)
    cases: dict[str, tuple[Record, Callable[[Path], tuple[float, int]]]] = {
        "product": (big, lambda p: product(big, cell, p)),
        "product_tiny": (tiny, lambda p: product(tiny, cell, p)),
        "h5py": (big, lambda p: raw_h5py(big, p, swmr=False)),
        "h5py_swmr": (big, lambda p: raw_h5py(big, p, swmr=True)),
        "h5py_swmr_tiny": (tiny, lambda p: raw_h5py(tiny, p, swmr=True)),
        "write": (big, lambda p: page_cache_write(big, p)),
        "storage": (big, lambda p: storage_only(big, cell, p)),
        "pymeasure": (small, lambda p: pymeasure(small, cell, p, batch=False)),
        "pymeasure_batch": (small, lambda p: pymeasure(small, cell, p, batch=True)),
    }
    best = {name: (0.0, 0.0, 0) for name in cases}  # samples per wall s, per CPU s, file bytes
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeat):
            for name, (_, fn) in cases.items():
                path = Path(tmp) / f"{name}{i}"
                cpu0 = time.process_time()
                wall, n = fn(path)
                cpu = max(time.process_time() - cpu0, 1e-9)
                best_wall, best_cpu, _ = best[name]
                best[name] = (max(best_wall, n / wall), max(best_cpu, n / cpu), path.stat().st_size)
                path.unlink()
    return {name: (w, c, size / len(cases[name][0]), len(cases[name][0])) for name, (w, c, size) in best.items()}


def per_run_and_sustained(m: dict[str, tuple[float, float, float, int]], key: str) -> tuple[float, float]:
    """CPU s a run costs whatever its length (creating the self-describing file, recording its end), and
    the samples per CPU s beyond it, from the long and the FIXED_SAMPLES-sample run."""
    n, n_tiny = m[key][3], m[f"{key}_tiny"][3]
    cpu, cpu_tiny = n / m[key][1], n_tiny / m[f"{key}_tiny"][1]
    return cpu_tiny, (n - n_tiny) / max(cpu - cpu_tiny, 1e-9)


Row = tuple[str, str, str, str, str, bool | None]


def rows(samples: int = 2_000_000, pm_samples: int = 50_000, repeat: int = 3) -> list[Row]:
    """Table rows: (measurement, this product, reference, ratio, target, met)."""
    m = measure(samples, pm_samples, repeat)
    fmt = lambda r: f"{r / 1e6:.2f} M samples/s" if r >= 1e5 else f"{r / 1e3:.1f} k samples/s"  # noqa: E731
    both = lambda k: f"{fmt(m[k][1])} CPU ({fmt(m[k][0])} wall)"  # noqa: E731
    out = []
    for key, label in (
        ("pymeasure", "PyMeasure Procedure, per-sample checks, CSV Results"),
        ("pymeasure_batch", "PyMeasure Procedure, numpy checks per poll, batch emit, CSV Results"),
    ):
        ratio = m["product"][1] / m[key][1]
        out.append(
            (f"pipeline throughput vs {label}", both("product"), both(key), f"{ratio:,.0f}x", ">= 20x", ratio >= 20)
        )
    for key, label, target in (
        (
            "h5py_swmr",
            f"best plain h5py (SWMR, {BEST_CHUNK}-sample chunks, {BEST_APPEND}-sample appends, flush per append)",
            0.8,
        ),
        ("write", f"page-cache write() of the same bytes ({BEST_APPEND}-sample pieces, no fsync)", 0.5),
        ("h5py", f"plain h5py without SWMR ({BEST_CHUNK}-sample chunks), flush at close", None),
    ):
        ratio = m["product"][1] / m[key][1]
        wall_ratio = m["product"][0] / m[key][0]
        out.append(
            (
                f"pipeline throughput vs {label}, per CPU second (wall-time ratio {wall_ratio:.2f})",
                both("product"),
                both(key),
                f"{ratio:.2f}",
                f">= {target}" if target else "(information)",
                ratio >= target if target else None,
            )
        )
    ratio = m["storage"][1] / m["h5py_swmr"][1]
    out.append(
        (
            "storage alone (run writer fed the engine's blocks) vs best plain h5py, per CPU second",
            both("storage"),
            both("h5py_swmr"),
            f"{ratio:.2f}",
            "(information)",
            None,
        )
    )
    fixed, sustained = per_run_and_sustained(m, "product")
    fixed_ref, sustained_ref = per_run_and_sustained(m, "h5py_swmr")
    out.append(
        (
            "cost of a run whatever its length (file with cell, protocol, predictions, units; final status), "
            f"{FIXED_SAMPLES}-sample run, vs best plain h5py's (bare columns), CPU",
            f"{1e3 * fixed:.1f} ms",
            f"{1e3 * fixed_ref:.1f} ms",
            "-",
            "(information)",
            None,
        )
    )
    out.append(
        (
            "sustained pipeline throughput beyond that cost vs best plain h5py's, per CPU second",
            f"{fmt(sustained)} CPU",
            f"{fmt(sustained_ref)} CPU",
            f"{sustained / sustained_ref:.2f}",
            "(information)",
            None,
        )
    )
    out.append(
        (
            "bytes per stored sample (8 columns), this product vs PyMeasure CSV",
            f"{m['product'][2]:.0f} B",
            f"{m['pymeasure'][2]:.0f} B",
            f"{m['pymeasure'][2] / m['product'][2]:.1f}x smaller",
            "(information)",
            None,
        )
    )
    return out


def main() -> list[Row]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=2_000_000)
    parser.add_argument("--pymeasure-samples", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args([] if __name__ != "__main__" else None)
    result = rows(args.samples, args.pymeasure_samples, args.repeat)
    for row in result:
        print(" | ".join(str(x) for x in row), flush=True)
    return result


if __name__ == "__main__":
    main()
