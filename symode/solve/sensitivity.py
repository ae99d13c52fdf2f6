"""Data-fitting loss and its gradient, by interchangeable sensitivity methods.

Loss (Gaussian negative log-likelihood up to a constant; weighted least squares):

    r_ik = (y_k(t_i; theta) - d_ik) / sigma_ik,      L(theta) = 1/2 sum_{i,k observed} r_ik^2,
    sigma_ik^2 = absolute_k^2 + (relative_k * d_ik)^2        (the spec's noise model, at the data;
                                                              d on the observable's transformed scale)

with theta = [x0, p]. Missing data (NaN) are skipped. Methods (strategy objects, as diffrax's
``adjoint=``), all running their time loops in compiled C:

- :class:`ForwardSensitivity` — S = dx/dtheta from S' = Jx S + [0 | Jp]; also gives the residual
  Jacobian dr/dtheta for Gauss-Newton. Cost grows with the number of parameters.
- :class:`InterpolatingAdjoint` — Algorithm 1 of Chen et al. (2018): a' = -Jx^T a backwards with jumps
  dL/dx(t_i), dL/dp = int Jp^T a dt; x(t) from forward checkpoints and Hermite interpolation.
  Cost nearly independent of the number of parameters.
- :class:`BacksolveAdjoint` — the same, re-integrating x backwards (reset to checkpoints at samples);
  unstable on stiff/dissipative systems, offered for comparison.
- :class:`DiscreteAdjoint` — exact gradient of the discretised solution: the accepted Dormand-Prince /
  Rodas4 steps of the forward solve are recorded and differentiated in reverse mode (second-order terms
  of the Rosenbrock stages from CasADi-generated Hessian-vector products).
- :class:`Auto` — the discrete method (adjoint for gradients, forward mode for the residual Jacobian).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symode.errors import DataError, SolverError, SymodeError
from symode.solve.model import Model
from symode.solve.simulation import DEFAULT_ATOL, DEFAULT_RTOL, interval_inputs
from symode.spec.data import Dataset, input_matrix


@dataclass
class GradientResult:
    loss: float
    grad_x0: np.ndarray
    grad_p: np.ndarray
    method: str
    stats: dict[str, Any] = field(default_factory=dict)
    residual_jacobian: np.ndarray | None = None   # (n_observed, nx + np) for observed entries
    residuals: np.ndarray | None = None           # (n_observed,)

    @property
    def gradient(self) -> np.ndarray:
        """dL/d[x0, p]."""
        return np.concatenate([self.grad_x0, self.grad_p])


class Problem:
    """One experiment's loss: a model, sample times, inputs, data and noise weights.

    ``window=(t0, t1)`` restricts to samples in [t0, t1]; the state at t0 is then x0.
    """

    def __init__(self, model: Model, data: Dataset, *, window: tuple[float, float] | None = None) -> None:
        self.model = model
        spec = model.spec
        missing = [o for o in model.observables if o not in data.columns]
        if missing:
            raise DataError(f"missing observable column(s) {', '.join(missing)}", file=data.file)
        sel = np.ones(len(data.times), dtype=bool)
        if window is not None:
            sel = (data.times >= window[0]) & (data.times <= window[1])
            if sel.sum() < 2:
                raise SymodeError(f"window {window[0]}:{window[1]} holds fewer than 2 samples", field="window")
        self.times = data.times[sel]
        inputs = input_matrix(spec, data, data.times)
        self.inputs = {k: v[sel] for k, v in inputs.items()}
        self.U = interval_inputs(model, self.times, self.inputs)
        self.data = np.column_stack([spec.observables[o].transform_data(data.columns[o][sel])
                                     for o in model.observables]) if model.observables \
            else np.zeros((len(self.times), 0))
        noise = [spec.observables[o].noise for o in model.observables]
        absolute = np.array([n.absolute for n in noise])
        relative = np.array([n.relative for n in noise])
        with np.errstate(invalid="ignore"):
            self.sigma = np.sqrt(absolute**2 + (relative * np.nan_to_num(self.data)) ** 2)
        self.sigma[~np.isfinite(self.data)] = 1.0
        if np.any(self.sigma[np.isfinite(self.data)] <= 0):
            raise DataError("zero noise level for an observed value (give an absolute noise level)", file=data.file)
        self.observed = np.isfinite(self.data)
        self.n_observations = int(self.observed.sum())

    @property
    def workspace(self) -> Any:
        """The backend's pre-addressed buffers for this problem (rebuilt if the arrays were replaced)."""
        key = (id(self.times), id(self.U), id(self.data), id(self.sigma))
        if getattr(self, "_ws_key", None) != key:
            self._ws = self.model.backend.workspace(self.times, self.U, self.data, self.sigma)
            self._ws_key = key
        return self._ws

    @property
    def nx(self) -> int:
        return len(self.model.states)

    @property
    def np(self) -> int:
        return len(self.model.parameters)


class Method:
    """A sensitivity method (strategy)."""

    name = "method"

    def compute(self, problem: Problem, x0: np.ndarray, p: np.ndarray, *, rtol: float, atol: float,
                solver: str, jacobian: bool) -> GradientResult:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class ForwardSensitivity(Method):
    """Continuous forward sensitivities S' = Jx S + [0 | Jp], error-controlled together with x."""

    name = "forward"
    discrete = False

    def compute(self, problem, x0, p, *, rtol, atol, solver, jacobian):
        status, loss, grad, rjac, r, stats = problem.workspace.gradient(
            "discrete" if self.discrete else "forward", x0, p, rtol=rtol, atol=atol, method=solver,
            jacobian=jacobian)
        _check(status, stats, problem, self.name)
        res = GradientResult(loss, grad[: problem.nx], grad[problem.nx:], self.name, stats)
        if jacobian:
            mask = problem.observed.reshape(-1)
            res.residual_jacobian = rjac[mask]  # type: ignore[index]
            res.residuals = r.reshape(-1)[mask]  # type: ignore[union-attr]
        return res


@dataclass
class DiscreteAdjoint(ForwardSensitivity):
    """Exact derivative of the discretised solution: the forward solve's accepted steps (Dormand-Prince
    and Rodas4 stages) are recorded and differentiated in reverse mode; with ``jacobian=True`` in forward
    mode (discrete forward sensitivities)."""

    name = "discrete"
    discrete = True


@dataclass
class InterpolatingAdjoint(Method):
    """Algorithm 1 with x(t) interpolated (quintic Hermite) between the forward solver's accepted steps."""

    name = "adjoint"

    def compute(self, problem, x0, p, *, rtol, atol, solver, jacobian):
        # the workspace kind is the method's name: "adjoint" or "backsolve"
        status, loss, grad, _, _, stats = problem.workspace.gradient(self.name, x0, p, rtol=rtol, atol=atol,
                                                                     method=solver)
        _check(status, stats, problem, self.name)
        return GradientResult(loss, grad[: problem.nx], grad[problem.nx:], self.name, stats)


@dataclass
class BacksolveAdjoint(InterpolatingAdjoint):
    """Algorithm 1 with x re-integrated backwards (reset at every sample); unstable when stiff."""

    name = "backsolve"


@dataclass
class Auto(Method):
    """The discrete method: reverse mode (discrete adjoint) for a gradient, forward mode (discrete forward
    sensitivities) when the residual Jacobian is wanted. Exact for the discretisation; the adjoint costs
    2-6 forward solves whatever the number of parameters (the fastest method at every template size in
    bench/gradients.py), and both modes stay cheap on stiff problems, where the continuous forward
    sensitivities need dense factorisations of the augmented system."""

    name = "auto"

    def choose(self, problem: Problem, jacobian: bool) -> Method:
        return DiscreteAdjoint()

    def compute(self, problem, x0, p, *, rtol, atol, solver, jacobian):
        return self.choose(problem, jacobian).compute(problem, x0, p, rtol=rtol, atol=atol, solver=solver,
                                                      jacobian=jacobian)


METHODS: dict[str, type[Method]] = {"forward": ForwardSensitivity, "adjoint": InterpolatingAdjoint,
                                    "backsolve": BacksolveAdjoint, "discrete": DiscreteAdjoint, "auto": Auto}


def get_method(method: str | Method) -> Method:
    if isinstance(method, Method):
        return method
    if method not in METHODS:
        raise SymodeError(f"unknown gradient method {method!r} (choose from {', '.join(METHODS)})")
    return METHODS[method]()


def _check(status: int, stats: dict[str, Any], problem: Problem, name: str) -> None:
    if status == 0:
        return
    from symode.solve.backend import ERRORS

    i = stats.get("fail_interval", -1)
    where = f" near t={problem.times[i]:g}" if 0 <= i < len(problem.times) else ""
    raise SolverError(f"{name} gradient failed{where}: {ERRORS.get(status, status)}")


def loss_and_gradient(problem: Problem, *, params: np.ndarray | None = None, x0: np.ndarray | None = None,
                      method: str | Method = "auto", rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL,
                      solver: str = "auto", jacobian: bool = False) -> GradientResult:
    """L(theta) and dL/d[x0, p] at the given (default: the spec's) values, by ``method``."""
    m = problem.model
    p = m.parameter_vector() if params is None else np.asarray(params, dtype=np.float64)
    x0v = m.x0_vector() if x0 is None else np.asarray(x0, dtype=np.float64)
    return get_method(method).compute(problem, x0v, p, rtol=rtol, atol=atol, solver=solver, jacobian=jacobian)


def loss(problem: Problem, *, params: np.ndarray | None = None, x0: np.ndarray | None = None,
         rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL, solver: str = "auto") -> float:
    """L(theta) from one forward solve."""
    m = problem.model
    p = m.parameter_vector() if params is None else np.asarray(params, dtype=np.float64)
    x0v = m.x0_vector() if x0 is None else np.asarray(x0, dtype=np.float64)
    res = m.backend.integrate(problem.times, x0v, p, problem.U, rtol=rtol, atol=atol, method=solver)
    _check(res.status, res.stats, problem, "forward solve")
    value, _ = m.backend.residual_loss(problem.times, res.x, p, problem.U, problem.data, problem.sigma)
    return value


def finite_difference_gradient(problem: Problem, *, params: np.ndarray | None = None,
                               x0: np.ndarray | None = None, rel_step: float = 1e-5, rtol: float = 1e-12,
                               atol: float = 1e-14, solver: str = "auto") -> np.ndarray:
    """Central finite differences of :func:`loss` with respect to [x0, p] (reference; 2(nx+np) solves)."""
    m = problem.model
    p = m.parameter_vector() if params is None else np.asarray(params, dtype=np.float64)
    x = m.x0_vector() if x0 is None else np.asarray(x0, dtype=np.float64)
    theta = np.concatenate([x, p])
    grad = np.empty_like(theta)
    for k in range(len(theta)):
        h = rel_step * max(abs(theta[k]), 1e-3)
        vals = []
        for sgn in (1.0, -1.0):
            th = theta.copy()
            th[k] += sgn * h
            vals.append(loss(problem, params=th[len(x):], x0=th[: len(x)], rtol=rtol, atol=atol, solver=solver))
        grad[k] = (vals[0] - vals[1]) / (2 * h)
    return grad


def time_call(fn: Any, *, min_time: float = 0.2, max_repeat: int = 10000) -> float:
    """Median-of-batches wall time per call in seconds (for gradcheck and benchmarks)."""
    fn()
    n, elapsed = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time / 5 or n >= max_repeat:
            break
        n *= 4
    batches = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        batches.append((time.perf_counter() - t0) / n)
    return float(np.median(batches))
