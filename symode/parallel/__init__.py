"""The one executor for every embarrassingly parallel loop (multistart fits, profiles, discovery
candidates, design candidates, hybrid starts).

Callers hand a picklable module-level function and a list of picklable jobs to :func:`run_tasks`; the
results come back **in job order**, whatever the order of completion, so a run's outcome never depends
on the backend or on scheduling. A job that raises becomes a :class:`TaskFailure` in its slot (the loop
decides whether that is fatal). Backends:

- :class:`SerialExecutor` — in this process (``workers=1``);
- :class:`ProcessExecutor` — a local pool of spawned processes, BLAS limited to one thread per worker
  (``threadpoolctl``) so that N workers use N cores, not N x cores;
- :class:`DaskExecutor` — tasks on a Dask distributed cluster (optional dependency ``symode[dask]``):
  ``tcp://HOST:PORT`` of a running scheduler, or ``local:N`` for a LocalCluster started here.

:func:`get_executor` picks one from ``workers`` and the scheduler (its argument, the default set by
:func:`use_scheduler` — the CLI's ``--scheduler`` —, or ``$SYMODE_SCHEDULER``). :func:`record_tasks`
records the batches' timings (benchmarks, scaling estimates).
"""

from symode.parallel.cluster import INSTALL_HINT, DaskConnection, DaskExecutor
from symode.parallel.executor import Executor, run_tasks
from symode.parallel.local import ProcessExecutor, SerialExecutor, default_workers
from symode.parallel.record import BatchRecord, record_tasks
from symode.parallel.select import SCHEDULER_ENV, current_scheduler, get_executor, parse_scheduler, use_scheduler
from symode.parallel.worker import TaskFailure, in_task, process_memo

__all__ = ["INSTALL_HINT", "SCHEDULER_ENV", "BatchRecord", "DaskConnection", "DaskExecutor", "Executor",
           "ProcessExecutor", "SerialExecutor", "TaskFailure", "current_scheduler", "default_workers", "get_executor",
           "in_task", "parse_scheduler", "process_memo", "record_tasks", "run_tasks", "use_scheduler"]
