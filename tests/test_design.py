"""Experiment design: Fisher information, constraints, design.json, the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from symode.cli.demo import ORIGINAL_TRUE
from symode.design import (
    Constraints,
    Design,
    DesignProblem,
    Measurement,
    base_measurements,
    design_from_json,
    measurement_options,
    optimise_design,
    parse_budget,
    piecewise_design,
    project_levels,
    random_baseline,
)
from symode.errors import SymodeError
from symode.solve.simulation import simulate
from symode.spec import load_spec

from .conftest import SPECS


@pytest.fixture(scope="module")
def problem(chemostat_model):
    spec = load_spec(SPECS / "chemostat.yaml")
    return DesignProblem(spec, params=ORIGINAL_TRUE, model=chemostat_model, candidates=["A", "B"],
                         constraints=Constraints(floor_fraction=0.1))


@pytest.fixture(scope="module")
def spec_values_problem(chemostat_model):
    """The design problem at the spec's own (starting) values, where the explicit integrator's
    sensitivities blow up on long, strongly varying designs."""
    return DesignProblem(load_spec(SPECS / "chemostat.yaml"), model=chemostat_model, candidates=["A", "B"])


def _short_design(problem, days=2.0):
    ms = [Measurement("X", 1.0, 0.02, 0.01), Measurement("S", 1.0, 0.02, 0.01), Measurement("B", 4.0, 0.05, 0.002)]
    return Design(days * 24, dict(zip(problem.model.states, problem.x0, strict=True)),
                  np.array([0.0, 12.0, 30.0]), np.array([0.25, 0.1, 0.3]), ms)


def _square_wave_design(problem, days=8):
    """D alternating daily between 0.05 and 0.15 (0.3 clipped by the max-step constraint): at the spec's
    values the explicit integrator's sensitivities of this design grow by ~70 orders of magnitude."""
    levels = project_levels(np.where(np.arange(days) % 2 == 0, 0.05, 0.3), problem.constraints)
    return piecewise_design(problem, levels, base_measurements(problem.spec, every_h=1.0), duration_h=days * 24,
                            segment_h=24)


@pytest.mark.parametrize("which, make, method", [
    ("problem", _short_design, "explicit"),                   # the original study's true values
    pytest.param("spec_values_problem", _square_wave_design, "stiff",    # evaluated through the stiff fallback
                 marks=pytest.mark.slow),
])
def test_information_matrix_matches_finite_differences(request, which, make, method):
    problem = request.getfixturevalue(which)
    d = make(problem)
    ev = problem.evaluate(d)
    assert ev.ok, ev.failure
    # reference: central differences of the simulated observables w.r.t. log theta, tight tolerances
    T = d.duration_h
    times = np.unique(np.concatenate([m.sample_times(T) for m in d.measurements] + [d.d_times, [T]]))
    D = d.d_at(times)
    base_p = dict(zip(problem.model.parameters, problem.p, strict=True))
    base_x = dict(zip(problem.model.states, problem.x0, strict=True))

    def predict(k: int, h: float) -> dict[str, np.ndarray]:
        name = problem.names[k]
        params, x0 = dict(base_p), dict(base_x)
        if name.startswith("x0."):
            x0[name[3:]] = base_x[name[3:]] * math.exp(h)
        else:
            params[name] = base_p[name] * math.exp(h)
        tr = simulate(problem.model, times, inputs={"D": D}, params=params, x0=x0, rtol=1e-12, atol=1e-14,
                      method=method)
        return {m.name: tr[m.name][np.searchsorted(times, m.sample_times(T))] for m in d.measurements}

    nominal = predict(0, 0.0)
    J = np.zeros((ev.n_obs, len(problem.names)))
    h = 1e-5
    for k in range(len(problem.names)):
        up, dn = predict(k, h), predict(k, -h)
        col = []
        for m in d.measurements:
            sigma = np.sqrt(m.absolute ** 2 + (m.relative * nominal[m.name]) ** 2)
            col.append((up[m.name] - dn[m.name]) / (2 * h) / sigma)
        J[:, k] = np.concatenate(col)
    F_fd = J.T @ J
    scale = np.sqrt(np.outer(np.diag(F_fd), np.diag(F_fd))) + 1e-30
    assert np.max(np.abs(ev.fim - F_fd) / scale) < 1e-4
    np.testing.assert_allclose(ev.J, J, rtol=1e-4, atol=1e-6 * np.max(np.abs(J)))


def test_coarse_lumping_keeps_information_per_time(problem):
    d = _short_design(problem, days=4)
    d.measurements[0].every_h = d.measurements[1].every_h = 0.25
    exact = problem.evaluate(d, full=False)
    coarse = problem.evaluate(d, coarse=1.0, full=False)
    assert abs(coarse.criteria["D"] - exact.criteria["D"]) < 0.05 * abs(exact.criteria["D"])


def test_symmetry_moved_parameters_undetermined_unless_measured(problem):
    ev = problem.evaluate(_short_design(problem))
    rel = ev.rel_se_dict()
    for nm in ("gA", "gB", "x0.Y"):          # Y -> l*Y symmetry: Y is never measured
        assert math.isinf(rel[nm])
    for nm in ("vA", "KA", "IA", "x0.A"):    # A unmeasured: A -> l*A symmetry
        assert math.isinf(rel[nm])
    assert math.isfinite(rel["IB"]) and math.isfinite(rel["vB"])   # B measured: B's symmetry broken
    assert {s for sym in problem.persistent for s in sym.states} == {"Y"}
    assert problem.moved_persistent == {"gA", "gB", "x0.Y"}


def test_projection_respects_bounds_and_rate():
    c = Constraints(d_min=0.05, d_max=0.3, max_step=0.07)
    rng = np.random.default_rng(0)
    for _ in range(50):
        v = project_levels(rng.uniform(-0.5, 1.0, 20), c)
        assert np.all(v >= c.d_min - 1e-12) and np.all(v <= c.d_max + 1e-12)
        assert np.max(np.abs(np.diff(v))) <= c.max_step + 1e-12


def test_constraint_checks_flag_violations(problem):
    base = base_measurements(problem.spec)
    bad = piecewise_design(problem, np.array([0.3, 0.05, 0.4]), base, duration_h=72, segment_h=24)
    v = problem.evaluate(bad, full=False).violations
    assert any("outside" in s for s in v) and any("changes by" in s for s in v)
    washout = piecewise_design(problem, np.full(10, 0.3), base, duration_h=240, segment_h=24)
    strict = DesignProblem(problem.spec, model=problem.model, candidates=["A", "B"],
                           constraints=Constraints(floor_fraction=0.9))
    assert any("floor" in s for s in strict.evaluate(washout, full=False).violations)
    over = piecewise_design(problem, np.full(3, 0.2), [*base, Measurement("A", 1.0, 0.05, 0.002)],
                            duration_h=72, segment_h=24)
    assert any("budget" in s for s in problem.evaluate(over, full=False).violations)


@pytest.mark.slow
def test_optimised_design_is_admissible_and_beats_random(problem):
    c = Constraints(d_min=0.05, d_max=0.3, max_step=0.1, floor_fraction=0.6)
    pb = DesignProblem(problem.spec, model=problem.model, candidates=["A", "B"], constraints=c)
    base = base_measurements(pb.spec, every_h=1.0)
    res = optimise_design(pb, base, days=6, segment_h=12, time_limit=8, progress=False)
    best = res.best
    assert best.feasible, best.violations
    v = best.design.d_values
    assert np.all(v >= c.d_min - 1e-12) and np.all(v <= c.d_max + 1e-12)
    assert np.max(np.abs(np.diff(v))) <= c.max_step + 1e-9
    assert best.min_floor_state >= c.floor_fraction * pb.x0[pb.model.states.index("X")]
    # the floor really holds along a fine simulation of the proposed experiment
    t = np.arange(0, best.design.duration_h + 1e-9, 0.05)
    tr = simulate(pb.model, t, inputs={"D": best.design.d_at(t)})
    assert tr["X"].min() >= best.floor * (1 - 1e-6)
    extra = [m.name for m in best.design.measurements if m.name not in pb.spec.observables]
    assert len(extra) == 1 and all(m.every_h == 2.0 for m in best.design.measurements if m.name in extra)
    rnd = random_baseline(pb, base, n=5, days=6, segment_h=12, seed=3)
    assert all(e.feasible for e in rnd)
    assert best.criteria["D"] >= max(e.criteria["D"] for e in rnd)


def test_design_json_format(problem):
    ev = problem.evaluate(_short_design(problem))
    doc = ev.design.to_json(ev.rel_se_dict())
    text = json.dumps(doc, allow_nan=False)
    back = json.loads(text)
    assert set(back) == {"duration_h", "x0", "inputs", "observables", "predicted_rel_se"}
    assert back["inputs"]["D"]["times_h"] == [0.0, 12.0, 30.0]
    assert back["observables"][2] == {"name": "B", "every_h": 4.0, "noise": {"relative": 0.05, "absolute": 0.002}}
    assert back["predicted_rel_se"]["gA"] is None          # inf -> null
    d2 = design_from_json(back)
    np.testing.assert_array_equal(d2.d_values, ev.design.d_values)


def test_budget_and_options(problem):
    assert parse_budget("1/2h") == (1, 2.0) and parse_budget("2/4") == (2, 4.0) and parse_budget("0")[0] == 0
    with pytest.raises(SymodeError):
        parse_budget("every two hours")
    base = base_measurements(problem.spec)
    opts = measurement_options(problem, base, budget=(1, 2.0))
    assert sorted(o[-1].name for o in opts) == ["A", "B"]
    two = measurement_options(problem, base, budget=(2, 2.0))
    assert any(len(o) == len(base) + 2 and all(m.every_h == 2.0 for m in o[len(base):]) for o in two)
    assert any(len(o) == len(base) + 1 and o[-1].every_h == 1.0 for o in two)


@pytest.mark.slow
def test_cli_design_writes_report_and_json(tmp_path):
    from symode.cli.main import main

    params = tmp_path / "p.json"
    params.write_text(json.dumps({"parameters": ORIGINAL_TRUE}))
    out = tmp_path / "out"
    rc = main(["design", str(SPECS / "chemostat.yaml"), "--params", str(params), "--days", "4", "--segment-h", "12",
               "--time-limit", "5", "--random-baseline", "3", "--robustness", "2", "--quiet", "-o", str(out)])
    assert rc == 0
    doc = json.loads((out / "design.json").read_text())
    assert doc["duration_h"] == 96.0 and len(doc["inputs"]["D"]["values"]) == 8
    report = (out / "report.md").read_text()
    assert "Undetermined under every admissible design" in report
    assert "Y -> l*Y" in report
    for f in ("design_D.png", "predicted_trajectories.png", "predicted_intervals.png"):
        assert (out / f).stat().st_size > 1000
    assert main(["design", str(SPECS / "chemostat.yaml"), "--budget", "bad", "-o", str(out)]) == 2


def _design_batches(pb, evaluator):
    from symode.design import robustness

    base = base_measurements(pb.spec, every_h=2.0)
    res = optimise_design(pb, base, days=3, segment_h=12, time_limit=0, progress=False, evaluator=evaluator)
    rnd = random_baseline(pb, base, n=3, days=3, segment_h=12, seed=3, evaluator=evaluator)
    rob = robustness(pb, res.best.design, n=3, seed=5, evaluator=evaluator)
    return res, rnd, rob


def assert_same_design_batches(a, b):
    (res_a, rnd_a, rob_a), (res_b, rnd_b, rob_b) = a, b
    assert [e.design.label for e in rnd_a] == [e.design.label for e in rnd_b]
    np.testing.assert_array_equal([e.design.d_values for e in rnd_a], [e.design.d_values for e in rnd_b])
    np.testing.assert_allclose([e.criteria["D"] for e in rnd_a], [e.criteria["D"] for e in rnd_b], rtol=1e-10)
    np.testing.assert_array_equal(res_a.best.design.d_values, res_b.best.design.d_values)
    assert [e.criteria["D"] for e in res_a.evaluated] == pytest.approx([e.criteria["D"] for e in res_b.evaluated],
                                                                       rel=1e-10)
    np.testing.assert_allclose(rob_a.scores, rob_b.scores, rtol=1e-10)
    np.testing.assert_array_equal(rob_a.feasible, rob_b.feasible)


@pytest.mark.slow
def test_design_batches_on_worker_processes_same_as_in_process(problem):
    """Screening, final candidates, random designs and robustness samples evaluated on 2 worker processes
    (each rebuilding the problem) give what evaluating them one after the other here gives (no time limit
    on the refinement, so the run is deterministic)."""
    from symode.design.evaluator import Evaluator

    serial = _design_batches(problem, None)
    n_before = problem.n_evaluations
    with Evaluator(problem, workers=2) as ev:
        pooled = _design_batches(problem, ev)
        assert type(ev.executor).__name__ == "ProcessExecutor"
    assert problem.n_evaluations > n_before        # counted here though they ran elsewhere
    assert_same_design_batches(pooled, serial)
