"""The artefact cache of compiled model libraries: where it is, who may write it, and verified entries.

A compiled library is code that symode loads into its own process, so the cache is trusted only when
no other user can write it: :func:`check_private_dir` refuses a cache directory (or a parent of it)
that is owned by another user or writable by group or others (unless sticky, as ``/tmp``), and entries
owned by another user.

Every entry is built in a private temporary directory, gets a manifest (the sha256 of each of its
files) written last, and is renamed into place in one step (:func:`publish`). Before a library is
loaded, :func:`verify_entry` checks the files against the manifest: a corrupt, partial or tampered
entry is rebuilt, never loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

from symode.errors import SymodeError

MANIFEST = "manifest.json"
#: Mode of the cache directories symode creates (the user's umask cannot make them group-writable).
DIR_MODE = 0o755


def generated_dir() -> Path:
    """Root of the artefact cache.

    ``$SYMODE_GENERATED_DIR`` if set; else ``generated/`` beside the package when that is a writable
    source checkout (``pyproject.toml`` and ``symode/`` side by side); else the per-user cache directory
    (``platformdirs``: ``$XDG_CACHE_HOME/symode/generated`` or ``~/.cache/symode/generated`` on Linux).
    """
    env = os.environ.get("SYMODE_GENERATED_DIR")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "symode").is_dir() and os.access(root, os.W_OK):
        return root / "generated"
    from platformdirs import user_cache_path

    return user_cache_path("symode", appauthor=False) / "generated"


def make_cache_dir(root: Path) -> Path:
    """Create the cache root and any missing parents (mode 755, whatever the umask) and check that it
    is private (:func:`check_private_dir`)."""
    root = Path(root).absolute()
    missing = [d for d in (root, *root.parents) if not d.exists()]
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:  # created by another process meanwhile
            continue
        os.chmod(directory, DIR_MODE)
    check_private_dir(root)
    return root


def check_private_dir(path: Path) -> None:
    """Raise a :class:`SymodeError` unless only the current user can write the cache directory ``path``:
    it is owned by the user, and neither it nor a directory above it is writable by other users
    (:func:`others_can_write`)."""
    if not hasattr(os, "getuid"):  # pragma: no cover - not POSIX: no owner/mode bits to check
        return
    path = Path(path).resolve()
    st = path.stat()
    if st.st_uid != os.getuid():
        raise SymodeError(f"cache directory {path} is owned by another user (uid {st.st_uid}); "
                          "set SYMODE_GENERATED_DIR to a directory of your own")
    for directory in (path, *path.parents):
        if others_can_write(directory.stat()):
            raise SymodeError(f"cache directory {directory} is writable by other users: run "
                              f"'chmod go-w {directory}' or set SYMODE_GENERATED_DIR to a private directory")


def others_can_write(st: os.stat_result) -> bool:
    """Whether users other than the current one can create, rename or delete entries of a directory
    (or rewrite a file) with status ``st``: it is world-writable, or writable by a group that is not the
    user's private group; sticky directories such as ``/tmp`` excepted (there only an entry's owner can
    rename or delete it)."""
    if st.st_mode & stat.S_ISVTX and stat.S_ISDIR(st.st_mode):
        return False
    if st.st_mode & stat.S_IWOTH:
        return True
    return bool(st.st_mode & stat.S_IWGRP) and not _private_group(st.st_gid)


def _private_group(gid: int) -> bool:
    """The user's private group (named as the user, no other members), as with a umask of 002."""
    try:
        import grp
        import pwd

        user = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(gid)
    except (ImportError, KeyError):
        return False
    return group.gr_name == user and set(group.gr_mem) <= {user}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(directory: Path, files: list[str], **facts: str) -> None:
    """Record the sha256 of ``files`` (and ``facts``) in ``directory/manifest.json``, atomically; the
    files are made read-only for group and others first (whatever the umask was when they were
    written)."""
    for n in files:
        mode = stat.S_IMODE((directory / n).stat().st_mode)
        os.chmod(directory / n, mode & ~0o022)
    manifest = {**facts, "files": {n: sha256_file(directory / n) for n in files}}
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", dir=directory)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(manifest, fh, indent=1, sort_keys=True)
        os.replace(tmp, directory / MANIFEST)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def verify_entry(directory: Path, required: tuple[str, ...], **facts: str) -> bool:
    """Whether the cache entry ``directory`` is complete and intact: its manifest lists every one of
    ``required`` with the sha256 of the file as it is now, and records ``facts``. An entry that
    another user owns or can write is refused (:class:`SymodeError`), not trusted."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return False
    if any(manifest.get(k) != v for k, v in facts.items()):
        return False
    _check_owned(directory)
    for name in required:
        expected = manifest["files"].get(name)
        path = directory / name
        if not isinstance(expected, str) or not path.is_file():
            return False
        _check_owned(path)
        if sha256_file(path) != expected:
            return False
    return True


def _check_owned(path: Path) -> None:
    if not hasattr(os, "getuid"):  # pragma: no cover
        return
    st = path.stat()
    if st.st_uid != os.getuid() or others_can_write(st):
        raise SymodeError(f"cache entry {path} is owned or writable by another user; delete it, or set "
                          "SYMODE_GENERATED_DIR to a private directory")


def new_build_dir(root: Path, label: str) -> Path:
    """A private temporary directory in ``root`` to build an entry in (renamed by :func:`publish`)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".build-{label}-", dir=root))
    os.chmod(tmp, DIR_MODE)
    return tmp


def publish(tmp: Path, final: Path, *, replace: bool) -> bool:
    """Move the finished build ``tmp`` to ``final`` in one step; return whether it was placed.

    replace: an existing ``final`` (corrupt, or rebuilt on request) is first moved aside and deleted.
    When another process places the same entry first, ``tmp`` is left for the caller to delete (its
    result is equivalent) and False is returned."""
    if replace and final.exists():
        stale = Path(tempfile.mkdtemp(prefix=f".stale-{final.name}-", dir=final.parent))
        stale.rmdir()
        try:
            os.rename(final, stale)
        except OSError:
            pass  # another process moved it first
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.rename(tmp, final)
    except OSError:
        if not final.exists():
            raise
        return False
    return True
