"""Timing of the parallel loops, for benchmarks and scaling estimates: every :func:`run_tasks` call
inside a :func:`record_tasks` block is recorded as a :class:`BatchRecord` (the batch's wall time in this
process and each job's time where it ran).

A batch of n jobs of times t_i on W workers takes at least max(max_i t_i, sum_i t_i / W); everything
outside the batches is the serial part (Amdahl): T(W) ~ T_serial + sum over batches of that bound.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = ["BatchRecord", "record_tasks", "report_batch"]


@dataclass
class BatchRecord:
    """One :func:`~symode.parallel.run_tasks` call: the job function's name, the backend, its workers, the
    start (``time.perf_counter()`` of this process) and wall time of the batch, each job's seconds where it
    ran (NaN for a job whose worker was lost)."""

    name: str
    backend: str
    workers: int
    start_s: float
    wall_s: float
    task_s: list[float] = field(default_factory=list)


_RECORDERS: list[list[BatchRecord]] = []


@contextmanager
def record_tasks() -> Iterator[list[BatchRecord]]:
    """A list that receives a :class:`BatchRecord` for every batch run in this process inside the block."""
    batches: list[BatchRecord] = []
    _RECORDERS.append(batches)
    try:
        yield batches
    finally:
        _RECORDERS.remove(batches)


def report_batch(record: BatchRecord) -> None:
    """Hand ``record`` to every active :func:`record_tasks` block."""
    for batches in _RECORDERS:
        batches.append(record)
