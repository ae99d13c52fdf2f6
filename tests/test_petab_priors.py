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


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(sorted(DISTRIBUTIONS)), u=st.floats(0.05, 0.95))
def test_derivative_matches_finite_differences(kind: str, u: float) -> None:
    p = _prior(kind)
    lo, hi = (p.lower, p.upper) if kind not in ("uniform", "log-uniform") else (p.a, p.b)
    x = lo + u * (hi - lo)
    if kind in ("laplace", "log-laplace"):   # the kink at the location: not differentiable there
        centre = p.a if kind == "laplace" else math.exp(p.a)
        if abs(x - centre) < 1e-3:
            return
    h = 1e-6 * max(1.0, abs(x))
    fd = (p.log_density(x + h) - p.log_density(x - h)) / (2 * h)
    assert p.derivative(x) == pytest.approx(fd, rel=1e-6, abs=1e-8)


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
