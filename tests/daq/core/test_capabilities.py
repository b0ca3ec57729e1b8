"""One check of a step's set point against an instrument's declared limits (Capabilities)."""

import math

import pytest

from daq.core.capabilities import Capabilities, check_setpoint
from daq.core.errors import InstrumentError

CAPS = Capabilities(max_current=0.01, current_resolution=1e-9, max_voltage=10.0, min_sample_period=0.01)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"current": 0.01},
        {"current": -0.01},
        {"current": 0.0},
        {"potential": 10.0},
        {"potential": -10.0},
        {"v_limits": (-0.5, 0.5)},
        {"i_limits": (-1e-3, 0.0)},
        {"sample_period": 0.01},
        {"duration": 1e-6},
        {"duration": None},
        {"current": 1e-3, "v_limits": (-1.0, 1.0), "sample_period": 1.0},
        {},
    ],
)
def test_within_the_limits_passes(kwargs):
    assert check_setpoint("ch1", CAPS, **kwargs) is None


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"current": 0.0100001}, "ch1: 0.0100001 A beyond the instrument's 0.01 A"),
        ({"current": -0.02}, "ch1: -0.02 A beyond the instrument's 0.01 A"),
        ({"current": math.nan}, "ch1: nan A beyond the instrument's 0.01 A"),
        ({"current": math.inf}, "ch1: inf A beyond the instrument's 0.01 A"),
        ({"potential": 13.0}, "ch1: 13 V beyond the instrument's +/-10 V"),
        ({"potential": -10.5}, "ch1: -10.5 V beyond the instrument's +/-10 V"),
        ({"potential": math.nan}, "ch1: nan V beyond the instrument's +/-10 V"),
        ({"v_limits": (1.0, 1.0)}, "ch1: voltage limits [1, 1] V are empty"),
        ({"v_limits": (2.0, -2.0)}, "ch1: voltage limits [2, -2] V are empty"),
        ({"i_limits": (0.001, -0.001)}, "ch1: current limits [0.001, -0.001] A are empty"),
        ({"sample_period": 0.001}, "ch1: sample period 0.001 s too short"),
        ({"sample_period": math.nan}, "ch1: sample period nan s too short"),
        ({"duration": 0.0}, "ch1: step duration 0 s must be positive"),
        ({"duration": -7.18984e-16}, "ch1: step duration -7.18984e-16 s must be positive"),
        ({"duration": math.nan}, "ch1: step duration nan s must be positive"),
    ],
)
def test_beyond_the_limits_is_refused_with_one_line(kwargs, message):
    with pytest.raises(InstrumentError) as err:
        check_setpoint("ch1", CAPS, **kwargs)
    assert str(err.value) == message


def test_the_message_names_what_holds_the_limit():
    with pytest.raises(InstrumentError, match=r"^ch1: 0.02 A beyond the channel's 0.01 A$"):
        check_setpoint("ch1", CAPS, current=0.02, holder="channel")


def test_the_set_point_is_checked_before_the_window():
    """A step that is wrong twice is refused for its set point, as the drivers did."""
    with pytest.raises(InstrumentError, match="beyond"):
        check_setpoint("ch1", CAPS, current=1.0, v_limits=(1.0, -1.0))
