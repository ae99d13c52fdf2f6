"""The PEtab objective: llh and chi2 against the petab library's own formulas for every noise model and
transformation, and the gradient (adjoint and forward) against finite differences, including estimated
noise and observable parameters, Laplace noise, pre-equilibration and steady-state measurements."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from symode.petab.objective import PetabObjective
from symode.petab.simulate import SolverOptions
from tests.petab_cases import VENDORED

MEASUREMENTS = """observableId\tsimulationConditionId\ttime\tmeasurement\tobservableParameters\tnoiseParameters
obs_a\tc0\t0\t0.7\tscale_a;offset_a\tsigma_a
obs_a\tc0\t2\t0.45\tscale_a;offset_a\tsigma_a
obs_a\tc0\t10\t0.1\tscale_a;offset_a\tsigma_a
obs_a\tc0\t10\t0.15\tscale_a;offset_a\tsigma_a
obs_b\tc0\t1\t0.9\t\t0.2
obs_b\tc0\t5\t1.6\t\t0.3
obs_b\tc0\tinf\t1.7\t\t0.3
"""
PARAMETERS = """parameterId\tparameterScale\tlowerBound\tupperBound\tnominalValue\testimate
a0\tlin\t0\t10\t1.0\t1
b0\tlin\t0\t10\t0.5\t1
k1\tlog10\t0.01\t10\t0.8\t1
k2\tlog\t0.01\t10\t0.6\t1
scale_a\tlog10\t0.1\t10\t1.2\t1
offset_a\tlin\t-1\t1\t0.05\t1
sigma_a\tlog10\t0.01\t1\t0.15\t1
"""


def make_problem(tmp_path: Path, transformation: str = "lin", distribution: str = "normal") -> Path:
    """Case 0001's model with two observables: obs_a = scale * A + offset (estimated scaling, offset and
    noise), obs_b = B with numeric noise overrides and a steady-state (t = inf) measurement."""
    case = tmp_path / "problem"
    shutil.copytree(VENDORED / "0001", case)
    (case / "_measurements.tsv").write_text(MEASUREMENTS)
    (case / "_parameters.tsv").write_text(PARAMETERS)
    (case / "_observables.tsv").write_text(
        "observableId\tobservableFormula\tnoiseFormula\tobservableTransformation\tnoiseDistribution\n"
        f"obs_a\tobservableParameter1_obs_a * A + observableParameter2_obs_a\tnoiseParameter1_obs_a\t"
        f"{transformation}\t{distribution}\n"
        f"obs_b\tB\tnoiseParameter1_obs_b\t{transformation}\t{distribution}\n")
    return case / "_0001.yaml"


@pytest.mark.parametrize("distribution", ["normal", "laplace"])
@pytest.mark.parametrize("transformation", ["lin", "log", "log10"])
def test_llh_and_chi2_match_the_petab_library(tmp_path, transformation: str, distribution: str) -> None:
    import petab.v1 as petab

    obj = PetabObjective.from_yaml(make_problem(tmp_path, transformation, distribution))
    ev = obj.evaluate()
    pr = obj.problem.petab
    sim = obj.simulation_table(ev)
    want_llh = petab.calculate_llh(pr.measurement_df, sim, pr.observable_df, pr.parameter_df)
    want_chi2 = petab.calculate_chi2(pr.measurement_df, sim, pr.observable_df, pr.parameter_df)
    assert ev.llh == pytest.approx(want_llh, rel=1e-12, abs=1e-12)
    assert ev.chi2 == pytest.approx(want_chi2, rel=1e-12, abs=1e-12)


def _fd(obj: PetabObjective, z: np.ndarray, h: float = 1e-4) -> np.ndarray:
    pr = obj.problem

    def f(zz: np.ndarray) -> float:
        return obj.evaluate(pr.from_scaled(zz)).llh

    return np.array([(-f(z + 2 * h * e) + 8 * f(z + h * e) - 8 * f(z - h * e) + f(z - 2 * h * e)) / (12 * h)
                     for e in np.eye(len(z))])


@pytest.mark.parametrize("distribution", ["normal", "laplace"])
@pytest.mark.parametrize("transformation", ["lin", "log10"])
def test_gradient_matches_finite_differences(tmp_path, transformation: str, distribution: str) -> None:
    obj = PetabObjective.from_yaml(make_problem(tmp_path, transformation, distribution),
                                   options=SolverOptions(rtol=1e-11, atol=1e-13))
    pr = obj.problem
    z = pr.to_scaled(pr.nominal)
    adjoint = obj.evaluate(gradient=True).gradient
    forward = obj.evaluate(gradient=True, method="forward").gradient
    fd = _fd(obj, z)
    assert np.allclose(adjoint, fd, rtol=1e-5, atol=1e-6 * np.max(np.abs(fd)))
    assert np.allclose(forward, adjoint, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("case", ["0009", "0013", "0018"])
def test_gradient_with_preequilibration_and_rate_rules(case: str) -> None:
    obj = PetabObjective.from_yaml(VENDORED / case / f"_{case}.yaml", options=SolverOptions(rtol=1e-11, atol=1e-13))
    z = obj.problem.to_scaled(obj.problem.nominal)
    adjoint = obj.evaluate(gradient=True).gradient
    forward = obj.evaluate(gradient=True, method="forward").gradient
    assert np.allclose(adjoint, _fd(obj, z), rtol=1e-5, atol=1e-7)
    assert np.allclose(forward, adjoint, rtol=1e-7, atol=1e-9)


def test_residual_jacobian_matches_finite_differences(tmp_path) -> None:
    obj = PetabObjective.from_yaml(make_problem(tmp_path, "log10"), options=SolverOptions(rtol=1e-11, atol=1e-13))
    pr = obj.problem
    z = pr.to_scaled(pr.nominal)
    ev = obj.evaluate(jacobian=True)
    h = 1e-6
    fd = np.column_stack([(obj.evaluate(pr.from_scaled(z + h * e)).residuals
                           - obj.evaluate(pr.from_scaled(z - h * e)).residuals) / (2 * h) for e in np.eye(len(z))])
    assert np.allclose(ev.residual_jacobian, fd, rtol=1e-5, atol=1e-7)


def test_steady_state_measurement_is_the_steady_state(tmp_path) -> None:
    obj = PetabObjective.from_yaml(make_problem(tmp_path))
    ev = obj.evaluate()
    th = obj.problem.nominal   # A + B is conserved, k1 A = k2 B at steady state
    a0, b0, k1, k2 = th[:4]
    total = a0 + b0
    row = int(np.nonzero(~np.isfinite(obj.times))[0][0])
    assert ev.simulation[row] == pytest.approx(total * k1 / (k1 + k2), rel=1e-7)


def test_parameter_overrides_change_only_what_they_name(tmp_path) -> None:
    obj = PetabObjective.from_yaml(make_problem(tmp_path))
    pr = obj.problem
    base = obj.evaluate()
    theta = pr.theta({"offset_a": 0.25})
    moved = obj.evaluate(theta)
    a_rows = pr.measurements["observableId"].to_numpy() == "obs_a"
    assert np.allclose(moved.simulation[a_rows] - base.simulation[a_rows], 0.2)
    assert np.allclose(moved.simulation[~a_rows], base.simulation[~a_rows])
    table = obj.simulation_table(moved)
    assert list(table.columns) == ["observableId", "simulationConditionId", "time", "simulation",
                                   "observableParameters", "noiseParameters"]
    assert isinstance(table, pd.DataFrame) and len(table) == len(pr.measurements)


SHARED_PREEQ_CONDITIONS = """conditionId\tk1\tB\tA
preeq_c0\tkpre\t2.0\t0
c0\t0.8\tNaN\ta_init
c1\tk1b\tNaN\tNaN
"""
SHARED_PREEQ_MEASUREMENTS = """observableId\tpreequilibrationConditionId\tsimulationConditionId\ttime\tmeasurement
obs_a\tpreeq_c0\tc0\t0\t0.1
obs_a\tpreeq_c0\tc0\t1\t0.7
obs_a\tpreeq_c0\tc0\t10\t0.1
obs_b\tpreeq_c0\tc0\t5\t0.4
obs_a\tpreeq_c0\tc1\t2\t0.3
obs_a\tpreeq_c0\tc1\t8\t0.35
obs_b\tpreeq_c0\tc1\tinf\t1.2
obs_a\t\tc1\t3\t0.5
"""
SHARED_PREEQ_PARAMETERS = """parameterId\tparameterScale\tlowerBound\tupperBound\tnominalValue\testimate
k2\tlin\t0\t10\t0.6\t1
kpre\tlog10\t0.01\t10\t0.3\t1
a_init\tlin\t0\t10\t1.0\t1
k1b\tlog\t0.01\t10\t0.5\t1
"""


def _case_0018(case: Path, conditions: str, measurements: str, parameters: str) -> Path:
    """Case 0018's model (pre-equilibration, rate rules) with these condition, measurement and parameter
    tables; the problem file."""
    shutil.copytree(VENDORED / "0018", case)
    (case / "_conditions.tsv").write_text(conditions)
    (case / "_measurements.tsv").write_text(measurements)
    (case / "_parameters.tsv").write_text(parameters)
    return case / "_0018.yaml"


def test_gradient_with_a_shared_preequilibration(tmp_path) -> None:
    """Two experiments after the same pre-equilibration (estimated rate there, a state override and an
    estimated initial value after it, a steady-state row) and one without: the adjoint takes the
    pre-equilibration back once with the sum of the experiments' weights."""
    path = _case_0018(tmp_path / "shared", SHARED_PREEQ_CONDITIONS, SHARED_PREEQ_MEASUREMENTS,
                      SHARED_PREEQ_PARAMETERS)
    obj = PetabObjective.from_yaml(path, options=SolverOptions(rtol=1e-11, atol=1e-13))
    assert sum(exp.preeq is not None for exp in obj.problem.experiments) == 2
    z = obj.problem.to_scaled(obj.problem.nominal)
    adjoint = obj.evaluate(gradient=True).gradient
    forward = obj.evaluate(gradient=True, method="forward").gradient
    fd = _fd(obj, z)
    assert np.all(np.abs(fd) > 1e-3)   # every parameter matters
    assert np.allclose(adjoint, fd, rtol=1e-5, atol=1e-7)
    assert np.allclose(forward, adjoint, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("distribution", ["normal", "laplace"])
def test_observation_model_and_likelihood_derivatives(tmp_path, distribution: str) -> None:
    """The observation model's Jacobians agree with finite differences of its values (estimated scaling,
    offset and noise parameters, a log10 transformation); the likelihood's per-row weights a = dn/dy,
    b = dn/dsigma and dr/dy are the closed forms, and its reverse product W, g (what the adjoint takes back)
    is a dy/dx + b dsigma/dx and a dy/dtheta + b dsigma/dtheta."""
    obj = PetabObjective.from_yaml(make_problem(tmp_path, "log10", distribution))
    om, lik, pr = obj.observation, obj.likelihood, obj.problem
    theta = pr.nominal
    _, X, _ = obj.simulate(theta, "none")
    dydx, dsdx, dydth, dsdth = om.jacobian(X, theta)
    y, s, r, nllh, a, b, dr_dy, W, g = lik.reverse(X, theta)
    assert np.allclose(lik.rows(X, theta)[3], nllh, rtol=1e-14, atol=0)
    gprime = 1.0 / (y * np.log(10.0))
    dn_dr = np.sign(r) if distribution == "laplace" else r
    assert np.allclose(dr_dy, -gprime / s, rtol=1e-13)
    assert np.allclose(a, -dn_dr * gprime / s, rtol=1e-13)
    assert np.allclose(b, (1.0 - dn_dr * r) / s, rtol=1e-13)
    assert np.allclose(W, a[:, None] * dydx + b[:, None] * dsdx, rtol=1e-13, atol=1e-14)
    assert np.allclose(g, a @ dydth + b @ dsdth, rtol=1e-13, atol=1e-14)

    def values(X_: np.ndarray, th: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return lik.rows(X_, th)[:2]

    h = 1e-6
    for j in range(X.shape[1]):
        E = np.zeros_like(X)
        E[:, j] = h
        (yp, sp_), (ym, sm) = values(X + E, theta), values(X - E, theta)
        assert np.allclose((yp - ym) / (2 * h), dydx[:, j], rtol=1e-6, atol=1e-8)
        assert np.allclose((sp_ - sm) / (2 * h), dsdx[:, j], rtol=1e-6, atol=1e-8)
    for k in range(len(theta)):
        e = np.zeros(len(theta))
        e[k] = h * max(1.0, abs(theta[k]))
        (yp, sp_), (ym, sm) = values(X, theta + e), values(X, theta - e)
        assert np.allclose((yp - ym) / (2 * e[k]), dydth[:, k], rtol=1e-6, atol=1e-8)
        assert np.allclose((sp_ - sm) / (2 * e[k]), dsdth[:, k], rtol=1e-6, atol=1e-8)


SHARED_SIMULATION_CONDITIONS = """conditionId\tk1\tB\tA
preeq_c0\tkpre\t2.0\t0
c0\t0.8\tNaN\ta_init
c0_again\t0.8\tNaN\ta_init
c1\tk1b\tNaN\tNaN
c1_again\tk1b\tNaN\tNaN
c1_other\tk1c\tNaN\tNaN
"""
SHARED_SIMULATION_MEASUREMENTS = """observableId\tpreequilibrationConditionId\tsimulationConditionId\ttime\tmeasurement
obs_a\tpreeq_c0\tc0\t1\t0.7
obs_a\tpreeq_c0\tc0\t10\t0.1
obs_b\tpreeq_c0\tc0_again\t5\t0.4
obs_a\tpreeq_c0\tc0_again\t10\t0.12
obs_a\tpreeq_c0\tc1\t2\t0.3
obs_b\tpreeq_c0\tc1_again\tinf\t1.2
obs_a\tpreeq_c0\tc1_again\t8\t0.35
obs_a\t\tc1\t3\t0.5
obs_a\tpreeq_c0\tc1_other\t2\t0.31
"""


def test_identical_simulations_are_solved_once(tmp_path, capsys) -> None:
    """Conditions with other ids but the same parameter mappings and state overrides (after the same
    pre-equilibration) are one simulation on the union of their times; a condition whose values agree at
    the nominal point only (k1c = k1b there) is not merged, and the result is that of separate solves."""
    path = _case_0018(tmp_path / "merged", SHARED_SIMULATION_CONDITIONS, SHARED_SIMULATION_MEASUREMENTS,
                      SHARED_PREEQ_PARAMETERS + "k1c\tlog\t0.01\t10\t0.5\t1\n")
    opts = SolverOptions(rtol=1e-11, atol=1e-13)
    obj = PetabObjective.from_yaml(path, options=opts)
    assert len(obj.problem.experiments) == 6
    assert sorted(len(e.rows) for e in obj.experiments) == [1, 1, 3, 4]   # c0+c0_again, c1+c1_again, ...
    separate = PetabObjective(obj.problem, obj.model, opts)
    separate.experiments = obj.problem.experiments
    for method in ("adjoint", "forward"):
        ev, want = obj.evaluate(gradient=True, method=method), separate.evaluate(gradient=True, method=method)
        assert ev.llh == pytest.approx(want.llh, rel=1e-9)
        assert np.allclose(ev.simulation, want.simulation, rtol=1e-8, atol=1e-12)
        assert np.allclose(ev.gradient, want.gradient, rtol=1e-6, atol=1e-9)
    z = obj.problem.to_scaled(obj.problem.nominal)
    assert np.allclose(obj.evaluate(gradient=True).gradient, _fd(obj, z), rtol=1e-5, atol=1e-7)
    from symode.cli.main import main

    assert main(["petab", "evaluate", str(path)]) == 0
    assert "6 experiments solved as 4 simulations" in capsys.readouterr().err


@pytest.mark.parametrize("time_index", [[2, 0, 2, 1, 0, 2], [3, 1, 0], [], [0, 0, 0]])
def test_time_sum_matches_add_at(time_index):
    """TimeSum (the adjoint's per-time weights) gives np.add.at's sums, with and without rows sharing a time."""
    from symode.petab.objective import TimeSum

    rng = np.random.default_rng(3)
    W = rng.normal(size=(10, 4))
    index = np.array(time_index, dtype=int)
    rows = rng.permutation(10)[: len(index)]
    expected = np.zeros((4, 4))
    np.add.at(expected, index, W[rows])
    got = TimeSum(rows, index, 4)(W)
    assert got.shape == (4, 4)
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=1e-15)
    assert not np.any(got[np.setdiff1d(np.arange(4), index)])
