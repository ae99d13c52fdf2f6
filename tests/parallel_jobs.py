"""Job functions shared by the executor tests (module level, so that process pools and Dask workers
pickle them by reference and import them)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def slow_square(job: dict) -> dict:
    """Sleeps ``job["sleep"]`` (later jobs sleep less, so they finish first), then squares ``job["x"]``;
    fails for ``x == job["fail"]``."""
    time.sleep(job["sleep"])
    if job["x"] == job.get("fail"):
        raise ValueError(f"job {job['x']} fails")
    return {"x": job["x"], "y": job["x"] ** 2, "pid": os.getpid()}


def staggered_jobs(n: int, step: float, **extra: object) -> list[dict]:
    """``n`` jobs for :func:`slow_square`, job k sleeping ``step * (n - k)`` seconds."""
    return [dict(x=k, sleep=step * (n - k), **extra) for k in range(n)]


def signalled_first(job: dict) -> int:
    """Job 0 waits (up to a minute) until job ``job["signal"]`` has finished: completion order != job order."""
    flag = Path(job["flag"])
    if job["k"] == 0:
        deadline = time.monotonic() + 60
        while not flag.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    elif job["k"] == job["signal"]:
        flag.write_text("done")
    return job["k"]
