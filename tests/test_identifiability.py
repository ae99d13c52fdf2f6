"""Identifiability: exact scaling symmetries, Fisher information, profile likelihood."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from symode.identifiability import (
    CHI2_1,
    Symmetry,
    cramer_rao,
    fisher_analysis,
    invariant_combinations,
    log_jacobian,
    predicted_start,
    profile_likelihood,
    render_markdown,
    scaling_symmetries,
)
from symode.spec import load_spec, spec_from_dict

from .conftest import SPECS

Z95, Z99 = 1.959963984540054, 2.5758293035489004

# Model (1) by hand: Y -> lY with gA, gB -> /l keeps qA*Y and qB*Y; A -> lA needs vA, KA, IA *l (A/KA,
# A/IA invariant) and gA*l (qA*Y must scale like dA/dt); B likewise.
Y_SCALING = {"x0.Y": 1, "gA": -1, "gB": -1}
A_SCALING = {"x0.A": 1, "gA": 1, "vA": 1, "KA": 1, "IA": 1}
B_SCALING = {"x0.B": 1, "gB": 1, "vB": 1, "KB": 1, "IB": 1}


def _in_span(expected: dict[str, float], found: list[Symmetry]) -> bool:
    keys = sorted({k for s in found for k in s.exponents} | set(expected))
    M = np.array([[s.exponents.get(k, 0.0) for k in keys] for s in found])
    v = np.array([expected.get(k, 0.0) for k in keys])
    coef, *_ = np.linalg.lstsq(M.T, v, rcond=None)
    return bool(np.allclose(M.T @ coef, v, atol=1e-10))


@pytest.fixture(scope="module")
def chemostat_spec():
    return load_spec(SPECS / "chemostat.yaml")


@pytest.fixture(scope="module")
def chemostat_symmetries(chemostat_spec):
    return scaling_symmetries(chemostat_spec)


# ---------------------------------------------------------------------------------------------------
# exact symmetries
# ---------------------------------------------------------------------------------------------------

def test_chemostat_has_three_scaling_symmetries(chemostat_symmetries):
    syms = chemostat_symmetries
    assert len(syms) == 3
    for expected in (Y_SCALING, A_SCALING, B_SCALING):
        assert _in_span(expected, syms)
    assert all(s.verified == "symbolic" for s in syms)
    # the reduced basis is exactly the hand-derived one, with small integers
    assert sorted(sorted(s.exponents.items()) for s in syms) == \
        sorted(sorted((k, float(v)) for k, v in e.items()) for e in (Y_SCALING, A_SCALING, B_SCALING))
    y = next(s for s in syms if "x0.Y" in s.exponents)
    assert y.description == "Y -> l*Y, gA -> gA/l, gB -> gB/l"
    assert set(y.invariants) == {"gA*Y(0)", "gB*Y(0)"}
    assert y.states == ["Y"]
    # nothing observed (S, X) or fixed (S0, gamma, mu0, KS) or an input (D) scales
    for s in syms:
        assert not set(s.exponents) & {"x0.S", "x0.X", "S0", "gamma", "mu0", "KS", "D", "muA", "muB"}
    inv = invariant_combinations(syms)
    assert len(inv) == 11 - 3 and "vA/A(0)" in inv and "gA*Y(0)/A(0)" in inv


def test_symmetries_leave_observables_unchanged(chemostat_model, chemostat_symmetries):
    from symode.solve.simulation import simulate

    params = {"gA": 0.5, "gB": 2.0, "vA": 3e-4, "vB": 6e-3, "muA": 0.15, "muB": 0.5, "KA": 0.5, "IA": 50.0,
              "KB": 0.2, "IB": 2.0}
    x0 = {"S": 5.0, "X": 20.0, "Y": 1.0, "A": 0.1, "B": 0.1}
    times = np.linspace(0.0, 72.0, 289)
    D = 0.25 + 0.03 * np.sin(times / 7.0)
    kw = dict(inputs={"D": D}, rtol=1e-12, atol=1e-14)
    ref = simulate(chemostat_model, times, params=params, x0=x0, **kw)
    lam = 1.7
    for s in chemostat_symmetries:
        p2 = {k: v * lam ** s.exponent(k) for k, v in params.items()}
        x2 = {k: v * lam ** s.exponent(f"x0.{k}") for k, v in x0.items()}
        assert p2 != params or x2 != x0
        out = simulate(chemostat_model, times, params=p2, x0=x2, **kw)
        for obs in ("X", "S"):
            np.testing.assert_allclose(out[obs], ref[obs], rtol=1e-8, atol=1e-10)
        for st in s.states:   # the hidden state itself is rescaled
            np.testing.assert_allclose(out[st], lam * ref[st], rtol=1e-8, atol=1e-12)
    # a non-symmetry (muA) does change the observables
    out = simulate(chemostat_model, times, params={**params, "muA": 0.15 * lam}, x0=x0, **kw)
    assert np.max(np.abs(out["X"] - ref["X"])) > 1e-4


def test_observing_metabolites_leaves_only_the_satellite_scaling(chemostat_spec):
    d = chemostat_spec.to_dict()
    for m in ("A", "B"):
        d["observables"][m] = {"noise": {"relative": 0.05, "absolute": 0.002}}
    syms = scaling_symmetries(spec_from_dict(d))
    assert len(syms) == 1
    assert syms[0].exponents == {k: float(v) for k, v in Y_SCALING.items()}


def test_known_initial_state_breaks_its_symmetry(chemostat_spec):
    free = [*chemostat_spec.estimated_parameters, "x0.A", "x0.B"]   # Y(0) known
    syms = scaling_symmetries(chemostat_spec, free=free)
    assert len(syms) == 2
    assert not any("x0.Y" in s.exponents for s in syms)
    with pytest.raises(ValueError, match="unknown"):
        scaling_symmetries(chemostat_spec, free=["nope"])


# ---------------------------------------------------------------------------------------------------
# Fisher information
# ---------------------------------------------------------------------------------------------------

def _orthogonal_jacobian(norms: list[float], n_obs: int = 200, seed: int = 1) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n_obs, len(norms))))
    return q * np.asarray(norms)


def test_fisher_linear_least_squares_exact_se():
    rng = np.random.default_rng(0)
    J = rng.normal(size=(300, 3)) * [2.0, 0.5, 10.0]
    J[:, 1] += 0.3 * J[:, 0]
    theta = np.array([1.0, -2.0, 0.5])
    res = fisher_analysis(J, ["a", "b", "c"], theta, scales=["linear"] * 3, n_obs=300, loss=150.0)
    cov = np.linalg.inv(J.T @ J)
    se = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(res.se_transformed, se, rtol=1e-10)
    np.testing.assert_allclose(res.rel_se, se / np.abs(theta), rtol=1e-10)
    for i, n in enumerate("abc"):
        np.testing.assert_allclose(res.intervals[n]["0.95"], [theta[i] - Z95 * se[i], theta[i] + Z95 * se[i]])
        np.testing.assert_allclose(res.intervals[n]["0.99"], [theta[i] - Z99 * se[i], theta[i] + Z99 * se[i]])
    corr = cov / np.outer(se, se)
    np.testing.assert_allclose(res.correlation, corr, atol=1e-10)
    assert res.rank == 3 and not res.null_directions
    assert all(res.identifiable.values()) and not res.reasons
    assert res.s2 == pytest.approx(2 * 150.0 / 297)


def test_fisher_rank_deficient_reports_null_direction():
    J = _orthogonal_jacobian([3.0, 2.0, 50.0])
    J = np.column_stack([J[:, 0], J[:, 1], J[:, 0] - J[:, 1], J[:, 2]])   # c moves with a - b
    theta = np.array([1.0, 1.0, 1.0, 2.0])
    res = fisher_analysis(J, ["a", "b", "c", "d"], theta, scales=["log"] * 4, n_obs=200, loss=100.0)
    assert res.rank == 3
    assert len(res.null_directions) == 1
    v = res.null_directions[0]
    assert set(v) == {"a", "b", "c"}
    assert v["a"] / v["c"] == pytest.approx(-1.0) and v["b"] / v["c"] == pytest.approx(1.0)
    for n in "abc":
        assert math.isinf(res.se_transformed[list("abcd").index(n)])
        assert res.identifiable[n] is False
        assert res.reasons[n].startswith("flat direction")
        assert res.intervals[n]["0.95"] == [None, None]
    assert res.se_transformed[3] == pytest.approx(1 / 50.0)
    assert res.identifiable["d"] and "d" not in res.reasons
    assert np.isnan(res.correlation[0, 3])
    # the well-determined combinations of a, b, c are reported (log params: monomials)
    assert any("a" in c and "b" in c for c in res.combinations)
    np.testing.assert_allclose(cramer_rao(J, list("abcd"), ["log"] * 4, theta)[:3], np.inf)


def test_fisher_log_scale_intervals_and_bounds():
    J = _orthogonal_jacobian([10.0, 1.0, 2.0])   # SE in log space: 0.1, 1.0, 0.5
    theta = np.array([2.0, 5.0, 0.3])
    names = ["k", "K", "c"]
    res = fisher_analysis(J, names, theta, scales=["log", "log", "linear"], n_obs=200, loss=99.0,
                          bounds={"K": (1.0, 50.0), "c": (0.0, None)})
    np.testing.assert_allclose(res.se_transformed, [0.1, 1.0, 0.5], rtol=1e-10)
    np.testing.assert_allclose(res.rel_se, [0.1, 1.0, 0.5 / 0.3], rtol=1e-10)
    lo, hi = res.intervals["k"]["0.95"]
    assert lo == pytest.approx(2.0 * math.exp(-Z95 * 0.1)) and hi == pytest.approx(2.0 * math.exp(Z95 * 0.1))
    assert hi - 2.0 > 2.0 - lo                              # asymmetric in natural space
    assert math.sqrt(lo * hi) == pytest.approx(2.0)          # symmetric in log space
    # K: exp(+-1.96) = x7.1 would leave [1, 50]: clipped to the bounds
    assert res.intervals["K"]["0.95"] == [pytest.approx(1.0), pytest.approx(5.0 * math.exp(Z95))]
    assert res.intervals["K"]["0.99"] == [pytest.approx(1.0), pytest.approx(50.0)]
    assert res.intervals["c"]["0.95"] == [pytest.approx(0.0), pytest.approx(0.3 + Z95 * 0.5)]
    assert res.identifiable == {"k": True, "K": False, "c": False}
    assert "relative SE 100% > 50%" in res.reasons["K"]
    np.testing.assert_allclose(res.se_natural, [0.2, 5.0, 0.5])
    np.testing.assert_allclose(cramer_rao(J, names, ["log", "log", "linear"], theta), res.rel_se)


def test_fisher_exact_symmetry_and_correlation_reasons():
    rng = np.random.default_rng(3)
    base = rng.normal(size=(400, 2))
    # r depends on log a + log b (symmetry a -> l a, b -> b/l) and on c, d nearly collinear
    J = np.column_stack([base[:, 0], base[:, 0], base[:, 1] * 0.05, base[:, 1] * 0.05 + rng.normal(size=400) * 1e-3])
    names = ["a", "b", "c", "d"]
    sym = Symmetry(exponents={"a": 1.0, "b": -1.0}, description="a -> l*a, b -> b/l", invariants=["a*b"])
    res = fisher_analysis(J, names, np.ones(4), scales=["log"] * 4, n_obs=400, loss=200.0, symmetries=[sym])
    assert res.reasons["a"] == "exact symmetry: a -> l*a, b -> b/l"
    assert res.reasons["b"].startswith("exact symmetry")
    assert "correlated with d" in res.reasons["c"] and "relative SE" in res.reasons["c"]
    assert "a*b (exact invariant)" in res.combinations
    md = render_markdown(res, [sym])
    assert "| a |" in md and "exact symmetry" in md and "a*b" in md
    # a symmetry moving a quantity that is not estimated does not apply
    other = Symmetry(exponents={"a": 1.0, "x0.Y": 1.0}, description="Y -> l*Y, a -> l*a", invariants=[])
    res2 = fisher_analysis(J[:, 2:], ["c", "d"], np.ones(2), scales=["log"] * 2, n_obs=400, loss=200.0,
                           symmetries=[other])
    assert res2.symmetries == []


def test_fisher_validates_shapes():
    with pytest.raises(ValueError):
        fisher_analysis(np.ones((5, 2)), ["a"], np.ones(1), scales=["log"], n_obs=5, loss=1.0)
    with pytest.raises(ValueError):
        fisher_analysis(np.full((5, 1), np.nan), ["a"], np.ones(1), scales=["log"], n_obs=5, loss=1.0)


# ---------------------------------------------------------------------------------------------------
# profile likelihood
# ---------------------------------------------------------------------------------------------------

def _quadratic(H: np.ndarray, m: np.ndarray, flat: int | None = None):
    calls = []

    def objective(i: int, v: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        calls.append(v)
        o = [k for k in range(len(m)) if k != i]
        z = np.empty(len(m))
        z[i] = v
        z[o] = m[o] - np.linalg.solve(H[np.ix_(o, o)], H[o, i] * (v - m[i]))
        d = z - m
        return 0.5 * d @ H @ d + 10.0, z

    return objective, calls


def _quadratic_case():
    A = np.array([[2.0, 0.8, 0.1], [0.8, 1.5, 0.3], [0.1, 0.3, 0.9]])
    H = A @ A.T * 40.0
    m = np.log(np.array([2.0, 0.5, 7.0]))
    return H, m, ["a", "b", "c"], ["log"] * 3


@pytest.mark.parametrize("i", range(3))
def test_profile_quadratic_matches_wald(i):
    H, m, names, scales = _quadratic_case()
    obj, _ = _quadratic(H, m)
    prof = profile_likelihood(obj, np.exp(m), i, names=names, scales=scales, bounds=None)
    se = math.sqrt(np.linalg.inv(H)[i, i])
    for lev, z in (("0.95", Z95), ("0.99", Z99)):
        lo, hi = prof.intervals[lev]
        assert math.log(lo) == pytest.approx(m[i] - z * se, rel=1e-6, abs=1e-6)
        assert math.log(hi) == pytest.approx(m[i] + z * se, rel=1e-6, abs=1e-6)
    assert prof.identifiable and not any(prof.flat.values())
    assert prof.stop == {"lower": "threshold", "upper": "threshold"}
    assert prof.better is None and prof.loss_hat == pytest.approx(10.0)
    assert np.all(np.diff(prof.values) > 0) and prof.q.max() >= CHI2_1["0.99"]
    assert prof.evaluations <= 40


def test_profile_quadratic_agrees_with_fisher():
    H, m, names, scales = _quadratic_case()
    obj, _ = _quadratic(H, m)
    J = np.linalg.cholesky(H).T           # J^T J = H
    fish = fisher_analysis(J, names, np.exp(m), scales=scales, n_obs=3, loss=10.0)
    np.testing.assert_allclose(fish.intervals["b"]["0.95"],
                               profile_likelihood(obj, np.exp(m), 1, names=names, scales=scales).intervals["0.95"],
                               rtol=1e-6)


def test_profile_flat_direction_gives_open_sides():
    H = np.diag([100.0, 0.0, 50.0])
    m = np.array([0.0, 1.0, 2.0])
    H[0, 1] = H[1, 0] = 0.0

    def objective(i, v, start):
        z = m.copy()
        z[i] = v
        d = z - m
        return 0.5 * d @ H @ d, z

    names, scales = ["a", "b", "c"], ["linear", "log", "linear"]
    theta = np.array([0.0, math.e, 2.0])
    prof = profile_likelihood(objective, theta, 1, names=names, scales=scales, bounds={"b": (1e-3, 1e3)})
    assert prof.intervals == {"0.95": [None, None], "0.99": [None, None]}
    assert prof.flat == {"lower": True, "upper": True}
    assert prof.stop == {"lower": "bound", "upper": "bound"}
    assert prof.values[0] == pytest.approx(1e-3) and prof.values[-1] == pytest.approx(1e3)
    assert not prof.identifiable
    # unbounded: stops after the maximal span, still open
    prof = profile_likelihood(objective, theta, 1, names=names, scales=scales, bounds=None)
    assert prof.intervals["0.95"] == [None, None]
    assert set(prof.stop.values()) <= {"max span", "max steps"}
    # a well-determined linear parameter next to it
    prof = profile_likelihood(objective, theta, 0, names=names, scales=scales, bounds=None)
    np.testing.assert_allclose(prof.intervals["0.95"], [-Z95 * 0.1, Z95 * 0.1], rtol=1e-6)
    md = render_markdown(fisher_analysis(np.diag([10.0, 0.0, math.sqrt(50.0)]), names, theta, scales=scales,
                                         n_obs=3, loss=0.0), [], [prof])
    assert "profile 95%" in md


def test_profile_reports_a_better_optimum_and_solver_errors():
    def objective(i, v, start):
        if v > 0.12:
            raise RuntimeError("solver failed")
        z = np.array([v])
        return 50.0 * (v + 0.1) ** 2, z          # true minimum at -0.1, not at the given 0

    prof = profile_likelihood(objective, np.array([0.0]), 0, names=["a"], scales=["linear"], step=0.05)
    assert prof.better is not None and prof.better[0] < prof.loss_hat
    assert prof.stop["upper"].startswith("error")


@pytest.mark.parametrize("i", range(3))
def test_profile_sides_walked_apart_merge_into_the_whole_profile(i):
    """The two sides of a profile walked separately (as parallel tasks do) and merged give the same points
    and intervals as one walk of both."""
    from symode.identifiability.profiles import merge_sides

    H, m, names, scales = _quadratic_case()
    obj, _ = _quadratic(H, m)
    whole = profile_likelihood(obj, np.exp(m), i, names=names, scales=scales, loss_hat=10.0)
    lower = profile_likelihood(obj, np.exp(m), i, names=names, scales=scales, loss_hat=10.0, sides=("lower",))
    upper = profile_likelihood(obj, np.exp(m), i, names=names, scales=scales, loss_hat=10.0, sides=("upper",))
    assert set(lower.stop) == {"lower"} and set(upper.stop) == {"upper"}
    merged = merge_sides(lower, upper)
    np.testing.assert_allclose(merged.values, whole.values)
    np.testing.assert_allclose(merged.q, whole.q)
    assert merged.intervals == whole.intervals and merged.stop == whole.stop
    assert merged.evaluations == whole.evaluations and merged.decided and merged.identifiable


def test_profile_cut_short_by_a_time_limit_is_undecided_not_flat():
    """A side stopped by TimeLimit (a spent budget) is unfinished: not flat, not a reason to call the
    parameter non-identifiable; a side that crossed the threshold before is still decided."""
    from symode.timing import TimeLimit

    H, m, names, scales = _quadratic_case()
    obj, _ = _quadratic(H, m)

    def limited(i, v, start):
        if v > m[i]:                         # the upper side runs out of time at its first point
            raise TimeLimit("budget spent")
        return obj(i, v, start)

    prof = profile_likelihood(limited, np.exp(m), 0, names=names, scales=scales)
    assert prof.stop == {"lower": "threshold", "upper": "time limit"}
    assert prof.cut_short == ["upper"] and not prof.decided
    assert prof.flat == {"lower": False, "upper": False}
    assert prof.intervals["0.95"][0] is not None and prof.intervals["0.95"][1] is None
    # the same profile with both sides finished is decided
    full = profile_likelihood(obj, np.exp(m), 0, names=names, scales=scales)
    assert full.decided and full.cut_short == []


# ---------------------------------------------------------------------------------------------------
# model (1) at the chemostat-dev truth
# ---------------------------------------------------------------------------------------------------

def test_chemostat_dev_symmetry_parameters_not_identifiable(shared_data, chemostat_model, chemostat_symmetries):
    from symode.solve.sensitivity import Problem, loss_and_gradient
    from symode.spec.data import read_csv

    truth = json.loads((shared_data / "chemostat-dev" / "truth.json").read_text())
    spec = chemostat_model.spec.with_values({**truth["parameters"], **truth["constants"]}, truth["x0"])
    model = chemostat_model.with_spec(spec)
    prob = Problem(model, read_csv(shared_data / "chemostat-dev" / "data.csv"), window=(0.0, 240.0))
    res = loss_and_gradient(prob, jacobian=True)
    est = spec.estimated_parameters
    names = [f"x0.{s}" for s in model.states] + est
    cols = list(range(len(model.states))) + [len(model.states) + model.parameters.index(p) for p in est]
    theta = np.concatenate([model.x0_vector(), model.parameter_vector()])[cols]
    scales = ["log"] * len(names)
    J = log_jacobian(res.residual_jacobian[:, cols], theta, scales)
    bounds = {p: (spec.parameters[p].lower, spec.parameters[p].upper) for p in est}
    moved = {k for s in chemostat_symmetries for k in s.exponents}
    assert moved == {"x0.Y", "x0.A", "x0.B", "gA", "gB", "vA", "vB", "KA", "IA", "KB", "IB"}

    # the null space of the information matrix alone already finds them (no symmetry given) ...
    plain = fisher_analysis(J, names, theta, scales=scales, n_obs=prob.n_observations, loss=res.loss, bounds=bounds)
    assert len(plain.null_directions) >= 3
    rel = cramer_rao(J, names, scales, theta)
    for i, n in enumerate(names):
        if n in moved:
            assert not plain.identifiable[n] and math.isinf(rel[i]), n
    # ... and with the exact symmetries the reasons name them
    fish = fisher_analysis(J, names, theta, scales=scales, n_obs=prob.n_observations, loss=res.loss,
                           symmetries=chemostat_symmetries, bounds=bounds)
    for n in moved:
        assert not fish.identifiable[n]
        assert fish.reasons[n].startswith("exact symmetry")
        assert math.isinf(fish.rel_se[names.index(n)])
    assert fish.identifiable["x0.X"] and fish.identifiable["x0.S"]
    for n in ("muA", "muB"):   # not moved by a symmetry, but practically undetermined from 10 days of X, S
        assert not fish.identifiable[n] and "relative SE" in fish.reasons[n]
    assert fish.intervals["gA"]["0.99"] == [1e-3, 1e3]      # undetermined: the bounds
    assert 0.5 < fish.s2 < 2.0
    md = render_markdown(fish, chemostat_symmetries, spec=spec, state_ranges={"A": (0.05, 0.3), "B": (0.0, 0.05)})
    for st in ("Y", "A", "B"):
        assert f"Measure {st} (at least once" in md
    assert "IA = 50 is far above" in md


def test_predicted_start_extrapolates_the_walk_and_stays_in_the_box():
    z0, z1 = np.array([0.0, 1.0, 2.0]), np.array([0.5, 1.5, 1.0])
    # the secant through the last two points, the profiled component set to the new value
    np.testing.assert_allclose(predicted_start(1.0, [(0.0, z0), (0.5, z1)], 0), [1.0, 2.0, 0.0])
    # from the optimum alone: along the trace (or nowhere without one)
    np.testing.assert_allclose(predicted_start(0.5, [(0.0, z0)], 0, np.array([1.0, -2.0, 4.0])), [0.5, 0.0, 4.0])
    np.testing.assert_allclose(predicted_start(0.5, [(0.0, z0)], 0), [0.5, 1.0, 2.0])
    box = np.array([[-np.inf, np.inf], [1.2, np.inf], [-np.inf, 3.0]])
    np.testing.assert_allclose(predicted_start(0.5, [(0.0, z0)], 0, np.array([1.0, -2.0, 4.0]), box),
                               [0.5, 1.2, 3.0])


def _recording(obj):
    """(the list of start points, ``obj`` wrapped to append every start it is given to that list)."""
    starts: list[np.ndarray] = []

    def recording(i, v, start):
        starts.append(np.array(start))
        return obj(i, v, start)

    return starts, recording


def test_profile_starts_on_the_quadratic_profile_path_with_the_fisher_trace():
    """With the trace Sigma[:, i] / Sigma[i, i] every re-optimisation of a quadratic loss starts at its
    solution (the first point of each side from the optimum, the later ones by the secant), and the
    profile is the same as from the previous points."""
    H, m, names, scales = _quadratic_case()
    obj, _ = _quadratic(H, m)
    starts, recording = _recording(obj)

    cov = np.linalg.inv(H)
    i = 1
    prof = profile_likelihood(recording, np.exp(m), i, names=names, scales=scales, trace=cov[:, i] / cov[i, i])
    for z, th in zip(prof.values_transformed, prof.thetas, strict=True):
        if z != m[i]:
            start = next(s for s in starts if s[i] == z)
            np.testing.assert_allclose(start, th, atol=1e-9)
    plain = profile_likelihood(obj, np.exp(m), i, names=names, scales=scales)
    np.testing.assert_allclose(prof.intervals["0.95"], plain.intervals["0.95"], rtol=1e-9)


def test_profile_start_loss_falls_back_to_the_previous_point():
    """A predicted start worse than the previous point (by ``start_loss``) is not used."""
    H, m, names, scales = _quadratic_case()
    obj, _ = _quadratic(H, m)
    starts, recording = _recording(obj)

    bad = np.array([50.0, 1.0, -50.0])      # a trace far off the profile path
    profile_likelihood(recording, np.exp(m), 1, names=names, scales=scales, trace=bad, sides=("upper",),
                       start_loss=lambda z: 0.5 * (z - m) @ H @ (z - m))
    np.testing.assert_allclose(starts[0][[0, 2]], m[[0, 2]])


def _weak_direction_case(c: float = 3e-3):
    """J with eigenvalues 1e8, 1e4, 1e2 and a weak 1e-4 (below rcond * 1e8 = 1e-3, above the absolute floor
    1e-8) whose direction is mostly d, with a small component c in a."""
    rng = np.random.default_rng(5)
    w = np.array([c, 0.0, 0.0, math.sqrt(1 - c * c)])
    V = np.linalg.qr(np.column_stack([w, rng.normal(size=(4, 3))]))[0]
    V[:, 0] *= np.sign(V[0, 0]) * np.sign(c)
    lam = np.array([1e-4, 1e2, 1e4, 1e8])
    U = np.linalg.qr(rng.normal(size=(50, 4)))[0]
    return U @ np.diag(np.sqrt(lam)) @ V.T, V, lam


def test_fisher_weak_direction_adds_its_share_instead_of_an_infinite_se():
    """A small component c in a weak (numerically null) direction adds c^2 / lambda to the variance (what the
    parameter's profile shows in the quadratic model) instead of making its SE infinite; the parameter that
    dominates the direction is undetermined; cramer_rao applies the same rule."""
    J, V, lam = _weak_direction_case()
    names, theta = list("abcd"), np.ones(4)
    res = fisher_analysis(J, names, theta, scales=["log"] * 4, n_obs=50, loss=25.0)
    full = V @ np.diag(1 / lam) @ V.T                    # the full inverse: no exact null direction here
    assert len(res.null_directions) == 1 and res.null_directions[0]["d"] == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(res.se_transformed[:3], np.sqrt(np.diag(full))[:3], rtol=1e-8)
    # the profiles' start path holds the weak direction: the covariance on the determined directions only
    det = V[:, 1:] @ np.diag(1 / lam[1:]) @ V[:, 1:].T
    np.testing.assert_allclose(res.covariance_determined, det, atol=1e-10 * np.abs(det).max())
    assert 3e-3 ** 2 / 1e-4 < res.se_transformed[0] ** 2 < 0.5 ** 2
    assert res.identifiable["a"] and math.isinf(res.se_transformed[3]) and not res.identifiable["d"]
    assert res.reasons["d"].startswith("flat direction (eigenvalue 0.0001)")
    np.testing.assert_allclose(cramer_rao(J, names, ["log"] * 4, theta), res.rel_se)
    # a limit below the weak direction's share alone (0.3): a lies in the flat direction, in both
    strict = fisher_analysis(J, names, theta, scales=["log"] * 4, n_obs=50, loss=25.0, rel_se_max=0.2)
    assert math.isinf(strict.rel_se[0]) and strict.reasons["a"].startswith("flat direction")
    np.testing.assert_allclose(cramer_rao(J, names, ["log"] * 4, theta, rel_se_max=0.2), strict.rel_se)
    # a component below 1e-3 in a weak direction: its share counts (here over the limit), but it is not flat
    J1, V1, lam1 = _weak_direction_case(5e-4)
    small = fisher_analysis(J1, names, theta, scales=["log"] * 4, n_obs=50, loss=25.0, rel_se_max=0.02)
    full1 = V1 @ np.diag(1 / lam1) @ V1.T
    assert small.rel_se[0] == pytest.approx(math.sqrt(full1[0, 0]), rel=1e-8) and small.rel_se[0] > 0.05
    assert not small.identifiable["a"] and small.reasons["a"].startswith("relative SE")
    np.testing.assert_allclose(cramer_rao(J1, names, ["log"] * 4, theta, rel_se_max=0.02), small.rel_se)
    # a component above 1e-3 in an exact null direction (eigenvalue below the absolute floor): infinite SE
    J0 = J.copy()
    J0 -= np.outer(J0 @ V[:, 0], V[:, 0])                 # remove the weak direction entirely
    exact = fisher_analysis(J0, names, theta, scales=["log"] * 4, n_obs=50, loss=25.0)
    assert math.isinf(exact.se_transformed[0]) and math.isinf(exact.se_transformed[3])


def test_profile_does_not_bisect_an_overshoot_inside_the_covered_interval():
    """An overshooting step is bisected only where a more precise end could move the interval it is united
    with (``covered``); on a quadratic profile the interpolated ends are exact either way."""
    H, m, names, scales = _quadratic_case()
    se = math.sqrt(np.linalg.inv(H)[0, 0])
    obj, _ = _quadratic(H, m)
    kw = dict(names=names, scales=scales, loss_hat=10.0, step=5 * se, n_points=8, max_evals=8)
    plain = profile_likelihood(obj, np.exp(m), 0, **kw)
    wald = {lev: [float(np.exp(m[0] - z * se)), float(np.exp(m[0] + z * se))] for lev, z in (("0.95", Z95),
                                                                                            ("0.99", Z99))}
    wide = {lev: [iv[0] * 0.9, iv[1] * 1.1] for lev, iv in wald.items()}
    skipped = profile_likelihood(obj, np.exp(m), 0, covered=wide, **kw)
    assert plain.evaluations == 6 and skipped.evaluations == 2       # one step per side, bisected twice
    for lev, iv in wald.items():
        np.testing.assert_allclose(skipped.intervals[lev], iv, rtol=1e-6)
    narrow = {lev: [iv[0] * 1.1, iv[1] * 0.9] for lev, iv in wald.items()}
    assert profile_likelihood(obj, np.exp(m), 0, covered=narrow, **kw).evaluations == 6
    open_sides = {lev: [None, None] for lev in wald}
    assert profile_likelihood(obj, np.exp(m), 0, covered=open_sides, **kw).evaluations == 2
