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
import importlib
import multiprocessing
import os
import pickle
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
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
    ``preload`` names the modules the workers need: imported once, here before forking or by the fork
    server (see ``Workers``), not once in every worker."""
    with Workers(jobs, dask, preload) as workers:
        return workers.map(task, items, on_done)


class Workers:
    """Where ``map`` runs its items: here one by one (``jobs`` 1, or inside a daemon process, which may
    have no children), in ``jobs`` worker processes, or on the Dask scheduler at ``dask``.

    As a context manager the workers outlive ``map``: once the last result is in they are told to stop,
    and leaving the block waits for them, so their ending overlaps what the caller does with the results
    (a campaign's summary file and plot) instead of preceding it."""

    def __init__(self, jobs: int = 1, dask: str | None = None, preload: Sequence[str] = ()):
        self.jobs = check_jobs(jobs)
        self.dask = dask
        self.preload = [m for m in preload if m]
        self._pool: ProcessPoolExecutor | None = None
        self._ending: list[multiprocessing.process.BaseProcess] = []
        self._frozen = False

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Wait for the worker processes to end (at once if ``map`` raised: the others were cancelled)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        for process in self._ending:  # told to stop when their last result came in
            process.join()
        self._ending = []
        if self._frozen:
            gc.unfreeze()
            self._frozen = False

    def map(
        self,
        task: Callable[..., Any],
        items: Sequence[Any],
        on_done: Callable[[int, Any], None] = lambda i, r: None,
        meanwhile: Callable[[], None] = lambda: None,
    ) -> list[Any]:
        """``[task(item) for item in items]`` in item order; ``on_done(index, result)`` here as each ends.
        ``meanwhile()`` is called here while the workers run (what the caller needs next, e.g. a slow
        import, then costs no wall time after the last item); before the items when they run here."""
        if self.dask:
            meanwhile()
            return _on_dask(Reported(task), items, self.dask, on_done)
        if self.jobs == 1 or len(items) <= 1 or multiprocessing.current_process().daemon:
            meanwhile()
            results = []
            for i, item in enumerate(items):
                results.append(task(item))
                on_done(i, results[-1])
            return results
        _check_picklable(task)
        self.close()
        before = set(multiprocessing.active_children())
        pool = self._start(min(self.jobs, len(items)))
        futures = {pool.submit(Reported(task), item): i for i, item in enumerate(items)}
        workers = [p for p in multiprocessing.active_children() if p not in before]
        try:
            meanwhile()
            results = _collect(futures, len(items), on_done)
        except BaseException:  # a failed item or Ctrl-C: the others are not started
            self.close()
            raise
        self._pool = None
        pool.shutdown(wait=False)  # the workers end in the background while the caller goes on; close() waits
        self._ending = workers
        return results

    def _start(self, n: int) -> ProcessPoolExecutor:
        context = _context(self.preload)
        if context.get_start_method() == "fork":
            for name in self.preload:  # imported once here, not once in every forked worker
                importlib.import_module(name)
            gc.freeze()  # forked workers then share this process's objects instead of copying what the GC touches
            self._frozen = True
        self._pool = ProcessPoolExecutor(max_workers=n, mp_context=context)
        return self._pool


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


def _collect(futures: dict[Future, int], n: int, on_done: Callable[[int, Any], None]) -> list[Any]:
    results: list[Any] = [None] * n
    finished = 0
    for future in as_completed(futures):
        i = futures[future]
        try:
            results[i] = future.result()
        except BrokenProcessPool:
            raise DaqError(
                f"a worker process ended abruptly (killed, or out of memory?) with {n - finished} of {n} "
                "items unfinished; those were not run"
            ) from None
        finished += 1
        on_done(i, results[i])
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
