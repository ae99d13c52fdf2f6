"""A recorded forward solve (``CompiledBackend.record``), which the PEtab adjoint differentiates: the same
states as ``integrate``, forward sensitivities identical to ``sensitivities``, and its reverse mode
(``Recording.adjoint``) equal to the forward sensitivities contracted with the weights, to the library's
loss-based discrete adjoint, and to finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from symode.petab.objective import PetabObjective
from tests.petab_cases import VENDORED


@pytest.fixture(scope="module")
def setting():
    obj = PetabObjective.from_yaml(VENDORED / "0001" / "_0001.yaml")
    be = obj.model.backend
    theta = obj.problem.nominal
    cond = obj.problem.experiments[0].sim
    p = cond.p(theta)
    x0, _ = obj.simulator.initial(cond, theta, False)
    grid = np.array([0.0, 0.5, 2.0, 3.0, 10.0])
    return be, grid, x0, p, np.zeros(0)


@pytest.mark.parametrize("method", ["stiff", "explicit"])
def test_recording_matches_integrate_and_sensitivities(setting, method: str) -> None:
    be, grid, x0, p, U = setting
    rec = be.record(grid, x0, p, U, rtol=1e-9, atol=1e-11, method=method)
    assert rec.status == 0
    res = be.integrate(grid, x0, p, U, rtol=1e-9, atol=1e-11, method=method)
    assert np.array_equal(rec.x, res.x)
    _, S = be.sensitivities(grid, x0, p, U, rtol=1e-9, atol=1e-11, method=method)
    assert np.array_equal(rec.sensitivities(), S)
    lam = np.random.default_rng(0).normal(size=rec.x.shape)
    gx0, gp = rec.adjoint(lam)
    want = np.einsum("ti,tij->j", lam, S)
    assert np.allclose(np.concatenate([gx0, gp]), want, rtol=1e-10, atol=1e-12 * np.max(np.abs(want)))


def test_recording_adjoint_matches_the_loss_adjoint_and_finite_differences(setting) -> None:
    be, grid, x0, p, U = setting
    nx = len(x0)
    rng = np.random.default_rng(2)
    data, sigma = rng.uniform(0.1, 1.0, size=(len(grid), nx)), rng.uniform(0.5, 1.0, size=(len(grid), nx))
    rec = be.record(grid, x0, p, U, rtol=1e-10, atol=1e-12, method="stiff")
    # the library's loss 1/2 sum ((x - d)/s)^2 (the model's observables are its states) has dL/dx = (x - d)/s^2
    gx0, gp = rec.adjoint((rec.x - data) / sigma**2)
    status, _, grad, _, _, _ = be.workspace(grid, U, data, sigma).gradient("discrete", x0, p, rtol=1e-10, atol=1e-12,
                                                                           method="stiff")
    assert status == 0
    assert np.allclose(np.concatenate([gx0, gp]), grad, rtol=1e-12, atol=1e-14 * np.max(np.abs(grad)))
    w = rng.normal(size=rec.x.shape)
    gx0, gp = rec.adjoint(w)

    def f(xx: np.ndarray, pp: np.ndarray) -> float:
        return float(np.sum(w * be.integrate(grid, xx, pp, U, rtol=1e-12, atol=1e-14, method="stiff").x))

    h = 1e-6
    fd_x = [(f(x0 + h * e, p) - f(x0 - h * e, p)) / (2 * h) for e in np.eye(nx)]
    fd_p = [(f(x0, p + h * e) - f(x0, p - h * e)) / (2 * h) for e in np.eye(len(p))]
    assert np.allclose(gx0, fd_x, rtol=1e-6, atol=1e-8)
    assert np.allclose(gp, fd_p, rtol=1e-6, atol=1e-8)


def test_recording_refuses_wrong_weights_and_failed_solves(setting) -> None:
    be, grid, x0, p, U = setting
    rec = be.record(grid, x0, p, U, rtol=1e-8, atol=1e-10, method="stiff")
    with pytest.raises(ValueError, match="shape"):
        rec.adjoint(np.zeros((2, len(x0))))
    bad = be.record(grid, np.full(len(x0), np.nan), p, U, rtol=1e-8, atol=1e-10, method="stiff")
    assert bad.status != 0
    with pytest.raises(ValueError, match="failed"):
        bad.adjoint(np.zeros_like(bad.x))
