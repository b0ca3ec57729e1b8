"""Garbage from instruments: replies that do not parse, values that are not numbers, blocks out of shape
or out of time. What reaches the engine is a valid reading or an InstrumentError, nothing else."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daq.core.clock import VirtualClock
from daq.core.errors import InstrumentError
from daq.core.samples import SampleBlock
from drivers.resilient import ResilientPotentiostat, ResilientTransducer
from drivers.retry import RetryPolicy
from drivers.transducers import HbmAed, Mark10Gauge, OmegaDP41
from simulators.potentiostat import SIM_CAPABILITIES

FAST = settings(
    max_examples=60, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
ONCE = RetryPolicy(attempts=1, max_garbage_reads=3)

REPLIES = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        [
            "",
            "*10",
            "*22",
            "?+999999",
            "?-999999",
            "?",
            "X01",
            "1e999",
            "-1e999",
            "nan",
            "NaN N",
            "4.285 N",
            "4.285 lbF",
            "4.285 parsecs",
            "12 kN",
            "0.3 MPa",
            "+399999",
            "-400000",
            "0",
            "X0100345.6",
            "00345.6",
            "1,5",
            "1.5.5",
            "--1",
            "\x00",
            "4.2 N\r\n5.1 N",
        ]
    ),
    st.builds(
        lambda x, u: f"{x} {u}",
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(["N", "kN", "lbF", "kgF", "ozF", "gF", "MPa", "psi", "bar", ""]),
    ),
    st.integers(-(10**12), 10**12).map(str),
)


class Reply:
    """Stands in for the serial line: every command gets ``reply`` (or raises it)."""

    def __init__(self, reply):
        self.reply = reply

    def __call__(self, command: str, terminator: bytes | None = None) -> str:
        if isinstance(self.reply, BaseException):
            raise self.reply
        return self.reply


def gauge(kind: type, reply) -> object:
    g = kind("/dev/null", 2e-5, clock=VirtualClock(), **({"unit": "N"} if kind is not Mark10Gauge else {}))
    g.ask = Reply(reply)
    g.connect = lambda: None
    g.close = lambda: None
    return g


def check_transducer_reply(kind: type, reply) -> str:
    """ "accepted" (a finite reading reaches the engine) or "refused" (InstrumentError)."""
    driver = gauge(kind, reply)
    try:
        reading = driver.read()
    except InstrumentError as exc:
        assert "\n" not in str(exc).strip() or "\n" in reply
    else:
        assert isinstance(reading.pressure, float)
    wrapped = ResilientTransducer(gauge(kind, reply), VirtualClock(), ONCE)
    try:
        reading = wrapped.read()
    except InstrumentError:
        return "refused"
    assert math.isfinite(reading.pressure)  # a driver's inf or nan never gets past the wrapper
    return "accepted"


@FAST
@given(st.sampled_from([Mark10Gauge, OmegaDP41, HbmAed]), REPLIES)
def test_transducer_replies(kind, reply):
    check_transducer_reply(kind, reply)


values = st.floats(allow_nan=True, allow_infinity=True, width=64)


@st.composite
def blocks(draw: st.DrawFn) -> SampleBlock:
    n = draw(st.integers(0, 12))
    t = np.sort(np.array(draw(st.lists(st.floats(0, 100), min_size=n, max_size=n)), dtype=float))
    if draw(st.booleans()):
        t = np.array(draw(st.lists(values, min_size=n, max_size=n)), dtype=float)  # any times at all
    cols = [np.array(draw(st.lists(values, min_size=n, max_size=n)), dtype=float) for _ in range(3)]
    if n and draw(st.integers(0, 9)) == 0:
        cols[draw(st.integers(0, 2))] = cols[0][:-1]  # a column short: a reply cut mid-transfer
    return SampleBlock(t, cols[0], cols[1], cols[2], np.zeros(n, np.uint8))


class Feed:
    capabilities = SIM_CAPABILITIES

    def __init__(self, items):
        self.items = list(items)

    def read(self):
        return self.items.pop(0)

    def connect(self):
        pass

    def close(self):
        pass

    def open_circuit(self, period=None):
        pass


def check_sample_blocks(items: list[SampleBlock]) -> str:
    """ "accepted" (every block cleaned to valid samples) or "refused" (the instrument declared lost)."""
    w = ResilientPotentiostat(Feed(items), VirtualClock(200.0), ONCE)
    last = -math.inf
    for _ in items:
        try:
            block = w.read()
        except InstrumentError as exc:
            assert "reads in a row returned no valid sample" in str(exc)
            return "refused"
        assert len(block.t) == len(block.E_we) == len(block.E_cell) == len(block.I) == len(block.flags)
        for col in (block.t, block.E_we, block.I):
            assert np.all(np.isfinite(col))
        assert not np.any(np.isinf(block.E_cell))  # NaN where the instrument does not measure E_cell
        assert np.all(np.abs(block.I) <= 10 * SIM_CAPABILITIES.max_current)
        assert np.all(np.diff(np.concatenate([[last], block.t])) > 0)  # strictly forward in time
        if len(block.t):
            last = float(block.t[-1])
    return "accepted"


@FAST
@given(st.lists(blocks(), min_size=1, max_size=6))
def test_sample_blocks(items):
    check_sample_blocks(items)
