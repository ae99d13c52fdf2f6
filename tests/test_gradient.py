"""Loss gradients: every method against central finite differences and against each other."""

from __future__ import annotations

import numpy as np
import pytest

from symode.errors import SolverError
from symode.solve.gradcheck import rel_error
from symode.solve.model import build_model
from symode.solve.sensitivity import METHODS, Problem, finite_difference_gradient, loss, loss_and_gradient
from symode.solve.simulation import simulate
from symode.solve.synth import make_dataset, noisy_observations, smooth_dilution
from symode.spec import load_spec, loads_spec

from .conftest import SPECS

ALL = [m for m in ("forward", "adjoint", "backsolve", "discrete") if m in METHODS]
STABLE = [m for m in ALL if m != "backsolve"]


def _synthetic_problem(model, *, hours=12.0, seed=0, params=None, every=None):
    times = np.arange(0.0, hours + 1e-9, 0.25)
    D = smooth_dilution(times, seed=seed, min_period=2.0, max_period=12.0, amplitude=0.03)
    traj = simulate(model, times, inputs={"D": D}, params=params)
    obs = noisy_observations(model, traj, seed=seed, every=every)
    return Problem(model, make_dataset(times, {"D": D}, obs))


def _random_params(model, rng, spread=0.3):
    spec = model.spec
    p = model.parameter_vector()
    for i, name in enumerate(model.parameters):
        if spec.parameters[name].estimate and p[i] != 0:
            p[i] *= np.exp(rng.normal(0, spread))
    return p


@pytest.mark.parametrize("name", ["chemostat.yaml", "community-2x3.yaml"])
def test_all_methods_match_finite_differences(name):
    model = build_model(SPECS / name)
    rng = np.random.default_rng(3)
    truth = dict(zip(model.parameters, _random_params(model, rng), strict=True))
    every = {o: 8 for o in model.observables if o.startswith("M")}
    problem = _synthetic_problem(model, params=truth, every=every)
    p = _random_params(model, rng)               # evaluate away from the data-generating point
    x0 = model.x0_vector() * np.exp(rng.normal(0, 0.2, len(model.states)))
    fd = finite_difference_gradient(problem, params=p, x0=x0)
    grads = {}
    for method in ALL:
        res = loss_and_gradient(problem, params=p, x0=x0, method=method, rtol=1e-10, atol=1e-12)
        assert res.loss == pytest.approx(loss(problem, params=p, x0=x0, rtol=1e-12, atol=1e-14), rel=1e-8)
        grads[method] = res.gradient
        assert rel_error(res.gradient, fd) < 1e-6, (method, rel_error(res.gradient, fd))
    for a in grads:
        for b in grads:
            assert rel_error(grads[a], grads[b]) < 1e-6, (a, b)


def test_gradient_wrt_x0_includes_observation_at_t0(chemostat_model):
    """With a single interval, dL/dx0 is dominated by the direct term of the observation at t0."""
    problem = _synthetic_problem(chemostat_model, hours=0.25)
    assert np.isfinite(problem.data[0]).all()
    problem_data0, problem_sigma0 = problem.data[0].copy(), problem.sigma[0].copy()  # observables X, S
    fd = finite_difference_gradient(problem)
    for method in ALL:
        res = loss_and_gradient(problem, method=method, rtol=1e-11, atol=1e-13)
        assert rel_error(res.grad_x0, fd[: len(chemostat_model.states)]) < 1e-6, method
    # without the t0 observation the x0-gradient changes by exactly the direct term
    direct = loss_and_gradient(problem, method="forward").grad_x0
    problem.data[0] = np.nan
    problem.observed = np.isfinite(problem.data)
    without = loss_and_gradient(problem, method="forward").grad_x0
    r0 = (chemostat_model.x0_vector()[[1, 0]] - problem_data0) / problem_sigma0
    np.testing.assert_allclose(direct[[1, 0]] - without[[1, 0]], r0 / problem_sigma0, rtol=1e-6)


def test_residual_jacobian_matches_gradient(chemostat_model):
    problem = _synthetic_problem(chemostat_model, hours=6)
    res = loss_and_gradient(problem, method="forward", jacobian=True)
    assert res.residual_jacobian.shape == (problem.n_observations, len(chemostat_model.states) +
                                          len(chemostat_model.parameters))
    np.testing.assert_allclose(res.residual_jacobian.T @ res.residuals, res.gradient, rtol=1e-10,
                               atol=1e-12 * np.abs(res.gradient).max())
    assert 0.5 * np.sum(res.residuals**2) == pytest.approx(res.loss, rel=1e-12)


def test_missing_values_are_skipped(chemostat_model):
    problem = _synthetic_problem(chemostat_model, hours=6)
    problem.data[3:7, 0] = np.nan
    problem.observed = np.isfinite(problem.data)
    fd = finite_difference_gradient(problem)
    for method in ALL:
        res = loss_and_gradient(problem, method=method, rtol=1e-10, atol=1e-12)
        assert rel_error(res.gradient, fd) < 1e-6


STIFF = """
name: stiff-relaxation
reactor: {mode: chemostat, dilution: D, feed: {S: S0}}
states:
  S: {role: substrate, x0: 2.0}
  Q: {role: other, x0: 0.5}
  P: {role: other, x0: 0.1}
inputs: {D: {default: 0.2}}
parameters:
  S0: {value: 5.0}
  k: {value: 2000.0}
  v: {value: 0.7}
interactions:
  - {id: fast, type: custom, rate: "k*(S - Q)", stoichiometry: {Q: 1}}
  - {id: make, type: custom, rate: "v*Q", stoichiometry: {P: 1}}
observables:
  P: {noise: {absolute: 0.01, relative: 0.02}}
  S: {noise: {absolute: 0.01, relative: 0.02}}
"""


def test_stiff_case_backsolve_is_worse_default_stays_accurate():
    """Q relaxes to S at rate k = 2000/h: re-integrating x backwards (backsolve) amplifies errors by
    e^{k dt}; the interpolating adjoint and forward sensitivities stay accurate."""
    model = build_model(loads_spec(STIFF))
    problem = _synthetic_problem(model, hours=6)
    fd = finite_difference_gradient(problem)
    for method in ("forward", "adjoint", "auto"):
        res = loss_and_gradient(problem, method=method, rtol=1e-9, atol=1e-11)
        assert rel_error(res.gradient, fd) < 1e-6, method
    try:
        res = loss_and_gradient(problem, method="backsolve", rtol=1e-9, atol=1e-11)
        err = rel_error(res.gradient, fd)
    except SolverError:
        err = np.inf
    assert err > 1e-3


def test_time_varying_dilution_gradients_match_fd(chemostat_model):
    """D(t) piecewise constant with large jumps: the integration restarts at breakpoints."""
    times = np.arange(0.0, 24.0 + 1e-9, 0.25)
    D = np.where((times // 3) % 2 == 0, 0.1, 0.35)
    traj = simulate(chemostat_model, times, inputs={"D": D})
    obs = noisy_observations(chemostat_model, traj, seed=5)
    problem = Problem(chemostat_model, make_dataset(times, {"D": D}, obs))
    p = chemostat_model.parameter_vector() * 1.1
    fd = finite_difference_gradient(problem, params=p)
    for method in STABLE:  # the backsolve's backward x-integration fails here (stiff at these values)
        res = loss_and_gradient(problem, params=p, method=method, rtol=1e-10, atol=1e-12)
        assert rel_error(res.gradient, fd) < 1e-6, method


def test_linear_input_gradient():
    spec = load_spec(SPECS / "chemostat.yaml")
    spec.inputs["D"].interpolation = "linear"
    model = build_model(spec)
    problem = _synthetic_problem(model, hours=6)
    fd = finite_difference_gradient(problem)
    for method in ("forward", "adjoint"):
        res = loss_and_gradient(problem, method=method, rtol=1e-10, atol=1e-12)
        assert rel_error(res.gradient, fd) < 1e-6, method


def test_gradcheck_cli_json(tmp_path, shared_data, capsys):
    import json

    from symode.cli.main import main

    rc = main(["gradcheck", str(SPECS / "chemostat.yaml"), "--data", str(shared_data / "chemostat-dev" / "data.csv"),
               "--window", "0:3", "--json", "--methods", "forward", "adjoint"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    for name in ("forward", "adjoint"):
        m = report["methods"][name]
        assert set(m["gradient"]) >= {"gA", "gB", "vA", "vB", "muA", "muB", "KA", "IA", "KB", "IB"}
        assert m["rel_error_vs_fd"] < 1e-6 and m["time_ms"] > 0
