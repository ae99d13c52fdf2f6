"""The local backends: in this process, or a pool of spawned processes on this machine."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from symode.parallel.executor import Executor
from symode.parallel.worker import TaskFailure, limit_blas, timed_task

__all__ = ["ProcessExecutor", "SerialExecutor", "default_workers"]


def default_workers() -> int:
    """The number of local worker processes: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


class SerialExecutor(Executor):
    """Every job in this process, one after the other."""

    workers = 1

    def imap_timed(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[tuple[int, Any, float]]:
        for k, job in enumerate(jobs):
            yield k, *timed_task(fn, job)


class ProcessExecutor(Executor):
    """A pool of ``workers`` spawned processes, BLAS limited to one thread each, created on first use and
    kept until :meth:`close` (so a search that maps many small batches pays the start-up once)."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, int(workers))
        self._pool: Any = None

    def _get(self) -> Any:
        if self._pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"),
                                             initializer=limit_blas)
        return self._pool

    def imap_timed(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[tuple[int, Any, float]]:
        if len(jobs) <= 1 or self.workers <= 1:
            yield from SerialExecutor().imap_timed(fn, jobs)
            return
        from concurrent.futures import as_completed

        pool = self._get()
        futures = {pool.submit(timed_task, fn, job): k for k, job in enumerate(jobs)}
        try:
            for fut in as_completed(futures):
                k = futures[fut]
                try:
                    res, seconds = fut.result()
                except Exception as exc:       # the worker process died (BrokenProcessPool) or unpicklable
                    res, seconds = TaskFailure.from_exception(exc), math.nan
                yield k, res, seconds
        except BaseException:
            for f in futures:
                f.cancel()
            self.terminate()
            raise

    def terminate(self) -> None:
        """Stop now: cancel queued jobs and kill the worker processes (Ctrl-C)."""
        if self._pool is not None:
            procs = list(getattr(self._pool, "_processes", {}).values())
            self._pool.shutdown(wait=False, cancel_futures=True)
            for proc in procs:
                proc.terminate()
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
