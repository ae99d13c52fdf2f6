"""BLAS thread limits for a block of code (fits, candidate refits, hybrid training)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_limits

#: Environment variables read by BLAS/OpenMP libraries of processes started inside :func:`blas_threads`.
_THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def blas_threads(n: int = 1) -> Iterator[None]:
    """Limit the BLAS thread pools loaded in this process (numpy's, scipy's) to ``n`` threads inside the
    block (``threadpoolctl``), and set ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS``/``MKL_NUM_THREADS``
    for processes started inside it.

    Multi-threaded BLAS on the thin dense problems of fits and training (observations x a few hundred
    unknowns) is slower than one thread, and catastrophically so on a machine shared with other jobs
    (threads spin waiting for each other: a 1200 x 114 SVD took 0.2 s instead of 0.01 s). One thread
    also rounds the same way wherever a job runs (this process, a pool or a cluster worker), so a
    fit's iterates do not depend on the backend."""
    env = {k: os.environ.get(k) for k in _THREAD_ENV}
    os.environ.update({k: str(n) for k in env})
    try:
        with threadpool_limits(limits=n, user_api="blas"):
            yield
    finally:
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
