"""Compiling a model library, and the content-addressed cache it is kept in.

Artefacts live in ``<cache>/<key>/`` (:func:`symode.codegen.cache.generated_dir`). The key
(:func:`model_key`) hashes everything the generated sources and the library are made of: the model's
structure (:func:`symode.codegen.layout.structure`; not parameter values, which are run-time arguments,
and no free text, which is never written into the sources), the code generator's version and templates,
symode's C sources, CasADi's version, the compiler and its flags. The sources are a deterministic
function of these, so one key never stands for two different libraries; the manifest of an entry
records the sha256 of every file, and the library is verified against it before it is loaded.

symode's own C runtime (integrator, tape, gradients) is compiled once per toolchain into
``<cache>/runtime-<hash>/`` and linked into every model library. Builds happen in private temporary
directories renamed into place in one step, so two processes building the same model at once both end
up with a complete library (the loser of the rename race discards its copy).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from symode.codegen.cache import (
    generated_dir,
    make_cache_dir,
    new_build_dir,
    publish,
    verify_entry,
    write_manifest,
)
from symode.codegen.layout import Layout, layout_of, structure
from symode.codegen.render import TEMPLATES
from symode.codegen.wrapper import C_SOURCES, CODEGEN_VERSION, CSRC, WRAPPER_TEMPLATES, generate_sources
from symode.errors import SymodeError
from symode.spec import Spec

#: Flags of the model library. -fvisibility=hidden: only the entry points of csrc/symode_model.h
#: (:data:`LIBRARY_SYMBOLS`) are exported.
CFLAGS = ["-O2", "-fPIC", "-shared", "-std=c99", "-fno-math-errno", "-fvisibility=hidden"]
OBJ_FLAGS = [f for f in CFLAGS if f != "-shared"]
#: The symbols a model library exports (declared in csrc/symode_model.h).
LIBRARY_SYMBOLS = frozenset({
    "symode_model_dims", "symode_rhs", "symode_jac_x", "symode_jac_p", "symode_obs", "symode_obs_jac_x",
    "symode_obs_jac_p", "symode_simulate", "symode_observe", "symode_sens", "symode_sens_discrete",
    "symode_residual_loss", "symode_grad_forward", "symode_grad_adjoint", "symode_grad_discrete", "symode_record",
    "symode_record_adjoint", "symode_record_sens", "symode_record_free", "symode_record_sens_seeded",
    "symode_sens_seeded", "symode_record_sens_dense"})
LIBRARY = "libmodel.so"
#: Files of a model entry checked against its manifest before the library is loaded.
VERIFIED = (LIBRARY, "layout.json")
RUNTIME_OBJECTS = tuple(n[:-2] + ".o" for n in C_SOURCES if n.endswith(".c"))


@lru_cache(maxsize=1)
def find_compiler() -> str | None:
    """The system C compiler ($CC, cc, gcc, clang), or None."""
    for cand in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cand and shutil.which(cand):
            return shutil.which(cand)
    return None


@lru_cache(maxsize=1)
def toolchain_fingerprint() -> str:
    """sha256 of everything a library is built from besides the model: the compiler and its version,
    the flags, CasADi's version, symode's C sources and the wrapper templates."""
    import casadi

    cc = find_compiler()
    version = ""
    if cc:
        try:
            version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            version = "?"
    h = hashlib.sha256(f"{cc}\n{version}\n{casadi.__version__}\n{CFLAGS}\n{CODEGEN_VERSION}\n".encode())
    for path in [*(CSRC / n for n in C_SOURCES), *(TEMPLATES / n for n in WRAPPER_TEMPLATES)]:
        data = path.read_bytes()
        h.update(f"{path.name}:{len(data)}:".encode() + data)
    return h.hexdigest()


def model_key(spec: Spec) -> str:
    """Content hash naming the model's directory in the cache."""
    payload = json.dumps({"codegen": CODEGEN_VERSION, "structure": structure(spec),
                          "toolchain": toolchain_fingerprint()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def _compiler() -> str:
    cc = find_compiler()
    if cc is None:
        raise SymodeError("no C compiler found")
    return cc


def compile_objects(cc: str, directory: Path, sources: list[str]) -> None:
    """Compile C files to position-independent objects, in parallel (one process per file)."""
    procs = [(src, subprocess.Popen([cc, *OBJ_FLAGS, "-c", src, "-o", src[:-2] + ".o"], cwd=directory,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
             for src in sources]
    errors = []
    for src, proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            errors.append(f"{src}: {err.strip()[:2000]}")
    if errors:
        raise SymodeError(f"C compilation failed in {directory}: {'; '.join(errors)}")


def runtime_objects(root: Path) -> Path:
    """symode's own C runtime (integrator, tape, gradients) compiled once per toolchain into
    ``root/runtime-<hash>/`` (verified against its manifest) and shared by every model library."""
    cc = _compiler()
    fingerprint = toolchain_fingerprint()
    final = root / f"runtime-{fingerprint[:16]}"
    if verify_entry(final, RUNTIME_OBJECTS, toolchain=fingerprint):
        return final
    make_cache_dir(root)
    tmp = new_build_dir(root, "runtime")
    try:
        for n in C_SOURCES:
            shutil.copy(CSRC / n, tmp / n)
        compile_objects(cc, tmp, [n for n in C_SOURCES if n.endswith(".c")])
        write_manifest(tmp, list(RUNTIME_OBJECTS), toolchain=fingerprint)
        publish(tmp, final, replace=not verify_entry(final, RUNTIME_OBJECTS, toolchain=fingerprint))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not verify_entry(final, RUNTIME_OBJECTS, toolchain=fingerprint):
        raise SymodeError(f"the C runtime in {final} changed while it was being built; try again")
    return final


def compile_library(directory: Path, runtime: Path | None = None) -> Path:
    """Compile the model sources in ``directory`` and link them with the runtime objects into
    ``libmodel.so``."""
    cc = _compiler()
    runtime = runtime or runtime_objects(directory.parent)
    compile_objects(cc, directory, ["model.c", "model_casadi.c"])
    out = directory / LIBRARY
    cmd = [cc, "-shared", "-o", str(out), "model.o", "model_casadi.o", *(str(runtime / o) for o in RUNTIME_OBJECTS),
           "-lm"]
    proc = subprocess.run(cmd, cwd=directory, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SymodeError(f"linking failed in {directory}: {proc.stderr.strip()[:2000]}")
    return out


def build_library(spec: Spec, sym_factory: Any, *, cache_dir: Path | None = None,
                  force: bool = False) -> tuple[Path, Layout, bool]:
    """Return (directory with a verified libmodel.so, layout, built_now), building into the cache if the
    entry is missing, incomplete or does not match its manifest.

    ``sym_factory()`` returns the SymbolicModel; it is only called when the cache misses.
    """
    root = make_cache_dir(Path(cache_dir) if cache_dir is not None else generated_dir())
    key = model_key(spec)
    final = root / key
    layout = layout_of(spec)
    if not force and verify_entry(final, VERIFIED, key=key):
        return final, layout, False
    runtime = runtime_objects(root)
    tmp = new_build_dir(root, key)
    try:
        generate_sources(sym_factory(), layout, tmp)
        compile_library(tmp, runtime)
        (tmp / "layout.json").write_text(json.dumps(layout.to_json(), indent=1))
        (tmp / "spec.yaml").write_text(spec.to_yaml())
        files = sorted(p.name for p in tmp.iterdir() if p.is_file())
        write_manifest(tmp, files, key=key, toolchain=toolchain_fingerprint())
        # a corrupt entry (or any entry, when forced) is replaced; a concurrent identical build may win
        publish(tmp, final, replace=force or not verify_entry(final, VERIFIED, key=key))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not verify_entry(final, VERIFIED, key=key):
        raise SymodeError(f"the model library in {final} changed while it was being built; try again")
    return final, layout, True
