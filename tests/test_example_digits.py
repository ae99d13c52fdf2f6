"""examples/odenet_digits.py (the neural-ODE paper's Table 1 on scikit-learn's digits): the --quick run writes
the documented JSON schema with finite numbers, the ODE-Net's adjoint gradient (symode's continuous adjoint
started from the head's gradient) matches central finite differences of the loss, the symode ODE block is
the numpy block's ODE, and the numpy RK-Net's backpropagation matches finite differences. No accuracy
targets: the quick run trains 2 epochs on 240 images."""

from __future__ import annotations

import importlib.util
import json
import math
import sys

import numpy as np
import pytest

from .conftest import REPO


@pytest.fixture(scope="module")
def digits():
    sys.path.insert(0, str(REPO / "examples"))
    spec = importlib.util.spec_from_file_location("example_odenet_digits", REPO / "examples" / "odenet_digits.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick_run(digits, tmp_path_factory):
    path = tmp_path_factory.mktemp("digits") / "table.json"
    out = digits.main(["--quick", "--json", str(path)])
    return out, json.loads(path.read_text())


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@pytest.mark.slow
def test_quick_json_schema(quick_run):
    out, data = quick_run
    assert set(data) == {"models", "memory_scaling"}
    assert set(data["models"]) == {"mlp", "resnet", "rknet", "odenet"}
    for kind, row in data["models"].items():
        assert set(row) == {"test_error", "parameters", "peak_memory_mb", "seconds_per_epoch"}, kind
        assert isinstance(row["parameters"], int) and row["parameters"] > 0
        assert all(_finite(row[k]) for k in ("test_error", "peak_memory_mb", "seconds_per_epoch")), row
        assert 0.0 <= row["test_error"] <= 1.0 and row["peak_memory_mb"] >= 0 and row["seconds_per_epoch"] > 0
    assert set(data["memory_scaling"]) == {"odenet", "rknet"}
    for kind, row in data["memory_scaling"].items():
        assert set(row) == {"steps", "peak_memory_mb"}, kind
        assert len(row["steps"]) == 2 and len(row["peak_memory_mb"]) == 2
        assert all(_finite(v) and v > 0 for v in row["steps"] + row["peak_memory_mb"]), row
    # same parameters for the weight-shared models; the ResNet has one block per layer
    m = data["models"]
    assert m["odenet"]["parameters"] == m["rknet"]["parameters"] == m["mlp"]["parameters"] < m["resnet"]["parameters"]
    assert data["memory_scaling"]["rknet"]["steps"] == [4, 16]
    assert out["detail"]["odenet_gradient_check"]["relative_error"] < 1e-5


@pytest.mark.slow
def test_quick_memory_scaling_traced(quick_run):
    """tracemalloc's peaks (deterministic): the RK-Net's tape grows with its steps, the ODE-Net's step does not
    grow with the solver's steps."""
    out, _ = quick_run
    rk, ode = out["detail"]["rknet_scaling"], out["detail"]["odenet_scaling"]
    assert rk[1]["traced_mb"] > 2.0 * rk[0]["traced_mb"]
    assert ode[1]["steps"] >= 3 * ode[0]["steps"]
    assert abs(ode[1]["traced_mb"] - ode[0]["traced_mb"]) < 0.2 * ode[0]["traced_mb"]


@pytest.mark.slow
def test_odenet_adjoint_gradient_matches_finite_differences(digits):
    Xtr, ytr, _, _ = digits.load_split(0, subset=300)
    net = digits.build_net("odenet", d=8, h=16, blocks=1, steps=4, rtol=1e-3, adjoint="adjoint", seed=3)
    rng = np.random.default_rng(1)
    for k in net.P:                       # non-zero biases, so that every weight matters
        if net.P[k].ndim == 1:
            net.P[k] += 0.1 * rng.normal(size=net.P[k].shape)
    check = digits.odenet_gradient_check(net, Xtr[:3], ytr[:3], n_check=8)
    assert check["max_abs_gradient"] > 1e-3
    assert check["relative_error"] < 1e-5, check
    net.ode.adjoint = "backsolve"
    assert digits.odenet_gradient_check(net, Xtr[:3], ytr[:3], n_check=4)["relative_error"] < 1e-5


@pytest.mark.slow
def test_symode_block_is_the_numpy_ode(digits):
    import digits_nets as nets

    net = digits.build_net("odenet", d=8, h=16, blocks=1, steps=4, rtol=1e-11, adjoint="adjoint", seed=5)
    Z0 = np.random.default_rng(0).normal(size=(4, 8))
    net.ode.set_weights(net.P)
    ref = nets.rk4_solve(nets.block(net.P, 0), Z0, steps=400)
    np.testing.assert_allclose(net.ode.forward(Z0), ref, rtol=0, atol=1e-9)


def test_rknet_backprop_matches_finite_differences(digits):
    import digits_nets as nets

    net = digits.build_net("rknet", d=5, h=7, blocks=1, steps=3, rtol=1e-3, adjoint="adjoint", seed=2)
    rng = np.random.default_rng(0)
    X, y = rng.uniform(size=(4, 64)), np.array([0, 3, 3, 9])
    _, grads = net.loss_and_grads(X, y)
    for key in ("A", "blk0_W1", "blk0_b1", "blk0_W2", "C", "c"):
        flat = net.P[key].reshape(-1)
        for j in rng.choice(flat.size, size=min(5, flat.size), replace=False):
            old, h = flat[j], 1e-6
            flat[j] = old + h
            lp = net.loss(X, y)
            flat[j] = old - h
            lm = net.loss(X, y)
            flat[j] = old
            assert grads[key].reshape(-1)[j] == pytest.approx((lp - lm) / (2 * h), rel=1e-5, abs=1e-9), (key, j)
    # ResNet too
    res = digits.build_net("resnet", d=5, h=7, blocks=3, steps=3, rtol=1e-3, adjoint="adjoint", seed=2)
    _, g = res.loss_and_grads(X, y)
    flat = res.P["blk2_W1"].reshape(-1)
    old = flat[4]
    flat[4] = old + 1e-6
    lp = res.loss(X, y)
    flat[4] = old - 1e-6
    lm = res.loss(X, y)
    flat[4] = old
    assert g["blk2_W1"].reshape(-1)[4] == pytest.approx((lp - lm) / 2e-6, rel=1e-5)
    assert nets.count_parameters(res.P) == 64 * 5 + 5 + 10 * 5 + 10 + 3 * (7 * 5 + 7 + 5 * 7 + 5)
