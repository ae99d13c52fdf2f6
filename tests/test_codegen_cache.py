"""The model-library cache: entries verified against their manifest before a library is loaded (a
tampered, corrupt or partial entry is rebuilt, never loaded), cache directories that other users can
write refused, and the symbols a library exports."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from symode.codegen.build import LIBRARY_SYMBOLS, find_compiler
from symode.codegen.cache import check_private_dir, verify_entry
from symode.errors import SymodeError
from symode.solve.model import build_model
from symode.solve.simulation import simulate

from .conftest import REPO, SPECS

pytestmark = pytest.mark.skipif(find_compiler() is None, reason="no C compiler")
needs_root = pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root (chown)")

#: Builds (or loads) chemostat in a fresh interpreter and prints JSON: built_now, the final state.
_LOAD = """
import json, sys
import numpy as np
from symode.solve.model import build_model
from symode.solve.simulation import simulate
m = build_model(sys.argv[1], cache_dir=sys.argv[2])
x = simulate(m, np.linspace(0.0, 5.0, 6)).x
print(json.dumps({"built_now": m.built_now, "x": x[-1].tolist(), "directory": str(m.directory)}))
"""


def load_in_subprocess(cache: Path) -> dict:
    """build_model in a fresh process (this one may hold the original library open, and the dynamic
    loader would hand out that instead of reading the file again)."""
    proc = subprocess.run([sys.executable, "-c", _LOAD, str(SPECS / "chemostat.yaml"), str(cache)],
                          capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def exported(library: Path) -> set[str]:
    out = subprocess.run(["nm", "-D", "--defined-only", str(library)], capture_output=True, text=True,
                         check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A cache with chemostat built once, and the reference result from a fresh process."""
    cache = tmp_path_factory.mktemp("cache")
    first = load_in_subprocess(cache)
    assert first["built_now"]
    return {"cache": cache, "directory": Path(first["directory"]), "x": first["x"]}


@pytest.fixture
def cache(built: dict, tmp_path: Path) -> dict:
    """A private copy of the built cache for a test that damages it."""
    copy = tmp_path / "cache"
    shutil.copytree(built["cache"], copy, symlinks=True)
    os.chmod(copy, 0o700)
    return {**built, "cache": copy, "directory": copy / built["directory"].name}


@pytest.mark.skipif(shutil.which("nm") is None, reason="no nm")
def test_library_exports_only_its_entry_points(built: dict) -> None:
    assert exported(built["directory"] / "libmodel.so") == LIBRARY_SYMBOLS


def test_cache_hit_is_verified_and_reused(cache: dict) -> None:
    again = load_in_subprocess(cache["cache"])
    assert not again["built_now"] and again["x"] == cache["x"]


@pytest.mark.slow
def test_tampered_library_is_rebuilt_not_loaded(cache: dict, tmp_path: Path) -> None:
    """A different, valid library with a constructor in place of the built one: it must never be
    loaded (its constructor would leave a marker file)."""
    marker = tmp_path / "MARKER"
    evil = tmp_path / "evil.c"
    evil.write_text('#include <stdio.h>\n'
                    f'__attribute__((constructor)) static void evil(void) {{ FILE *fh = fopen("{marker}", "w"); '
                    'if (fh) fclose(fh); }\n'
                    'void symode_model_dims(int *dims) { dims[0] = dims[1] = dims[2] = dims[3] = -1; }\n')
    lib = cache["directory"] / "libmodel.so"
    subprocess.run([find_compiler(), "-shared", "-fPIC", "-o", str(lib), str(evil)], check=True)
    again = load_in_subprocess(cache["cache"])
    assert not marker.exists(), "the tampered library was loaded"
    assert again["built_now"] and again["x"] == cache["x"]
    if shutil.which("nm"):
        assert exported(lib) == LIBRARY_SYMBOLS


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["flip_byte", "truncate", "no_manifest", "bad_manifest", "no_layout"])
def test_corrupt_or_partial_entry_is_rebuilt(cache: dict, damage: str) -> None:
    directory = cache["directory"]
    lib = directory / "libmodel.so"
    if damage == "flip_byte":
        data = bytearray(lib.read_bytes())
        data[len(data) // 2] ^= 0xFF
        lib.write_bytes(bytes(data))
    elif damage == "truncate":
        lib.write_bytes(lib.read_bytes()[:1000])
    elif damage == "no_manifest":
        (directory / "manifest.json").unlink()
    elif damage == "bad_manifest":
        (directory / "manifest.json").write_text("{not json")
    else:
        (directory / "layout.json").unlink()
    again = load_in_subprocess(cache["cache"])
    assert again["built_now"] and again["x"] == cache["x"]
    assert verify_entry(directory, ("libmodel.so", "layout.json"), key=directory.name)


@pytest.mark.slow
def test_tampered_runtime_object_is_rebuilt(cache: dict) -> None:
    (runtime,) = cache["cache"].glob("runtime-*")
    obj = runtime / "symode_integrator.o"
    original = obj.read_bytes()
    obj.write_bytes(original[:-16] + b"\0" * 16)
    shutil.rmtree(cache["directory"])  # the model is relinked with the runtime objects
    again = load_in_subprocess(cache["cache"])
    assert again["built_now"] and again["x"] == cache["x"]
    assert obj.read_bytes() == original


# ----------------------------------------------------------------------------------------------------
# Who may write the cache
# ----------------------------------------------------------------------------------------------------

def test_world_writable_cache_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    root.mkdir()
    os.chmod(root, 0o777)
    with pytest.raises(SymodeError, match="writable by other users") as err:
        build_model(SPECS / "chemostat.yaml", cache_dir=root)
    message = str(err.value)
    assert str(root) in message and "chmod go-w" in message and "SYMODE_GENERATED_DIR" in message
    assert "\n" not in message
    assert list(root.iterdir()) == []  # nothing built there


def test_world_writable_parent_is_refused(tmp_path: Path) -> None:
    parent = tmp_path / "open"
    parent.mkdir()
    os.chmod(parent, 0o777)
    (parent / "cache").mkdir(mode=0o700)
    with pytest.raises(SymodeError, match="writable by other users"):
        check_private_dir(parent / "cache")
    os.chmod(parent, 0o1777)  # sticky, as /tmp: others cannot rename what the user owns
    check_private_dir(parent / "cache")


def test_cli_refuses_a_shared_cache_in_one_line(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    root.mkdir()
    os.chmod(root, 0o777)
    proc = subprocess.run([sys.executable, "-m", "symode", "simulate", str(SPECS / "chemostat.yaml"), "--t-end", "1",
                           "-o", str(tmp_path / "o.csv")], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO), "SYMODE_GENERATED_DIR": str(root)})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(root) in lines[0] and "SYMODE_GENERATED_DIR" in lines[0], proc.stderr


@pytest.mark.slow
def test_cache_created_under_a_permissive_umask_is_private(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        model = build_model(SPECS / "chemostat.yaml", cache_dir=tmp_path / "fresh" / "cache")
    finally:
        os.umask(old)
    root = tmp_path / "fresh" / "cache"
    assert not stat.S_IMODE(root.stat().st_mode) & 0o022
    assert not stat.S_IMODE(model.directory.stat().st_mode) & 0o022
    np.testing.assert_array_equal(simulate(model, np.linspace(0.0, 5.0, 6)).x[-1], load_in_subprocess(root)["x"])


@needs_root
def test_cache_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "theirs"
    root.mkdir(mode=0o755)
    os.chown(root, 54321, 54321)
    with pytest.raises(SymodeError, match="owned by another user"):
        build_model(SPECS / "chemostat.yaml", cache_dir=root)


@needs_root
def test_group_writable_cache_of_a_shared_group_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "group"
    root.mkdir()
    os.chown(root, os.getuid(), 54321)  # a group that is not the user's private group
    os.chmod(root, 0o775)
    with pytest.raises(SymodeError, match="writable by other users"):
        check_private_dir(root)


@needs_root
def test_entry_owned_by_another_user_is_refused(cache: dict) -> None:
    os.chmod(cache["cache"], 0o1777)
    os.chown(cache["directory"] / "libmodel.so", 54321, 54321)
    with pytest.raises(SymodeError, match="owned or writable by another user"):
        build_model(SPECS / "chemostat.yaml", cache_dir=cache["cache"])
