"""The Dask distributed backend: the jobs of a loop as tasks on a Dask scheduler's workers.

A job is shipped to a worker as it is (the same picklable dict the process pool gets: spec, data sets,
start); the worker runs :func:`~symode.parallel.worker.run_on_worker` (BLAS limited to one thread, the
exception of a job caught into a :class:`~symode.parallel.TaskFailure`). Workers build the model from the
spec themselves, from their own compiled cache. Dask retries the task of a worker that died on another
worker (up to the scheduler's ``distributed.scheduler.allowed-failures``, default 3); a task whose
workers keep dying becomes a TaskFailure. Results are yielded as they arrive; the caller puts them back in
job order, so the outcome is the one of the local pool. Ctrl-C cancels the remaining tasks.

Security: a Dask scheduler and its workers execute pickled code sent by any client. Use them on a
trusted network only, or with TLS (``tls://`` addresses and Dask's ``distributed.comm.tls`` settings).
"""

from __future__ import annotations

import math
import re
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from symode.errors import SymodeError
from symode.parallel.executor import Executor
from symode.parallel.worker import TaskFailure, run_on_worker

__all__ = ["INSTALL_HINT", "DaskConnection", "DaskExecutor", "import_distributed"]

INSTALL_HINT = "pip install 'symode[dask]'"
CONNECT_TIMEOUT_S = 30.0
TASK_RETRIES = 2          # a task that raised outside the job function (e.g. could not be unpickled)
RESUBMISSIONS = 2         # a job whose result could not be fetched (its worker died first) runs again


def import_distributed() -> Any:
    """The ``distributed`` module, or a one-line :class:`SymodeError` saying how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise SymodeError(f"a Dask scheduler needs the optional dependency dask.distributed ({exc.name} is not "
                          f"installed): {INSTALL_HINT}") from None
    return distributed


class DaskConnection:
    """A ``distributed.Client`` connected to ``address`` (``tcp://HOST:PORT``, ``tls://HOST:PORT``, ...),
    or to a ``LocalCluster`` of N single-threaded worker processes started here for ``local:N`` (closed
    with the connection)."""

    def __init__(self, address: str, *, timeout: float | None = None) -> None:
        distributed = import_distributed()
        timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
        self.address = address
        self.cluster: Any = None
        self.client: Any = None
        try:
            if address.startswith("local:"):
                self.cluster = distributed.LocalCluster(n_workers=int(address[len("local:"):]), threads_per_worker=1,
                                                        processes=True, dashboard_address=":0")
                self.client = distributed.Client(self.cluster)
            else:
                self.client = distributed.Client(address, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            self.close()
            raise SymodeError(f"scheduler {address}: cannot connect: {exc}") from None
        self._checked = False

    @property
    def workers(self) -> int:
        """Worker threads connected now (at least 1: tasks wait in the scheduler for a worker)."""
        return max(1, sum(self.client.nthreads().values()))

    def check_workers(self) -> None:
        """Warn (once) when the scheduler has no worker yet, or workers with several threads."""
        if self._checked:
            return
        self._checked = True
        nthreads = self.client.nthreads()
        if not nthreads:
            warnings.warn(f"scheduler {self.address} has no workers yet: the tasks wait until one connects",
                          stacklevel=3)
        elif max(nthreads.values()) > 1:
            warnings.warn(f"workers of scheduler {self.address} run several threads in one process: start them "
                          "with `dask worker ADDRESS --nthreads 1 --nworkers N` (one task per process)", stacklevel=3)

    def close(self) -> None:
        """Disconnect (and stop the LocalCluster of ``local:N``); idempotent."""
        client, cluster, self.client, self.cluster = self.client, self.cluster, None, None
        for thing in (client, cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # pragma: no cover - closing must not mask the run's own outcome
                    pass


def _task_name(fn: Callable[..., Any]) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", getattr(fn, "__name__", "task"))[:40] or "task"


class DaskExecutor(Executor):
    """Jobs as tasks on a Dask cluster: ``scheduler`` is an address (a connection is opened here and
    closed with the executor) or an open :class:`DaskConnection` (shared, left open)."""

    def __init__(self, scheduler: str | DaskConnection, *, retries: int = TASK_RETRIES) -> None:
        if isinstance(scheduler, DaskConnection):
            self.connection, self._own = scheduler, False
        else:
            self.connection, self._own = DaskConnection(scheduler), True
        self.retries = int(retries)

    @property  # type: ignore[override]
    def workers(self) -> int:
        return self.connection.workers if self.connection.client is not None else 1

    def imap_timed(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[tuple[int, Any, float]]:
        if not jobs:
            return
        from distributed import KilledWorker, as_completed

        client = self.connection.client
        if client is None:
            raise SymodeError(f"scheduler {self.connection.address}: the connection is closed")
        self.connection.check_workers()
        batch = f"symode-{_task_name(fn)}-{uuid.uuid4().hex[:8]}"
        slot: dict[str, tuple[int, int]] = {}

        def submit(k: int, attempt: int) -> Any:
            key = f"{batch}-{k}" if attempt == 0 else f"{batch}-{k}-again{attempt}"
            fut = client.submit(run_on_worker, fn, jobs[k], key=key, pure=False, retries=self.retries)
            slot[fut.key] = (k, attempt)
            return fut

        futures = [submit(k, 0) for k in range(len(jobs))]
        try:
            queue = as_completed(futures)
            for fut in queue:
                k, attempt = slot[fut.key]
                if fut.cancelled():
                    raise SymodeError(f"scheduler {self.connection.address}: task {fut.key} was cancelled (lost "
                                      "the scheduler, or it was restarted)")
                try:
                    res, seconds = fut.result()
                except KilledWorker as exc:  # the workers running this task kept dying: the task's failure
                    res, seconds = TaskFailure.from_exception(exc), math.nan
                except Exception as exc:     # not the job's (call_task catches those): e.g. its result was lost
                    if attempt < RESUBMISSIONS:   # with a worker that died before it was fetched: run it again
                        futures.append(submit(k, attempt + 1))
                        queue.add(futures[-1])
                        fut.release()
                        continue
                    res, seconds = TaskFailure.from_exception(exc), math.nan
                fut.release()
                yield k, res, seconds
        except BaseException:
            try:
                client.cancel(futures, force=True)
            except Exception:  # pragma: no cover - the connection may be gone already
                pass
            raise

    def close(self) -> None:
        if self._own:
            self.connection.close()
