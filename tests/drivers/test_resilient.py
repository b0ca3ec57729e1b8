"""Instrument faults: bounded retries, reconnection that never switches current on, every fault on record,
and a clean safe stop when an instrument is gone for good."""

import json
import math

import numpy as np
import pytest

from daq.core.capabilities import EisRequest, PressureReading
from daq.core.clock import VirtualClock
from daq.core.errors import InstrumentError
from daq.core.samples import SampleBlock
from daq.engine.runner import run_protocol
from daq.models.cell import load_cell
from daq.storage.reader import open_run
from drivers.resilient import ResilientPotentiostat, ResilientTransducer
from drivers.retry import RetryPolicy
from protocols.loader import load_protocol
from simulators.faults import POTENTIOSTAT_KINDS, TRANSDUCER_KINDS, FaultPlan, FaultyPotentiostat, faulty_rig
from simulators.rig import simulated_rig
from tests.conftest import CELLS, EXAMPLES

AREA_Q = 36000  # C/m^2 per mAh/cm^2


class Recorder:
    def __init__(self):
        self.events = []

    def __call__(self, kind, message, data):
        self.events.append((kind, message, data))

    def kinds(self):
        return [k for k, _, _ in self.events]


class Stub:
    """A potentiostat-like object whose read fails ``fail`` times (with ``exc``) before answering."""

    capabilities = simulated_rig(load_cell(CELLS / "li6ps5cl_99.toml"), VirtualClock())[1].capabilities

    def __init__(self, fail=0, exc=None, block=None):
        self.fail, self.exc, self.block = fail, exc or InstrumentError("no reply (timeout)"), block
        self.calls = []

    def connect(self):
        self.calls.append("connect")

    def close(self):
        self.calls.append("close")

    def open_circuit(self, period=None):
        self.calls.append(("open_circuit", period))

    def read(self):
        self.calls.append("read")
        if self.fail:
            self.fail -= 1
            raise self.exc
        return self.block if self.block is not None else SampleBlock.empty()


def test_backoff_is_exponential_and_bounded():
    policy = RetryPolicy(attempts=7, base_delay=0.5, factor=2.0, max_delay=8.0)
    assert [policy.delay(k) for k in range(1, 7)] == [0.5, 1, 2, 4, 8, 8]
    assert policy.budget == pytest.approx(23.5)


def test_transient_failures_are_retried_and_recorded():
    clock, rec = VirtualClock(), Recorder()
    stub = Stub(fail=3)
    w = ResilientPotentiostat(stub, clock, RetryPolicy(attempts=5), rec, name="pstat")
    assert len(w.read()) == 0
    assert rec.kinds() == [
        "instrument_fault",
        "instrument_fault",
        "instrument_reconnected",
        "instrument_fault",
        "instrument_reconnected",
        "instrument_recovered",
    ]  # plain retry first, then reconnect
    assert clock.now() == pytest.approx(0.5 + 1 + 2)  # waited on the run's clock, exponentially
    assert rec.kinds()[-1] == "instrument_recovered"
    assert stub.calls.count("connect") >= 1  # the second retry reconnects
    faults = [d for k, _, d in rec.events if k == "instrument_fault"]
    assert [f["attempt"] for f in faults] == [1, 2, 3] and all(f["device"] == "pstat" for f in faults)


def test_a_lost_link_reconnects_at_once():
    clock, rec = VirtualClock(), Recorder()
    stub = Stub(fail=1, exc=ConnectionResetError("connection reset by peer"))
    w = ResilientPotentiostat(stub, clock, reporter=rec)
    w.read()
    assert stub.calls[:4] == ["read", "close", "connect", ("open_circuit", None)]
    assert rec.kinds() == ["instrument_fault", "instrument_reconnected", "instrument_recovered"]


def test_unrecoverable_raises_a_clear_instrument_error():
    clock, rec = VirtualClock(), Recorder()
    w = ResilientPotentiostat(Stub(fail=100), clock, RetryPolicy(attempts=4), rec, name="pstat")
    with pytest.raises(
        InstrumentError,
        match=r"pstat \(potentiostat\) lost: read failed 4 time\(s\) over 3.5 s; "
        r"last error: no reply \(timeout\)",
    ):
        w.read()
    assert rec.kinds().count("instrument_fault") == 4 and rec.kinds()[-1] == "instrument_lost"
    assert w.lost
    with pytest.raises(InstrumentError, match="still lost"):  # once lost, one quick attempt per call
        w.read()
    assert clock.now() == pytest.approx(3.5)


def test_programming_errors_are_not_retried():
    w = ResilientPotentiostat(Stub(fail=1, exc=KeyError("bug")), VirtualClock())
    with pytest.raises(KeyError):
        w.read()


def test_invalid_samples_are_dropped_and_reported():
    t = np.arange(1.0, 11.0)
    e = np.full(10, -0.2)
    e[3] = np.nan
    i = np.full(10, -1e-4)
    i[5] = 1e9  # beyond any range
    t[7] = -5.0  # back in time
    rec = Recorder()
    w = ResilientPotentiostat(Stub(block=SampleBlock(t, e, e.copy(), i)), VirtualClock(20.0), reporter=rec)
    block = w.read()
    assert list(block.t) == [1, 2, 3, 5, 7, 9, 10]
    assert np.all(np.isfinite(block.E_we)) and np.all(np.abs(block.I) < 1)
    ((kind, message, data),) = rec.events
    assert kind == "instrument_fault" and data["dropped"] == 3 and "3 of 10 samples" in message


def test_reads_of_nothing_but_garbage_end_in_a_fault():
    nan = np.full(4, np.nan)
    w = ResilientPotentiostat(
        Stub(block=SampleBlock(np.arange(1.0, 5.0), nan, nan, nan)),
        VirtualClock(10.0),
        RetryPolicy(max_garbage_reads=3),
    )
    assert len(w.read()) == 0 and len(w.read()) == 0
    with pytest.raises(InstrumentError, match="3 reads in a row returned no valid sample"):
        w.read()


# --- through the engine ---------------------------------------------------------------------------
def plating_run(
    tmp_path, pstat_plan=None, transducer_plan=None, capacity="2 mAh/cm^2", interlocks=None, name="run.h5", spy=None
):
    protocol = load_protocol(EXAMPLES / "ccd_single_plating.toml", {"capacity": capacity})
    if interlocks:
        import dataclasses

        protocol = dataclasses.replace(protocol, interlocks=interlocks)
    cell = load_cell(CELLS / "li6ps5cl_99.toml")
    clock = VirtualClock()
    sim, p, t = simulated_rig(cell, clock)
    if spy is not None:
        p = spy(p)
    fp, ft, log = faulty_rig(p, t, clock, pstat_plan or FaultPlan(), transducer_plan or FaultPlan())
    rp, rt = ResilientPotentiostat(fp, clock), ResilientTransducer(ft, clock)
    result = run_protocol(protocol, cell, rp, clock, tmp_path / name, transducer=rt, block_interval=20.0)
    return result, log, rp, rt, p


def plated(path):
    with open_run(path) as run:
        steps = run.steps()
        return abs(steps.Q.iloc[-1]) / run.cell["electrodes.working_area"] / AREA_Q, run.events(), run.timeseries()


class CurrentSpy:
    """Wraps the simulated instrument; notes every command and asserts current is only ever applied while
    the engine's own apply command is being carried out."""

    def __init__(self, inner):
        self.inner, self.log, self.engine_applying = inner, [], False

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if name in ("apply_current", "apply_potential"):

            def applying(*a, **k):
                assert self.engine_applying, "current applied without an explicit command from the engine"
                self.log.append((name, self.inner.clock.now()))
                return attr(*a, **k)

            return applying
        if name in ("connect", "close", "open_circuit"):

            def noted(*a, **k):
                self.log.append((name, self.inner.clock.now()))
                return attr(*a, **k)

            return noted
        return attr


def test_disconnect_during_plating_holds_then_engine_reapplies(tmp_path, monkeypatch):
    spies = []

    def spy(p):
        spies.append(CurrentSpy(p))
        return spies[-1]

    original = ResilientPotentiostat.apply_current

    def engine_apply(self, *a, **k):
        spies[0].engine_applying = True
        try:
            return original(self, *a, **k)
        finally:
            spies[0].engine_applying = False

    monkeypatch.setattr(ResilientPotentiostat, "apply_current", engine_apply)
    plan = FaultPlan(schedule=((1000.0, "disconnect"), (1300.0, "timeout"), (1301.0, "timeout")))
    result, log, rp, _, _ = plating_run(tmp_path, plan, spy=spy)
    assert result.outcome == "completed"
    capacity, events, ts = plated(result.path)
    assert capacity == pytest.approx(2.0, rel=1e-9)  # the step still delivers exactly its capacity
    holds = events[events.kind == "interlock"]
    assert len(holds) == 2 and all("reconnected after a fault" in m for m in holds.message)
    assert (events.kind == "interlock_cleared").sum() == 2
    # while held the cell was at open circuit: zero current right after each reconnection
    for t_hold in holds.t:
        during = ts[(ts.t > t_hold) & (ts.t <= t_hold + 1.0)]
        assert len(during) and np.all(during.I == 0)
    # after every reconnection the instrument was put at open circuit before anything else
    names = [n for n, _ in spies[0].log]
    for k, name in enumerate(names):
        if name == "connect" and k > 0:
            assert names[k + 1] == "open_circuit"
    assert rp.counts["reconnects"] == 2


def test_every_injected_fault_is_recorded(tmp_path):
    result, log, rp, rt, _ = plating_run(
        tmp_path,
        FaultPlan(rate=0.15, kinds=POTENTIOSTAT_KINDS, seed=3),
        FaultPlan(rate=0.15, kinds=TRANSDUCER_KINDS, seed=4),
    )
    assert result.outcome == "completed"
    capacity, events, ts = plated(result.path)
    assert capacity == pytest.approx(2.0, rel=1e-6)
    assert len(log.entries) >= 20
    faults = [json.loads(d) for d in events[events.kind == "instrument_fault"].data]
    for device in ("sim0", "press"):
        assert sum(f["device"] == device for f in faults) == log.count(device)
    assert np.all(np.isfinite(ts[["t", "E_we", "I", "Q"]].to_numpy()))  # nothing invalid stored


def test_instrument_lost_for_good_stops_safe_with_a_fault_event(tmp_path):
    # every read fails from t = 1000 s on; the instrument still takes the off command
    plan = FaultPlan(schedule=tuple((1000.0 + k, "garbage") for k in range(10)), calls=("read",))
    result, log, rp, _, p = plating_run(tmp_path, plan)
    assert result.status == "failed" and result.outcome == "fault"
    assert "sim0 (potentiostat) lost: read failed 5 time(s)" in result.message
    assert p.mode == "off"  # the engine switched the cell off
    with open_run(result.path) as run:
        assert run.status == "failed"
        events = run.events()
        assert {"instrument_lost", "fault"} <= set(events.kind)
        assert "lost" in events[events.kind == "fault"].message.iloc[0]
        assert run.timeseries().t.iloc[-1] >= 990  # everything before the fault kept


def test_dead_instrument_stops_the_run(tmp_path):
    result, *_ = plating_run(tmp_path, FaultPlan(dead_after=900.0))
    assert result.outcome == "fault" and "not answering" in result.message


def test_lost_transducer_reads_nan_and_comes_back(tmp_path):
    class Flaky:
        def __init__(self, inner, clock):
            self.inner, self.clock = inner, clock
            self.pressed_area, self.calibration = inner.pressed_area, inner.calibration

        def connect(self):
            return self.inner.connect()

        def close(self):
            pass

        def read(self):
            if 700 <= self.clock.now() < 1000:
                raise InstrumentError("press: no reply (timeout)")
            return self.inner.read()

    cell = load_cell(CELLS / "li6ps5cl_99.toml")
    clock = VirtualClock()
    _, p, t = simulated_rig(cell, clock)
    rec = Recorder()
    rt = ResilientTransducer(Flaky(t, clock), clock, RetryPolicy(probe_interval=100.0), rec, name="press")
    rp = ResilientPotentiostat(p, clock)
    protocol = load_protocol(EXAMPLES / "ccd_single_plating.toml", {"capacity": "2 mAh/cm^2"})  # 600-1400 s
    result = run_protocol(protocol, cell, rp, clock, tmp_path / "run.h5", transducer=rt, block_interval=20.0)
    assert result.outcome == "completed"
    with open_run(result.path) as run:
        ts, events = run.timeseries(), run.events()
    gap = ts[(ts.t > 760) & (ts.t < 960)]
    assert len(gap) and gap.pressure.isna().all()  # a visible gap, never an invented pressure
    assert (ts.t > 1100).sum() > 200 and ts[ts.t > 1100].pressure.notna().all()
    assert (events.kind == "transducer_fault").sum() == 1  # one report when lost, not one per block
    assert {"instrument_lost", "instrument_recovered"} <= set(events.kind)


def test_a_pressure_guard_holds_the_cell_while_the_transducer_is_lost(tmp_path):
    from protocols.steps import InterlockSpec

    guard = (InterlockSpec("pressure", 5e6, 9e6, clear_wait=0.0, timeout=600.0),)
    result, *_ = plating_run(tmp_path, transducer_plan=FaultPlan(dead_after=800.0), interlocks=guard)
    assert result.outcome == "interlock" and "pressure_unknown" in result.message
    _, events, ts = plated(result.path)
    assert "pressure_unknown" in events[events.kind == "interlock"].message.iloc[0]
    assert np.all(ts[ts.t > 830].I == 0)  # no current while the pressure is unknown


def test_impedance_sweep_cut_short_keeps_its_points():
    cell = load_cell(CELLS / "li6ps5cl_99.toml")
    clock = VirtualClock()
    _, p, _ = simulated_rig(cell, clock)
    fp = FaultyPotentiostat(p, clock, FaultPlan(schedule=((5.0, "transient"),), calls=("impedance",)))
    rec = Recorder()
    w = ResilientPotentiostat(fp, clock, reporter=rec)
    w.connect()
    w.open_circuit(1.0)
    request = EisRequest("potentiostatic", list(np.logspace(5, 0, 11)), 0.005, None)
    points = list(w.impedance(request))
    assert 0 < len(points) < 11 and all(math.isfinite(pt.z_real) for pt in points)
    assert "cut short" in rec.events[0][1] and "instrument_reconnected" in rec.kinds()
    # a failure before the first point retries the whole sweep
    fp.injector.schedule = [(clock.now(), "transient")]
    assert len(list(w.impedance(request))) == 11


def test_transducer_garbage_is_retried():
    clock, rec = VirtualClock(), Recorder()

    class Junk:
        pressed_area, calibration = 1e-4, None
        n = 0

        def connect(self):
            pass

        def close(self):
            pass

        def read(self):
            self.n += 1
            return PressureReading(0.0, math.nan if self.n < 3 else 7e6, None)

    w = ResilientTransducer(Junk(), clock, reporter=rec)
    assert w.read().pressure == 7e6
    assert rec.kinds().count("instrument_fault") == 2
