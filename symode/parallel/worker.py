"""What runs inside a worker, whatever the backend: the task wrapper that turns an exception into a
:class:`TaskFailure`, the one-BLAS-thread limit, the "inside a task" flag (so a loop nested in a task
never fans out to the cluster again) and a per-process memo for things a worker builds once (models).
"""

from __future__ import annotations

import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["TaskFailure", "call_task", "in_task", "limit_blas", "process_memo", "run_on_worker", "timed_task"]

T = TypeVar("T")

_IN_TASK: ContextVar[bool] = ContextVar("symode_in_task", default=False)
_BLAS_LIMITED = False
_MEMO: OrderedDict[Hashable, Any] = OrderedDict()


@dataclass
class TaskFailure:
    """A job that raised (or whose worker was lost for good): the exception's type name, message and
    formatted traceback."""

    error: str
    type: str = "Exception"
    traceback: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException) -> TaskFailure:
        return cls(str(exc), type(exc).__name__, "".join(traceback.format_exception(exc)))

    def __str__(self) -> str:
        return f"{self.type}: {self.error}"


def in_task() -> bool:
    """Whether this code runs inside a task of :func:`symode.parallel.run_tasks` (any backend)."""
    return _IN_TASK.get()


@contextmanager
def _task_scope() -> Iterator[None]:
    token = _IN_TASK.set(True)
    try:
        yield
    finally:
        _IN_TASK.reset(token)


def call_task(fn: Callable[[Any], Any], job: Any) -> Any:
    """``fn(job)``, or the :class:`TaskFailure` of the exception it raised (KeyboardInterrupt and
    SystemExit propagate)."""
    with _task_scope():
        try:
            return fn(job)
        except Exception as exc:
            return TaskFailure.from_exception(exc)


def timed_task(fn: Callable[[Any], Any], job: Any) -> tuple[Any, float]:
    """:func:`call_task` and the seconds it took where it ran (for :func:`symode.parallel.record_tasks`)."""
    t = time.perf_counter()
    res = call_task(fn, job)
    return res, time.perf_counter() - t


def limit_blas() -> None:
    """One BLAS/OpenMP thread in this process (``threadpoolctl``), so that N workers use N cores and
    not N x cores. Applied once per process."""
    global _BLAS_LIMITED
    if _BLAS_LIMITED:
        return
    _BLAS_LIMITED = True
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except Exception:  # pragma: no cover - an optional speed-up must never stop a worker
        pass


def run_on_worker(fn: Callable[[Any], Any], job: Any) -> tuple[Any, float]:
    """The task a cluster worker runs: BLAS limited to one thread, then :func:`timed_task`."""
    limit_blas()
    return timed_task(fn, job)


def process_memo(key: Hashable, factory: Callable[[], T], *, maxsize: int = 8) -> T:
    """``factory()`` computed once in this process for ``key`` and remembered (the ``maxsize`` most
    recently used keys). A worker runs many tasks on the same model: keyed by the model's cache key,
    the model is built (or its library verified and loaded) once per worker, not once per task."""
    if key in _MEMO:
        _MEMO.move_to_end(key)
        return _MEMO[key]  # type: ignore[no-any-return]
    value = factory()
    _MEMO[key] = value
    while len(_MEMO) > max(1, maxsize):
        _MEMO.popitem(last=False)
    return value
