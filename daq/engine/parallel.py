"""Independent runs (a campaign's tests, replays of many files) side by side: one worker process per
core on this machine, or the workers of a Dask cluster (``dask.distributed``, the optional extra
``sse-rig[dask]``) so a large campaign spreads over several machines.

Each task is a picklable module-level function applied to a picklable item; results come back in the
order of the items whatever order they finish in, so a parallel study returns exactly what running the
items one by one returns. Workers write their run files themselves: on a cluster of several machines the
output folder must be one every worker can reach under the same path (a shared file system).
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any

from daq.core.errors import ConfigError, DaqError

DASK_EXTRA = "pip install 'sse-rig[dask]'"
DASK_CONNECT_TIMEOUT = 10.0  # s to reach the scheduler before the address is refused


def default_jobs() -> int:
    """One worker per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_jobs(jobs: int) -> int:
    if not isinstance(jobs, int) or jobs < 1:
        raise ConfigError("--jobs", jobs, "must be a whole number of worker processes, 1 or more")
    return jobs


def run_parallel(
    task: Callable[..., Any],
    items: Sequence[Any],
    jobs: int = 1,
    dask: str | None = None,
    on_done: Callable[[int, Any], None] = lambda i, r: None,
    preload: Sequence[str] = (),
) -> list[Any]:
    """``[task(item) for item in items]``, computed in ``jobs`` worker processes (1: here, one by one) or
    on the Dask scheduler at ``dask``. ``on_done(index, result)`` is called here as each item finishes.
    ``preload`` names the modules a fork server imports once for its workers, where workers cannot be
    forked from this process itself (see ``_context``): then no item pays for the imports either."""
    check_jobs(jobs)
    if dask:
        return _on_dask(Reported(task), items, dask, on_done)
    if jobs == 1 or len(items) <= 1 or multiprocessing.current_process().daemon:  # a daemon has no children
        results = []
        for i, item in enumerate(items):
            results.append(task(item))
            on_done(i, results[-1])
        return results
    _check_picklable(task)
    context = _context(preload)
    gc.freeze()  # forked workers then share this process's objects instead of copying what the GC touches
    try:
        with ProcessPoolExecutor(max_workers=min(jobs, len(items)), mp_context=context) as pool:
            futures = {pool.submit(Reported(task), item): i for i, item in enumerate(items)}
            return _collect(futures, len(items), on_done, lambda: pool.shutdown(wait=True, cancel_futures=True))
    finally:
        gc.unfreeze()


class Reported:
    """``task`` whose operator-facing errors reach this process as they are, or, when an error cannot
    travel between processes (ConfigError's constructor takes its parts), as a DaqError with the same
    one-line message (the command line prints both alike)."""

    def __init__(self, task: Callable[..., Any]):
        self.task = task

    def __call__(self, item: Any) -> Any:
        try:
            return self.task(item)
        except DaqError as exc:
            try:
                pickle.loads(pickle.dumps(exc))
            except Exception:  # noqa: BLE001 - any failure to rebuild it means: send the message instead
                raise DaqError(str(exc)) from None
            raise


def _collect(
    futures: dict[Future, int], n: int, on_done: Callable[[int, Any], None], cancel: Callable[[], None]
) -> list[Any]:
    results: list[Any] = [None] * n
    try:
        for future in as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            on_done(i, results[i])
    except BaseException:  # a failed item or Ctrl-C: the others are not started
        cancel()
        raise
    return results


def _context(preload: Sequence[str]) -> multiprocessing.context.BaseContext:
    """Workers forked from this process on Linux when it runs no other thread (they start at once, with
    its imports: the command line's case); else forked from a server that imported ``preload`` (other
    Unix, or a process with threads such as the GUI, where forking itself is unsafe); else fresh
    interpreters (Windows)."""
    if sys.platform == "linux" and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(preload))
        return ctx
    return multiprocessing.get_context("spawn")


def _check_picklable(task: Callable[..., Any]) -> None:
    try:
        pickle.dumps(task)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise TypeError(
            f"{task!r} cannot be sent to a worker process ({exc}); give module-level functions "
            "(e.g. simulators.rig.simulated_channel as the channel factory)"
        ) from None


def _on_dask(task: Callable[..., Any], items: Sequence[Any], address: str, on_done: Callable[[int, Any], None]):
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError:
        raise ConfigError("--dask", address, f"needs dask.distributed ({DASK_EXTRA})") from None
    try:
        client = Client(address, timeout=DASK_CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError("--dask", address, f"no Dask scheduler answers there ({exc})") from None
    with client:
        futures = client.map(task, list(items), pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[Any] = [None] * len(items)
        try:
            for future in dask_completed(futures):
                i = index[future.key]
                results[i] = future.result()
                on_done(i, results[i])
        except BaseException:
            client.cancel(futures)
            raise
    return results
