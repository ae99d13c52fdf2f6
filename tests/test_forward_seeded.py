"""Seeded forward sensitivities (symode/codegen/csrc/symode_tape_forward.c, symode_forward.h): G = S D for a
seed D propagated as its k columns with the model's sparse Jacobians, against the dense reference
implementation (symode_tape_forward_dense: every product dense, all nx + np columns) times the seed, on
DOPRI5 and RODAS4 solves with piecewise-constant and linearly interpolated (non-autonomous) inputs, and
in the PEtab objective with pre-equilibration against the same objective computed from the dense S."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from symode import build_model, load_spec, simulate
from symode.petab.objective import PetabObjective
from symode.petab.simulate import SolverOptions
from symode.solve.sensitivity import Problem, loss_and_gradient
from symode.solve.synth import make_dataset, noisy_observations, smooth_dilution
from symode.spec import spec_from_dict
from tests.petab_cases import VENDORED

from .conftest import SPECS

#: seeded / sparse against dense: the same derivative, different rounding (the second-order terms come from
#: forward-over-forward instead of reverse-over-forward products)
RTOL = 1e-10


def close(a: np.ndarray, b: np.ndarray, rtol: float = RTOL) -> bool:
    return bool(np.max(np.abs(a - b)) <= rtol * max(float(np.max(np.abs(b))), 1e-300))


def chemostat_problem(interpolation: str = "constant", hours: float = 24.0) -> Problem:
    d = load_spec(SPECS / "chemostat.yaml").to_dict()
    d["inputs"]["D"]["interpolation"] = interpolation
    model = build_model(spec_from_dict(d, file="<chemostat>"))
    times = np.arange(0.0, hours + 1e-9, 0.5)
    D = smooth_dilution(times, seed=1, min_period=2.0, max_period=8.0, amplitude=0.05)
    traj = simulate(model, times, inputs={"D": D})
    return Problem(model, make_dataset(times, {"D": D}, noisy_observations(model, traj, seed=1)))


def seeds(nx: int, np_: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A dense random seed, a single direction, and a PEtab-like seed [G0; P] (P selects parameters)."""
    petab_like = np.zeros((nx + np_, 3))
    petab_like[:nx] = rng.normal(size=(nx, 3))
    petab_like[nx + np.array([0, 2, 3]), [0, 1, 2]] = 1.0
    petab_like[nx + 1, 2] = 0.5
    return [rng.normal(size=(nx + np_, 4)), rng.normal(size=(nx + np_, 1)), petab_like]


@pytest.mark.parametrize("interpolation", ["constant", "linear"])
@pytest.mark.parametrize("method", ["explicit", "stiff", "auto"])
def test_seeded_equals_dense_sensitivities_times_the_seed(method: str, interpolation: str) -> None:
    prob = chemostat_problem(interpolation)
    m = prob.model
    be = m.backend
    rec = be.record(prob.times, m.x0_vector(), m.parameter_vector(), prob.U, rtol=1e-8, atol=1e-10, method=method)
    assert rec.status == 0
    if method == "stiff":
        assert rec.stats["n_jac"] > 0
    S_dense = rec.sensitivities(dense=True)
    S = rec.sensitivities()  # the seeded code with the seed I
    assert S.shape == S_dense.shape == (len(prob.times), len(m.states), len(m.states) + len(m.parameters))
    assert close(S, S_dense)
    for D in seeds(len(m.states), len(m.parameters), np.random.default_rng(0)):
        G = rec.sensitivities(D)
        assert G.shape == (len(prob.times), len(m.states), D.shape[1])
        assert close(G, S_dense @ D)
        # record and differentiate in one call: the same numbers
        res, G2 = be.sensitivities(prob.times, m.x0_vector(), m.parameter_vector(), prob.U, rtol=1e-8, atol=1e-10,
                                   method=method, seed=D)
        assert res.status == 0 and np.array_equal(res.x, rec.x) and np.array_equal(G2, G)


def test_seeded_sensitivities_match_finite_differences() -> None:
    """dx/d(direction) by central differences of the solution along the seed's direction."""
    prob = chemostat_problem("linear", hours=12.0)
    m = prob.model
    be = m.backend
    x0, p = m.x0_vector(), m.parameter_vector()
    nx = len(x0)
    D = np.abs(np.random.default_rng(3).normal(size=(nx + len(p), 2))) * np.concatenate([x0, p])[:, None] * 0.1
    res, G = be.sensitivities(prob.times, x0, p, prob.U, rtol=1e-12, atol=1e-14, method="stiff", seed=D)
    assert res.status == 0
    h = 1e-4
    for c in range(D.shape[1]):
        xs = [be.integrate(prob.times, x0 + s * h * D[:nx, c], p + s * h * D[nx:, c], prob.U, rtol=1e-12, atol=1e-14,
                           method="stiff").x for s in (1, -1)]
        fd = (xs[0] - xs[1]) / (2 * h)
        assert close(G[:, :, c], fd, 1e-5)


def test_seed_shapes() -> None:
    prob = chemostat_problem(hours=2.0)
    m = prob.model
    be = m.backend
    rec = be.record(prob.times, m.x0_vector(), m.parameter_vector(), prob.U, rtol=1e-8, atol=1e-10, method="auto")
    n = len(m.states) + len(m.parameters)
    assert rec.sensitivities(np.zeros((n, 0))).shape == (len(prob.times), len(m.states), 0)
    with pytest.raises(ValueError, match="seed"):
        rec.sensitivities(np.zeros((n + 1, 2)))
    res, G = be.sensitivities(prob.times, m.x0_vector(), m.parameter_vector(), prob.U, rtol=1e-8, atol=1e-10,
                              method="auto", seed=np.zeros((n, 0)))
    assert res.status == 0 and G.shape == (len(prob.times), len(m.states), 0)


def test_fit_residual_jacobian_by_sparse_forward_sensitivities() -> None:
    """The fit's forward mode (loss, gradient and residual Jacobian through the recorded steps, all nx + np
    columns) agrees with the discrete adjoint."""
    prob = chemostat_problem()
    fwd = loss_and_gradient(prob, method="discrete", jacobian=True, rtol=1e-8, atol=1e-10)
    adj = loss_and_gradient(prob, method="discrete", rtol=1e-8, atol=1e-10)
    assert close(fwd.gradient, adj.gradient, 1e-8)
    assert fwd.residual_jacobian is not None and fwd.residuals is not None
    assert close(fwd.residual_jacobian.T @ fwd.residuals, adj.gradient, 1e-8)


class DenseSensitivities:
    """A backend whose ``sensitivities`` computes the full S by the dense reference code and multiplies it by
    the seed (the forward mode before seeding)."""

    def __init__(self, backend) -> None:
        self.backend = backend

    def __getattr__(self, name: str):
        return getattr(self.backend, name)

    def sensitivities(self, times, x0, p, U, *, rtol, atol, method, discrete=True, seed=None):
        rec = self.backend.record(times, x0, p, U, rtol=rtol, atol=atol, method=method)
        S = rec.sensitivities(dense=True) if rec.status == 0 else None
        return rec, (S if seed is None or S is None else S @ seed)


@pytest.mark.parametrize("method", ["explicit", "stiff"])
@pytest.mark.parametrize("case", ["0009", "0018"])
def test_petab_forward_gradient_seeded_equals_dense(tmp_path: Path, case: str, method: str) -> None:
    """Pre-equilibration (0009) and rate rules with partial pre-equilibration (0018), with the Newton polish
    off so that the steady states' sensitivities are chained through the integrated chunks: the forward
    gradient and residual Jacobian with seeded sensitivities equal those from the dense S."""
    shutil.copytree(VENDORED / case, tmp_path / case)
    opts = SolverOptions(rtol=1e-10, atol=1e-12, method=method, newton=False)
    obj = PetabObjective.from_yaml(tmp_path / case / f"_{case}.yaml", options=opts)
    assert any(exp.preeq is not None for exp in obj.problem.experiments)
    seeded = obj.evaluate(gradient=True, jacobian=True, method="forward")
    adjoint = obj.evaluate(gradient=True).gradient
    sim = obj.simulator
    sim.backend = DenseSensitivities(sim.backend)
    dense = obj.evaluate(gradient=True, jacobian=True, method="forward")
    assert close(seeded.gradient, dense.gradient)
    assert close(seeded.residual_jacobian, dense.residual_jacobian)
    assert np.allclose(seeded.gradient, adjoint, rtol=1e-6, atol=1e-9)
