"""Progress output fed with engine records: log lines by run time, a redrawn bar on a terminal, quiet."""

from __future__ import annotations

import io

import numpy as np
import pytest

from daq.commands.progress import progress_subscriber
from daq.core.records import Outcome, RunEnd, RunStart, RunStatus, Samples, StepEnd, StepStart, StopReason
from daq.models.cell import load_cell
from protocols.loader import load_protocol
from tests.conftest import EXAMPLES

OVERRIDES = {"cycles": 3, "steps.2.steps.2.current_density": "1 mA/cm^2"}  # rest 1 h, then 3 x (200 s + 1800 s)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def setup():
    protocol = load_protocol(EXAMPLES / "asymmetric_cycling.toml", OVERRIDES)
    cell = load_cell(EXAMPLES / "cells" / "li6ps5cl_99.toml")
    return protocol, cell, cell.electrodes.working_area


def feed(sub, area, short_in_cycle: int | None = None):
    """Records of the protocol: rest 3600 s, then plate 200 s / strip 1800 s per cycle, 1 s samples."""
    sub(RunStart(0.0))
    sub(StepStart(0, "rest", "open-circuit rest", 0, 0.0, {}))
    t = np.arange(1.0, 3601.0)
    for chunk in np.array_split(t, 36):
        sub(Samples({"t": chunk, "Q": np.zeros_like(chunk)}))
    sub(StepEnd(0, "rest", "open-circuit rest", 0, 0.0, 3600.0, 0.0, StopReason.TIME_REACHED, {}))
    t0, index = 3600.0, 1
    for cycle in (1, 2, 3):
        for label, duration, sign in (("plate", 200.0, -1), ("strip", 1800.0, 1)):
            sub(StepStart(index, "galvanostatic", label, cycle, t0, {}))
            ts = t0 + np.arange(1.0, duration + 1)
            q = sign * 18000.0 * area * (ts - t0) / duration  # 0.5 mAh/cm^2 at the step's end
            sub(Samples({"t": ts, "Q": q}))
            if short_in_cycle == cycle:
                sub(StepEnd(index, "galvanostatic", label, cycle, t0, ts[-1], q[-1], StopReason.SHORT_CIRCUIT, {}))
                sub(StepStart(index + 1, "rest", "open circuit after stop", cycle, ts[-1], {}))
                sub(Samples({"t": ts[-1] + np.arange(1.0, 61.0), "Q": np.zeros(60)}))
                sub(RunEnd(RunStatus.COMPLETED, Outcome.SHORT_CIRCUIT, {}))
                return
            sub(StepEnd(index, "galvanostatic", label, cycle, t0, ts[-1], q[-1], StopReason.CAPACITY_REACHED, {}))
            t0, index = ts[-1], index + 1
    sub(RunEnd(RunStatus.COMPLETED, Outcome.COMPLETED, {}))


def test_log_lines_every_few_minutes_of_run_time(setup):
    protocol, cell, area = setup
    out = io.StringIO()
    feed(progress_subscriber(protocol, cell, quiet=False, stream=out), area)
    lines = out.getvalue().splitlines()
    assert lines[0] == "[  0%] step 1/7 open-circuit rest | 0.000 mAh/cm^2 | 0 s elapsed, 2 h 40 min left"
    assert "[ 38%] step 2/7 plate | cycle 1/3 | 0.000 mAh/cm^2 | 1 h 00 min elapsed, 1 h 40 min left" in lines
    # the end of a strip step logged at its last samples: 0.5 mAh/cm^2 passed
    assert any(line.startswith("[") and "step 3/7 strip | cycle 1/3 | 0.500 mAh/cm^2" in line for line in lines)
    # 1 h of rest: one line at its start and one per 5 min of run time after it (300 s ... 3600 s)
    rest = [line for line in lines if "open-circuit rest" in line]
    assert len(rest) == 13
    assert lines[-1] == "run ended after 2 h 40 min cell time: completed"
    assert "\r" not in out.getvalue()


def test_terminal_bar_redrawn_in_place(setup):
    protocol, cell, area = setup
    out = Tty()
    feed(progress_subscriber(protocol, cell, quiet=False, stream=out), area)
    text = out.getvalue()
    assert text.count("\r\x1b[2K[") >= 7  # at least one redraw per step
    assert "[########################] 100% step 7/7 strip | cycle 3/3 | 0.500 mAh/cm^2" in text
    assert text.endswith("\nrun ended after 2 h 40 min cell time: completed\n")


def test_after_a_short_no_time_left_and_no_step_beyond_the_plan(setup):
    protocol, cell, area = setup
    out = io.StringIO()
    feed(progress_subscriber(protocol, cell, quiet=False, stream=out), area, short_in_cycle=2)
    lines = out.getvalue().splitlines()
    after = [line for line in lines if "after the stop" in line]
    assert after and all("0 s left" in line and "/7" not in line.split("|")[0] for line in after)
    assert lines[-1].endswith("short circuit")


def test_quiet_prints_nothing(setup):
    protocol, cell, area = setup
    out = Tty()
    feed(progress_subscriber(protocol, cell, quiet=True, stream=out), area)
    assert out.getvalue() == ""
