"""Which executor a loop gets: the local pool, or a Dask cluster chosen by address.

The scheduler comes from, in order: the ``scheduler`` argument of :func:`get_executor`; the process-wide
default of :func:`use_scheduler` (what the CLI's ``--scheduler`` sets, so every loop deep inside the
library picks it up without a parameter threaded through every call); ``$SYMODE_SCHEDULER``. Inside a
task (a loop nested in a job) the default and the variable are ignored: nested loops run locally and
never send work back to the cluster their task runs on.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

from symode.errors import SymodeError
from symode.parallel.cluster import DaskConnection, DaskExecutor, import_distributed
from symode.parallel.executor import Executor
from symode.parallel.local import ProcessExecutor, SerialExecutor, default_workers
from symode.parallel.worker import in_task

__all__ = ["SCHEDULER_ENV", "current_scheduler", "get_executor", "parse_scheduler", "use_scheduler"]

SCHEDULER_ENV = "SYMODE_SCHEDULER"
_ADDRESS = re.compile(r"(?:(?:tcp|tls|ucx|inproc|ws|wss)://)?[^\s/:]+:\d{1,5}\Z|(?:tcp|tls|ucx|inproc|ws|wss)://\S+\Z")
_LOCAL = re.compile(r"local:(\d{1,4})\Z")


class _Scope:
    """A :func:`use_scheduler` block: its address and the connection opened in it (lazily)."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self.connection: DaskConnection | None = None


_SCOPES: list[_Scope] = []


def parse_scheduler(text: str) -> str:
    """A scheduler address, checked: ``tcp://HOST:PORT`` (``HOST:PORT`` means tcp), ``tls://HOST:PORT``
    (and the other Dask protocols), or ``local:N`` (a LocalCluster of N worker processes started here)."""
    text = text.strip()
    m = _LOCAL.match(text)
    if m:
        if int(m.group(1)) < 1:
            raise SymodeError(f"scheduler {text!r}: local:N needs N >= 1 workers")
        return text
    if _ADDRESS.match(text):
        return text if "://" in text else f"tcp://{text}"
    raise SymodeError(f"scheduler {text!r}: expected tcp://HOST:PORT, tls://HOST:PORT or local:N")


def current_scheduler() -> str | None:
    """The scheduler a loop started now would use by default (None: the local pool)."""
    if in_task():
        return None
    if _SCOPES:
        return _SCOPES[-1].address
    env = os.environ.get(SCHEDULER_ENV, "").strip()
    return parse_scheduler(env) if env else None


@contextmanager
def use_scheduler(address: str | None) -> Iterator[None]:
    """Within this block every :func:`get_executor` call without a ``scheduler`` argument uses
    ``address`` (None: the local pool, whatever ``$SYMODE_SCHEDULER`` says). The connection is opened on
    first use, shared by every loop of the block and closed at its end (``local:N``: the cluster too).
    Checks the address, and that Dask is installed, on entry."""
    if address is not None:
        address = parse_scheduler(address)
        import_distributed()
    scope = _Scope(address)
    _SCOPES.append(scope)
    try:
        yield
    finally:
        _SCOPES.remove(scope)
        if scope.connection is not None:
            scope.connection.close()


def get_executor(workers: int | None = None, scheduler: str | None = None) -> Executor:
    """The executor for a loop: a :class:`DaskExecutor` on ``scheduler`` (default
    :func:`current_scheduler`), else ``workers`` local processes (default: all CPUs; 1 inside a task),
    in this process when ``workers`` is 1."""
    address = parse_scheduler(scheduler) if scheduler is not None else current_scheduler()
    if address is not None:
        scope = _SCOPES[-1] if _SCOPES and _SCOPES[-1].address == address else None
        if scope is None:
            return DaskExecutor(address)
        if scope.connection is None or scope.connection.client is None:
            scope.connection = DaskConnection(address)
        return DaskExecutor(scope.connection)
    if workers is None:
        workers = 1 if in_task() else default_workers()
    n = int(workers)
    return SerialExecutor() if n <= 1 else ProcessExecutor(n)
