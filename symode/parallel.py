"""The one executor for every embarrassingly parallel loop (multistart fits, profiles, discovery
candidates, design candidates, hybrid starts).

Callers hand a picklable module-level function and a list of picklable jobs to :func:`run_tasks`; the
results come back **in job order**, whatever the order of completion, so a run's outcome never depends
on the backend or on scheduling. A job that raises becomes a :class:`TaskFailure` in its slot (the loop
decides whether that is fatal). Backends:

- :class:`SerialExecutor` — in this process (``workers=1``);
- :class:`ProcessExecutor` — a local pool of spawned processes, BLAS limited to one thread per worker
  (``threadpoolctl``) so that N workers use N cores, not N x cores.

:func:`get_executor` picks one from ``workers`` and ``scheduler`` (or ``$SYMODE_SCHEDULER``).
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from symode.errors import SymodeError

__all__ = ["Executor", "ProcessExecutor", "SerialExecutor", "TaskFailure", "get_executor", "run_tasks"]

SCHEDULER_ENV = "SYMODE_SCHEDULER"


@dataclass
class TaskFailure:
    """A job that raised: the exception's type name, message and formatted traceback."""

    error: str
    type: str = "Exception"
    traceback: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException) -> TaskFailure:
        return cls(str(exc), type(exc).__name__, "".join(traceback.format_exception(exc)))

    def __str__(self) -> str:
        return f"{self.type}: {self.error}"


def _limit_blas() -> None:
    """Worker initialiser: one BLAS/OpenMP thread per worker process."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except Exception:  # pragma: no cover - an optional speed-up must never stop a worker
        pass


def _call(fn: Callable[[Any], Any], job: Any) -> Any:
    try:
        return fn(job)
    except Exception as exc:    # reported in the job's slot; KeyboardInterrupt/SystemExit propagate
        return TaskFailure.from_exception(exc)


class Executor:
    """Runs ``fn(job)`` for every job; :meth:`imap` yields ``(index, result)`` as jobs finish."""

    workers: int = 1

    def imap(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the workers (idempotent)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class SerialExecutor(Executor):
    """Every job in this process, one after the other."""

    workers = 1

    def imap(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        for k, job in enumerate(jobs):
            yield k, _call(fn, job)


class ProcessExecutor(Executor):
    """A pool of ``workers`` spawned processes, created on first use and kept until :meth:`close`
    (so a search that maps many small batches pays the start-up once)."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, int(workers))
        self._pool: Any = None

    def _get(self) -> Any:
        if self._pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"),
                                             initializer=_limit_blas)
        return self._pool

    def imap(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        if len(jobs) <= 1 or self.workers <= 1:
            yield from SerialExecutor().imap(fn, jobs)
            return
        from concurrent.futures import as_completed

        pool = self._get()
        futures = {pool.submit(_call, fn, job): k for k, job in enumerate(jobs)}
        try:
            for fut in as_completed(futures):
                k = futures[fut]
                try:
                    res = fut.result()
                except Exception as exc:       # the worker process died (BrokenProcessPool) or unpicklable
                    res = TaskFailure.from_exception(exc)
                yield k, res
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


def default_workers() -> int:
    """The number of local worker processes: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def get_executor(workers: int | None = None, scheduler: str | None = None) -> Executor:
    """The executor for ``workers`` local processes (default: all CPUs), or for a cluster ``scheduler``
    (default ``$SYMODE_SCHEDULER``)."""
    scheduler = scheduler if scheduler is not None else os.environ.get(SCHEDULER_ENV) or None
    if scheduler:
        raise SymodeError(f"scheduler {scheduler!r}: no cluster backend is available in this version")
    n = default_workers() if workers is None else int(workers)
    return SerialExecutor() if n <= 1 else ProcessExecutor(n)


def run_tasks(fn: Callable[[Any], Any], jobs: Sequence[Any], *, executor: Executor | None = None,
              workers: int | None = None, on_result: Callable[[int, Any], None] | None = None) -> list[Any]:
    """``[fn(job) for job in jobs]`` on ``executor`` (or a temporary one for ``workers``), in job order.

    A job that raises gives a :class:`TaskFailure` in its slot. ``on_result(index, result)`` is called
    in this process as each job finishes (progress bars, checkpoints). ``fn`` must be a module-level
    function and the jobs picklable when the executor uses other processes.
    """
    own = executor is None
    ex = get_executor(workers) if own else executor
    out: list[Any] = [None] * len(jobs)
    try:
        for k, res in ex.imap(fn, jobs):
            out[k] = res
            if on_result is not None:
                on_result(k, res)
    finally:
        if own:
            ex.close()
    return out
