"""Hostile specs through code generation: free text in every field of a spec, in file names and in
``--prefix`` never becomes code (``symode simulate``, ``symode codegen --build``, the generated ``make``
and ``import model``); the generated files still build and import, and the libraries export only
symode's symbols."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from symode.codegen.build import LIBRARY_SYMBOLS, find_compiler
from symode.codegen.escape import c_comment, c_string, make_comment, markdown

from .conftest import REPO

pytestmark = [pytest.mark.skipif(find_compiler() is None, reason="no C compiler"),
              pytest.mark.skipif(shutil.which("make") is None, reason="no make")]


def payload(marker: Path) -> str:
    """Text that closes C comments and strings, Python strings, Makefile lines and Markdown. Once the
    ``*/`` of ``**//`` is removed (the former sanitising), what is left closes the C comment and defines a
    constructor that runs ``touch marker`` when the library is loaded; the rest would run it from a
    Makefile function or a shell."""
    m = str(marker)
    return (f'x """ \'\'\' " \' \n#include <stdlib.h>\n$(shell touch {m}) `touch {m}` $$(touch {m}) '
            f'\\ ??/ # | [link](javascript:x) <b> '
            f'**// int system(const char *); __attribute__((constructor)) static void evil(void) '
            f'{{ system("touch {m}"); }} /* ')


def hostile_spec(text: str, edge_id: str | None = None) -> dict:
    """A small model (one neural term) whose every free-text field holds ``text`` (the custom
    interaction's id: ``edge_id``, by default ``text``)."""
    info = {"unit": text, "description": text}
    return {
        "symode": 1, "name": text, "description": text,
        "reactor": {"mode": "chemostat", "dilution": "D", "feed": {"S": "S0"}},
        "states": {"S": {"role": "substrate", "x0": 5.0, **info}, "X": {"role": "main", "x0": 1.0, **info}},
        "inputs": {"D": {"default": 0.2, **info}},
        "parameters": {"S0": {"value": 10.0, "estimate": False, **info}, "mu": {"value": 0.5, **info},
                       "K": {"value": 1.0, **info}, "Y": {"value": 0.5, **info}, "k": {"value": 0.01, **info}},
        "interactions": [
            {"type": "uptake", "law": "monod", "from": "S", "to": "X", "mu": "mu", "K": "K", "yield": "Y",
             "description": text},
            {"type": "custom", "id": text if edge_id is None else edge_id, "rate": "k * X * net.r",
             "stoichiometry": {"X": -1}, "description": text},
        ],
        "observables": {"X": {"noise": {"relative": 0.02, "absolute": 0.01}, **info},
                        "S": {"noise": {"relative": 0.02, "absolute": 0.01}, **info}},
        "neural": [{"id": "net", "inputs": ["S"], "outputs": ["r"], "hidden": [2], "description": text}],
    }


def run_symode(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "symode", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=900)


def exported(library: Path) -> set[str]:
    out = subprocess.run(["nm", "-D", "--defined-only", str(library)], capture_output=True, text=True,
                         check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory):
    """A working directory (its name itself hostile) with the spec, a params file, a private cache."""
    base = tmp_path_factory.mktemp("hostile")
    marker = base / "MARKER"
    # file names cannot hold "/": their payloads touch MARKER relative to the working directory
    work = base / 'w $(shell touch MARKER) `touch MARKER` "q" \'s\' * \\ ;'
    work.mkdir()
    text = payload(marker)
    spec_file = work / 'spec * $(shell touch MARKER) `touch MARKER` "q" \\.yaml'
    spec_file.write_text(yaml.safe_dump(hostile_spec(text), allow_unicode=True))
    params = work / 'params $(shell touch MARKER) ".json'
    params.write_text(json.dumps({"parameters": {"mu": 0.4}}))
    cache = base / "cache"
    cache.mkdir(mode=0o700)
    env = {**os.environ, "PYTHONPATH": str(REPO), "SYMODE_GENERATED_DIR": str(cache)}
    return {"marker": marker, "base": base, "work": work, "text": text, "spec": spec_file, "params": params,
            "cache": cache, "env": env}


@pytest.fixture(autouse=True)
def no_marker(request: pytest.FixtureRequest):
    """Every test of this module ends without the marker file."""
    yield
    if "hostile" in request.fixturenames:
        base = request.getfixturevalue("hostile")["base"]
        assert not list(base.rglob("MARKER")), "hostile text ran as code"


@pytest.mark.slow
def test_simulate_runs_no_code_and_exports_only_symode_symbols(hostile) -> None:
    out = hostile["work"] / "traj.csv"
    proc = run_symode(["simulate", str(hostile["spec"]), "--params", str(hostile["params"]), "--t-end", "2",
                       "-o", str(out)], hostile["work"], hostile["env"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.exists()
    libraries = list(hostile["cache"].glob("*/libmodel.so"))
    assert len(libraries) == 1
    assert exported(libraries[0]) == LIBRARY_SYMBOLS
    # no free text in the library's sources (the model's name, descriptions, units, ids)
    for src in ("model.c", "model_casadi.c", "model_casadi.h"):
        text = (libraries[0].parent / src).read_text()
        assert "touch" not in text and "evil" not in text, src


@pytest.mark.slow
def test_codegen_build_make_and_import(hostile) -> None:
    work, text = hostile["work"], hostile["text"]
    out = work / 'gen $(shell touch MARKER) `touch MARKER` "x"'
    proc = run_symode(["codegen", str(hostile["spec"]), "--params", str(hostile["params"]), "-o", str(out),
                       "--prefix", "evil", "--build"], work, hostile["env"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = exported(out / "libmodel.so")
    assert "evil_simulate" in names and "EVIL_NAME" in names
    assert [n for n in names if not n.startswith(("evil_", "EVIL_", "_"))] == []
    # the generated Makefile's other targets
    for target in ("check", "embed", "clean", "all"):
        proc = subprocess.run(["make", "-s", target], cwd=out, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, (target, proc.stderr[-3000:])
    # the generated loader imports and runs (a fresh interpreter, the directory on sys.path)
    script = ("import sys, json; sys.path.insert(0, sys.argv[1]); import model; "
              "X = model.simulate([0.0, 1.0, 2.0]); "
              "print(json.dumps({'name': model.MODEL_NAME, 'states': model.STATES, 'x': X.tolist()}))")
    proc = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, cwd=work,
                          env=hostile["env"], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout)
    assert res["name"] == text and res["states"] == ["S", "X"] and np.all(np.isfinite(res["x"]))
    # the name reaches C as an escaped string literal, byte for byte
    lib = ctypes.CDLL(str(out / "libmodel.so"))
    assert ctypes.c_char_p.in_dll(lib, "EVIL_NAME").value == text.encode()
    # free text reaches the README escaped, C and the Makefile only as escaped one-line comments
    assert markdown(text) in (out / "README.md").read_text()
    for name in ("model.h", "model.c", "example.c"):
        source = (out / name).read_text()
        assert c_comment(text) in source, name
        # the raw text nowhere, except as the escaped string literal MODEL_NAME
        assert "// int system" not in source.replace(c_string(text), ""), name
    assert c_string(text) in (out / "model.c").read_text()
    assert f"# Build the standalone solver of the symode model '{make_comment(text)}'" in (out / "Makefile").read_text()


def test_ruff_accepts_the_generated_loader(hostile) -> None:
    """model.py is a static file (no model text in it): the same bytes as the package's template."""
    from symode.codegen.standalone.writer import LOADER

    out = hostile["work"] / "gen2"
    proc = run_symode(["codegen", str(hostile["spec"]), "-o", str(out)], hostile["work"], hostile["env"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "model.py").read_bytes() == LOADER.read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"] == hostile["text"]


@pytest.mark.parametrize("prefix", ["x; touch MARKER", "a$(shell touch MARKER)", "model\n", "`id`", "symode", "",
                                    "1abc", "a" * 32, "x-y", "SYM", "Casadi", "api"])
def test_prefix_must_be_a_c_identifier(hostile, prefix: str) -> None:
    out = hostile["work"] / "gen-bad"
    proc = run_symode(["codegen", str(hostile["spec"]), "-o", str(out), "--prefix", prefix], hostile["work"],
                      hostile["env"])
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "prefix" in lines[0], proc.stderr
    assert not out.exists()


def test_name_with_a_newline_is_refused(hostile, tmp_path: Path) -> None:
    """A name that is an identifier followed by a newline (which `$` in a regex lets through) is refused
    before anything is generated."""
    spec = hostile_spec("plain")
    spec["states"]["S\n"] = spec["states"].pop("S")
    spec["reactor"]["feed"] = {"X": "S0"}
    spec["interactions"] = [spec["interactions"][1]]
    path = tmp_path / "nl.yaml"
    path.write_text(yaml.safe_dump(spec))
    proc = run_symode(["simulate", str(path), "--t-end", "1", "-o", str(tmp_path / "o.csv")], tmp_path,
                      hostile["env"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_library_sources_do_not_depend_on_free_text(tmp_path: Path) -> None:
    """The cache key covers every byte of the generated sources: specs that differ only in free text
    share one entry, whose sources are the same bytes. (Interaction ids are part of the structure, and
    so of the key.)"""
    from symode.solve.model import build_model
    from symode.spec import loads_spec

    sources = ("model.c", "model_casadi.c", "model_casadi.h")
    a = build_model(loads_spec(yaml.safe_dump(hostile_spec("first", "edge")), "a.yaml"), cache_dir=tmp_path)
    first = {n: (a.directory / n).read_bytes() for n in sources}
    b = build_model(loads_spec(yaml.safe_dump(hostile_spec(payload(tmp_path / "M"), "edge")), "b.yaml"),
                    cache_dir=tmp_path)
    assert a.built_now and not b.built_now and a.directory == b.directory
    c = build_model(loads_spec(yaml.safe_dump(hostile_spec(payload(tmp_path / "M"), "edge")), "c.yaml"),
                    cache_dir=tmp_path, force=True)
    assert c.built_now and c.directory == a.directory
    assert {n: (c.directory / n).read_bytes() for n in sources} == first
    assert not (tmp_path / "M").exists()
