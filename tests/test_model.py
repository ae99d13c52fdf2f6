"""Compiled f, df/dx, df/dp and h against sympy and finite differences; caching; simulation accuracy."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from symode.errors import SolverError
from symode.solve.model import build_model
from symode.solve.simulation import simulate
from symode.spec import load_spec, loads_spec
from symode.spec.data import read_csv
from symode.spec.params import apply_params

from .conftest import SPECS

MODEL_SPECS = ["chemostat.yaml", "community-2x3.yaml"]


def _random_point(model, rng):
    x = rng.uniform(0.01, 5.0, len(model.states))
    p = model.parameter_vector() * np.exp(rng.normal(0, 0.5, len(model.parameters)))
    U = rng.uniform(0.05, 0.3, model.layout.nu_interval)
    return rng.uniform(0, 100), x, p, U


def _central_diff(fun, v, eps=1e-6):
    cols = []
    for k in range(len(v)):
        h = eps * max(1.0, abs(v[k]))
        vp, vm = v.copy(), v.copy()
        vp[k] += h
        vm[k] -= h
        cols.append((fun(vp) - fun(vm)) / (2 * h))
    return np.array(cols).T


@pytest.mark.parametrize("name", MODEL_SPECS)
def test_compiled_matches_sympy_and_finite_differences(name):
    model = build_model(SPECS / name)
    sym = model.symbolic
    args = [sym.t, sym.x, sym.p, sym.u]
    f_ref = sp.lambdify(args, sym.f, "numpy")
    jx_ref = sp.lambdify(args, sym.jac_x, "numpy")
    jp_ref = sp.lambdify(args, sym.jac_p, "numpy")
    h_ref = sp.lambdify(args, sym.h, "numpy")
    rng = np.random.default_rng(1)
    be = model.backend
    for _ in range(5):
        t, x, p, U = _random_point(model, rng)
        u = U[: len(model.inputs)]
        f = be.rhs(t, x, p, U)
        np.testing.assert_allclose(f, np.asarray(f_ref(t, x, p, u), float).ravel(), rtol=1e-12, atol=1e-12)
        Jx = be.jac_x(t, x, p, U)
        Jp = be.jac_p(t, x, p, U)
        np.testing.assert_allclose(Jx, np.asarray(jx_ref(t, x, p, u), float), rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(Jp, np.asarray(jp_ref(t, x, p, u), float), rtol=1e-11, atol=1e-12)
        fd_x = _central_diff(lambda xx, t=t, p=p, U=U: be.rhs(t, xx, p, U), x)
        fd_p = _central_diff(lambda pp, t=t, x=x, U=U: be.rhs(t, x, pp, U), p)
        np.testing.assert_allclose(Jx, fd_x, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(Jp, fd_p, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(be.obs(t, x, p, U), np.asarray(h_ref(t, x, p, u), float).ravel(), rtol=1e-12)
        fd_h = _central_diff(lambda xx, t=t, p=p, U=U: be.obs(t, xx, p, U), x)
        np.testing.assert_allclose(be.obs_jac_x(t, x, p, U), fd_h, rtol=1e-6, atol=1e-9)


def test_vm_backend_matches_compiled(chemostat_model):
    vm = build_model(SPECS / "chemostat.yaml", backend="vm")
    rng = np.random.default_rng(2)
    t, x, p, U = _random_point(chemostat_model, rng)
    for fn in ("rhs", "jac_x", "jac_p", "obs"):
        np.testing.assert_allclose(getattr(vm.backend, fn)(t, x, p, U),
                                   getattr(chemostat_model.backend, fn)(t, x, p, U), rtol=1e-12, atol=1e-14)
    times = np.linspace(0, 5, 6)
    a = simulate(chemostat_model, times, rtol=1e-10, atol=1e-12)
    b = simulate(vm, times, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.x, b.x, rtol=1e-6)


def test_cache_hit_and_key_ignores_values(tmp_path):
    spec = load_spec(SPECS / "chemostat.yaml")
    m1 = build_model(spec, cache_dir=tmp_path)
    assert m1.built_now
    m2 = build_model(spec.with_values({"gA": 0.123}), cache_dir=tmp_path)
    assert not m2.built_now and m2.directory == m1.directory
    changed = spec.copy()
    changed.interactions = changed.interactions[:-1]
    m3 = build_model(changed, cache_dir=tmp_path)
    assert m3.built_now and m3.directory != m1.directory


def _build_in(cache: str) -> str:
    m = build_model(SPECS / "chemostat.yaml", cache_dir=Path(cache))
    x = simulate(m, np.linspace(0, 1, 3)).x
    return f"{m.directory}|{x[-1, 0]!r}"


@pytest.mark.slow
def test_concurrent_builds_are_safe(tmp_path):
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.map(_build_in, [str(tmp_path)] * 2)
    assert results[0] == results[1]
    dirs = [p for p in tmp_path.iterdir() if not p.name.startswith((".", "runtime-"))]
    assert len(dirs) == 1 and (dirs[0] / "libmodel.so").exists()
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("runtime-")]) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".build-")]


def test_reproduces_truth_states(shared_data):
    spec = apply_params(load_spec(SPECS / "chemostat.yaml"), shared_data / "chemostat-dev" / "truth.json")
    model = build_model(spec)
    traj = simulate(model, data=read_csv(shared_data / "chemostat-dev" / "data.csv"))
    truth = np.genfromtxt(shared_data / "chemostat-dev" / "truth_states.csv", delimiter=",", names=True)
    np.testing.assert_allclose(traj.times, truth["time_h"])
    for name in model.states:
        rel = np.max(np.abs(traj[name] - truth[name]) / np.abs(truth[name]))
        assert rel <= 1e-5, (name, rel)


@pytest.mark.parametrize("method", ["explicit", "stiff"])
def test_methods_agree(chemostat_model, method):
    times = np.linspace(0, 48, 97)
    D = 0.25 + 0.03 * np.sin(times / 5)
    ref = simulate(chemostat_model, times, inputs={"D": D}, rtol=1e-11, atol=1e-13)
    other = simulate(chemostat_model, times, inputs={"D": D}, method=method, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(other.x, ref.x, rtol=2e-6, atol=1e-8)


def test_auto_detects_stiffness_at_original_start(chemostat_model):
    """At the original study's starting values B's uptake is stiff: auto switches to the stiff method."""
    times = np.arange(0, 24 * 10 + 0.25, 0.25)
    auto = simulate(chemostat_model, times)
    assert auto.stats["n_switches"] >= 1
    explicit = simulate(chemostat_model, times, method="explicit")
    assert explicit.stats["n_accepted"] > 2 * auto.stats["n_accepted"]
    np.testing.assert_allclose(auto.x, explicit.x, rtol=1e-5, atol=1e-8)


def test_piecewise_constant_input_is_exact():
    """x' = D (1 - x): exact solution known interval by interval for a stepwise D."""
    spec = loads_spec("""
name: washin
reactor: {mode: chemostat, dilution: D, feed: {x: one}}
states: {x: {x0: 0.0}}
inputs: {D: {}}
parameters: {one: {value: 1.0, estimate: false}}
""")
    model = build_model(spec)
    times = np.array([0.0, 0.7, 1.5, 4.0, 4.1])
    D = np.array([0.5, 3.0, 0.1, 10.0, 0.0])
    traj = simulate(model, times, inputs={"D": D}, rtol=1e-12, atol=1e-14)
    x = [0.0]
    for i in range(len(times) - 1):
        x.append(1 - (1 - x[-1]) * np.exp(-D[i] * (times[i + 1] - times[i])))
    np.testing.assert_allclose(traj["x"], x, rtol=1e-10, atol=1e-13)


def test_linear_input_interpolation():
    """x' = u(t) with u linear between samples: x = integral of the interpolant (trapezoid exact)."""
    spec = loads_spec("""
name: integrator
reactor: {mode: batch}
states: {x: {x0: 0.0}}
inputs: {u: {interpolation: linear}}
parameters: {k: {value: 1.0, estimate: false}}
interactions:
  - {id: source, type: custom, rate: "k*u", stoichiometry: {x: 1}}
""")
    model = build_model(spec)
    times = np.array([0.0, 1.0, 3.0, 3.5])
    u = np.array([0.0, 2.0, -1.0, 4.0])
    traj = simulate(model, times, inputs={"u": u}, rtol=1e-12, atol=1e-14)
    expected = np.concatenate([[0], np.cumsum(np.diff(times) * (u[1:] + u[:-1]) / 2)])
    np.testing.assert_allclose(traj["x"], expected, rtol=1e-9, atol=1e-12)


def test_solver_failure_is_a_clear_error():
    spec = loads_spec("""
name: blowup
reactor: {mode: batch}
states: {x: {x0: 1.0}}
parameters: {k: {value: 1.0}}
interactions:
  - {type: mass_action, reactants: {x: 2}, products: {x: 3}, k: k}
""")
    model = build_model(spec)
    with pytest.raises(SolverError, match="interval"):
        simulate(model, np.linspace(0, 2, 5))
