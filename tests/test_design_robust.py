"""Experiment design at values where the model misbehaves: a non-finite or meaningless Fisher matrix is a
failed point (never a LinAlgError), and no usable information at the nominal values stops the command
with one actionable line (exit 2)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from symode.cli.main import main
from symode.design import (
    Constraints,
    DesignProblem,
    base_measurements,
    intervals_spread,
    load_nominal,
    optimise_design,
    piecewise_design,
    project_levels,
)
from symode.errors import DataError, SymodeError
from symode.spec import load_spec

from .conftest import SPECS

# dX/dt = r X^2 + ...: X blows up in finite time (before 1 h at r = 1, X(0) = 1); harmless at r = 1e-3.
BLOWUP = """
symode: 1
name: blowup
reactor: {mode: chemostat, dilution: D, feed: {S: S0}}
states:
  S: {role: substrate, x0: 5.0, estimate: true, bounds: [0, null]}
  X: {role: main, x0: 1.0, estimate: true, bounds: [0, null]}
inputs:
  D: {interpolation: constant, default: 0.25}
parameters:
  S0: {value: 10.0, estimate: false}
  mu0: {value: 0.3}
  KS: {value: 1.0}
  r: {value: 1.0}
interactions:
  - {type: uptake, law: monod, from: S, to: X, mu: mu0, K: KS, yield: 1.0}
  - {id: autocatalysis, type: custom, rate: "r * X * X", stoichiometry: {X: 1.0}}
observables:
  X: {noise: {relative: 0.02, absolute: 0.01}}
  S: {noise: {relative: 0.02, absolute: 0.01}}
"""


@pytest.fixture(scope="module")
def problem(chemostat_model):
    return DesignProblem(load_spec(SPECS / "chemostat.yaml"), model=chemostat_model, candidates=["A", "B"])


def _design(problem, days=2):
    levels = project_levels(np.full(days, 0.2), problem.constraints)
    return piecewise_design(problem, levels, base_measurements(problem.spec, every_h=1.0), duration_h=24 * days,
                            segment_h=24)


def _bad_fisher(kind: str, n: int) -> np.ndarray:
    F = np.eye(n)
    if kind == "nan":
        F[1, 2] = F[2, 1] = np.nan
    elif kind == "inf":
        F[0, 0] = np.inf
    elif kind == "overflowing":          # finite, but the weighted matrix overflows
        F = np.full((n, n), 1e306)
    elif kind == "blown-up":             # rank one at 1e150: rounding errors swamp the prior
        v = np.random.default_rng(0).normal(size=n) * 1e75
        F = np.outer(v, v) + np.random.default_rng(1).normal(size=(n, n)) * 1e135
    return F


@pytest.mark.parametrize("kind", ["nan", "inf", "overflowing", "blown-up"])
@pytest.mark.parametrize("criterion", ["D", "target"])
def test_unusable_fisher_matrix_is_a_failure_not_an_exception(problem, kind, criterion):
    crit, reason = problem.criteria_or_failure(_bad_fisher(kind, len(problem.names)), criterion=criterion)
    assert crit is None and "Fisher information" in reason


def test_usable_fisher_matrix_gives_criteria(problem):
    ev = problem.evaluate(_design(problem))
    crit, reason = problem.criteria_or_failure(ev.fim)
    assert reason == "" and crit == ev.criteria
    assert crit["E"] >= 1 / problem.prior_se ** 2 * (1 - 1e-6)    # the prior bounds every eigenvalue below


@pytest.mark.parametrize("criterion", ["D", "A", "E", "target"])
def test_evaluation_with_non_finite_sensitivities_is_a_failed_point(problem, monkeypatch, criterion):
    backend = problem.model.backend
    real = backend.sensitivities
    methods = []

    def poisoned(*args, method, **kw):
        methods.append(method)
        res, S = real(*args, method=method, **kw)
        S = S.copy()
        S[-1, 0, 0] = np.nan
        return res, S

    monkeypatch.setattr(backend, "sensitivities", poisoned)
    ev = problem.evaluate(_design(problem), criterion=criterion)
    assert methods == ["explicit", "auto"]                   # the stiff integrator was tried too
    assert not ev.ok and not ev.feasible and "not finite" in ev.failure
    assert ev.violations == [ev.failure]
    assert problem.score(ev.criteria, criterion) == -math.inf


@pytest.mark.slow
def test_spec_values_design_no_longer_raises(problem):
    """The shipped example at its own starting values: strongly varying D(t) over weeks made the explicit
    integrator's sensitivities overflow and numpy.linalg.eigvalsh raise (`symode design specs/chemostat.yaml`
    ended in a traceback). The stiff integrator evaluates these designs."""
    c = problem.constraints
    for levels in (np.where(np.arange(30) % 2 == 0, c.d_min, c.d_max), np.linspace(c.d_max, c.d_min, 30)):
        d = piecewise_design(problem, project_levels(levels, c), base_measurements(problem.spec), duration_h=720,
                             segment_h=24)
        ev = problem.evaluate(d, coarse=1.0, full=False, rtol=1e-7)
        assert ev.ok, ev.failure
        assert all(np.isfinite(v) for v in ev.criteria.values())


@pytest.mark.slow
def test_no_usable_information_at_the_nominal_values_stops_with_advice(tmp_path):
    spec_path = tmp_path / "blowup.yaml"
    spec_path.write_text(BLOWUP)
    pb = DesignProblem(load_spec(spec_path), constraints=Constraints())
    with pytest.raises(SymodeError, match=r"--fit fit\.json"):
        optimise_design(pb, base_measurements(pb.spec), days=2, segment_h=12, time_limit=2, progress=False)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "symode", "design", str(spec_path), "--days", "2", "--segment-h", "12",
                        "--time-limit", "2", "--random-baseline", "2", "--robustness", "0", "--quiet", "-o", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert "blows up" in lines[0] and "--fit" in lines[0] and "--params" in lines[0]
    assert not (out / "design.json").exists()
    # the same model at harmless values designs
    params = tmp_path / "ok.json"
    params.write_text(json.dumps({"parameters": {"r": 1e-3}}))
    assert main(["design", str(spec_path), "--params", str(params), "--days", "2", "--segment-h", "12",
                 "--time-limit", "2", "--random-baseline", "2", "--robustness", "0", "--quiet", "-o", str(out)]) == 0
    assert json.loads((out / "design.json").read_text())["duration_h"] == 48.0


@pytest.mark.slow
def test_cli_design_at_the_spec_values_produces_a_design(tmp_path):
    """`symode design specs/chemostat.yaml` without --fit (the README's example) designs a 30-day experiment."""
    out = tmp_path / "out"
    rc = main(["design", str(SPECS / "chemostat.yaml"), "--time-limit", "5", "--random-baseline", "2",
               "--robustness", "2", "--quiet", "-o", str(out)])
    assert rc == 0
    doc = json.loads((out / "design.json").read_text())
    assert doc["duration_h"] == 720.0 and len(doc["inputs"]["D"]["values"]) == 30
    assert "## Predicted relative standard errors" in (out / "report.md").read_text()


@pytest.mark.parametrize("name, content", [
    ("binary.json", b"\x00\x01\xff\xfe"),
    ("nul.yaml", b"parameters: {muB: 1}\x00"),
    ("recursive.yaml", b"x: &a [*a]\n"),
    ("deep.json", b"[" * 100_000),
    ("syntax.yaml", b"parameters: [a: 1\n"),
    ("list.yaml", b"parameters: [1, 2]\n"),
    ("huge.yaml", b"parameters: {muB: " + b"9" * 400 + b"}\n"),
    ("nan.json", b'{"parameters": {"muB": NaN}}'),
    ("scalar.json", b"3"),
])
def test_hostile_nominal_values_file_is_a_located_error(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_nominal(path)
    assert str(info.value).startswith(str(path))


@pytest.mark.parametrize("doc", [
    {"confidence_intervals": [1, 2]},
    {"confidence_intervals": {"muB": {"0.95": ["a", None]}}},
    {"confidence_intervals": {"muB": [float("inf"), -1.0]}},
    ["not", "a", "mapping"],
])
def test_malformed_fit_intervals_give_default_spreads(doc):
    spread = intervals_spread(doc, ["muB", "KB"], default=0.2, cap=1.0)
    assert spread["KB"] == 0.2 and spread["muB"] in (0.2, 1.0)
