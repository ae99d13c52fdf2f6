"""Parameter estimation: weighted least squares with exact sensitivities, multiple shooting, multi-start
and an honest identifiability analysis at the optimum.

>>> result = fit("specs/chemostat.yaml", [read_csv("data.csv")])      # doctest: +SKIP
>>> result.parameters, result.intervals, result.identifiable             # doctest: +SKIP

Unknowns ``z`` live in a *transformed* space: log(theta) for ``scale: log`` parameters and for positive
initial states, theta itself otherwise; bounds are mapped into that space. Every experiment (data set)
shares the parameters and has its own estimated initial states (``x0.<state>`` or ``x0.<state>[k]``
for the k-th experiment when there are several).

Pipeline (``method="lm"``):

1. exact scaling symmetries of the model (:func:`symode.identifiability.scaling_symmetries`); the fit
   never drifts along them: a gauge residual pins the orbit coordinate (the loss is exactly invariant
   along a symmetry, so the pin changes nothing but the representative of the orbit);
2. single shooting with :func:`scipy.optimize.least_squares` (trust-region reflective) and the exact
   residual Jacobian from forward sensitivities; if that fails or stalls far above the noise level,
   multiple shooting (segments with their own initial states and continuity residuals) first, then
   single shooting from its result;
3. optional multi-start (Latin hypercube in the transformed space within bounds, in parallel);
4. :func:`symode.identifiability.fisher_analysis` at the optimum: standard errors, 95%/99% intervals,
   an identifiable flag and reason for every parameter, symmetries and identifiable combinations.

``method="lbfgs"`` uses L-BFGS-B with adjoint gradients (for many parameters).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data import Dataset, check_columns, input_matrix
from .errors import DataError, SolverError, SymodeError
from .gradient import Problem, loss_and_gradient
from .model import Model, build_model
from .spec import Spec, load_spec

#: chi2(1) quantiles: starts within CHI2_1[level] / 2 of the best loss are statistically indistinguishable.
CHI2_1_99 = 6.634896601021214
#: Relative standard error above which a parameter is not reported identifiable (margin below the 50%
#: Cramer-Rao criterion: SEs at the estimate and at the truth differ).
REL_SE_MAX = 0.3
#: A residual for a failed solve (the trust region rejects the step).
FAIL_RESIDUAL = 1e6


class FitInterrupted(Exception):  # noqa: N818 - control flow, not an error
    """Raised by a callback to stop the fit; the best point so far is returned."""


# ====================================================================================================
# The estimation problem: unknowns, transforms, residuals and Jacobians
# ====================================================================================================

@dataclass
class Unknown:
    name: str                 # "gA", "x0.Y" or "x0.Y[1]"
    kind: str                 # "param" or "x0"
    index: int                # into model.parameters or model.states
    experiment: int | None    # for x0
    scale: str                # "log" or "lin"
    lower: float | None       # natural-space bounds
    upper: float | None
    value: float              # natural-space start value

    def to_z(self, v: float) -> float:
        return math.log(max(v, 1e-300)) if self.scale == "log" else float(v)

    def z_bounds(self) -> tuple[float, float]:
        if self.scale == "log":
            lo = math.log(self.lower) if self.lower is not None and self.lower > 0 else -np.inf
            hi = math.log(self.upper) if self.upper is not None and self.upper > 0 else np.inf
        else:
            lo = -np.inf if self.lower is None else self.lower
            hi = np.inf if self.upper is None else self.upper
        return lo, hi


def _state_scale(st: Any) -> str:
    return "log" if st.x0 > 0 and st.lower is not None and st.lower >= 0 else "lin"


class FitProblem:
    """Shared parameters + per-experiment initial states of one model and several data sets."""

    def __init__(self, model: Model, datasets: Sequence[Dataset], *, fixed: Sequence[str] = (),
                 x0: Sequence[dict[str, float]] | None = None, rtol: float = 1e-8, atol: float = 1e-10,
                 sens_solver: str = "explicit", estimate_x0: bool = True) -> None:
        self.model = model
        spec = model.spec
        self.datasets = list(datasets)
        if not self.datasets:
            raise SymodeError("no data sets to fit")
        for d in self.datasets:
            check_data(spec, d)
        self.problems = [Problem(model, d) for d in self.datasets]
        self.rtol, self.atol, self.sens_solver = rtol, atol, sens_solver
        self.nx, self.np = len(model.states), len(model.parameters)
        unknown_fixed = [n for n in fixed if n not in spec.parameters and not n.startswith("x0.")]
        if unknown_fixed:
            raise SymodeError(f"unknown parameter(s) to fix: {', '.join(unknown_fixed)}")
        self.p_base = model.parameter_vector()
        self.x0_base = []
        for e in range(len(self.datasets)):
            vals = (x0[e] if x0 is not None and e < len(x0) else None) or {}
            self.x0_base.append(model.x0_vector(vals))
        self.unknowns: list[Unknown] = []
        for j, name in enumerate(model.parameters):
            par = spec.parameters[name]
            if par.estimate and name not in fixed:
                scale = "log" if par.scale == "log" and par.value > 0 else "lin"
                self.unknowns.append(Unknown(name, "param", j, None, scale, par.lower, par.upper, par.value))
        multi = len(self.datasets) > 1
        for e in range(len(self.datasets)):
            for i, sname in enumerate(model.states):
                st = spec.states[sname]
                if estimate_x0 and st.estimate and f"x0.{sname}" not in fixed:
                    name = f"x0.{sname}[{e}]" if multi else f"x0.{sname}"
                    self.unknowns.append(Unknown(name, "x0", i, e, _state_scale(st), st.lower, st.upper,
                                                 float(self.x0_base[e][i])))
        self.names = [u.name for u in self.unknowns]
        self.scales = [u.scale for u in self.unknowns]
        zb = np.array([u.z_bounds() for u in self.unknowns]).reshape(-1, 2)
        self.lb, self.ub = zb[:, 0], zb[:, 1]
        self.n_obs = sum(p.n_observations for p in self.problems)
        self.p_cols = [u.index for u in self.unknowns if u.kind == "param"]
        self.p_pos = [k for k, u in enumerate(self.unknowns) if u.kind == "param"]
        self.x_pos = [[(k, u.index) for k, u in enumerate(self.unknowns) if u.kind == "x0" and u.experiment == e]
                      for e in range(len(self.datasets))]
        self.gauge: np.ndarray | None = None     # (n, k) orthonormal symmetry directions in z
        self.gauge_ref: np.ndarray | None = None
        self.gauge_weight = 1.0
        self.n_solves = 0
        self.n_jacobians = 0

    # -- transforms ----------------------------------------------------------------------------------
    def z_from_values(self, params: dict[str, float] | None = None,
                      x0: Sequence[dict[str, float]] | dict[str, float] | None = None) -> np.ndarray:
        """z at the spec's values, overridden by ``params`` (name -> value) and ``x0``."""
        z = np.empty(len(self.unknowns))
        x0s = [x0] * len(self.datasets) if isinstance(x0, dict) else list(x0 or [])
        for k, u in enumerate(self.unknowns):
            v = u.value
            if u.kind == "param" and params and u.name in params:
                v = float(params[u.name])
            if u.kind == "x0" and u.experiment is not None and u.experiment < len(x0s):
                v = float(x0s[u.experiment].get(self.model.states[u.index], v))
            z[k] = u.to_z(v)
        return self.clip(z)

    def clip(self, z: np.ndarray) -> np.ndarray:
        span = np.where(np.isfinite(self.ub - self.lb), 1e-10 * (self.ub - self.lb), 0.0)
        return np.clip(z, self.lb + span, self.ub - span)

    def natural(self, z: np.ndarray) -> np.ndarray:
        return np.array([math.exp(v) if s == "log" else v for v, s in zip(z, self.scales, strict=True)])

    def vectors(self, z: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """(p, [x0 per experiment]) in natural space."""
        theta = self.natural(z)
        p = self.p_base.copy()
        p[self.p_cols] = theta[self.p_pos]
        x0s = []
        for e in range(len(self.datasets)):
            x = self.x0_base[e].copy()
            for k, i in self.x_pos[e]:
                x[i] = theta[k]
            x0s.append(x)
        return p, x0s

    def dtheta_dz(self, z: np.ndarray) -> np.ndarray:
        return np.array([math.exp(v) if s == "log" else 1.0 for v, s in zip(z, self.scales, strict=True)])

    # -- gauge (exact symmetries) --------------------------------------------------------------------
    def set_gauge(self, directions: np.ndarray | None, ref: np.ndarray, weight: float = 1.0) -> None:
        """Pin the orbit coordinate along exact symmetry directions (columns, transformed space)."""
        if directions is None or directions.shape[1] == 0:
            self.gauge = None
            return
        q, _ = np.linalg.qr(directions)
        self.gauge, self.gauge_ref, self.gauge_weight = q, ref.copy(), weight

    def _gauge_rows(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.gauge is None:
            return np.zeros(0), np.zeros((0, len(z)))
        w = self.gauge_weight
        return w * self.gauge.T @ (z - self.gauge_ref), w * self.gauge.T

    # -- residuals -----------------------------------------------------------------------------------
    def data_residuals(self, z: np.ndarray, rtol: float | None = None) -> np.ndarray:
        """Weighted residuals of every observed value (raises SolverError on a failed solve)."""
        p, x0s = self.vectors(z)
        out = []
        for prob, x0 in zip(self.problems, x0s, strict=True):
            be = self.model.backend
            res = be.integrate(prob.times, x0, p, prob.U, rtol=rtol or self.rtol, atol=self.atol, method="auto")
            self.n_solves += 1
            if res.status != 0 or not np.all(np.isfinite(res.x)):
                raise SolverError(f"ODE solver failed: {res.message}")
            _, r = be.residual_loss(prob.times, res.x, p, prob.U, prob.data, prob.sigma)
            out.append(r.reshape(-1)[prob.observed.reshape(-1)])
        return np.concatenate(out)

    def residuals(self, z: np.ndarray) -> np.ndarray:
        """Data residuals followed by the gauge residuals; FAIL_RESIDUAL everywhere if a solve fails."""
        try:
            r = self.data_residuals(z)
        except SolverError:
            r = np.full(self.n_obs, FAIL_RESIDUAL)
        if not np.all(np.isfinite(r)):
            r = np.full(self.n_obs, FAIL_RESIDUAL)
        g, _ = self._gauge_rows(z)
        return np.concatenate([r, g])

    def jacobian(self, z: np.ndarray, *, gauge: bool = True, rtol: float | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """(residuals, dr/dz) with the exact residual Jacobian from forward sensitivities."""
        p, x0s = self.vectors(z)
        d = self.dtheta_dz(z)
        rows, rs = [], []
        for e, (prob, x0) in enumerate(zip(self.problems, x0s, strict=True)):
            res = None
            for solver in dict.fromkeys((self.sens_solver, "auto")):
                try:
                    res = loss_and_gradient(prob, params=p, x0=x0, method="forward", jacobian=True,
                                            rtol=rtol or self.rtol, atol=self.atol, solver=solver)
                    break
                except SolverError:
                    continue
            if res is None:
                raise SolverError("forward sensitivities failed")
            self.n_jacobians += 1
            Jfull = res.residual_jacobian
            J = np.zeros((Jfull.shape[0], len(z)))
            J[:, self.p_pos] = Jfull[:, [self.nx + j for j in self.p_cols]]
            for k, i in self.x_pos[e]:
                J[:, k] = Jfull[:, i]
            rows.append(J * d)
            rs.append(res.residuals)
        r, J = np.concatenate(rs), np.vstack(rows)
        if gauge:
            g, G = self._gauge_rows(z)
            r, J = np.concatenate([r, g]), np.vstack([J, G])
        return r, J

    def loss(self, z: np.ndarray) -> float:
        try:
            r = self.data_residuals(z)
        except SolverError:
            return math.inf
        return 0.5 * float(r @ r) if np.all(np.isfinite(r)) else math.inf


def check_data(spec: Spec, data: Dataset) -> None:
    """Clear errors for data a fit cannot use (missing observable columns, NaN inputs, bad times)."""
    missing = [o for o in spec.observables if o not in data.columns]
    if missing:
        raise DataError(f"missing observable column(s) {', '.join(missing)} (the spec observes "
                        f"{', '.join(spec.observables)})", file=data.file)
    t = np.asarray(data.times, dtype=float)
    if len(t) < 2:
        raise DataError("need at least 2 samples", file=data.file)
    if not np.all(np.isfinite(t)):
        raise DataError("missing or NaN time", file=data.file)
    if t[0] < 0:
        raise DataError(f"negative time {t[0]}", file=data.file, line=data.line_of(0))
    steps = np.diff(t)
    if np.any(steps <= 0):
        k = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise DataError(f"unsorted or duplicate time {t[k]} (times must increase strictly)", file=data.file,
                        line=data.line_of(k))
    input_matrix(spec, data, t)            # NaN inputs -> DataError naming line and column
    check_columns(spec, data, need_observables=True)
    if not any(np.isfinite(data.columns[o]).any() for o in spec.observables):
        raise DataError("no observed values", file=data.file)
