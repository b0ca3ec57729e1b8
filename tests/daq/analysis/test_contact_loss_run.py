"""Contact loss through a simulated stripping run to failure: the interface arc is followed across the
operando spectra and the analysis ends in the failure region."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from daq.analysis.contact_loss import contact_loss, follow_arcs
from tests.conftest import run_sim

# 2 mA/cm^2 on the 99 % cell at 7 MPa, far above the void-free limit (0.09 mA/cm^2): contact is lost
# after about the published 4 mAh/cm^2. Operando GEIS every 0.15 mAh/cm^2.
STRIP_TO_FAILURE = """
[protocol]
name = "strip to contact loss with operando GEIS"
[[steps]]
kind = "rest"
duration = "10 min"
[[steps]]
kind = "galvanostatic"
direction = "strip"
current_density = "2 mA/cm^2"
capacity = "8 mAh/cm^2"
eis_every = "0.15 mAh/cm^2"
  [steps.operando_eis]
  f_start = "7 MHz"
  f_end = "1 Hz"
  points_per_decade = 8
  amplitude = "0.05 mA/cm^2"
"""


@pytest.fixture(scope="module")
def stripped(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("cl")
    path = tmp / "strip.toml"
    path.write_text(STRIP_TO_FAILURE)
    res = run_sim(path, tmp / "strip.h5", 99)
    with h5py.File(res.path, "r") as f:
        fits = f["analysis/eis_fits"][()]
        cl = json.loads(f["analysis"].attrs["contact_loss"])
    return res, fits, cl


def test_run_ends_at_the_cut_off_after_the_published_capacity(stripped) -> None:
    res, fits, _ = stripped
    assert res.outcome == "voltage_limit"
    assert len(fits) >= 20 and np.all(fits["success"] == 1)


def test_bulk_arc_stays_bulk_and_interface_arc_grows(stripped) -> None:
    _, fits, _ = stripped
    r1, r2 = fits["R1"], fits["R2"]
    assert np.all(np.abs(r1 / r1[0] - 1) < 0.1)  # bulk: the electrolyte does not change while stripping
    assert np.all(np.diff(r2) > -0.02 * r2[:-1])  # interface: rises as contact is lost (within noise)
    assert r2[-1] > 3.87 * r2[0]  # sqrt(15): the local current ratio passes 15


def test_analysis_walks_stable_transition_failure_and_ends_failed(stripped) -> None:
    _, fits, cl = stripped
    regions = cl["regions"]
    order = {"stable": 0, "transition": 1, "failure": 2}
    assert regions[0] == "stable" and regions[-1] == "failure"
    assert all(order[a] <= order[b] for a, b in zip(regions, regions[1:]))  # never back to a better region
    assert cl["current_ratio"][-1] > 15 and cl["current_ratio"] == sorted(cl["current_ratio"])
    assert cl["current_ratio"][-1] == pytest.approx((fits["R2"][-1] / fits["R2"][0]) ** 2, rel=1e-9)


def test_swapped_arc_labels_are_followed() -> None:
    """Labels by time constant swap when the interface arc becomes the faster one near failure."""
    fast = np.array([2.20e3, 2.21e3, 2.19e3, 47.0e3, 52.0e3])
    slow = np.array([5.0e3, 9.0e3, 20.9e3, 1.37e3, 1.35e3])
    bulk, interface = follow_arcs(fast, slow)
    np.testing.assert_array_equal(bulk, [2.20e3, 2.21e3, 2.19e3, 1.37e3, 1.35e3])
    np.testing.assert_array_equal(interface, [5.0e3, 9.0e3, 20.9e3, 47.0e3, 52.0e3])
    assert contact_loss(interface).regions[-1] == "failure"
    assert contact_loss(slow).regions[-1] == "stable"  # what reading the labels as given would conclude


def test_arcs_of_equal_resistance_are_not_swapped() -> None:
    """Where the growing interface resistance passes the bulk's, the labels (by time constant) are right."""
    fast = np.array([2500.0, 2503.0, 2501.0, 2495.0])
    slow = np.array([2290.0, 2424.0, 2590.0, 2793.0])
    bulk, interface = follow_arcs(fast, slow)
    np.testing.assert_array_equal(bulk, fast)
    np.testing.assert_array_equal(interface, slow)
