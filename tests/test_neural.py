"""Neural terms: spec construct, CasADi MLP in the compiled model, gradients, training."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from symode.codegen.layout import structure
from symode.errors import SpecError
from symode.hybrid import (
    Unknowns,
    balanced_rates,
    blas_threads,
    l2_penalty,
    propose_replacement,
    stiff_here,
    train,
    warm_start,
)
from symode.solve.model import build_model
from symode.solve.sensitivity import Problem, finite_difference_gradient, loss_and_gradient
from symode.solve.simulation import simulate
from symode.solve.synth import make_dataset, noisy_observations
from symode.spec import load_spec, loads_spec, spec_from_dict
from symode.spec.data import Dataset
from symode.symbolic.mlp import mlp_numpy, mlp_numpy_jacobian

from .conftest import SHARED, SPECS, require

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
    data = Dataset(times=data.times, columns={k: np.maximum(v, 0.0) if k in ("S", "X") else v
                                              for k, v in data.columns.items()}, time_column="time_h")
    start = spec.with_values({n: spec.parameters[n].value * 0.5 for n in spec.neural_weights})
    prob = Problem(build_model(start), data)
    before = loss_and_gradient(prob, method="discrete").loss
    result = train(start, data, holdout=0.2, horizons=[], max_iter=40, polish=5, time_limit=30, log=None)
    after = loss_and_gradient(Problem(build_model(result.spec), data), method="discrete").loss
    assert after < 0.5 * before
    assert result.n_train > 0 and result.n_val > 0


def test_propose_replacement_recovers_monod():
    from symode.spec.schema import NeuralTerm

    term = NeuralTerm(id="g", inputs=["A"], outputs=["r"], hidden=[])
    A = np.linspace(0.01, 2.0, 60)
    r = 0.4 * A / (0.3 + A)
    props = propose_replacement(term, {"A": A}, {"r": r})
    best = props["r"][0]
    assert best["law"] == "monod" and best["params"]["K"] == pytest.approx(0.3, rel=1e-3)


def test_mlp_numpy_jacobian_matches_finite_differences():
    spec = load_spec(SPECS / "chemostat-neural.yaml")
    term = spec.neural[0]
    w = np.array([spec.parameters[n].value for n in term.weight_names()])
    X = np.random.default_rng(0).uniform(0.0, 0.4, (7, 2))
    y, J = mlp_numpy_jacobian(term, X, w)
    assert np.allclose(y, mlp_numpy(term, X, dict(zip(term.weight_names(), w, strict=True))), rtol=1e-13)
    fd = np.empty_like(J)
    for k in range(len(w)):
        e = np.zeros_like(w)
        e[k] = 1e-6
        fd[:, :, k] = (mlp_numpy_jacobian(term, X, w + e)[0] - mlp_numpy_jacobian(term, X, w - e)[0]) / 2e-6
    assert np.max(np.abs(J - fd)) < 1e-8 * max(1.0, np.max(np.abs(J)))


def _steady_chemostat_data(seed: int, a_range: tuple[float, float], b_range: tuple[float, float]) -> Dataset:
    """48 h of a chemostat at D = 0.2 with constant X and S and A, B scattered uniformly in their ranges."""
    t = np.arange(0.0, 48.0, 0.25)
    rng = np.random.default_rng(seed)
    return make_dataset(t, {"D": np.full(len(t), 0.2)}, {"X": np.full(len(t), 50.0), "S": np.full(len(t), 10.0),
                                                        "A": rng.uniform(*a_range, len(t)),
                                                        "B": rng.uniform(*b_range, len(t))})


@pytest.mark.slow
@pytest.mark.parametrize("kwargs, share_a", [({}, 0.5), ({"emphasis": 0}, 0.8), ({"emphasis": 1}, 0.2)])
def test_warm_start_sizes_the_consumer_growth_to_the_dilution_rate(kwargs, share_a):
    spec = load_spec(SPECS / "chemostat-neural.yaml")
    data = _steady_chemostat_data(1, (0.05, 0.15), (0.1, 0.3))
    term = spec.neural[0]
    med = {"A": [float(np.median(data.columns["A"]))], "B": [float(np.median(data.columns["B"]))]}
    w = warm_start(spec, data, **kwargs)
    rA, rB = mlp_numpy(term, med, w)[0]
    assert rA + rB == pytest.approx(0.2, rel=0.05)
    assert rA / (rA + rB) == pytest.approx(share_a, abs=0.05)


def _fit_cli(spec_path, csv_path, out, *extra):
    from symode.cli.main import main

    return main(["fit", str(spec_path), "--data", str(csv_path), "-o", str(out), "--quiet", *extra])


def test_symode_fit_trains_a_neural_spec_end_to_end(tiny, tmp_path):
    """`symode fit` on a spec with neural terms goes to the hybrid training and writes the usual outputs."""
    import json

    from symode.solve.synth import dataset_to_csv_text
    from symode.spec.data import Dataset

    spec, _, data = tiny
    data = Dataset(times=data.times, columns={k: np.maximum(v, 0.0) if k in ("S", "X") else v
                                              for k, v in data.columns.items()}, time_column="time_h")
    start = spec.with_values({n: spec.parameters[n].value * 0.5 for n in spec.neural_weights})
    (tmp_path / "spec.yaml").write_text(start.to_yaml())
    (tmp_path / "data.csv").write_text(dataset_to_csv_text(data))
    before = loss_and_gradient(Problem(build_model(start), data), method="discrete").loss
    assert _fit_cli(tmp_path / "spec.yaml", tmp_path / "data.csv", tmp_path / "out", "--max-time", "20",
                    "--workers", "1", "--no-report") == 0
    fitted = load_spec(tmp_path / "out" / "fitted.yaml")
    after = loss_and_gradient(Problem(build_model(fitted), data), method="discrete").loss
    assert after < 0.5 * before
    doc = json.loads((tmp_path / "out" / "fit.json").read_text())
    assert doc["message"].startswith("neural training")
    assert doc["multistart"]["starts"] and doc["objective"] == pytest.approx(after, rel=1e-3)


@pytest.mark.slow
def test_symode_fit_chemostat_neural_on_three_days(tmp_path):
    """`symode fit` of the neural spec on a 3-day window of the reference data set chemostat-dev-hplc, with a
    small time limit."""
    src = SHARED / "chemostat-dev-hplc" / "data.csv"
    require(src.exists(), f"reference data set chemostat-dev-hplc not found at {SHARED} (set SYMODE_SHARED_DATA)")
    lines = src.read_text().splitlines()
    (tmp_path / "data.csv").write_text("\n".join(lines[: 1 + 4 * 72 + 1]) + "\n")
    assert _fit_cli(SPECS / "chemostat-neural.yaml", tmp_path / "data.csv", tmp_path / "out", "--max-time", "25",
                    "--no-report") == 0
    from symode.spec.data import read_csv

    data = read_csv(tmp_path / "data.csv")
    fitted = load_spec(tmp_path / "out" / "fitted.yaml")
    start = loss_and_gradient(Problem(build_model(SPECS / "chemostat-neural.yaml"), data), method="discrete").loss
    after = loss_and_gradient(Problem(build_model(fitted), data), method="discrete").loss
    # from weighted residual RMS ~1000 at the spec's values; ~1 (noise level) on an idle machine, but the
    # 25-s limit may cut training short when the machine is loaded, so only require a large improvement
    assert after < 1e-3 * start
    assert (tmp_path / "out" / "fit.json").exists()


@pytest.mark.slow
def test_balanced_rates_split_the_turnover_between_outflow_and_consumption(tiny):
    """Production rates and uptake yields start balanced with the observed levels: production = outflow /
    (1 - share), consumption by the network's uptakes = share of it (not the spec's 100-1000x too-fast
    turnover, a futile cycle that makes the model stiff)."""
    spec = load_spec(SPECS / "chemostat-neural.yaml")
    data = _steady_chemostat_data(2, (0.02, 0.06), (0.04, 0.08))
    term = spec.neural[0]
    w = warm_start(spec, data, emphasis=1)
    share = 0.4
    vals = balanced_rates(spec, data, w, share=share)
    assert set(vals) == {"vA", "vB", "gA", "gB"}
    med = {m: float(np.median(data.columns[m])) for m in ("A", "B", "X")}
    rates = dict(zip(term.outputs, mlp_numpy(term, {"A": [med["A"]], "B": [med["B"]]}, w)[0], strict=True))
    y0 = spec.states["Y"].x0       # the hidden consumer: its initial value
    for m, r in (("A", "rA"), ("B", "rB")):
        production = vals[f"v{m}"] * med["X"]
        assert production == pytest.approx(0.2 * med[m] / (1 - share), rel=1e-9)
        assert vals[f"g{m}"] * rates[r] * y0 == pytest.approx(share * production, rel=1e-9)
    # a parameter that is not estimated keeps its value
    fixed = spec.with_values({})
    fixed.parameters["vA"] = dataclasses.replace(fixed.parameters["vA"], estimate=False)
    assert "vA" not in balanced_rates(fixed, data, w)
    # a fed substrate (no production to balance) is left alone
    tspec, _, tdata = tiny
    assert balanced_rates(tspec, tdata, {n: tspec.parameters[n].value for n in tspec.neural_weights}) == {}


@pytest.mark.slow
def test_stiff_here_tells_stiffness_from_a_slow_model():
    """The switch of a hybrid-fit start to the stiff integrator: the balanced turnover is not stiff, the
    same balance with 1000x faster production and consumption (a futile cycle) is."""

    spec = load_spec(SPECS / "chemostat-neural.yaml")
    t = np.arange(0.0, 24.0, 0.25)
    rng = np.random.default_rng(3)
    data = make_dataset(t, {"D": np.full(len(t), 0.2)}, {"X": np.full(len(t), 20.0), "S": np.full(len(t), 5.0),
                                                        "A": rng.uniform(0.05, 0.15, len(t)),
                                                        "B": rng.uniform(0.05, 0.15, len(t))})
    w = warm_start(spec, data)
    model = build_model(spec)
    unk = Unknowns(model)
    prob = Problem(model, data)
    index = {n: k for k, n in enumerate(unk.names)}
    z = unk.z0()
    for n, v in w.items():
        z[index[n]] = v
    rates = balanced_rates(spec, data, w)
    for factor, stiff in ((1.0, False), (1e3, True)):
        for n, v in rates.items():
            z[index[n]] = np.log(factor * v)
        assert stiff_here(model, unk, prob, z, 1e-6, 1e-9) is stiff


def test_blas_threads_limits_and_restores():
    """Inside the block every BLAS pool of this process runs one thread and child processes are told so;
    afterwards both are as before."""
    import os

    from threadpoolctl import threadpool_info

    before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    env = os.environ.get("OPENBLAS_NUM_THREADS")
    with blas_threads(1):
        assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")
        assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
    assert [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"] == before
    assert os.environ.get("OPENBLAS_NUM_THREADS") == env
