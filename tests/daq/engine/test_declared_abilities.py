"""An instrument whose capability flags claim a mode it has no method for is refused when the protocol is
checked, in one line, before any current flows (not with an AttributeError in the middle of a run)."""

from __future__ import annotations

import pytest

from daq.core.capabilities import honoured
from daq.core.clock import VirtualClock
from daq.core.errors import ConfigError
from daq.engine.runner import run_protocol
from daq.models.cell import load_cell
from protocols.loader import load_protocol
from simulators.cell import SimulatedCell
from simulators.potentiostat import SimulatedPotentiostat
from tests.conftest import EXAMPLES, cell_file


class NoImpedance:
    """A channel that declares the simulator's capabilities (EIS included) but cannot measure impedance."""

    def __init__(self, inner: SimulatedPotentiostat):
        self.inner, self.capabilities, self.currents = inner, inner.capabilities, []

    def connect(self):
        return self.inner.connect()

    def apply_current(self, current, v_min, v_max, sample_period, duration=None):
        self.currents.append(current)
        self.inner.apply_current(current, v_min, v_max, sample_period, duration)

    def open_circuit(self, sample_period=None):
        self.inner.open_circuit(sample_period)

    def apply_potential(self, potential, i_min, i_max, sample_period, duration=None):
        self.inner.apply_potential(potential, i_min, i_max, sample_period, duration)

    def read(self):
        return self.inner.read()

    def close(self):
        self.inner.close()


def _channel():
    cell = load_cell(cell_file(99))
    clock = VirtualClock()
    return cell, clock, SimulatedPotentiostat(SimulatedCell(cell), clock)


def test_the_simulator_honours_what_it_declares():
    _, _, pstat = _channel()
    assert honoured(pstat) == pstat.capabilities


def test_flags_without_the_method_are_not_honoured():
    _, _, pstat = _channel()
    caps = honoured(NoImpedance(pstat))
    assert pstat.capabilities.eis_potentiostatic and pstat.capabilities.eis_galvanostatic
    assert (caps.eis_potentiostatic, caps.eis_galvanostatic, caps.potentiostatic) == (False, False, True)


def test_a_protocol_needing_the_missing_method_is_refused_before_current(tmp_path):
    cell, clock, pstat = _channel()
    channel = NoImpedance(pstat)
    protocol = load_protocol(EXAMPLES / "operando_geis_plating.toml")
    with pytest.raises(ConfigError, match="the instrument cannot measure this kind of impedance") as err:
        run_protocol(protocol, cell, channel, clock, tmp_path / "run.h5")
    assert "\n" not in str(err.value)
    assert channel.currents == []
