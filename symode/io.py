"""Atomic file output: results are written to a temporary file in the target directory and renamed into
place, so a reader (or an interrupted run) never sees half a file. Whole output directories are
written the same way (:func:`atomic_directory`)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from symode.errors import SymodeError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


@contextmanager
def atomic_directory(out_dir: str | Path, *, is_previous: Callable[[Path], bool], previous: str,
                     mode: int | None = None) -> Iterator[Path]:
    """Write a whole output directory atomically.

    Yields a temporary sibling directory to fill; when the block ends without an error, it replaces
    ``out_dir`` in (nearly) one step (the old directory is renamed aside, the new one renamed in, the old
    one deleted). An existing ``out_dir`` is only replaced when it is empty or ``is_previous(out_dir)``
    says it is an earlier output of the same command (``previous`` describes that output in the error).
    ``mode``: the directory's permissions (default: 0o777 minus the umask).
    """
    out = Path(out_dir).absolute()
    if out.exists():
        if not out.is_dir():
            raise SymodeError("output exists and is not a directory", file=str(out))
        if any(out.iterdir()) and not is_previous(out):
            raise SymodeError(f"output directory exists and does not hold a previous {previous}; "
                              "choose a new or empty directory", file=str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o777 & ~umask
        os.chmod(tmp, mode)
        _replace_directory(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _replace_directory(tmp: Path, out: Path) -> None:
    if not out.exists():
        os.rename(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    old.rmdir()
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
