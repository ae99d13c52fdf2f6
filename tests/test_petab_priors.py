"""Prior distributions of PEtab v2 parameter tables (symode.petab.priors): densities normalised on the
bounds, derivatives against finite differences, parsing, and the log-prior in `symode petab evaluate`.
(The values themselves are checked against the PEtab test suite's case 0024 in tests/test_petab_suite.py.)"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

from symode.cli.main import main
from symode.petab.priors import DISTRIBUTIONS, Prior, parse_prior

CASE_0024 = Path(__file__).parent / "data" / "petab_v2" / "0024"

#: one valid parameter set per distribution, and bounds inside its support
PARAMS = {"uniform": "2;8", "normal": "4;2", "laplace": "3;5", "cauchy": "3;5", "exponential": "3", "gamma": "3;5",
          "chisquare": "4", "rayleigh": "3", "log-normal": "1;0.5", "log-laplace": "1;0.7", "log-uniform": "3;5"}
BOUNDS = {"uniform": (0.0, 10.0), "log-uniform": (0.0, 10.0)}


def _prior(kind: str) -> Prior:
    lo, hi = BOUNDS.get(kind, (0.5, 9.0))
    return parse_prior("p", 0, kind, PARAMS[kind], lo, hi)


def test_every_distribution_has_a_test_parameter_set() -> None:
    assert set(PARAMS) == set(DISTRIBUTIONS)


@pytest.mark.parametrize("kind", sorted(DISTRIBUTIONS))
def test_truncated_density_integrates_to_one(kind: str) -> None:
    p = _prior(kind)
    lo, hi = (p.lower, p.upper) if kind not in ("uniform", "log-uniform") else (p.a, p.b)
    mass, _ = quad(lambda x: math.exp(p.log_density(x)), lo, hi, limit=200)
    assert mass == pytest.approx(1.0, rel=1e-8)


def _interior_point(kind: str, u: float) -> tuple[Prior, float | None]:
    """The test prior of ``kind`` and the point a fraction u into its support within the bounds (None next
    to the kink of a Laplace density, where it is not differentiable)."""
    p = _prior(kind)
    lo, hi = (p.lower, p.upper) if kind not in ("uniform", "log-uniform") else (p.a, p.b)
    x = lo + u * (hi - lo)
    if kind in ("laplace", "log-laplace"):
        centre = p.a if kind == "laplace" else math.exp(p.a)
        if abs(x - centre) < 1e-3:
            return p, None
    return p, x


@pytest.mark.parametrize("order", [1, 2])
@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(sorted(DISTRIBUTIONS)), u=st.floats(0.05, 0.95))
def test_derivatives_match_finite_differences(order: int, kind: str, u: float) -> None:
    """d log f / dx (order 1) against differences of log f, d^2 log f / dx^2 (order 2) against differences
    of the first derivative."""
    p, x = _interior_point(kind, u)
    if x is None:
        return
    f, df, step, rel, abs_ = ((p.log_density, p.derivative, 1e-6, 1e-6, 1e-8) if order == 1 else
                              (p.derivative, p.second_derivative, 1e-5, 1e-5, 1e-7))
    h = step * max(1.0, abs(x))
    assert df(x) == pytest.approx((f(x + h) - f(x - h)) / (2 * h), rel=rel, abs=abs_)


def test_outside_the_bounds_is_impossible() -> None:
    p = parse_prior("p", 0, "normal", "4;2", 0.0, 10.0)
    assert p.log_density(-0.1) == -math.inf and p.log_density(10.5) == -math.inf
    blank = parse_prior("q", 1, "", "", 0.0, 2.0)
    assert blank.kind == "uniform" and blank.log_density(1.0) == pytest.approx(-math.log(2.0))


@pytest.mark.parametrize(("kind", "text", "message"), [
    ("normal", "4", "takes 2 parameter"),
    ("normal", "4;-1", "invalid parameters"),
    ("gamma", "a;b", "not numbers"),
    ("log-uniform", "0;5", "invalid parameters"),
    ("student", "3", "is not supported"),
])
def test_malformed_priors_are_refused(kind: str, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_prior("p", 0, kind, text, 0.0, 10.0)


def test_evaluate_reports_the_log_prior(tmp_path: Path) -> None:
    """`symode petab evaluate --gradient --json` on case 0024: the log-prior terms, their sum plus the llh
    as the unnormalised log-posterior, and the log-prior's gradient (linear scale in v2) by parameter."""
    import yaml

    out = tmp_path / "ev.json"
    assert main(["petab", "evaluate", str(CASE_0024 / "_0024.yaml"), "--gradient", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    sol = yaml.safe_load((CASE_0024 / "_0024_solution.yaml").read_text())
    assert doc["log_prior_terms"] == pytest.approx(sol["log_prior"], abs=1e-12)
    assert doc["unnorm_log_posterior"] == pytest.approx(sol["unnorm_log_posterior"], abs=1e-9)
    assert doc["unnorm_log_posterior"] == pytest.approx(doc["llh"] + sum(doc["log_prior_terms"].values()))
    # at the nominal values 5: normal(4, 2) has slope -(5 - 4)/4, exponential(3) -1/3, uniform 0
    g = doc["log_prior_gradient"]
    assert g["p_normal"] == pytest.approx(-0.25) and g["p_exponential"] == pytest.approx(-1 / 3)
    assert g["p_uniform"] == 0.0 and np.isfinite(list(g.values())).all()


def test_infinite_bounds_evaluate_but_do_not_fit() -> None:
    """Case 0025: untruncated priors on parameters with infinite bounds are evaluated (the suite's values);
    a fit needs finite bounds and says which parameter has none."""
    import yaml

    from symode.errors import SymodeError
    from symode.petab.fit import fit_petab
    from symode.petab.objective import PetabObjective

    case = CASE_0024.parent / "0025"
    ev = PetabObjective.from_yaml(case / "_0025.yaml", validate=False).evaluate()
    sol = yaml.safe_load((case / "_0025_solution.yaml").read_text())
    assert ev.log_prior_terms == pytest.approx(sol["log_prior"], abs=1e-12)
    with pytest.raises(SymodeError, match="'p_normal' has an infinite bound"):
        fit_petab(case / "_0025.yaml", n_starts=1)


MAP_PARAMETERS = """parameterId\tlowerBound\tupperBound\tnominalValue\testimate\tpriorDistribution\tpriorParameters
p_normal\t0.0\t10.0\t5.0\ttrue\tnormal\t4.0;2.0
p_log_normal\t0.0\t10.0\t5.0\ttrue\tlog-normal\t1.0;0.5
p_cauchy\t0.0\t10.0\t5.0\ttrue\tcauchy\t3.0;5.0
p_gamma\t0.0\t10.0\t5.0\ttrue\tgamma\t3.0;1.0
p_rayleigh\t0.0\t10.0\t5.0\ttrue\trayleigh\t3.0
p_uniform\t0.0\t10.0\t5.0\ttrue\tuniform\t2.0;8.0
p1\t0.0\t2.0\t1.5\ttrue\t\t
p_fixed\t\t\t0.5\tfalse\t\t
"""
#: the modes of the priors above (inside the bounds): the MAP estimate of a parameter the data do not see
MODES = {"p_normal": 4.0, "p_log_normal": math.exp(1.0 - 0.5**2), "p_cauchy": 3.0, "p_gamma": 2.0, "p_rayleigh": 3.0}


def _map_problem(tmp_path: Path) -> Path:
    """Case 0024 with priors whose modes lie inside the bounds: p1 is measured (1.0, sigma 0.5), the other
    parameters only have their priors."""
    import shutil

    case = tmp_path / "map"
    shutil.copytree(CASE_0024, case)
    (case / "_parameters.tsv").write_text(MAP_PARAMETERS)
    return case / "_0024.yaml"


@pytest.mark.parametrize("method", ["scoring", "lbfgs"])
def test_fit_maximises_the_posterior(tmp_path: Path, method: str) -> None:
    """With priors the fit is a MAP estimate: every parameter the data do not see ends at its prior's mode,
    the uniform one inside its support [2, 8] (narrower than the bounds), p1 at its measurement; the result
    reports the log-prior, and the Fisher analysis includes the priors' curvature (finite intervals for
    parameters without data)."""
    from symode.petab.fit import fit_petab

    res = fit_petab(_map_problem(tmp_path), n_starts=3, method=method, workers=1, progress=False)
    for pid, mode in MODES.items():
        assert res.parameters[pid] == pytest.approx(mode, rel=1e-4, abs=1e-4), pid
    assert 2.0 <= res.parameters["p_uniform"] <= 8.0
    assert res.parameters["p1"] == pytest.approx(1.0, abs=1e-4)
    doc = res.to_json()
    assert doc["objective"] == "posterior"
    assert doc["unnorm_log_posterior"] == pytest.approx(res.llh + res.log_prior)
    assert all(d["log_prior"] is not None for d in doc["starts"])
    iv = res.fisher.intervals["p_normal"]["0.95"]
    assert iv[0] is not None and iv[0] < 4.0 < iv[1]


def test_fit_without_priors_and_least_squares_with_priors(tmp_path: Path) -> None:
    """``priors=False`` fits the likelihood (p1 at its measurement, the log-prior not reported, a warning);
    least squares refuse informative priors with a one-line reason."""
    from symode.errors import SymodeError
    from symode.petab.fit import fit_petab

    path = _map_problem(tmp_path)
    res = fit_petab(path, n_starts=2, workers=1, progress=False, priors=False)
    assert res.parameters["p1"] == pytest.approx(1.0, abs=1e-4)
    assert res.log_prior is None and "objective" in res.to_json() and res.to_json()["objective"] == "likelihood"
    assert any("prior distributions were left out" in w for w in res.warnings)
    with pytest.raises(SymodeError, match="no least-squares problem"):
        fit_petab(path, n_starts=1, method="lm", progress=False)


def test_cli_fit_reports_the_posterior(tmp_path: Path) -> None:
    """`symode fit` on a problem with priors: fit.json says what was maximised, report.md gives the
    log-posterior; `--no-priors` fits the likelihood."""
    path = _map_problem(tmp_path)
    out, out_ml = tmp_path / "fit", tmp_path / "fit-ml"
    assert main(["fit", str(path), "-o", str(out), "--starts", "2", "--workers", "1", "--quiet"]) == 0
    doc = json.loads((out / "fit.json").read_text())
    assert doc["objective"] == "posterior" and doc["unnorm_log_posterior"] == pytest.approx(
        doc["llh"] + doc["log_prior"])
    assert "unnormalised log-posterior" in (out / "report.md").read_text()
    assert main(["fit", str(path), "-o", str(out_ml), "--starts", "2", "--workers", "1", "--quiet",
                 "--no-priors"]) == 0
    doc = json.loads((out_ml / "fit.json").read_text())
    assert doc["objective"] == "likelihood" and "log_prior" not in doc


# -- PEtab v1 objective priors ------------------------------------------------------------------------------

V1_PARAMETERS = {"uniform": (0.01, 50.0), "normal": (3.0, 2.0), "laplace": (3.0, 2.0), "logNormal": (0.5, 1.2),
                 "logLaplace": (0.5, 1.2), "parameterScaleUniform": (-1.5, 2.0), "parameterScaleNormal": (0.6, 0.4),
                 "parameterScaleLaplace": (0.6, 0.5)}


@pytest.mark.parametrize("scale", ["lin", "log", "log10"])
@pytest.mark.parametrize("type_", sorted(V1_PARAMETERS))
def test_v1_priors_match_the_petab_library(type_: str, scale: str) -> None:
    """Every v1 objectivePriorType on every parameter scale has the log-density that petab.v1.priors.Prior
    gives it (truncated to the bounds), and its derivative matches finite differences."""
    from petab.v1.priors import Prior as PetabPrior

    from symode.petab.priors import parse_v1_prior

    a, b = V1_PARAMETERS[type_]
    if type_ == "parameterScaleUniform" and scale == "lin":
        a = 0.2
    lb, ub = 1e-3, 1e3
    ours = parse_v1_prior("k", 0, type_, f"{a};{b}", scale, lb, ub)
    ref = PetabPrior(type_, (a, b), bounds=(lb, ub), transformation=scale)
    for x in (2e-3, 0.37, 1.7, 3.9, 40.0, 900.0):
        got = ours.log_density(x)
        if ref.pdf(x) > 0:
            assert got == pytest.approx(-float(ref.neglogprior(x)), rel=1e-12, abs=1e-12)
        else:   # outside the support, or a density below the smallest double (whose log is still finite here)
            assert got < math.log(5e-324)
        if math.isfinite(got) and not (type_.endswith("aplace") and abs(x - 3.9) < 1e-9):
            h = 1e-6 * x
            fd = (ours.log_density(x + h) - ours.log_density(x - h)) / (2 * h)
            assert ours.derivative(x) == pytest.approx(fd, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize(("type_", "text", "message"), [
    ("gaussian", "1;2", "not a PEtab v1 prior"),
    ("normal", "1", "not two numbers"),
    ("normal", "1;-2", "invalid parameters"),
    ("parameterScaleUniform", "2;1", "invalid parameters"),
])
def test_malformed_v1_priors_are_refused(type_: str, text: str, message: str) -> None:
    from symode.petab.priors import parse_v1_prior

    with pytest.raises(ValueError, match=message):
        parse_v1_prior("k", 0, type_, text, "log10", 1e-3, 1e3)


def _with_v1_prior(tmp_path: Path, prior: str, parameters: str) -> Path:
    """Vendored test-suite case 0001 with an objective prior on its estimated parameter a0."""
    import shutil

    import pandas as pd

    case = tmp_path / "case"
    shutil.copytree(Path(__file__).parent / "data" / "petab" / "0001", case)
    table = next(case.glob("*parameters*.tsv"))
    df = pd.read_csv(table, sep="\t")
    df["objectivePriorType"] = [prior if pid == "a0" else "" for pid in df["parameterId"]]
    df["objectivePriorParameters"] = [parameters if pid == "a0" else "" for pid in df["parameterId"]]
    df.to_csv(table, sep="\t", index=False)
    return next(case.glob("_0001.yaml"))


def test_v1_objective_prior_in_evaluate_and_fit(tmp_path: Path) -> None:
    """A v1 problem's objective prior is evaluated (the petab library's value) and pulls a MAP fit towards
    its mode; --no-priors fits the likelihood alone."""
    from petab.v1.priors import Prior as PetabPrior

    from symode.petab.fit import fit_petab
    from symode.petab.objective import PetabObjective

    yaml_path = _with_v1_prior(tmp_path, "parameterScaleNormal", "0.5;0.05")
    obj = PetabObjective.from_yaml(yaml_path, validate=False)
    pr = obj.problem
    k = pr.parameter_ids.index("a0")
    assert not pr.warnings
    ev = obj.evaluate(gradient=True)
    ref = PetabPrior("parameterScaleNormal", (0.5, 0.05), bounds=(pr.lower[k], pr.upper[k]),
                     transformation=pr.scales[k])
    assert ev.log_prior_terms["a0"] == pytest.approx(-float(ref.neglogprior(pr.nominal[k])), rel=1e-12)
    # a narrow prior around z = 0.5 (on the parameter's scale) moves the optimum there; without it the
    # likelihood's optimum stays put
    mle = fit_petab(yaml_path, n_starts=2, seed=1, priors=False)
    map_ = fit_petab(yaml_path, n_starts=2, seed=1)
    z_map = pr.to_scaled_value(k, map_.parameters["a0"])
    z_mle = pr.to_scaled_value(k, mle.parameters["a0"])
    assert abs(z_map - 0.5) < abs(z_mle - 0.5)
    assert abs(z_map - 0.5) < 0.05


def test_malformed_v1_prior_in_a_table_names_the_field(tmp_path: Path) -> None:
    from symode.petab.problem import PetabError, load_petab

    with pytest.raises(PetabError, match="objectivePriorParameters"):
        load_petab(_with_v1_prior(tmp_path, "normal", "1;-2"), validate=False)
