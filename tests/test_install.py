"""The package as a user gets it: a wheel built from the source, installed into a fresh virtual environment,
and every step of the README's walkthrough run from an empty directory (no file of the repository needed).

One test, so that the wheel and the environment are built once even when tests run in parallel.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import REPO, require

pytestmark = pytest.mark.slow

TIMEOUT = 3600  # a safety net only: every step is bounded by iterations, not by time


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def _build_wheel(root: Path) -> Path:
    """Copy what a source distribution holds (pyproject.toml, README.md, symode/) and build a wheel."""
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "symode", src / "symode", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.so"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(root / "dist"), str(src)],
         cwd=root, env=env)
    wheels = list((root / "dist").glob("symode-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_installs_and_runs_from_an_empty_directory(tmp_path):
    for module in ("build", "wheel", "venv"):
        require(importlib.util.find_spec(module) is not None, f"python package {module!r} not installed")
    wheel = _build_wheel(tmp_path)
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SYMODE_GENERATED_DIR", "VIRTUAL_ENV")}
    # --system-site-packages: numpy, casadi, ... come from this interpreter; symode only from the wheel
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], cwd=tmp_path, env=env)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = str(bindir / "python")
    _run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--force-reinstall", "-q", str(wheel)],
         cwd=tmp_path, env=env)
    cache = tmp_path / "cache"
    env.update(PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}", XDG_CACHE_HOME=str(cache),
               SYMODE_PROGRESS_INTERVAL="60")
    work = tmp_path / "empty"
    work.mkdir()

    def symode(*args: str) -> subprocess.CompletedProcess:
        return _run([str(bindir / "symode"), *args], cwd=work, env=env)

    where = _run([python, "-c", "import symode; print(symode.__file__)"], cwd=work, env=env).stdout.strip()
    assert Path(where).is_relative_to(venv), where
    import symode as here

    assert symode("--version").stdout.strip() == f"symode {here.__version__}"
    assert "example" in _run([python, "-m", "symode", "--help"], cwd=work, env=env).stdout

    # the README's walkthrough
    symode("example", "chemostat", "-o", "data")
    symode("simulate", "data/spec.yaml", "--data", "data/data.csv", "--params", "data/truth.json", "-o", "traj.csv")
    traj = np.genfromtxt(work / "traj.csv", delimiter=",", names=True)
    truth = np.genfromtxt(work / "data" / "truth_states.csv", delimiter=",", names=True)
    for state in ("S", "X", "Y", "A", "B"):
        assert np.max(np.abs(traj[state] - truth[state]) / np.abs(truth[state])) <= 1e-5, state
    symode("template", "--satellites", "2", "--metabolites", "3", "-o", "t.yaml")
    assert "OK" in symode("validate", "t.yaml").stdout
    symode("example", "chemostat", "--days", "2", "-o", "short")
    symode("fit", "short/spec.yaml", "--data", "short/data.csv", "-o", "fit-out", "--quiet")
    fit = json.loads((work / "fit-out" / "fit.json").read_text())
    assert set(fit["parameters"]) >= {"gA", "gB", "muB"} and (work / "fit-out" / "report.md").exists()
    symode("codegen", "data/spec.yaml", "-o", "solver")
    assert (work / "solver" / "model.c").exists() and (work / "solver" / "model.py").exists()
    symode("example", "--spec", "chemostat-neural", "-o", "neural.yaml")
    assert "neural" in symode("validate", "neural.yaml").stdout

    # the quick start: the demo finds its spec and data in the package
    demo = symode("demo", "-o", "demo-out")
    out = work / "demo-out"
    for name in ("experiment.csv", "truth.json", "truth_states.csv", "trajectories.png", "graph.png",
                 "summary.json", "fit/report.md", "design/report.md", "discover/report.md"):
        assert (out / name).exists(), name
    tail = demo.stdout.strip().splitlines()[-3:]
    assert tail[0].startswith("  reports: ") and str(Path("demo-out") / "fit" / "report.md") in tail[0]
    assert tail[1].startswith("  plots: ") and "trajectories.png" in tail[1]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["days"] == 10 and summary["fit"]["converged"]

    # nothing written outside the working directory but the per-user cache of compiled models
    assert not (work / "generated").exists()
    assert any((cache / "symode").rglob("*")), "compiled models not cached in the per-user cache directory"
