"""Where long work spends its time, and how much of it may still spend: a phase-timing recorder and
wall-clock budgets.

:class:`Timings` accumulates wall-clock seconds, CPU seconds of this process (where measured) and call
counts per phase. Phases nest: inside
``with t.phase("local"):`` a ``t.add("residuals", dt)`` (or a nested ``phase("residuals")``) is recorded
under ``"local/residuals"``. Every key holds *inclusive* seconds, so a parent's time minus its children's
is the part no child accounts for. It costs a ``perf_counter`` call per event: cheap enough to stay on.

:class:`Budget` is a wall-clock deadline with shares: ``budget.share(0.5)`` is a sub-budget ending after
half of the time left (never after the parent's deadline). Code that checks ``budget.expired`` (or calls
``budget.check()``, which raises :class:`TimeLimit`) between units of work stops within one unit of the
deadline.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Budget", "TimeLimit", "Timings"]


class TimeLimit(Exception):
    """Raised when a :class:`Budget` is exhausted: the work in progress is abandoned (not an error of the
    problem; the caller keeps what was done before)."""


class Timings:
    """Seconds and counts per (nested) phase; see the module docstring."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self._stack: list[str] = []

    def key(self, name: str) -> str:
        return "/".join([*self._stack, name])

    def add(self, name: str, seconds: float, count: int = 1, cpu: float | None = None) -> None:
        """Record ``seconds`` (wall), ``cpu`` seconds and ``count`` events under ``name`` inside the current
        phase."""
        k = self.key(name)
        self.seconds[k] = self.seconds.get(k, 0.0) + float(seconds)
        self.counts[k] = self.counts.get(k, 0) + int(count)
        if cpu is not None:
            self.cpu[k] = self.cpu.get(k, 0.0) + float(cpu)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block as phase ``name``; phases opened inside it nest under it."""
        t0, c0 = time.perf_counter(), time.process_time()
        self._stack.append(name)
        try:
            yield
        finally:
            self._stack.pop()
            self.add(name, time.perf_counter() - t0, cpu=time.process_time() - c0)

    def get(self, key: str) -> float:
        return self.seconds.get(key, 0.0)

    def merge(self, other: Timings | dict[str, Any], prefix: str = "") -> None:
        """Add another recorder's (or its :meth:`to_dict`'s) seconds and counts, keys under ``prefix``."""
        secs = other.seconds if isinstance(other, Timings) else other.get("seconds", {})
        counts = other.counts if isinstance(other, Timings) else other.get("counts", {})
        cpu = other.cpu if isinstance(other, Timings) else other.get("cpu_seconds", {})
        for k, v in secs.items():
            kk = f"{prefix}/{k}" if prefix else k
            self.seconds[kk] = self.seconds.get(kk, 0.0) + float(v)
            self.counts[kk] = self.counts.get(kk, 0) + int(counts.get(k, 0))
            if k in cpu:
                self.cpu[kk] = self.cpu.get(kk, 0.0) + float(cpu[k])

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": {k: round(v, 4) for k, v in self.seconds.items()},
                "cpu_seconds": {k: round(v, 4) for k, v in self.cpu.items()}, "counts": dict(self.counts)}

    def table(self) -> list[tuple[str, float, float | None, int]]:
        """(key, wall seconds, CPU seconds or None, count) rows in depth-first order, with a
        ``<parent>/other`` row (count 0) wherever a parent's wall time exceeds the sum of its children's
        by more than 1 ms."""
        rows = [(k, v, self.cpu.get(k), self.counts.get(k, 0)) for k, v in self.seconds.items()]
        for k, v in self.seconds.items():
            depth = k.count("/") + 1
            children = [c for c in self.seconds if c.startswith(k + "/") and c.count("/") == depth]
            rest = v - sum(self.seconds[c] for c in children)
            if children and rest > 1e-3 and k + "/other" not in self.seconds:
                cpu = self.cpu.get(k)
                cpu_rest = None if cpu is None else max(cpu - sum(self.cpu.get(c, 0.0) for c in children), 0.0)
                rows.append((k + "/other", rest, cpu_rest, 0))
        rows.sort(key=lambda r: r[0].split("/"))
        return rows


class Budget:
    """A wall-clock deadline (``time.perf_counter`` seconds); ``math.inf`` for none."""

    def __init__(self, seconds: float | None = None, *, deadline: float | None = None) -> None:
        if deadline is None:
            deadline = math.inf if seconds is None else time.perf_counter() + max(float(seconds), 0.0)
        self.deadline = float(deadline)
        self.start = time.perf_counter()

    @property
    def left(self) -> float:
        return max(self.deadline - time.perf_counter(), 0.0)

    @property
    def expired(self) -> bool:
        return time.perf_counter() >= self.deadline

    def check(self) -> None:
        """Raise :class:`TimeLimit` if the deadline has passed."""
        if time.perf_counter() >= self.deadline:
            raise TimeLimit("time limit reached")

    def share(self, fraction: float, *, at_most: float | None = None) -> Budget:
        """A sub-budget: ``fraction`` of the time left (at most ``at_most`` seconds)."""
        left = self.left
        if math.isinf(left):
            return Budget(at_most)
        s = fraction * left
        if at_most is not None:
            s = min(s, at_most)
        return Budget(deadline=min(time.perf_counter() + s, self.deadline))
