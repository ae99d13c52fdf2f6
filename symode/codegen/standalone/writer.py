"""``symode codegen``: write a standalone solver directory (:func:`generate_standalone`) and build it
(:func:`run_make`).

The directory is written atomically: everything is generated in a temporary sibling directory that is
then renamed into place. An existing target directory is only replaced when it holds a previous
``symode codegen`` output (its ``manifest.json``), never an unrelated directory.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from symode.codegen.build import find_compiler
from symode.codegen.layout import layout_of, neural_codegen
from symode.codegen.standalone import sources
from symode.codegen.standalone.facts import (
    C_FILES,
    LIBRARY,
    MAKE_CFLAGS,
    MANIFEST,
    check_prefix,
    manifest,
    model_facts,
)
from symode.codegen.wrapper import C_SOURCES, CSRC, generate_casadi
from symode.errors import SymodeError
from symode.io import atomic_directory
from symode.spec import Spec, load_spec

#: The static Python loader (copied as it is; it reads the model's facts from manifest.json).
LOADER = Path(__file__).resolve().parent / "templates" / "model.py"
#: Extra flags for CasADi's generated file (unused parameters and helper functions).
CASADI_WARNINGS = ["-Wno-unused-parameter", "-Wno-unused-function"]


def generate_standalone(spec: Spec | str | Path, out_dir: str | Path, *,
                        params: str | Path | Mapping[str, Any] | None = None, prefix: str = "model",
                        build: bool = False) -> Path:
    """Write the standalone solver directory for ``spec`` to ``out_dir`` and return its path.

    params: a params file (JSON/YAML ``{parameters, constants, x0}``) or such a mapping; its values become
    the baked-in defaults. prefix: C identifier prefix of the public API (``model`` -> ``model_simulate``,
    ``MODEL_NX``). build: also run the build (shared library and example program) in the directory.
    """
    check_prefix(prefix)
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    spec = _apply_params(spec, params)
    if find_compiler() is None and build:
        raise SymodeError("no C compiler found (set $CC)")
    from symode.symbolic.rhs import build_symbolic

    out = Path(out_dir).absolute()
    with atomic_directory(out, is_previous=_is_ours, previous="'symode codegen' output (manifest.json)",
                          mode=0o755) as tmp:
        layout = layout_of(spec)
        facts = model_facts(spec, layout, prefix)
        sym = build_symbolic(spec)
        generate_casadi(sym, layout, tmp)
        for n in C_SOURCES:
            shutil.copy(CSRC / n, tmp / n)
        shutil.copy(LOADER, tmp / "model.py")
        files = {
            "model.h": sources.header(facts),
            "model.c": sources.api_source(facts),
            "model_wrapper.c": sources.wrapper_source(layout, heap_work=neural_codegen(spec) == "mx"),
            "example.c": sources.example(facts),
            "Makefile": sources.makefile(facts),
            "README.md": sources.readme(facts),
            "spec.yaml": spec.to_yaml(),
        }
        for name, text in files.items():
            (tmp / name).write_text(text)
        written = sorted(p.name for p in tmp.iterdir())
        with open(tmp / MANIFEST, "w") as fh:
            json.dump(manifest(facts, written), fh, indent=1)
            fh.write("\n")
        if build:
            run_make(tmp)
    return out


def run_make(directory: Path, target: str = "all") -> None:
    """Build the generated directory (``make``, or the equivalent compiler calls when make is missing)."""
    directory = Path(directory)
    cc = find_compiler()
    if cc is None:
        raise SymodeError("no C compiler found (set $CC)")
    if shutil.which("make"):
        cmds = [["make", "-s", f"CC={cc}", target]]
    else:
        flags = [*MAKE_CFLAGS.split(), "-fPIC", "-fvisibility=hidden"]
        objects = [n[:-2] + ".o" for n in C_FILES]
        cmds = [[cc, *flags, *(CASADI_WARNINGS if n == "model_casadi.c" else []), "-c", "-o", n[:-2] + ".o", n]
                for n in C_FILES]
        cmds += [[cc, *MAKE_CFLAGS.split(), "-shared", "-o", LIBRARY, *objects, "-lm"]]
        if target == "all":
            prefix = json.loads((directory / MANIFEST).read_text())["prefix"]
            cmds += [[cc, *MAKE_CFLAGS.split(), "-o", f"{prefix}_example", "example.c", *objects, "-lm"]]
    for cmd in cmds:
        proc = subprocess.run(cmd, cwd=directory, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SymodeError(f"building the standalone code failed: {(proc.stderr or proc.stdout).strip()[:2000]}",
                              file=str(directory))


def _apply_params(spec: Spec, params: str | Path | Mapping[str, Any] | None) -> Spec:
    if params is None:
        return spec
    if isinstance(params, (str, Path)):
        from symode.spec.params import apply_params

        return apply_params(spec, params)
    values = dict(params.get("parameters") or {})
    values.update(params.get("constants") or {})
    return spec.with_values({k: float(v) for k, v in values.items()},
                            {k: float(v) for k, v in (params.get("x0") or {}).items()})


def _is_ours(directory: Path) -> bool:
    try:
        return json.loads((directory / MANIFEST).read_text()).get("generator") == "symode codegen"
    except (OSError, ValueError, AttributeError):
        return False
