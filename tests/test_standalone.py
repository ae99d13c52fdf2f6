"""Tests for ``symode codegen`` / :func:`symode.codegen.standalone.generate_standalone` (standalone C solver).

The generated directory must build with -Wall -Wextra -Werror, reproduce symode's simulation and gradients
(same integrator, same generated model code), be valgrind-clean, and its ``model.py`` must work with numpy
alone (checked for real in a fresh virtual environment by the slow test).
"""

from __future__ import annotations

import ast
import importlib.util
import itertools
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from symode.codegen.build import find_compiler
from symode.codegen.standalone import generate_standalone, run_make
from symode.errors import SymodeError

from .conftest import REPO, SPECS

pytestmark = pytest.mark.skipif(find_compiler() is None, reason="no C compiler")

VALGRIND = shutil.which("valgrind")
_counter = itertools.count()


def load_module(directory: Path):
    """Import a generated model.py under a unique module name."""
    spec = importlib.util.spec_from_file_location(f"_standalone_model_{next(_counter)}", directory / "model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


@pytest.fixture(scope="module")
def chemostat_dir(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    out = tmp_path_factory.mktemp("standalone") / "chemostat"
    generate_standalone(SPECS / "chemostat.yaml", out, params=shared_data / "chemostat-dev" / "truth.json",
                        build=True)
    return out


@pytest.fixture(scope="module")
def dev(shared_data: Path):
    from symode.solve.model import build_model
    from symode.spec import load_spec
    from symode.spec.data import read_csv
    from symode.spec.params import apply_params

    root = shared_data / "chemostat-dev"
    data = read_csv(root / "data.csv")
    spec = apply_params(load_spec(SPECS / "chemostat.yaml"), root / "truth.json")
    return data, build_model(spec), root


@pytest.fixture(scope="module")
def sa(chemostat_dir: Path):
    return load_module(chemostat_dir)


# ----------------------------------------------------------------------------------------------------
# The directory
# ----------------------------------------------------------------------------------------------------

def test_directory_contents(chemostat_dir: Path) -> None:
    for name in ("model.c", "model.h", "model_wrapper.c", "model_casadi.c", "model_casadi.h", "symode_integrator.c",
                 "symode_steppers.c", "symode_solver.h",
                 "symode_tape.c", "symode_tape_record.c", "symode_tape_forward.c", "symode_tape_forward_dense.c",
                 "symode_gradient.c",
                 "symode_model.h", "example.c", "Makefile", "model.py", "README.md", "spec.yaml", "manifest.json",
                 "libmodel.so", "model_example"):
        assert (chemostat_dir / name).is_file(), name
    header = (chemostat_dir / "model.h").read_text()
    for text in ("MODEL_STATE_NAMES", "MODEL_PARAMETER_NAMES", "MODEL_INPUT_NAMES", "MODEL_OBSERVABLE_NAMES",
                 "MODEL_DEFAULT_PARAMETERS", "MODEL_DEFAULT_X0", "#define MODEL_NX 5", "model_simulate",
                 "model_loss_forward", "model_loss_adjoint", "muB"):
        assert text in header, text
    # units and descriptions are documented in the README (and not written into the C)
    assert "dilution rate" in (chemostat_dir / "README.md").read_text()
    assert not any("dilution rate" in (chemostat_dir / n).read_text() for n in ("model.h", "model.c", "example.c"))
    # the C files of symode's runtime are copied as they are (separate translation units, no merging)
    from symode.codegen.wrapper import C_SOURCES, CSRC

    for name in C_SOURCES:
        assert (chemostat_dir / name).read_bytes() == (CSRC / name).read_bytes(), name
    source = (chemostat_dir / "model.c").read_text()
    assert '{"S", "X", "Y", "A", "B", NULL}' in source
    # truth.json's values baked in (muB 0.5, KB 0.2), not the spec's (0.9, 0.5)
    assert ("const double MODEL_DEFAULT_PARAMETERS[API_NP + 1] = {100.0, 1.0, 0.3, 1.0, 0.5, 2.0, 0.0003, 0.006, "
            "0.15, 0.5, 0.5, 50.0, 0.2, 2.0, 0.0};") in source
    assert not list(chemostat_dir.parent.glob(".chemostat.*")), "temporary directory left behind"


@pytest.mark.skipif(shutil.which("nm") is None, reason="no nm")
def test_only_prefixed_symbols_exported(chemostat_dir: Path) -> None:
    out = subprocess.run(["nm", "-D", "--defined-only", str(chemostat_dir / "libmodel.so")], capture_output=True,
                         text=True, check=True).stdout
    names = [line.split()[-1] for line in out.splitlines() if line.strip()]
    assert "model_simulate" in names and "MODEL_STATE_NAMES" in names
    foreign = [n for n in names if not (n.startswith("model_") or n.startswith("MODEL_")) and not n.startswith("_")]
    assert foreign == []


def test_loader_imports_only_numpy_and_stdlib(chemostat_dir: Path) -> None:
    tree = ast.parse((chemostat_dir / "model.py").read_text())
    mods = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            mods.add((node.module or "").split(".")[0])
    assert mods <= {"__future__", "ctypes", "hashlib", "json", "os", "re", "shutil", "stat", "subprocess", "tempfile",
                    "threading", "pathlib", "numpy"}, mods


# ----------------------------------------------------------------------------------------------------
# Agreement with symode
# ----------------------------------------------------------------------------------------------------

def test_simulate_matches_symode_and_truth(sa, dev) -> None:
    from symode.solve.simulation import simulate

    data, model, root = dev
    ref = simulate(model, data=data)
    D = data.columns["D"]
    X = sa.simulate(data.times, inputs={"D": D})
    assert X.shape == (len(data.times), 5)
    np.testing.assert_allclose(X, ref.x, rtol=1e-10, atol=0)
    # one value per interval (len - 1) gives the same result as len(times) values
    np.testing.assert_array_equal(sa.simulate(data.times, inputs={"D": D[:-1]}), X)
    truth = np.genfromtxt(root / "truth_states.csv", delimiter=",", names=True)
    for k, name in enumerate(sa.STATES):
        np.testing.assert_allclose(X[:, k], truth[name], rtol=1e-6, atol=0)


@pytest.mark.parametrize("method", ["forward", "adjoint", "discrete"])
def test_gradient_matches_symode(sa, dev, method: str) -> None:
    from symode.solve.sensitivity import METHODS, Problem, loss_and_gradient

    if method not in sa.GRADIENT_METHODS or method not in METHODS:
        pytest.skip(f"{method} gradient not available")
    data, model, _ = dev
    ref = loss_and_gradient(Problem(model, data), method=method)
    obs = np.column_stack([data.columns[o] for o in sa.OBSERVABLES])
    loss, gp, gx = sa.loss_and_gradient(data.times, obs, inputs={"D": data.columns["D"]}, method=method)
    assert loss == pytest.approx(ref.loss, rel=1e-10)
    np.testing.assert_allclose([gx[n] for n in model.states], ref.grad_x0, rtol=1e-10, atol=0)
    np.testing.assert_allclose([gp[n] for n in model.parameters], ref.grad_p, rtol=1e-10, atol=0)
    # data by name, with missing values, equal to the array form
    obs_nan = obs.copy()
    obs_nan[::3, 1] = np.nan
    a = sa.loss_and_gradient(data.times[:200], obs_nan[:200], inputs={"D": data.columns["D"][:200]},
                             method=method)
    b = sa.loss_and_gradient(data.times[:200], {o: obs_nan[:200, k] for k, o in enumerate(sa.OBSERVABLES)},
                             inputs={"D": data.columns["D"][:199]}, method=method)
    assert a == b


def test_overrides_match_symode(sa, dev) -> None:
    from symode.solve.sensitivity import Problem, loss_and_gradient
    from symode.solve.simulation import simulate

    data, model, _ = dev
    params = {"muB": 0.9, "KB": 0.5}
    x0 = {"Y": 2.0}
    ref = simulate(model, data=data, params=params, x0=x0, method="stiff", rtol=1e-9, atol=1e-11)
    X = sa.simulate(data.times, x0=x0, params=params, inputs={"D": data.columns["D"]}, method="stiff", rtol=1e-9,
                    atol=1e-11)
    np.testing.assert_allclose(X, ref.x, rtol=1e-10, atol=0)
    prob = Problem(model, data, window=(0.0, 48.0))
    g = loss_and_gradient(prob, params=model.parameter_vector(params), x0=model.x0_vector(x0), method="forward")
    n = len(prob.times)
    obs = np.column_stack([data.columns[o][:n] for o in sa.OBSERVABLES])
    loss, gp, _ = sa.loss_and_gradient(data.times[:n], obs, x0=x0, params=params,
                                        inputs={"D": data.columns["D"][:n]})
    assert loss == pytest.approx(g.loss, rel=1e-10)
    np.testing.assert_allclose([gp[p] for p in model.parameters], g.grad_p, rtol=1e-10, atol=0)


def test_defaults_and_errors(sa) -> None:
    t = np.linspace(0.0, 10.0, 11)
    X = sa.simulate(t)  # D takes its default 0.25, x0/params the baked-in (truth.json) values
    assert X.shape == (11, 5) and np.all(np.isfinite(X))
    np.testing.assert_array_equal(X[0], [sa.DEFAULT_X0[s] for s in sa.STATES])
    np.testing.assert_array_equal(sa.simulate(t, inputs={"D": 0.25}), X)
    with pytest.raises(ValueError, match="unknown parameter"):
        sa.simulate(t, params={"nope": 1.0})
    with pytest.raises(ValueError, match="increase strictly"):
        sa.simulate([0.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="values for 11 times"):
        sa.simulate(t, inputs={"D": np.ones(5)})
    with pytest.raises(sa.ModelError, match="failed"):
        sa.simulate(t, params={"mu0": 1e300}, x0={"X": 1e300})


def test_thread_safety(sa) -> None:
    t = np.linspace(0.0, 200.0, 801)
    values = [0.1 * (k + 1) for k in range(8)]
    expected = [sa.simulate(t, params={"muB": v}) for v in values]
    results: dict[int, np.ndarray] = {}

    def work(k: int) -> None:
        for _ in range(5):
            results[k] = sa.simulate(t, params={"muB": values[k]})

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(values))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for k in range(len(values)):
        np.testing.assert_array_equal(results[k], expected[k])


# ----------------------------------------------------------------------------------------------------
# The example program (C only)
# ----------------------------------------------------------------------------------------------------

def _input_csv(dev, tmp_path: Path, rows: int) -> Path:
    data = dev[0]
    path = tmp_path / "inputs.csv"
    lines = ["time_h,D,X,S"] + [",".join(repr(float(v)) for v in row) for row in
                                zip(data.times[:rows], data.columns["D"][:rows], data.columns["X"][:rows],
                                    data.columns["S"][:rows], strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_example_program(chemostat_dir: Path, sa, dev, tmp_path: Path) -> None:
    inputs = _input_csv(dev, tmp_path, 400)
    out = tmp_path / "traj.csv"
    proc = subprocess.run([str(chemostat_dir / "model_example"), str(inputs), str(out)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    got = np.genfromtxt(out, delimiter=",", names=True)
    assert got.dtype.names == ("time_h", *sa.STATES)
    data = dev[0]
    X = sa.simulate(data.times[:400], inputs={"D": data.columns["D"][:400]})
    for k, name in enumerate(sa.STATES):
        np.testing.assert_array_equal(got[name], X[:, k])
    bad = subprocess.run([str(chemostat_dir / "model_example"), "--param", "nope=1", str(inputs)],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown parameter" in bad.stderr


@pytest.mark.slow
@pytest.mark.skipif(VALGRIND is None, reason="valgrind not installed")
def test_example_program_valgrind_clean(chemostat_dir: Path, dev, tmp_path: Path) -> None:
    inputs = _input_csv(dev, tmp_path, 150)
    for extra in (["--gradient"], ["--method", "stiff", "--gradient"]):
        proc = subprocess.run([VALGRIND, "-q", "--error-exitcode=99", "--leak-check=full",
                               "--errors-for-leak-kinds=all", str(chemostat_dir / "model_example"), *extra,
                               str(inputs), str(tmp_path / "o.csv")],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "loss (adjoint)" in proc.stderr


@pytest.mark.slow
def test_community_compiles_with_werror(tmp_path: Path) -> None:
    out = generate_standalone(SPECS / "community-2x3.yaml", tmp_path / "community")
    makefile = (out / "Makefile").read_text()
    assert "-Wall -Wextra -Werror" in makefile
    run_make(out)  # raises on any warning (-Werror)
    assert (out / "libmodel.so").exists() and (out / "model_example").exists()
    mod = load_module(out)
    X = mod.simulate(np.linspace(0, 24, 97))
    assert X.shape == (97, len(mod.STATES)) and np.all(np.isfinite(X))
    assert mod.OBSERVABLES and mod.INPUTS == ["D"]


@pytest.mark.slow
def test_matches_symode_community(tmp_path: Path) -> None:
    """Another model (8 states, several inputs/observables) against symode, forward and adjoint."""
    from symode.solve.model import build_model
    from symode.solve.sensitivity import Problem, loss_and_gradient
    from symode.solve.simulation import simulate
    from symode.spec import load_spec

    spec = load_spec(SPECS / "community-2x3.yaml")
    out = generate_standalone(spec, tmp_path / "c")
    mod = load_module(out)
    model = build_model(spec)
    t = np.linspace(0.0, 48.0, 97)
    D = 0.25 + 0.05 * np.sin(t / 3.0)
    ref = simulate(model, t, inputs={"D": D})
    X = mod.simulate(t, inputs={"D": D})
    np.testing.assert_allclose(X, ref.x, rtol=1e-10, atol=0)
    from symode.spec.data import Dataset

    rng = np.random.default_rng(1)
    cols = {o: ref[o] * (1 + 0.05 * rng.standard_normal(len(t))) for o in model.observables}
    cols["D"] = D
    problem = Problem(model, Dataset(t, cols))
    obs = np.column_stack([cols[o] for o in mod.OBSERVABLES])
    for method in ("forward", "adjoint"):
        g = loss_and_gradient(problem, method=method)
        loss, gp, gx = mod.loss_and_gradient(t, obs, inputs={"D": D}, method=method)
        assert loss == pytest.approx(g.loss, rel=1e-10)
        np.testing.assert_allclose([gp[p] for p in model.parameters], g.grad_p, rtol=1e-10, atol=1e-300)
        np.testing.assert_allclose([gx[s] for s in model.states], g.grad_x0, rtol=1e-10, atol=1e-300)


# ----------------------------------------------------------------------------------------------------
# CLI and output handling
# ----------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_cli_codegen(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from symode.cli.main import main

    out = tmp_path / "gen"
    assert main(["codegen", str(SPECS / "chemostat.yaml"), "-o", str(out), "--prefix", "chemo"]) == 0
    assert "wrote" in capsys.readouterr().err
    assert "chemo_simulate" in (out / "model.h").read_text()
    assert "CHEMO_STATE_NAMES" in (out / "model.h").read_text()
    run_make(out)
    mod = load_module(out)
    assert mod.STATES == ["S", "X", "Y", "A", "B"] and mod.simulate([0.0, 1.0]).shape == (2, 5)
    # regenerating replaces the previous output (the stale build products go with it)
    assert main(["codegen", str(SPECS / "chemostat.yaml"), "-o", str(out)]) == 0
    assert not (out / "libmodel.so").exists() and "model_simulate" in (out / "model.h").read_text()


def test_cli_bad_spec_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("symode: 1\nname: x\nstates: {S: {x0: oops}}\n")
    proc = subprocess.run([sys.executable, "-m", "symode.cli", "codegen", str(bad), "-o", str(tmp_path / "o")],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("symode: error:") and "bad.yaml" in lines[0]
    assert not (tmp_path / "o").exists()


def test_refuses_foreign_directory(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "precious.txt").write_text("keep me")
    with pytest.raises(SymodeError, match="does not hold a previous 'symode codegen'"):
        generate_standalone(SPECS / "chemostat.yaml", target)
    assert (target / "precious.txt").read_text() == "keep me"
    with pytest.raises(SymodeError, match="invalid prefix"):
        generate_standalone(SPECS / "chemostat.yaml", tmp_path / "x", prefix="bad-prefix")


# ----------------------------------------------------------------------------------------------------
# Slow: fresh virtual environment, 4x4 template compile time
# ----------------------------------------------------------------------------------------------------

_VENV_SCRIPT = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import model
root = sys.argv[2]
d = np.genfromtxt(root + "/data.csv", delimiter=",", names=True)
t = d["time_h"]
X = model.simulate(t, inputs={"D": d["D"]})
obs = np.column_stack([d[o] for o in model.OBSERVABLES])
out = {"states": model.STATES, "parameters": model.PARAMETERS, "inputs": model.INPUTS,
       "observables": model.OBSERVABLES}
for method in ("forward", "adjoint"):
    loss, gp, gx = model.loss_and_gradient(t, obs, inputs={"D": d["D"]}, method=method)
    out[method] = [loss, gp, gx]
np.save(sys.argv[3], X)
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("symode", "sympy", "casadi", "scipy"))
out["forbidden_modules"] = bad
out["numpy"] = np.__version__
json.dump(out, open(sys.argv[4], "w"))
"""


def _fresh_python(tmp_path: Path) -> list[str]:
    """A Python that sees numpy and nothing else: a fresh venv (pip install numpy), or, if that is
    impossible here, the base interpreter isolated (-I -S) with a path holding only numpy."""
    venv = tmp_path / "venv"
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
    py = venv / "bin" / "python"
    if made.returncode == 0:
        pip = subprocess.run([str(py), "-m", "pip", "install", "-q", "numpy"], capture_output=True, text=True,
                             timeout=900)
        if pip.returncode == 0:
            return [str(py), "-I"]
    import numpy

    only = tmp_path / "only-numpy"
    only.mkdir()
    site = Path(numpy.__file__).resolve().parent.parent
    for entry in site.iterdir():
        if entry.name == "numpy" or entry.name.startswith("numpy.libs") or entry.name.startswith("numpy-"):
            (only / entry.name).symlink_to(entry)
    return [sys.executable, "-I", "-S", "-c",
            f"import sys, runpy; sys.path.insert(0, {str(only)!r}); sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')"]


@pytest.mark.slow
def test_fresh_venv_reproduces_symode(dev, tmp_path: Path) -> None:
    import json

    from symode.solve.sensitivity import Problem, loss_and_gradient
    from symode.solve.simulation import simulate

    data, model, root = dev
    # a fresh copy, not built yet: the loader must build it with cc inside the venv
    out = generate_standalone(SPECS / "chemostat.yaml", tmp_path / "gen", params=root / "truth.json")
    assert not (out / "libmodel.so").exists()
    python = _fresh_python(tmp_path)
    script = tmp_path / "run.py"
    script.write_text(_VENV_SCRIPT)
    res_json, res_npy = tmp_path / "res.json", tmp_path / "X.npy"
    proc = subprocess.run([*python, str(script), str(out), str(root), str(res_npy), str(res_json)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"isolated interpreter: {' '.join(python[:2])}")
    assert (out / "libmodel.so").exists()
    res = json.loads(res_json.read_text())
    assert res["forbidden_modules"] == []
    assert res["states"] == model.states and res["parameters"] == model.parameters
    X = np.load(res_npy)
    np.testing.assert_allclose(X, simulate(model, data=data).x, rtol=1e-10, atol=0)
    truth = np.genfromtxt(root / "truth_states.csv", delimiter=",", names=True)
    for k, name in enumerate(model.states):
        np.testing.assert_allclose(X[:, k], truth[name], rtol=1e-6, atol=0)
    problem = Problem(model, data)
    for method in ("forward", "adjoint"):
        ref = loss_and_gradient(problem, method=method)
        loss, gp, gx = res[method]
        assert loss == pytest.approx(ref.loss, rel=1e-10)
        np.testing.assert_allclose([gp[p] for p in model.parameters], ref.grad_p, rtol=1e-10, atol=0)
        np.testing.assert_allclose([gx[s] for s in model.states], ref.grad_x0, rtol=1e-10, atol=0)


@pytest.mark.slow
def test_template_4x4_compiles_quickly(tmp_path: Path) -> None:
    from symode.graph.template import template_spec

    out = generate_standalone(template_spec(4, 4), tmp_path / "t44")
    t0 = time.perf_counter()
    run_make(out, "libmodel.so")
    elapsed = time.perf_counter() - t0
    print(f"4x4 template: model_casadi.c {(out / 'model_casadi.c').stat().st_size} bytes, built in {elapsed:.1f} s")
    assert elapsed < 60
    mod = load_module(out)
    X = mod.simulate(np.linspace(0.0, 24.0, 49))
    assert X.shape == (49, 10) and np.all(np.isfinite(X))


# ----------------------------------------------------------------------------------------------------
# Separate translation units, embedding
# ----------------------------------------------------------------------------------------------------

def test_sources_and_makefile_agree(chemostat_dir: Path) -> None:
    """Every C file of the directory is in the Makefile and in the loader's source list, and symode's
    runtime sources are all there."""
    import json

    from symode.codegen.wrapper import C_SOURCES

    manifest = json.loads((chemostat_dir / "manifest.json").read_text())
    c_files = sorted(p.name for p in chemostat_dir.glob("*.c") if p.name != "example.c")
    assert sorted(n for n in manifest["sources"] if n.endswith(".c")) == c_files
    assert set(C_SOURCES) <= set(manifest["sources"])
    makefile = (chemostat_dir / "Makefile").read_text()
    for name in c_files:
        assert f"{name[:-2]}.o: {name}" in makefile, name
    assert sorted(manifest["files"]) == sorted(p.name for p in chemostat_dir.iterdir()
                                               if not p.name.endswith((".o", ".so")) and p.name != "model_example")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("objcopy") is None or shutil.which("make") is None, reason="no objcopy/make")
def test_two_models_embedded_in_one_program(tmp_path: Path) -> None:
    """``make embed``: one object per model whose only global symbols are its prefixed API, so that two
    generated models link into one program."""
    for prefix in ("one", "two"):
        out = generate_standalone(SPECS / "chemostat.yaml", tmp_path / prefix, prefix=prefix)
        run_make(out, "embed")
        listing = subprocess.run(["nm", "-g", "--defined-only", str(out / "model_embed.o")], capture_output=True,
                                 text=True, check=True).stdout
        names = [line.split()[-1] for line in listing.splitlines() if line.strip()]
        assert names and all(n.startswith((f"{prefix}_", f"{prefix.upper()}_")) for n in names), names
    (tmp_path / "prog.c").write_text(r"""
#include <stdio.h>
#include "one/model.h"
#include "two/model.h"
int main(void) {
    double t[3] = {0.0, 1.0, 2.0}, u1[2 * ONE_NU_INTERVAL + 1], u2[2 * TWO_NU_INTERVAL + 1];
    double x1[3 * ONE_NX], x2[3 * TWO_NX];
    int k;
    if (one_interval_inputs(3, t, NULL, u1) || two_interval_inputs(3, t, NULL, u2)) return 1;
    if (one_simulate(NULL, 3, t, NULL, NULL, u1, x1, NULL) || two_simulate(NULL, 3, t, NULL, NULL, u2, x2, NULL))
        return 2;
    for (k = 0; k < 3 * ONE_NX; k++) if (x1[k] != x2[k]) return 3;
    printf("%.17g\n", x1[3 * ONE_NX - 1]);
    return 0;
}
""")
    cc = find_compiler()
    subprocess.run([cc, "-std=c99", "-Wall", "-Werror", "-o", "prog", "prog.c", "one/model_embed.o",
                    "two/model_embed.o", "-lm"], cwd=tmp_path, check=True, capture_output=True)
    proc = subprocess.run([str(tmp_path / "prog")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.returncode
    mod = load_module(tmp_path / "one")
    assert float(proc.stdout) == mod.simulate([0.0, 1.0, 2.0])[-1, -1]
