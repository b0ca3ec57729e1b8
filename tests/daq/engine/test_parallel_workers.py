"""Worker processes: results in item order whatever order the items finish in, workers that end when the
block using them ends, and a worker that dies reported as one line naming what was lost."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from daq.core.errors import DaqError
from daq.engine.parallel import Workers, run_parallel


def sleep_then_pid(seconds: float) -> tuple[float, int]:
    time.sleep(seconds)
    return seconds, os.getpid()


def test_results_are_in_item_order_while_on_done_follows_completion():
    finished: list[int] = []
    # the first item outlasts the three others, which the second worker runs meanwhile
    results = run_parallel(sleep_then_pid, [1.0, 0.0, 0.0, 0.0], jobs=2, on_done=lambda i, r: finished.append(i))
    assert [s for s, _ in results] == [1.0, 0.0, 0.0, 0.0]
    assert finished[-1] == 0 and sorted(finished) == [0, 1, 2, 3]
    assert os.getpid() not in {pid for _, pid in results} and len({pid for _, pid in results}) == 2


def test_workers_end_with_the_block_not_with_map():
    with Workers(jobs=2) as workers:
        pids = {pid for _, pid in workers.map(sleep_then_pid, [0.0, 0.0, 0.0])}
        assert len(pids) == 2 and os.getpid() not in pids  # results are back, the workers may still be ending
    assert multiprocessing.active_children() == []  # waited for: none left running or unreaped
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def die(n: int) -> int:
    if n == 3:
        os._exit(9)  # as if killed: no exception travels back
    time.sleep(0.2)
    return n


def test_a_worker_that_dies_is_one_clear_error():
    with pytest.raises(DaqError) as err:
        run_parallel(die, [1, 2, 3, 4, 5, 6], jobs=2)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("a worker process ended abruptly (killed, or out of memory?) with ")
    assert message.endswith(" of 6 items unfinished; those were not run")
    assert multiprocessing.active_children() == []


def test_one_job_runs_the_items_here_in_order():
    finished: list[int] = []
    results = run_parallel(sleep_then_pid, [0.0, 0.0], jobs=1, on_done=lambda i, r: finished.append(i))
    assert results == [(0.0, os.getpid())] * 2 and finished == [0, 1]


def test_meanwhile_runs_here_while_the_workers_run():
    # The caller's own work (e.g. the plotting library's import before a campaign's plot) overlaps the
    # items: done in this process, before any of the half-second items has come back.
    seen: list[tuple[int, int]] = []
    finished: list[int] = []
    with Workers(jobs=2) as workers:
        results = workers.map(
            sleep_then_pid,
            [0.5, 0.5],
            on_done=lambda i, r: finished.append(i),
            meanwhile=lambda: seen.append((os.getpid(), len(finished))),
        )
    assert seen == [(os.getpid(), 0)] and sorted(finished) == [0, 1]
    assert os.getpid() not in {pid for _, pid in results}
