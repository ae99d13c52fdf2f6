"""The executor interface and :func:`run_tasks`, the one way a loop runs its jobs in parallel.

An executor runs ``fn(job)`` for every job and yields ``(index, result)`` as the jobs finish;
:func:`run_tasks` puts the results back **in job order**, so a run's outcome never depends on the
backend or on the order of completion.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from symode.parallel.record import BatchRecord, report_batch

__all__ = ["Executor", "run_tasks"]


class Executor:
    """Runs ``fn(job)`` for every job; :meth:`imap` yields ``(index, result)`` as jobs finish, a job that
    raised as a :class:`~symode.parallel.TaskFailure`. ``workers`` is how many jobs can run at once."""

    workers: int = 1

    def imap_timed(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[tuple[int, Any, float]]:
        """``(index, result, seconds)`` as jobs finish; seconds: the job's time where it ran (NaN if lost)."""
        raise NotImplementedError

    def imap(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        for k, res, _seconds in self.imap_timed(fn, jobs):
            yield k, res

    def close(self) -> None:
        """Release the workers (idempotent)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def run_tasks(fn: Callable[[Any], Any], jobs: Sequence[Any], *, executor: Executor | None = None,
              workers: int | None = None, on_result: Callable[[int, Any], None] | None = None) -> list[Any]:
    """``[fn(job) for job in jobs]`` on ``executor`` (or a temporary one from
    :func:`~symode.parallel.get_executor` for ``workers``), in job order.

    A job that raises gives a :class:`~symode.parallel.TaskFailure` in its slot. ``on_result(index,
    result)`` is called in this process as each job finishes (progress bars, checkpoints). ``fn`` must be
    a module-level function and the jobs picklable when the executor uses other processes.
    """
    from symode.parallel.select import get_executor

    own = executor is None
    ex = get_executor(workers) if own else executor
    out: list[Any] = [None] * len(jobs)
    seconds = [math.nan] * len(jobs)
    t0 = time.perf_counter()
    try:
        for k, res, sec in ex.imap_timed(fn, jobs):
            out[k], seconds[k] = res, sec
            if on_result is not None:
                on_result(k, res)
    finally:
        if jobs:
            report_batch(BatchRecord(name=getattr(fn, "__name__", "task"), backend=type(ex).__name__,
                                     workers=ex.workers, start_s=t0, wall_s=time.perf_counter() - t0,
                                     task_s=seconds))
        if own:
            ex.close()
    return out
