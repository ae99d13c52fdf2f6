"""Progress reporting for long work: a tqdm bar on a terminal, sparse log lines elsewhere.

On a terminal (stderr is a TTY) :func:`progress_bar` returns a tqdm bar. When stderr is a file, a pipe,
CI or a cluster job's log, redrawing a bar would write thousands of lines; there the bar prints one plain
line at most every ``SYMODE_PROGRESS_INTERVAL`` seconds (default 10) and one when it closes. Disabled
bars are no-ops, so callers never test for ``None``.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

__all__ = ["Bar", "progress_bar"]

DEFAULT_INTERVAL = 10.0


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get("SYMODE_PROGRESS_INTERVAL", DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


class Bar:
    """The interface every progress bar here offers (also a no-op bar when disabled)."""

    def update(self, n: float = 1) -> None:
        """Advance by ``n`` units."""

    def set_postfix_str(self, text: str) -> None:
        """Show ``text`` after the counter (e.g. the current objective)."""

    def set_description(self, text: str) -> None:
        """Change the label."""

    def reset(self, total: float | None = None) -> None:
        """Start counting again from 0 (with a new total)."""

    def close(self) -> None:
        """Finish the bar."""

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _TqdmBar(Bar):
    def __init__(self, **kwargs: Any) -> None:
        from tqdm import tqdm

        self._bar = tqdm(**kwargs)

    def update(self, n: float = 1) -> None:
        self._bar.update(n)

    def set_postfix_str(self, text: str) -> None:
        self._bar.set_postfix_str(text, refresh=False)

    def set_description(self, text: str) -> None:
        self._bar.set_description(text, refresh=False)

    def reset(self, total: float | None = None) -> None:
        self._bar.reset(total=total)

    def close(self) -> None:
        self._bar.close()


class LineBar(Bar):
    """A bar for logs: ``desc: n/total unit [postfix] (elapsed)`` at most every ``interval`` seconds."""

    def __init__(self, *, total: float | None = None, desc: str = "", unit: str = "it",
                 interval: float | None = None, stream: TextIO | None = None) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.interval = _interval() if interval is None else interval
        self.stream = stream or sys.stderr
        self.n: float = 0
        self.postfix = ""
        self.t0 = time.monotonic()
        self._last = self.t0
        self._closed = False
        self._printed_n: float | None = None

    def _line(self) -> str:
        count = f"{self.n:g}/{self.total:g}" if self.total else f"{self.n:g}"
        post = f" [{self.postfix}]" if self.postfix else ""
        return f"{self.desc or 'progress'}: {count} {self.unit}{post} ({time.monotonic() - self.t0:.0f} s)"

    def _emit(self) -> None:
        try:
            print(self._line(), file=self.stream, flush=True)
        except (OSError, ValueError):  # pragma: no cover - a closed stream must not stop the work
            pass
        self._last = time.monotonic()
        self._printed_n = self.n

    def _maybe(self) -> None:
        if time.monotonic() - self._last >= self.interval:
            self._emit()

    def update(self, n: float = 1) -> None:
        self.n += n
        self._maybe()

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def set_description(self, text: str) -> None:
        self.desc = text

    def reset(self, total: float | None = None) -> None:
        self.n = 0
        if total is not None:
            self.total = total

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._printed_n != self.n:
                self._emit()


def progress_bar(*, total: float | None = None, desc: str = "", unit: str = "it", enabled: bool = True,
                 leave: bool = False, stream: TextIO | None = None) -> Bar:
    """A progress bar: tqdm when ``stream`` (default stderr) is a terminal, :class:`LineBar` otherwise,
    a no-op :class:`Bar` when not ``enabled``."""
    if not enabled:
        return Bar()
    stream = stream or sys.stderr
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if tty:
        try:
            return _TqdmBar(total=total, desc=desc, unit=unit, leave=leave, dynamic_ncols=True, file=stream)
        except ImportError:  # pragma: no cover - tqdm is a dependency
            pass
    return LineBar(total=total, desc=desc, unit=unit, stream=stream)
