"""Code generation of neural models: wide networks in CasADi MX (small C, fast builds), small
ones scalar-expanded in SX; both give the same functions, f matches the numpy MLP and the loss gradient of
every method matches central finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from symode.codegen import layout as codegen_layout
from symode.codegen.functions import neural_casadi_functions
from symode.codegen.layout import NEURAL_MX_MIN_WEIGHTS, layout_of, neural_codegen, structure
from symode.solve.gradcheck import rel_error
from symode.solve.model import build_model
from symode.solve.sensitivity import Problem, finite_difference_gradient, loss, loss_and_gradient
from symode.solve.simulation import simulate
from symode.solve.synth import make_dataset, noisy_observations
from symode.spec import loads_spec
from symode.symbolic.mlp import mlp_numpy
from symode.symbolic.rhs import build_symbolic

METHODS = ["forward", "adjoint", "backsolve", "discrete"]

# Two terms (one fed by a linearly interpolated input), tanh/softplus and sigmoid/linear; WIDTH is replaced.
SPEC = """
symode: 1
name: neural-codegen-WIDTH
reactor: {mode: chemostat, dilution: D, feed: {S: S0}}
states:
  S: {role: substrate, x0: 2.0, estimate: true, bounds: [0, null]}
  X: {role: main, x0: 1.0, estimate: true, bounds: [0, null]}
  P: {role: other, x0: 0.1}
inputs:
  D: {interpolation: linear, default: 0.1}
neural:
  - id: net
    inputs: [S, D]
    outputs: [mu, k]
    hidden: [WIDTH, WIDTH]
    activation: tanh
    output_activation: softplus
    input_scale: {S: 2.0, D: 0.1}
    output_scale: {mu: 0.3}
    seed: 3
  - id: g
    inputs: [X]
    outputs: [v]
    hidden: [3]
    activation: sigmoid
    seed: 1
parameters:
  S0: {value: 10.0, estimate: false}
  Y: {value: 0.5, bounds: [0.01, 10]}
interactions:
  - {type: uptake, law: neural, from: S, to: X, rate: net.mu, yield: Y}
  - {type: custom, id: p, rate: "0.1 * net.k * X + 0.01 * g.v", stoichiometry: {P: 1}}
observables:
  X: {noise: {relative: 0.02, absolute: 0.01}}
  S: {noise: {relative: 0.02, absolute: 0.01}}
  P: {noise: {relative: 0.05, absolute: 0.01}}
"""


def _spec(width: int, activations: tuple[str, str] = ("sigmoid", "linear")):
    """The spec with hidden width ``width``; ``activations``: hidden and output activation of term g."""
    text = SPEC.replace("WIDTH", str(width)).replace("activation: sigmoid", f"activation: {activations[0]}")
    if activations[1] != "linear":
        text = text.replace("    seed: 1\n", f"    seed: 1\n    output_activation: {activations[1]}\n")
    return loads_spec(text, "neural-codegen.yaml")


def _problem(model, hours: float = 6.0):
    t = np.linspace(0.0, hours, int(4 * hours) + 1)
    D = 0.1 + 0.03 * np.sin(t / 2.0)
    traj = simulate(model, t, inputs={"D": D})
    obs = noisy_observations(model, traj, seed=1)
    return Problem(model, make_dataset(t, {"D": D}, obs))


def _point(model, rng):
    """Parameters and initial states away from the data-generating point."""
    p = model.parameter_vector() * np.exp(rng.normal(0, 0.1, len(model.parameters)))
    x0 = model.x0_vector() * np.exp(rng.normal(0, 0.1, len(model.states)))
    return p, x0


def _weights(spec, model, p):
    return {n: p[model.parameters.index(n)] for n in spec.neural_weights}


def _check_rhs_against_numpy(spec, model, p, rng):
    """f (and so the MLPs inside it) against the numpy MLP; df/dx and df/dp columns against differences."""
    Y, S0 = p[model.parameters.index("Y")], p[model.parameters.index("S0")]
    w = _weights(spec, model, p)
    be = model.backend
    for _ in range(3):
        x = np.array([rng.uniform(0.1, 4.0), rng.uniform(0.1, 3.0), rng.uniform(0.0, 1.0)])
        # U = [D, slope, t_start]: D(t) = 0.1 + 0.02 (t - 1)
        t, U = 1.7, np.array([0.1, 0.02, 1.0])
        D = 0.1 + 0.02 * (t - 1.0)
        mu, k = mlp_numpy(spec.neural_term("net"), {"S": [x[0]], "D": [D]}, w)[0]
        (v,) = mlp_numpy(spec.neural_term("g"), {"X": [x[1]]}, w)[0]
        expect = [D * (S0 - x[0]) - Y * mu * x[1], mu * x[1] - D * x[1], 0.1 * k * x[1] + 0.01 * v - D * x[2]]
        np.testing.assert_allclose(be.rhs(t, x, p, U), expect, rtol=1e-12, atol=1e-14)
        Jx, Jp = be.jac_x(t, x, p, U), be.jac_p(t, x, p, U)
        for i in range(3):
            e = np.zeros(3)
            e[i] = 1e-6
            fd = (be.rhs(t, x + e, p, U) - be.rhs(t, x - e, p, U)) / 2e-6
            np.testing.assert_allclose(Jx[:, i], fd, rtol=1e-6, atol=1e-8)
        for j in rng.choice(len(p), 12, replace=False):
            e = np.zeros(len(p))
            e[j] = 1e-6
            fd = (be.rhs(t, x, p + e, U) - be.rhs(t, x, p - e, U)) / 2e-6
            np.testing.assert_allclose(Jp[:, j], fd, rtol=1e-6, atol=1e-8)


def _check_gradients(problem, p, x0, indices=None):
    """Every method against central differences (all of [x0, p], or ``indices`` of it plus a random
    directional derivative) and against each other."""
    grads = {m: loss_and_gradient(problem, params=p, x0=x0, method=m, rtol=1e-10, atol=1e-12).gradient
             for m in METHODS}
    for m in METHODS[1:]:
        assert rel_error(grads[m], grads["discrete"]) < 1e-5, (m, rel_error(grads[m], grads["discrete"]))
    nx = len(x0)
    if indices is None:
        fd = finite_difference_gradient(problem, params=p, x0=x0)
        for m, g in grads.items():
            assert rel_error(g, fd) < 1e-5, (m, rel_error(g, fd))
        return grads
    theta = np.concatenate([x0, p])

    def L(th):
        return loss(problem, params=th[nx:], x0=th[:nx], rtol=1e-12, atol=1e-14)

    fd = np.empty(len(indices))
    for n, k in enumerate(indices):
        h = 1e-5 * max(abs(theta[k]), 1e-3)
        e = np.zeros_like(theta)
        e[k] = h
        fd[n] = (L(theta + e) - L(theta - e)) / (2 * h)
    d = np.random.default_rng(5).normal(size=len(theta)) * np.maximum(np.abs(theta), 1e-3)
    eps = 1e-5
    fd_dir = (L(theta + eps * d) - L(theta - eps * d)) / (2 * eps)
    for m, g in grads.items():
        assert rel_error(g[indices], fd) < 1e-5, (m, rel_error(g[indices], fd))
        assert g @ d == pytest.approx(fd_dir, rel=1e-5), m
    return grads


@pytest.mark.parametrize("activations", [("sigmoid", "linear"), ("relu", "sigmoid"), ("softplus", "softplus")])
def test_mx_and_sx_functions_agree(activations):
    """The MX-generated functions equal the SX ones (CasADi's virtual machine, nothing compiled)."""
    spec = _spec(5, activations)
    g = spec.neural_term("g")
    assert (g.activation, g.output_activation) == activations
    sym, layout = build_symbolic(spec), layout_of(spec)
    sx = {f.name(): f for f in neural_casadi_functions(sym, layout, "sx")}
    mx = {f.name(): f for f in neural_casadi_functions(sym, layout, "mx")}
    assert sorted(sx) == sorted(mx)
    rng = np.random.default_rng(0)
    np_ = len(layout.parameters)
    p = np.array([spec.parameters[n].value for n in layout.parameters])
    for name, f in sx.items():
        for _ in range(3):
            args = [rng.uniform(0, 2), rng.uniform(0.1, 3, 3), p * rng.uniform(0.5, 1.5, np_),
                    np.array([0.1, 0.02, 0.5])]
            args += [rng.normal(size=f.size1_in(i)) for i in range(4, f.n_in())]
            for a, b in zip(f(*args) if f.n_out() > 1 else [f(*args)],
                            mx[name](*args) if f.n_out() > 1 else [mx[name](*args)], strict=True):
                assert a.shape == b.shape, name
                np.testing.assert_allclose(np.array(b), np.array(a), rtol=1e-12, atol=1e-13, err_msg=name)


def test_mode_follows_the_number_of_weights():
    small, wide = _spec(5), _spec(40)
    assert neural_codegen(small) == "sx" and "neural_codegen" not in structure(small)
    assert len(wide.neural_weights) > NEURAL_MX_MIN_WEIGHTS
    assert neural_codegen(wide) == "mx" and structure(wide)["neural_codegen"].startswith("mx")


@pytest.mark.slow
def test_small_network_in_mx(monkeypatch):
    """A small network forced through the MX path: f, derivatives and every gradient method vs. finite
    differences, and the same gradients as the SX build of the same model."""
    spec = _spec(5)
    sx_model = build_model(spec)
    monkeypatch.setattr(codegen_layout, "NEURAL_MX_MIN_WEIGHTS", 0)
    model = build_model(spec)
    assert "sym_mech" in (model.directory / "model_casadi.c").read_text()
    assert "sym_mech" not in (sx_model.directory / "model_casadi.c").read_text()
    rng = np.random.default_rng(1)
    p, x0 = _point(model, rng)
    _check_rhs_against_numpy(spec, model, p, rng)
    grads = _check_gradients(_problem(model), p, x0)
    g_sx = loss_and_gradient(_problem(sx_model), params=p, x0=x0, method="discrete", rtol=1e-10,
                             atol=1e-12).gradient
    assert rel_error(grads["discrete"], g_sx) < 1e-9


@pytest.mark.slow
def test_wide_network_builds_fast_and_gradients_match():
    """~1.9k weights: MX code generation (seconds; SX: minutes), small C, exact gradients."""
    spec = _spec(40)
    model = build_model(spec)
    assert len(spec.neural_weights) > 1800
    src = (model.directory / "model_casadi.c").stat().st_size
    assert src < 1_000_000, src  # SX writes ~2 kB of C per weight (2 MB at 1k weights)
    rng = np.random.default_rng(2)
    p, x0 = _point(model, rng)
    _check_rhs_against_numpy(spec, model, p, rng)
    nx, names = len(model.states), model.parameters
    mech = [nx + j for j, n in enumerate(names) if "__" not in n]
    weights = [nx + j for j, n in enumerate(names) if "__" in n]
    idx = np.array(list(range(nx)) + mech + list(rng.choice(weights, 40, replace=False)))
    _check_gradients(_problem(model, hours=4.0), p, x0, indices=idx)
