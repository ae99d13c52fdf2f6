"""Neural terms (issue 8): spec construct, CasADi MLP in the compiled model, gradients, training."""

from __future__ import annotations

import numpy as np
import pytest

from symode.codegen import structure
from symode.errors import SpecError
from symode.gradient import Problem, finite_difference_gradient, loss_and_gradient
from symode.model import build_model
from symode.neural import l2_penalty, mlp_numpy, propose_replacement, train
from symode.solve import simulate
from symode.spec import load_spec, loads_spec, spec_from_dict
from symode.synth import make_dataset, noisy_observations

from .conftest import SPECS

TINY = """
symode: 1
name: tiny-neural
reactor: {mode: chemostat, dilution: D, feed: {S: S0}}
states:
  S: {role: substrate, x0: 2.0, estimate: true, bounds: [0, null]}
  X: {role: main, x0: 1.0, estimate: true, bounds: [0, null]}
  P: {role: other, x0: 0.1}
inputs:
  D: {default: 0.1}
neural:
  - id: net
    inputs: [S]
    outputs: [mu, k]
    hidden: [4]
    activation: tanh
    output_activation: softplus
    output_scale: {mu: 0.3}
    seed: 3
    l2: 1.0e-3
parameters:
  S0: {value: 10.0, estimate: false}
  Y: {value: 0.5, bounds: [0.01, 10]}
interactions:
  - {type: uptake, law: neural, from: S, to: X, rate: net.mu, yield: Y}
  - {type: custom, id: p, rate: "0.1 * net.k * X", stoichiometry: {P: 1}}
observables:
  X: {noise: {relative: 0.02, absolute: 0.01}}
  S: {noise: {relative: 0.02, absolute: 0.01}}
"""


@pytest.fixture(scope="module")
def tiny():
    spec = loads_spec(TINY, "tiny.yaml")
    model = build_model(spec)
    t = np.linspace(0.0, 24.0, 49)
    traj = simulate(model, t)
    obs = noisy_observations(model, traj, seed=1)
    data = make_dataset(t, {"D": np.full(len(t), 0.1)}, obs)
    return spec, model, data


def test_spec_round_trip_and_weights():
    spec = loads_spec(TINY, "tiny.yaml")
    term = spec.neural_term("net")
    assert term.sizes == [1, 4, 2]
    assert len(spec.neural_weights) == 1 * 4 + 4 + 4 * 2 + 2
    assert all(spec.parameters[w].scale == "lin" and spec.parameters[w].estimate for w in spec.neural_weights)
    again = loads_spec(spec.to_yaml())
    assert again == spec and spec_from_dict(spec.to_dict()) == spec
    # explicit weights in the parameters section win over the seed
    d = spec.to_dict()
    d["parameters"]["net__W1_0_0"]["value"] = 0.123
    assert spec_from_dict(d).parameters["net__W1_0_0"].value == 0.123
    assert loads_spec(TINY.replace("seed: 3", "seed: 4")).parameters["net__W1_0_0"].value != \
        spec.parameters["net__W1_0_0"].value


def test_example_spec_loads():
    spec = load_spec(SPECS / "chemostat-neural.yaml")
    assert [e.rate for e in spec.interactions if e.law == "neural"] == ["growthY.rA", "growthY.rB"]
    assert len(spec.neural_weights) == 2 * 8 + 8 + 8 * 8 + 8 + 8 * 2 + 2


@pytest.mark.parametrize("old,new,line,message", [
    ("rate: net.mu,", "rate: net.nu,", 25, "has no output 'nu'"),
    ("rate: net.mu,", "rate: other.mu,", 25, "unknown neural term 'other'"),
    ("inputs: [S]", "inputs: [Q]", 13, "'Q' is not a state or input"),
    ("activation: tanh", "activation: swish", 16, "'swish' is not one of"),
    ("hidden: [4]", "hidden: [0]", 15, "positive integer"),
    ("outputs: [mu, k]", "outputs: [mu, mu]", 14, "duplicate name 'mu'"),
    ("output_scale: {mu: 0.3}", "output_scale: {zz: 0.3}", 18, "'zz' is not one of the outputs"),
    ("l2: 1.0e-3", "l2: -1", 20, "non-negative"),
    ("0.1 * net.k * X", "0.1 * net.q * X", 26, "not allowed"),
])
def test_validation_errors_are_located(old, new, line, message):
    assert old in TINY
    with pytest.raises(SpecError) as info:
        loads_spec(TINY.replace(old, new), "tiny.yaml")
    assert line == next(i + 1 for i, row in enumerate(TINY.splitlines()) if old in row)
    text = str(info.value)
    assert f"tiny.yaml:{line}:" in text and message in text


def test_structure_key_only_changes_for_neural_models():
    plain = load_spec(SPECS / "chemostat.yaml")
    assert "neural" not in structure(plain)
    spec = loads_spec(TINY)
    s1 = structure(spec)
    spec.neural[0].activation = "sigmoid"
    assert structure(spec) != s1


def test_rhs_matches_numpy_mlp(tiny):
    spec, model, _ = tiny
    term = spec.neural[0]
    p = model.parameter_vector()
    w = {n: spec.parameters[n].value for n in spec.neural_weights}
    x = np.array([2.0, 1.0, 0.1])
    f = model.backend.rhs(0.0, x, p, np.array([0.1]))
    mu, k = mlp_numpy(term, {"S": [2.0]}, w)[0]
    assert f[1] == pytest.approx(mu * 1.0 - 0.1 * 1.0, rel=1e-12)
    assert f[2] == pytest.approx(0.1 * k * 1.0 - 0.1 * 0.1, rel=1e-12)
    J = model.backend.jac_x(0.0, x, p, np.array([0.1]))
    e = np.array([1e-6, 0.0, 0.0])
    fd = (model.backend.rhs(0.0, x + e, p, np.array([0.1])) -
          model.backend.rhs(0.0, x - e, p, np.array([0.1]))) / (2 * e[0])
    assert np.allclose(J[:, 0], fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("method", ["forward", "adjoint", "backsolve", "discrete"])
def test_gradients_match_finite_differences(tiny, method):
    _, model, data = tiny
    prob = Problem(model, data)
    p = model.parameter_vector() * 1.1  # away from the data-generating point
    fd = finite_difference_gradient(prob, params=p)
    g = loss_and_gradient(prob, params=p, method=method, rtol=1e-10, atol=1e-12).gradient
    assert np.max(np.abs(g - fd)) / np.max(np.abs(fd)) < 1e-5


def test_l2_penalty_gradient(tiny):
    spec, model, _ = tiny
    p = np.random.default_rng(0).normal(size=len(model.parameters))
    v, g = l2_penalty(spec, p, model.parameters)
    idx = [model.parameters.index(w) for w in spec.neural_weights]
    assert v == pytest.approx(1e-3 * np.sum(p[idx] ** 2))
    assert np.allclose(g[idx], 2e-3 * p[idx]) and np.count_nonzero(g) == len(idx)


def test_training_reduces_the_loss(tiny):
    spec, _, data = tiny
    start = spec.with_values({n: spec.parameters[n].value * 0.5 for n in spec.neural_weights})
    prob = Problem(build_model(start), data)
    before = loss_and_gradient(prob, method="discrete").loss
    result = train(start, data, holdout=0.2, horizons=[], max_iter=40, polish=5, time_limit=30, log=None)
    after = loss_and_gradient(Problem(build_model(result.spec), data), method="discrete").loss
    assert after < 0.5 * before
    assert result.n_train > 0 and result.n_val > 0


def test_propose_replacement_recovers_monod():
    from symode.spec import NeuralTerm

    term = NeuralTerm(id="g", inputs=["A"], outputs=["r"], hidden=[])
    A = np.linspace(0.01, 2.0, 60)
    r = 0.4 * A / (0.3 + A)
    props = propose_replacement(term, {"A": A}, {"r": r})
    best = props["r"][0]
    assert best["law"] == "monod" and best["params"]["K"] == pytest.approx(0.3, rel=1e-3)
