"""symode.optim: the transform of unknowns, Latin-hypercube starts and the Levenberg-Marquardt optimiser."""

from __future__ import annotations

import math

import numpy as np
import pytest

from symode.errors import SolverError
from symode.optim.lm import levenberg_marquardt
from symode.optim.sampling import latin_hypercube
from symode.optim.transform import Transform, parameter_scale, state_scale, to_natural, to_transformed

# ---------------------------------------------------------------------------------------------------
# transform
# ---------------------------------------------------------------------------------------------------


@pytest.fixture()
def transform() -> Transform:
    return Transform(["k", "K", "c", "w"], ["log", "log", "lin", "lin"], [1e-3, None, 0.0, None],
                     [1e3, 50.0, None, None])


def test_transform_bounds_and_round_trip(transform):
    np.testing.assert_allclose(transform.lb, [math.log(1e-3), -np.inf, 0.0, -np.inf])
    np.testing.assert_allclose(transform.ub, [math.log(1e3), math.log(50.0), np.inf, np.inf])
    assert transform.scipy_bounds() == [(math.log(1e-3), math.log(1e3)), (None, math.log(50.0)), (0.0, None),
                                        (None, None)]
    theta = np.array([2.0, 0.5, 3.0, -1.5])
    z = transform.to_z(theta)
    np.testing.assert_allclose(z, [math.log(2.0), math.log(0.5), 3.0, -1.5])
    np.testing.assert_allclose(transform.to_theta(z), theta, rtol=1e-15)
    np.testing.assert_allclose(transform.natural(z), theta, rtol=1e-15)
    assert transform.to_z(np.array([0.0, 1.0, 0.0, 0.0]))[0] == pytest.approx(math.log(1e-300))


def test_transform_chain_rule_matches_finite_differences(transform):
    z = np.array([0.3, -1.0, 2.0, -0.5])
    h = 1e-7
    fd = np.array([(transform.to_theta(z + h * e) - transform.to_theta(z - h * e))[i] / (2 * h)
                   for i, e in enumerate(np.eye(4))])
    np.testing.assert_allclose(transform.dtheta_dz(z), fd, rtol=1e-7)


def test_transform_natural_clips_and_rejects_overflow(transform):
    # exp(log(50)) may round past 50: natural() keeps the value inside the natural bounds
    z = transform.to_z(np.array([1.0, 50.0, 1.0, 1.0]))
    z[1] = np.nextafter(z[1], np.inf)
    assert transform.natural(z)[1] <= 50.0
    bad = z.copy()
    bad[0] = 1e4
    assert transform.to_theta(bad)[0] == np.inf
    with pytest.raises(SolverError, match="k: not a finite number"):
        transform.natural(bad)


def test_transform_clip_margin(transform):
    z = np.array([-100.0, 100.0, -5.0, 7.0])
    np.testing.assert_allclose(transform.clip(z), [math.log(1e-3), math.log(50.0), 0.0, 7.0])
    inner = transform.clip(z, margin=1e-3)
    width = math.log(1e3) - math.log(1e-3)
    assert inner[0] == pytest.approx(math.log(1e-3) + 1e-3 * width)
    assert inner[1] == math.log(50.0) and inner[2] == 0.0     # half-open boxes: no margin


@pytest.mark.parametrize("value, scale, z", [(2.0, "log", math.log(2.0)), (0.0, "log", -math.inf),
                                             (-3.0, "lin", -3.0)])
def test_scalar_transform(value, scale, z):
    assert to_transformed(value, scale) == z
    assert to_natural(z, scale) == pytest.approx(max(value, 0.0) if scale == "log" else value)


def test_scalar_natural_limits():
    assert to_natural(800.0, "log") == math.inf and to_natural(-800.0, "log") == 0.0


@pytest.mark.parametrize("args, scale", [(("log", 1.0), "log"), (("log", 0.0), "lin"), (("lin", 1.0), "lin")])
def test_parameter_scale(args, scale):
    assert parameter_scale(*args) == scale


@pytest.mark.parametrize("x0, lower, scale", [(1.0, 0.0, "log"), (0.0, 0.0, "lin"), (1.0, None, "lin"),
                                              (1.0, -1.0, "lin")])
def test_state_scale(x0, lower, scale):
    assert state_scale(x0, lower) == scale


# ---------------------------------------------------------------------------------------------------
# Latin hypercube
# ---------------------------------------------------------------------------------------------------

def test_latin_hypercube_strata_and_determinism():
    pts = latin_hypercube(np.array([0.0, -1.0]), np.array([1.0, np.inf]), 10, seed=1)
    assert pts.shape == (10, 2)
    counts = np.histogram(pts[:, 0], bins=10, range=(0, 1))[0]
    assert np.all(counts == 1)
    # the open upper side: center (default 0) + 2; one point per stratum of [-1, 2] too
    assert np.all(np.histogram(pts[:, 1], bins=10, range=(-1.0, 2.0))[0] == 1)
    np.testing.assert_array_equal(pts, latin_hypercube(np.array([0.0, -1.0]), np.array([1.0, np.inf]), 10, seed=1))
    assert not np.array_equal(pts, latin_hypercube(np.array([0.0, -1.0]), np.array([1.0, np.inf]), 10, seed=2))


# ---------------------------------------------------------------------------------------------------
# Levenberg-Marquardt
# ---------------------------------------------------------------------------------------------------

def _with_jacobian(fun, jac):
    return lambda z: (fun(z), jac(z))


def _rosenbrock():
    def fun(z):
        return np.array([10.0 * (z[1] - z[0] ** 2), 1.0 - z[0]])

    def jac(z):
        return np.array([[-20.0 * z[0], 10.0], [-1.0, 0.0]])

    return fun, jac


def _exponential_sum():
    """y(t) = a1 exp(-k1 t) + a2 exp(-k2 t), log-parameters: a sloppy model (eigenvalues of J^T J spread
    over many decades); exact data from the truth."""
    t = np.linspace(0.0, 10.0, 40)
    truth = np.log([1.0, 0.8, 0.5, 1.3])

    def model(z):
        a1, k1, a2, k2 = np.exp(z)
        return a1 * np.exp(-k1 * t) + a2 * np.exp(-k2 * t)

    y = model(truth)

    def fun(z):
        return (model(z) - y) / 0.01

    def jac(z):
        a1, k1, a2, k2 = np.exp(z)
        e1, e2 = np.exp(-k1 * t), np.exp(-k2 * t)
        return np.column_stack([a1 * e1, -a1 * k1 * t * e1, a2 * e2, -a2 * k2 * t * e2]) / 0.01

    return fun, jac, truth


@pytest.mark.parametrize("geodesic", [True, False])
def test_lm_rosenbrock(geodesic):
    fun, jac = _rosenbrock()
    res = levenberg_marquardt(fun, _with_jacobian(fun, jac), np.array([-1.2, 1.0]), np.full(2, -np.inf),
                              np.full(2, np.inf), ftol=1e-14, geodesic=geodesic)
    assert res.converged, res.message
    np.testing.assert_allclose(res.z, [1.0, 1.0], atol=1e-6)
    assert res.loss < 1e-12
    assert all(b <= a for a, b in zip(res.history, res.history[1:], strict=False))   # monotone


def test_lm_sloppy_exponential_sum():
    fun, jac, truth = _exponential_sum()
    J = jac(truth)
    ev = np.linalg.eigvalsh(J.T @ J)
    assert ev[-1] / ev[0] > 1e4                     # sloppy indeed
    z0 = truth + np.array([0.7, -0.5, -0.6, 0.4])
    res = levenberg_marquardt(fun, _with_jacobian(fun, jac), z0, np.full(4, -10.0), np.full(4, 10.0), ftol=1e-12)
    assert res.converged, res.message
    assert res.loss < 1e-8
    # the two exponentials may come out swapped: compare as sets of (a, k)
    got = sorted(map(tuple, np.exp(res.z).reshape(2, 2)))
    want = sorted(map(tuple, np.exp(truth).reshape(2, 2)))
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_lm_holds_active_bounds():
    """Minimum of |z - target|^2 with the target outside the box in two coordinates: the solution is the
    projection (bound coordinates on their bounds, the free one at its target), never outside the box."""
    target = np.array([2.0, -3.0, 0.25])
    lb, ub = np.array([-1.0, -1.0, -1.0]), np.array([1.0, 1.0, 1.0])
    weights = np.array([1.0, 5.0, 3.0])

    def fun(z):
        return weights * (z - target)

    res = levenberg_marquardt(fun, lambda z: (fun(z), np.diag(weights)), np.zeros(3), lb, ub, ftol=1e-14)
    assert res.converged, res.message
    assert res.z[0] == pytest.approx(1.0, abs=1e-12) and res.z[1] == pytest.approx(-1.0, abs=1e-12)
    assert res.z[2] == pytest.approx(0.25, abs=1e-8)
    assert np.all((res.z >= lb) & (res.z <= ub))


@pytest.mark.parametrize("failure", ["raise", "nan"])
def test_lm_rejects_points_whose_sensitivities_fail(failure):
    """A trial point whose residuals are fine but whose sensitivities fail (raise, or are not finite) is a
    failed step, not a crash."""
    target = np.array([1.0, -2.0])

    def fun(z):
        return np.array([z[0] - target[0], 3.0 * (z[1] - target[1]), z[0] * z[1] - target[0] * target[1]])

    calls = {"n": 0}

    def jac(z):
        calls["n"] += 1
        if calls["n"] in (2, 3):          # the first two accepted trial points
            if failure == "raise":
                raise SolverError("forward sensitivities failed")
            return fun(z), np.full((3, 2), np.nan)
        return fun(z), np.array([[1.0, 0.0], [0.0, 3.0], [z[1], z[0]]])

    res = levenberg_marquardt(fun, jac, np.array([4.0, 3.0]), np.full(2, -10.0), np.full(2, 10.0), geodesic=False)
    assert res.converged, res.message
    np.testing.assert_allclose(res.z, target, atol=1e-6)
    assert calls["n"] > 3


def test_lm_non_finite_start_is_an_error():
    def fun(z):
        return z - 1.0

    with pytest.raises(SolverError):
        levenberg_marquardt(fun, lambda z: (fun(z), np.full((2, 2), np.inf)), np.zeros(2), np.full(2, -10.0),
                            np.full(2, 10.0))
