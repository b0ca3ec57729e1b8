"""An instrument limit trip inside an operando sweep ends the sweep at the first point measured without the
step's current, and the step with voltage_limit: no spectrum point after the trip is kept, none is
measured with current on after it, and the run does not go on sweeping at open circuit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from daq.core.samples import FLAG_HW_LIMIT
from tests.daq.engine.test_stops_recorded import OPERANDO_STRIP, run_text

Q_UNIT = 36000.0  # C/m^2 per mAh/cm^2
# Sweeps down to 50 mHz last about 300 s, longer than the 180 s between them: the trip falls inside one.
LONG_SWEEPS = OPERANDO_STRIP.replace('f_end = "500 mHz"', 'f_end = "50 mHz"')
FULL_SWEEP = 82  # points from 7 MHz to 50 mHz at 10 per decade


def trip_and_spectra(tmp_path, text):
    result, run = run_text(tmp_path, text)
    with run:
        ts, steps, events, spectra = run.timeseries(), run.steps(), run.events(), run.spectra()
        points = [run.spectrum(i) for i in range(len(spectra))]
        area = run.cell["electrodes.working_area"]
    tripped = ts[(ts["flags"].to_numpy() & FLAG_HW_LIMIT) != 0]
    assert len(tripped) == 1
    return result, ts, steps, events, spectra, points, float(tripped.t.iloc[0]), area


@pytest.mark.parametrize("text", [OPERANDO_STRIP, LONG_SWEEPS], ids=["500mHz", "50mHz"])
def test_no_sweep_point_after_the_trip(tmp_path, text):
    result, ts, steps, events, spectra, points, t_trip, area = trip_and_spectra(tmp_path, text)
    assert result.outcome == "voltage_limit", result.message
    assert list(steps.end_reason) == ["voltage_limit", "time_reached"]
    assert json.loads(events[events.kind == "voltage_limit"].data.iloc[0])["hardware"] is True
    dc = 5 * 10 * area  # A, 5 mA/cm^2
    for p in points:
        assert (p.t <= t_trip).all()  # nothing measured after the trip is kept
        np.testing.assert_allclose(p.I_dc.abs(), dc, rtol=1e-9)  # every kept point with the step's current
    assert (ts[ts.t > t_trip].I == 0).all()
    assert 0 < abs(steps.Q.iloc[0]) / area / Q_UNIT < 20


def test_trip_inside_a_sweep_cuts_it_short(tmp_path):
    result, ts, steps, _, spectra, points, t_trip, _ = trip_and_spectra(tmp_path, LONG_SWEEPS)
    last = spectra.iloc[-1]
    assert last.t_start < t_trip < last.t_end  # the trip fell inside the last sweep
    assert list(spectra.n_points[:-1]) == [FULL_SWEEP] * (len(spectra) - 1)
    assert 0 < last.n_points < FULL_SWEEP  # cut at the first point without current
    # the sweep ended at the first point measured after the trip: one point's time (3 periods, 0.2 s min)
    f_next = points[-1].frequency.iloc[-1] / 10 ** (1 / 10)
    assert last.t_end - t_trip <= 3 / f_next + 1e-6
    assert ts.t.iloc[-1] - t_trip <= 3 / f_next + 1.0  # then the step ended: no more open-circuit sweeps
