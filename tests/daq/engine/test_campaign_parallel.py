"""A campaign's tests run in worker processes or on a Dask cluster give the same tests table, summary
and run files as run one by one (each test's seed and file are fixed before any worker starts)."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from daq.core.errors import ConfigError, DaqError
from daq.engine import parallel
from daq.engine.campaign import plan, run_campaign, schedule
from daq.engine.parallel import run_parallel
from daq.engine.runner import predictions
from daq.models.cell import load_cell
from protocols.campaign import load_campaign
from simulators.rig import simulated_channel
from tests.conftest import CELLS, EXAMPLES

# a small campaign: 2 series x 2 densities x 2 repeats, a shorter plating (4 mAh/cm^2) so it runs quickly;
# 3 mA/cm^2 shorts the 83 % cells, the 99 % ones survive even 12 mA/cm^2 that briefly
CAMPAIGN = f"""
[campaign]
name = "small"
protocol = "{EXAMPLES / "ccd_single_plating.toml"}"
repeats = 2

[[series]]
cell = "{CELLS / "li6ps5cl_83.toml"}"
current_densities = ["1.5 mA/cm^2", "3 mA/cm^2"]

[[series]]
cell = "{CELLS / "li6ps5cl_99.toml"}"
current_densities = ["4 mA/cm^2", "12 mA/cm^2"]
"""


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    root = tmp_path_factory.mktemp("campaign")
    protocol = (EXAMPLES / "ccd_single_plating.toml").read_text()
    protocol = protocol.replace('capacity = "8 mAh/cm^2"', 'capacity = "4 mAh/cm^2"')
    protocol = protocol.replace('cell = "cells/li6ps5cl_99.toml"', f'cell = "{CELLS / "li6ps5cl_99.toml"}"')
    (root / "short.toml").write_text(protocol)
    path = root / "campaign.toml"
    path.write_text(CAMPAIGN.replace(str(EXAMPLES / "ccd_single_plating.toml"), str(root / "short.toml")))
    return load_campaign(path)


@pytest.fixture(scope="module")
def one_by_one(campaign, tmp_path_factory):
    out = tmp_path_factory.mktemp("jobs1")
    lines: list[str] = []
    tests, summary, _ = run_campaign(campaign, out, simulated_channel, progress=lines.append, jobs=1)
    return out, tests, summary, lines


def run_voltages(out, tests) -> list[np.ndarray]:
    voltages = []
    for name in tests["file"]:
        with h5py.File(out / name, "r") as f:
            voltages.append(f["timeseries/E_cell"][...])
    return voltages


def same_campaign(a, b) -> None:
    (out_a, tests_a, summary_a), (out_b, tests_b, summary_b) = a, b
    for a_arr, b_arr in ((tests_a, tests_b), (summary_a, summary_b)):
        for name in a_arr.dtype.names:  # field by field: nan (no short) equals nan
            np.testing.assert_array_equal(a_arr[name], b_arr[name], err_msg=name)
    for va, vb in zip(run_voltages(out_a, tests_a), run_voltages(out_b, tests_b), strict=True):
        np.testing.assert_array_equal(va, vb)


def test_one_by_one_has_the_expected_outcomes(one_by_one):
    _, tests, summary, lines = one_by_one
    assert len(tests) == 8 and len(lines) == 8
    assert tests["seed"].tolist() == sorted(set(tests["seed"].tolist()))  # every cell its own seed
    assert tests["current_density"].tolist() == [1.5, 1.5, 3.0, 3.0, 4.0, 4.0, 12.0, 12.0]
    assert tests["failed"].tolist() == [0, 0, 1, 1, 0, 0, 0, 0]
    assert summary["highest_safe"].tolist() == [1.5, 12.0]
    assert summary["lowest_failed"][0] == 3.0 and np.isnan(summary["lowest_failed"][1])


def test_two_worker_processes_give_the_same_results(campaign, one_by_one, tmp_path):
    out, tests, summary, _ = one_by_one
    lines: list[str] = []
    tests2, summary2, png = run_campaign(campaign, tmp_path, simulated_channel, progress=lines.append, jobs=2)
    same_campaign((out, tests, summary), (tmp_path, tests2, summary2))
    assert sorted(lines) == sorted(one_by_one[3]) and png.exists()
    # the tests started in another order (schedule) and finished in yet another; the table is in plan order
    assert [str(f) for f in tests2["file"]] == [os.path.basename(t.path) for t in plan(campaign, tmp_path)]
    assert schedule(campaign, plan(campaign, tmp_path)) != list(range(len(tests2)))
    with h5py.File(tmp_path / "campaign.h5", "r") as f:
        stored = f["tests"][...]
    assert [s.decode() for s in stored["outcome"]] == [str(o) for o in tests["outcome"]]
    np.testing.assert_array_equal(stored["short_capacity"], tests["short_capacity"])


def test_dask_cluster_gives_the_same_results(campaign, one_by_one, tmp_path):
    distributed = pytest.importorskip("distributed")
    out, tests, summary, _ = one_by_one
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        tests_d, summary_d, _ = run_campaign(campaign, tmp_path, simulated_channel, dask=c.scheduler_address)
        pids = distributed.Client(c).run(os.getpid)
    assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()
    same_campaign((out, tests, summary), (tmp_path, tests_d, summary_d))


def test_results_come_back_in_item_order_and_failures_surface():
    assert run_parallel(abs, [-3, 1, -2, 5, -7], jobs=2) == [3, 1, 2, 5, 7]
    with pytest.raises(TypeError):
        run_parallel(abs, [1, "x"], jobs=2)
    with pytest.raises(ConfigError, match="--jobs = 0"):
        run_parallel(abs, [1], jobs=0)


def refuse_odd(n: int) -> int:
    if n % 2:
        raise ConfigError("n", n, "must be even")
    return n


def test_an_error_in_a_worker_reaches_the_operator_as_its_one_line():
    with pytest.raises(DaqError, match=r"^n = 3: must be even$"):
        run_parallel(refuse_odd, [2, 4, 3, 6], jobs=2)


def in_a_daemon(conn) -> None:
    conn.send(run_parallel(abs, [-1, -2, 3], jobs=2))


def test_a_daemon_process_runs_the_items_itself():
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=in_a_daemon, args=(child,), daemon=True)
    proc.start()
    assert parent.poll(60) and parent.recv() == [1, 2, 3]
    proc.join(10)
    assert proc.exitcode == 0


def test_unreachable_dask_scheduler_is_one_clear_error(monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(parallel, "DASK_CONNECT_TIMEOUT", 1.0)
    with pytest.raises(ConfigError, match="^--dask = 'tcp://127.0.0.1:9': no Dask scheduler answers there"):
        run_parallel(abs, [1], dask="tcp://127.0.0.1:9")


def test_factory_a_worker_cannot_receive_is_refused(campaign, tmp_path):
    with pytest.raises(TypeError, match="cannot be sent to a worker process"):
        run_campaign(campaign, tmp_path, lambda cell, clock: simulated_channel(cell, clock), jobs=2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--jobs", "0"], "daq: error: --jobs = 0: must be a whole number of worker processes, 1 or more\n"),
        (
            ["--jobs", "2", "--dask", "tcp://127.0.0.1:9"],
            "daq: error: --jobs = 2: the Dask cluster decides how many tests run at once; drop --jobs\n",
        ),
    ],
)
def test_command_line_refuses_bad_parallel_options(options, message, tmp_path, capsys):
    from daq.cli import main

    code = main(["campaign", str(EXAMPLES / "ccd_campaign.toml"), "--sim", "--out", str(tmp_path), *options])
    assert (code, capsys.readouterr().err) == (2, message)
    assert list(tmp_path.iterdir()) == []  # refused before any test ran


def test_tests_expected_to_short_start_first_the_furthest_above_the_predicted_ccd_first():
    campaign = load_campaign(EXAMPLES / "ccd_campaign.toml")
    tests = plan(campaign, EXAMPLES)
    order = schedule(campaign, tests)
    assert sorted(order) == list(range(len(tests)))
    ccd = [predictions(load_cell(s.cell_path))["ccd"]["value"] for s in campaign.series]
    above = [tests[i].density / ccd[tests[i].series - 1] for i in order]
    assert above == sorted(above, reverse=True)
    # the example: 1.5 mA/cm^2 on the 83 % cell (predicted CCD about 1) first, 0.5 mA/cm^2 on it last
    assert [tests[i].density for i in order[:3]] == [1.5] * 3 and [tests[i].density for i in order[-3:]] == [0.5] * 3
