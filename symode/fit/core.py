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

``method="lbfgs"`` uses L-BFGS-B with adjoint gradients (for many parameters)."""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from symode.errors import DataError, SolverError, SymodeError
from symode.optim.lm import levenberg_marquardt
from symode.optim.sampling import latin_hypercube
from symode.solve.model import Model, build_model
from symode.solve.sensitivity import Problem, loss_and_gradient
from symode.spec import Spec, load_spec
from symode.spec.data import Dataset, check_columns, input_matrix

#: chi2(1) quantiles: starts within CHI2_1[level] / 2 of the best loss are statistically indistinguishable.
CHI2_1_99 = 6.634896601021214


#: Relative standard error above which a parameter is not reported identifiable (margin below the 50%
#: Cramer-Rao criterion: SEs at the estimate and at the truth differ).
REL_SE_MAX = 0.2


#: Identifiable parameters with a Wald relative SE above this are checked by a (short) profile likelihood.
PROFILE_CHECK_SE = 0.05


#: A residual for a failed solve (the trust region rejects the step).
FAIL_RESIDUAL = 1e6


class FitInterrupted(Exception):
    """Raised by a callback to stop the fit; the best point so far is returned."""


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
                 sens_method: str = "discrete", sens_solver: str = "auto", estimate_x0: bool = True) -> None:
        self.model = model
        spec = model.spec
        self.datasets = list(datasets)
        if not self.datasets:
            raise SymodeError("no data sets to fit")
        for d in self.datasets:
            check_data(spec, d)
        self.problems = [Problem(model, d) for d in self.datasets]
        self.rtol, self.atol = rtol, atol
        self.sens_method, self.sens_solver = sens_method, sens_solver
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
        self.scales_log = np.array([s == "log" for s in self.scales], dtype=bool)   # unknowns on a log scale
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
        """Natural-space values, kept inside the bounds (exp(log(b)) can round past b). A log-scale value
        beyond the float range (a wild trial step on an unbounded parameter) is a SolverError, which
        the residuals turn into a failed point."""
        out = np.asarray(z, dtype=np.float64).copy()
        log = self.scales_log
        with np.errstate(over="ignore"):
            out[log] = np.exp(out[log])
        if not np.all(np.isfinite(out)):
            bad = [u.name for u, v in zip(self.unknowns, out, strict=True) if not math.isfinite(v)]
            raise SolverError(f"{', '.join(bad)}: not a finite number (a log-scale step past the floating-point "
                              "range)")
        for k, u in enumerate(self.unknowns):
            if u.lower is not None and out[k] < u.lower:
                out[k] = u.lower
            if u.upper is not None and out[k] > u.upper:
                out[k] = u.upper
        return out

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
        with np.errstate(over="ignore"):
            return np.where(self.scales_log, np.exp(np.where(self.scales_log, z, 0.0)), 1.0)

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
            for method, solver in dict.fromkeys(((self.sens_method, self.sens_solver), ("forward", "explicit"))):
                try:
                    res = loss_and_gradient(prob, params=p, x0=x0, method=method, jacobian=True,
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


class MultipleShooting:
    """Segments with their own initial states (all states, transformed like x0) and continuity residuals
    (log-state mismatch / ``tol`` for positive states, mismatch / (tol * scale) otherwise).

    Unknowns: the single-shooting z (parameters, x0 = the first segment's start) followed by every later
    segment's start state. Data residuals of samples in [t_k, t_k+1) belong to segment k."""

    def __init__(self, fp: FitProblem, n_segments: int, *, tol: float = 1e-3) -> None:
        self.fp, self.tol = fp, tol
        m = fp.model
        self.segments: list[list[tuple[int, int, Problem]]] = []   # per experiment: (start, end, problem)
        for e, prob in enumerate(fp.problems):
            nt = len(prob.times)
            k = max(1, min(n_segments, (nt - 1) // 8))
            edges = np.unique(np.linspace(0, nt - 1, k + 1).round().astype(int))
            segs = []
            for a, b in itertools.pairwise(edges):
                sub = Problem(m, fp.datasets[e], window=(prob.times[a], prob.times[b]))
                if b != nt - 1:    # the end sample belongs to the next segment
                    sub.data = sub.data.copy()
                    sub.data[-1] = np.nan
                    sub.sigma = sub.sigma.copy()
                    sub.sigma[-1] = 1.0
                    sub.observed = np.isfinite(sub.data)
                    sub.n_observations = int(sub.observed.sum())
                segs.append((int(a), int(b), sub))
            self.segments.append(segs)
        spec = m.spec
        self.state_scale = [_state_scale(spec.states[s]) if spec.states[s].x0 > 0 else
                            ("log" if spec.states[s].lower is not None and spec.states[s].lower >= 0 else "lin")
                            for s in m.states]
        self.n_base = len(fp.unknowns)
        self.n_extra = sum(len(s) - 1 for s in self.segments) * fp.nx
        ref = np.array([max(abs(v), 1e-6) for v in fp.x0_base[0]])
        self.lin_scale = ref

    def _to_s(self, x: np.ndarray) -> np.ndarray:
        return np.array([math.log(max(v, 1e-12)) if sc == "log" else v
                         for v, sc in zip(x, self.state_scale, strict=True)])

    def _from_s(self, s: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):     # an overflow is an infinite state: a failed trial point
            return np.array([np.exp(v) if sc == "log" else v for v, sc in zip(s, self.state_scale, strict=True)])

    def initial(self, z: np.ndarray) -> np.ndarray:
        """Segment starts from the data (observed states) and a simulation at z (hidden ones)."""
        fp = self.fp
        p, x0s = fp.vectors(z)
        extra = []
        for e, segs in enumerate(self.segments):
            prob = fp.problems[e]
            res = fp.model.backend.integrate(prob.times, x0s[e], p, prob.U, rtol=1e-6, atol=1e-8, method="auto")
            X = np.array(res.x, dtype=float)
            if res.status != 0 or not np.all(np.isfinite(X)):
                X = np.tile(x0s[e], (len(prob.times), 1))
            for o, name in enumerate(fp.model.observables):
                if name in fp.model.states:
                    i = fp.model.states.index(name)
                    col = prob.data[:, o]
                    for a, _, _ in segs[1:]:
                        win = col[max(0, a - 2): a + 3]
                        win = win[np.isfinite(win)]
                        if win.size:
                            X[a, i] = float(np.median(win))
            for a, _, _ in segs[1:]:
                lo = np.array([fp.model.spec.states[s].lower if fp.model.spec.states[s].lower is not None
                               else -np.inf for s in fp.model.states])
                extra.append(self._to_s(np.maximum(X[a], np.where(np.isfinite(lo), np.maximum(lo, 1e-9), X[a]))))
        return np.concatenate([z, *extra]) if extra else z.copy()

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lb = np.concatenate([self.fp.lb, np.full(self.n_extra, -np.inf)])
        ub = np.concatenate([self.fp.ub, np.full(self.n_extra, np.inf)])
        for k in range(self.n_extra):
            sc = self.state_scale[k % self.fp.nx]
            if sc == "log":
                lb[self.n_base + k], ub[self.n_base + k] = -40.0, 40.0
        return lb, ub

    def _eval(self, w: np.ndarray, jacobian: bool) -> tuple[np.ndarray, np.ndarray | None]:
        fp = self.fp
        z = w[: self.n_base]
        p, x0s = fp.vectors(z)
        d = fp.dtheta_dz(z)
        nx = fp.nx
        rs, Js = [], []
        off = self.n_base
        pcols = [nx + j for j in fp.p_cols]
        for e, segs in enumerate(self.segments):
            for k, (_a, _b, sub) in enumerate(segs):
                if k == 0:
                    x0 = x0s[e]
                    own = None
                else:
                    sv = w[off + (k - 1) * nx: off + k * nx]
                    x0 = self._from_s(sv)
                    own = off + (k - 1) * nx
                nxt = off + k * nx if k + 1 < len(segs) else None
                if not jacobian:
                    res = fp.model.backend.integrate(sub.times, x0, p, sub.U, rtol=fp.rtol, atol=fp.atol,
                                                     method="auto")
                    if res.status != 0 or not np.all(np.isfinite(res.x)):
                        raise SolverError("segment solve failed")
                    _, r = fp.model.backend.residual_loss(sub.times, res.x, p, sub.U, sub.data, sub.sigma)
                    rs.append(r.reshape(-1)[sub.observed.reshape(-1)])
                    xend = res.x[-1]
                else:
                    g = loss_and_gradient(sub, params=p, x0=x0, method=fp.sens_method, jacobian=True,
                                          rtol=fp.rtol, atol=fp.atol, solver=fp.sens_solver)
                    res, S = fp.model.backend.sensitivities(sub.times, x0, p, sub.U, rtol=fp.rtol, atol=fp.atol,
                                                            method="explicit")
                    if res.status != 0:
                        raise SolverError("segment sensitivities failed")
                    xend, Send = res.x[-1], S[-1]
                    rs.append(g.residuals)
                    Jd = np.zeros((len(g.residuals), len(w)))
                    Jd[:, fp.p_pos] = g.residual_jacobian[:, pcols] * d[fp.p_pos]
                    if own is None:
                        for kk, i in fp.x_pos[e]:
                            Jd[:, kk] = g.residual_jacobian[:, i] * d[kk]
                    else:
                        Jd[:, own: own + nx] = g.residual_jacobian[:, :nx] * self._ds(x0)
                    Js.append(Jd)
                if nxt is not None:
                    snext = w[nxt: nxt + nx]
                    xn = self._from_s(snext)
                    c, dc_dx = self._continuity(xend, xn)
                    rs.append(c)
                    if jacobian:
                        Jc = np.zeros((nx, len(w)))
                        Jc[:, fp.p_pos] = (dc_dx[:, None] * Send[:, pcols]) * d[fp.p_pos]
                        if own is None:
                            for kk, i in fp.x_pos[e]:
                                Jc[:, kk] = dc_dx * Send[:, i] * d[kk]
                        else:
                            Jc[:, own: own + nx] = dc_dx[:, None] * Send[:, :nx] * self._ds(x0)[None, :]
                        Jc[np.arange(nx), nxt + np.arange(nx)] = -self._dcn(xn)
                        Js.append(Jc)
            off += (len(segs) - 1) * nx
        gz, G = fp._gauge_rows(z)
        rs.append(gz)
        if jacobian:
            Gw = np.zeros((G.shape[0], len(w)))
            Gw[:, : self.n_base] = G
            Js.append(Gw)
        return np.concatenate(rs), (np.vstack(Js) if jacobian else None)

    def _ds(self, x: np.ndarray) -> np.ndarray:
        return np.array([v if sc == "log" else 1.0 for v, sc in zip(x, self.state_scale, strict=True)])

    def _continuity(self, xend: np.ndarray, xn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = np.empty(len(xn))
        dc = np.empty(len(xn))
        for i, sc in enumerate(self.state_scale):
            if sc == "log":
                xe = max(xend[i], 1e-12)
                c[i] = (math.log(xe) - math.log(xn[i])) / self.tol
                dc[i] = 1.0 / (xe * self.tol) if xend[i] > 1e-12 else 0.0
            else:
                c[i] = (xend[i] - xn[i]) / (self.tol * self.lin_scale[i])
                dc[i] = 1.0 / (self.tol * self.lin_scale[i])
        return c, dc

    def _dcn(self, xn: np.ndarray) -> np.ndarray:
        # d c / d s_next: log states: -1/tol (s = log x); linear: -1/(tol*scale)
        return np.array([1.0 / self.tol if sc == "log" else 1.0 / (self.tol * self.lin_scale[i])
                         for i, sc in enumerate(self.state_scale)])

    def residuals(self, w: np.ndarray) -> np.ndarray:
        try:
            r, _ = self._eval(w, False)
        except SolverError:
            return np.full(self._n_res(), FAIL_RESIDUAL)
        return r if np.all(np.isfinite(r)) else np.full(len(r), FAIL_RESIDUAL)

    def _n_res(self) -> int:
        n = sum(sub.n_observations for segs in self.segments for _, _, sub in segs)
        n += sum(len(s) - 1 for s in self.segments) * self.fp.nx
        return n + (0 if self.fp.gauge is None else self.fp.gauge.shape[1])

    def jacobian(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r, J = self._eval(w, True)
        return r, J  # type: ignore[return-value]


@dataclass
class FitResult:
    """Fitted values, uncertainty and diagnostics (see :meth:`to_json`)."""

    spec: Spec                                   # the input spec
    names: list[str]                             # estimated quantities (parameters, then "x0.<state>")
    scales: list[str]
    z: np.ndarray                                # transformed optimum
    theta: np.ndarray                            # natural optimum
    parameters: dict[str, float]                 # every model parameter (fixed ones included)
    x0: list[dict[str, float]]                   # per experiment, every state
    objective: float                             # 1/2 sum r^2 (Gaussian negative log-likelihood + const)
    n_obs: int
    converged: bool
    iterations: int
    wall_time_s: float
    message: str = ""
    interrupted: bool = False
    stages: list[dict[str, Any]] = field(default_factory=list)
    fisher: Any = None                           # identifiability.FisherResult
    symmetries: list[Any] = field(default_factory=list)
    multistart: list[dict[str, Any]] = field(default_factory=list)
    spread: dict[str, list[float]] = field(default_factory=dict)
    profiles: list[Any] = field(default_factory=list)
    datasets: list[Dataset] = field(default_factory=list, repr=False)
    problem: FitProblem | None = field(default=None, repr=False)
    no_fisher_reason: str = "no uncertainty analysis (fit interrupted)"

    @property
    def estimated_parameters(self) -> list[str]:
        return [n for n in self.names if not n.startswith("x0.")]

    @property
    def intervals(self) -> dict[str, dict[str, list[float | None]]]:
        """{name: {"0.95": [lo, hi], "0.99": [lo, hi]}} for every estimated quantity (None: open)."""
        out: dict[str, dict[str, list[float | None]]] = {}
        for i, n in enumerate(self.names):
            if self.fisher is not None:
                iv = {lev: list(v) for lev, v in self.fisher.intervals[n].items()}
            else:
                u = self.problem.unknowns[i] if self.problem is not None else None
                b = [u.lower, u.upper] if u is not None else [None, None]
                iv = {"0.95": list(b), "0.99": list(b)}
            prof = next((p for p in self.profiles if p.name == n), None)
            if prof is not None:      # likelihood intervals where profiled (wider of the two)
                for lev in ("0.95", "0.99"):
                    iv[lev] = _union(iv[lev], prof.intervals[lev])
            if n in self.spread:      # starts statistically indistinguishable from the best
                for lev in ("0.95", "0.99"):
                    iv[lev] = _union(iv[lev], self.spread[n])
            out[n] = iv
        return out

    @property
    def identifiable(self) -> dict[str, bool]:
        if self.fisher is None:
            return {n: False for n in self.names}
        flags = dict(self.fisher.identifiable)
        for n, (lo, hi) in self.spread.items():   # indistinguishable optima far apart: not identifiable
            v = self.theta[self.names.index(n)]
            if lo > 0 and hi > 0 and v > 0 and math.log(hi / lo) > 2 * REL_SE_MAX:
                flags[n] = False
        for p in self.profiles:
            if p.name in flags and not p.identifiable:
                flags[p.name] = False
        return flags

    def reasons(self) -> dict[str, str]:
        out = dict(self.fisher.reasons) if self.fisher is not None else {}
        ident = self.identifiable
        for n, (lo, hi) in self.spread.items():
            if not ident.get(n, True) and n not in out:
                out[n] = f"multi-start: equally good optima from {lo:.3g} to {hi:.3g}"
        for p in self.profiles:
            if not p.identifiable and p.name in ident:
                out[p.name] = (out.get(p.name, "") + "; " if p.name in out else "") + "flat profile likelihood"
        if self.fisher is None:
            for n in self.names:
                out.setdefault(n, self.no_fisher_reason)
        return out

    def fitted_spec(self) -> Spec:
        """The spec with the fitted parameter values and the first experiment's initial states."""
        return self.spec.with_values(self.parameters, self.x0[0] if self.x0 else None)

    def to_json(self) -> dict[str, Any]:
        def num(v: Any) -> float | None:
            return None if v is None or not np.isfinite(v) else float(v)

        est = self.estimated_parameters
        iv = self.intervals
        ident = self.identifiable
        out: dict[str, Any] = {
            "parameters": {n: float(self.parameters[n]) for n in self.parameters},
            "x0": {k: float(v) for k, v in (self.x0[0] if self.x0 else {}).items()},
            "confidence_intervals": {n: {lev: [num(a) for a in iv[n][lev]] for lev in ("0.95", "0.99")}
                                     for n in est},
            "identifiable": {n: bool(ident[n]) for n in est},
            "objective": float(self.objective),
            "converged": bool(self.converged),
            "iterations": int(self.iterations),
            "wall_time_s": float(self.wall_time_s),
        }
        reasons = self.reasons()
        out["reasons"] = {n: reasons[n] for n in self.names if n in reasons}
        out["estimated"] = list(self.names)
        out["objective_definition"] = "1/2 sum ((y - data) / sigma)^2 over observed values"
        out["weighted_ssr"] = 2.0 * float(self.objective)
        out["n_observations"] = int(self.n_obs)
        if self.fisher is not None:
            f = self.fisher
            out["standard_errors"] = {n: {"transformed": num(f.se_transformed[i]), "relative": num(f.rel_se[i]),
                                          "natural": num(f.se_natural[i]) if f.se_natural is not None else None,
                                          "scale": f.scales[i]} for i, n in enumerate(f.names)}
            out["identifiable_combinations"] = list(f.combinations)
            out["null_directions"] = f.null_directions
            out["fisher_rank"] = int(f.rank)
            out["residual_variance_factor"] = num(f.s2)
        out["x0_confidence_intervals"] = {n: {lev: [num(a) for a in iv[n][lev]] for lev in ("0.95", "0.99")}
                                          for n in self.names if n.startswith("x0.")}
        out["x0_identifiable"] = {n: bool(ident[n]) for n in self.names if n.startswith("x0.")}
        if len(self.x0) > 1:
            out["x0_experiments"] = [{k: float(v) for k, v in x.items()} for x in self.x0]
        out["symmetries"] = [s.to_dict() for s in self.symmetries]
        if self.multistart:
            out["multistart"] = {"starts": self.multistart,
                                 "indistinguishable_threshold": CHI2_1_99 / 2,
                                 "spread": {n: [float(a), float(b)] for n, (a, b) in self.spread.items()}}
        if self.profiles:
            out["profiles"] = {p.name: p.to_dict() for p in self.profiles}
        out["stages"] = self.stages
        out["message"] = self.message
        out["interrupted"] = bool(self.interrupted)
        return out


def _union(a: Sequence[float | None], b: Sequence[float | None]) -> list[float | None]:
    lo = None if a[0] is None or b[0] is None else min(a[0], b[0])
    hi = None if a[1] is None or b[1] is None else max(a[1], b[1])
    return [lo, hi]


@dataclass
class Progress:
    """What a callback sees: stage name, iteration, objective, best objective so far, elapsed time."""

    stage: str
    iteration: int
    objective: float
    best: float
    elapsed: float
    z: np.ndarray


class Tracker:
    def __init__(self, fp: FitProblem, callback: Callable[[Progress], None] | None, bar: Any,
                 t0: float) -> None:
        self.fp, self.callback, self.bar, self.t0 = fp, callback, bar, t0
        self.best_z: np.ndarray | None = None
        self.best = math.inf
        self.iterations = 0
        self.stage = ""

    def offer(self, z: np.ndarray, loss: float) -> None:
        if np.isfinite(loss) and loss < self.best:
            self.best, self.best_z = float(loss), np.array(z[: len(self.fp.unknowns)], dtype=float)

    def __call__(self, it: int, z: np.ndarray, loss: float) -> None:
        self.iterations += 1
        if self.stage == "single shooting":
            self.offer(z, loss)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{self.stage}: objective {loss:.6g}")
        if self.callback is not None:
            self.callback(Progress(self.stage, self.iterations, float(loss), self.best,
                                   time.perf_counter() - self.t0, np.array(z[: len(self.fp.unknowns)])))


def _as_model(spec_or_model: Spec | Model | str | Path) -> Model:
    if isinstance(spec_or_model, Model):
        return spec_or_model
    spec = spec_or_model if isinstance(spec_or_model, Spec) else load_spec(spec_or_model)
    return build_model(spec)


def as_datasets(datasets: Dataset | str | Path | Sequence[Dataset | str | Path]) -> list[Dataset]:
    from symode.spec.data import read_csv

    if isinstance(datasets, (Dataset, str, Path)):
        datasets = [datasets]
    return [d if isinstance(d, Dataset) else read_csv(d) for d in datasets]


def fit(spec_or_model: Spec | Model | str | Path, datasets: Dataset | str | Path | Sequence[Any], *,
        method: str = "lm", multistart: int = 0, shooting: str = "auto", progress: bool = True,
        fixed: Sequence[str] = (), x0: Sequence[dict[str, float]] | None = None, segments: int = 12,
        max_iter: int = 400, max_time: float | None = None, rtol: float = 1e-8, atol: float = 1e-10,
        seed: int = 0, workers: int | None = None, profile: bool | Sequence[str] = False,
        symmetries: bool = True, callback: Callable[[Progress], None] | None = None,
        neural: bool = True) -> FitResult:
    """Fit the estimated parameters (and initial states) of a spec to one or more data sets.

    method: "lm" (Levenberg-Marquardt with geodesic acceleration and the exact residual Jacobian,
    the default), "trf" (scipy's trust-region reflective) or "lbfgs" (L-BFGS-B with adjoint gradients,
    for many parameters). shooting: "single", "multiple" (a multiple-shooting stage first, then single
    shooting) or "auto" (multiple shooting only if single shooting from the start fails or stalls far
    above the noise level). multistart: extra Latin-hypercube starts in the transformed box (run in
    parallel, ``workers`` processes; default all cores). fixed: parameter names held at their values.
    profile: profile likelihoods (True: every estimated parameter not moved by an exact symmetry).
    callback(Progress) after every iteration; raising KeyboardInterrupt or FitInterrupted stops the
    fit and returns the best point so far with converged = False. max_time: seconds per local fit
    (default 1800).

    A spec with neural terms (estimated network weights) goes to :func:`symode.neural.fit_hybrid` unless
    ``neural`` is False: warm-started multi-start Levenberg-Marquardt over a curriculum of horizons, on
    one data set, within ``max_time`` seconds in all (default :data:`symode.neural.HYBRID_TIME_LIMIT`);
    ``multistart`` adds starts, ``workers`` processes run them. The result has no Fisher analysis
    (intervals are the bounds, nothing is flagged identifiable); ``stages`` lists every start.
    """
    t0 = time.perf_counter()
    if method not in ("lm", "trf", "lbfgs"):
        raise SymodeError(f"unknown fit method {method!r} (lm, trf, lbfgs)", field="method")
    if shooting not in ("auto", "single", "multiple"):
        raise SymodeError(f"unknown shooting {shooting!r} (auto, single, multiple)", field="shooting")
    model = _as_model(spec_or_model)
    data = as_datasets(datasets)
    if neural and any(model.spec.parameters[w].estimate and w not in fixed for w in model.spec.neural_weights):
        return _fit_neural(model, data, fixed=fixed, x0=x0, max_time=max_time, multistart=multistart,
                           workers=workers, progress=progress, rtol=rtol, atol=atol, t0=t0)
    max_time = 1800.0 if max_time is None else max_time
    fp = FitProblem(model, data, fixed=fixed, x0=x0, rtol=rtol, atol=atol)
    if not fp.unknowns:
        raise SymodeError("nothing to estimate (every parameter and initial state is fixed)")
    syms: list[Any] = []
    if symmetries:
        syms = _symmetries(model, fp)
    z_start = fp.z_from_values()
    _apply_gauge(fp, syms, z_start)
    bar = _bar(progress, max_iter)
    tracker = Tracker(fp, callback, bar, t0)
    tracker.offer(z_start, fp.loss(z_start))
    stages: list[dict[str, Any]] = []
    interrupted = False
    converged = False
    message = ""
    try:
        z, converged, message = local_fit(fp, z_start, method=method, shooting=shooting, segments=segments,
                                           max_iter=max_iter, max_time=max_time, tracker=tracker, stages=stages)
        tracker.offer(z, fp.loss(z))
        starts: list[dict[str, Any]] = []
        spread: dict[str, list[float]] = {}
        if multistart > 0:
            tracker.stage = "multi-start"
            starts = _multistart(fp, syms, multistart, seed=seed, workers=workers, method=method,
                                 shooting=shooting, segments=segments, max_iter=max_iter, max_time=max_time,
                                 t_start=t0, progress=progress)
            starts.insert(0, {"start": "spec", "objective": float(fp.loss(z)), "converged": converged,
                              "z": z.tolist()})
            best = min(starts, key=lambda s: s["objective"])
            if best["objective"] < fp.loss(z) - 1e-6:
                z = np.array(best["z"])
                converged = bool(best["converged"])
                message = f"best of {len(starts)} starts: {best['start']}"
                tracker.offer(z, fp.loss(z))
            spread = _spread(fp, starts, syms)
    except (KeyboardInterrupt, FitInterrupted):
        interrupted, converged = True, False
        message = "interrupted: best point so far"
        z = tracker.best_z if tracker.best_z is not None else z_start
        starts, spread = [], {}
    finally:
        if bar is not None:
            bar.close()
    z = np.asarray(z, dtype=float)
    loss = fp.loss(z)
    result = _result(fp, z, loss, converged, tracker.iterations, t0, message, interrupted, stages, syms)
    result.multistart = [{k: v for k, v in s.items() if k != "z"} | {"parameters": _named(fp, s["z"])}
                         for s in starts]
    result.spread = spread
    if not interrupted:
        try:
            result.fisher = _fisher(fp, z, loss, syms)
            _robust_fisher(fp, z, loss, syms, result, progress=progress)
            _check_borderline(fp, z, loss, syms, result, progress=progress, skip=profile)
            if profile:
                result.profiles = _profiles(fp, z, loss, result, profile, progress=progress)
        except (KeyboardInterrupt, FitInterrupted):
            result.interrupted, result.converged = True, False
            result.message = "interrupted during the uncertainty analysis"
    result.wall_time_s = time.perf_counter() - t0
    return result


def _fit_neural(model: Model, data: list[Dataset], *, fixed: Sequence[str], x0: Sequence[dict[str, float]] | None,
                max_time: float | None, multistart: int, workers: int | None, progress: bool, rtol: float,
                atol: float, t0: float) -> FitResult:
    """:func:`fit` for a spec with neural terms: :func:`symode.neural.fit_hybrid`, wrapped as a FitResult."""
    import sys

    from symode.hybrid.neural import HYBRID_TIME_LIMIT, fit_hybrid

    if len(data) != 1:
        raise SymodeError(f"a model with neural terms is fitted to one data set at a time (got {len(data)})")
    check_data(model.spec, data[0])
    spec = model.spec.copy()
    for name in fixed:
        if name.startswith("x0.") and name[3:] in spec.states:
            spec.states[name[3:]].estimate = False
        elif name in spec.parameters:
            spec.parameters[name].estimate = False
        else:
            raise SymodeError(f"unknown parameter(s) to fix: {name}")
    if x0:
        spec = spec.with_values(x0=x0[0])
    say = (lambda s: print(s, file=sys.stderr, flush=True)) if progress else None
    res = fit_hybrid(spec, data[0], time_limit=HYBRID_TIME_LIMIT if max_time is None else max_time,
                     workers=workers, extra_starts=multistart, log=say)
    fitted = res.spec
    fp = FitProblem(build_model(fitted), data, fixed=fixed, rtol=rtol, atol=atol)
    z = fp.z_from_values()
    p, x0s = fp.vectors(z)
    def num(v: Any) -> float | None:
        return float(v) if v is not None and np.isfinite(v) else None

    starts, stages = [], []
    for h in res.history:
        parts = h.get("stages") or [{}]
        starts.append({"start": f"{h['phase']}: {h['name']}", "objective": num(h.get("objective")),
                       "score": num(h.get("score")), "iterations": int(sum(s.get("iterations", 0) for s in parts)),
                       "converged": "converged" in str(parts[-1].get("message", "")),
                       "message": str(h.get("error") or parts[-1].get("message", "")),
                       "time_s": round(float(h.get("seconds", 0.0)), 2),
                       "curriculum": [{k: num(v) if isinstance(v, float) else v for k, v in s.items()} for s in parts]})
    for phase in ("explore", "refine"):
        rows = [s for s in starts if s["start"].startswith(phase) and s["objective"] is not None]
        if rows:
            best = min(rows, key=lambda s: s["score"] if s["score"] is not None else math.inf)
            stages.append({"stage": f"neural {phase} ({len(rows)} starts, best {best['start'].split(': ')[1]})",
                           "objective": best["objective"], "iterations": sum(s["iterations"] for s in rows),
                           "converged": best["converged"], "message": best["message"],
                           "time_s": max(s["time_s"] for s in rows)})
    result = FitResult(spec=model.spec, names=fp.names, scales=fp.scales, z=z, theta=fp.natural(z),
                       parameters={n: float(p[j]) for j, n in enumerate(model.parameters)},
                       x0=[{s: float(v) for s, v in zip(model.states, x, strict=True)} for x in x0s],
                       objective=fp.loss(z), n_obs=fp.n_obs, converged="time limit" not in res.stopped,
                       iterations=res.n_gradients, wall_time_s=time.perf_counter() - t0,
                       message=f"neural training: {res.stopped}", stages=stages, datasets=data, problem=fp,
                       no_fisher_reason="no uncertainty analysis (model with neural terms)")
    result.multistart = starts
    return result


def _named(fp: FitProblem, z: Sequence[float]) -> dict[str, float]:
    return {n: float(v) for n, v in zip(fp.names, fp.natural(np.asarray(z, dtype=float)), strict=True)}


def _bar(progress: bool, total: int) -> Any:
    if not progress:
        return None
    try:
        from tqdm import tqdm

        return tqdm(total=total, desc="fit", unit="it", leave=False, dynamic_ncols=True)
    except Exception:  # pragma: no cover
        return None


def _symmetries(model: Model, fp: FitProblem) -> list[Any]:
    try:
        from symode.symbolic.symmetries import scaling_symmetries
    except ImportError:  # pragma: no cover - module not available
        return []
    try:
        syms = scaling_symmetries(model)
    except Exception:   # symmetry detection is a refinement: never block a fit
        return []
    return syms


def _apply_gauge(fp: FitProblem, syms: Sequence[Any], ref: np.ndarray) -> None:
    if not syms:
        fp.set_gauge(None, ref)
        return
    from symode.symbolic.symmetries import symmetry_directions

    W = symmetry_directions(syms, fp.names)
    lin = [i for i, s in enumerate(fp.scales) if s != "log"]
    keep = [k for k in range(W.shape[1]) if np.any(W[:, k]) and not np.any(W[lin, k])]
    fp.set_gauge(W[:, keep] if keep else None, ref)


def local_fit(fp: FitProblem, z0: np.ndarray, *, method: str, shooting: str, segments: int, max_iter: int,
               max_time: float, tracker: Tracker, stages: list[dict[str, Any]]) -> tuple[np.ndarray, bool, str]:
    """Single shooting from z0; multiple shooting first (or as a fallback when single shooting fails or
    stalls far above the noise level)."""
    t_start = time.perf_counter()
    expected = 0.5 * fp.n_obs
    z = z0
    if shooting == "multiple":
        z = _ms_stage(fp, z, segments, max_iter, max_time, tracker, stages)
    tracker.stage = "single shooting"
    z1, conv, msg = _single(fp, z, method, max_iter, max_time - (time.perf_counter() - t_start), tracker, stages)
    L1 = fp.loss(z1)
    failed = not np.isfinite(L1) or (L1 > 3.0 * expected + 50 and (not conv or L1 > 10 * expected))
    if shooting == "auto" and failed:
        zm = _ms_stage(fp, z0, segments, max_iter, max_time - (time.perf_counter() - t_start), tracker, stages)
        tracker.stage = "single shooting"
        z2, conv2, msg2 = _single(fp, zm, method, max_iter, max_time - (time.perf_counter() - t_start), tracker,
                                  stages)
        if fp.loss(z2) < L1:
            return z2, conv2, "multiple shooting, then " + msg2
    return z1, conv, msg


def _single(fp: FitProblem, z: np.ndarray, method: str, max_iter: int, max_time: float, tracker: Tracker,
            stages: list[dict[str, Any]]) -> tuple[np.ndarray, bool, str]:
    t = time.perf_counter()
    L0 = fp.loss(z)
    if method == "lbfgs":
        zf, conv, msg, it = _lbfgs(fp, z, max_iter, tracker)
    elif method == "trf":
        zf, conv, msg, it = _trf(fp, z, max_iter, tracker)
    else:
        res = levenberg_marquardt(fp.residuals, fp.jacobian, z, fp.lb, fp.ub, max_iter=max_iter,
                                  max_time=max(max_time, 1.0), callback=tracker)
        zf, conv, msg, it = res.z, res.converged, res.message, res.iterations
    stages.append({"stage": f"single shooting ({method})", "start_objective": float(L0),
                   "objective": float(fp.loss(zf)), "iterations": int(it), "converged": bool(conv),
                   "message": msg, "time_s": round(time.perf_counter() - t, 3)})
    return zf, conv, msg


def _ms_stage(fp: FitProblem, z: np.ndarray, segments: int, max_iter: int, max_time: float, tracker: Tracker,
              stages: list[dict[str, Any]]) -> np.ndarray:
    t = time.perf_counter()
    tracker.stage = "multiple shooting"
    ms = MultipleShooting(fp, segments)
    w0 = ms.initial(z)
    lb, ub = ms.bounds()
    w0 = np.clip(w0, lb, ub)
    res = levenberg_marquardt(ms.residuals, ms.jacobian, w0, lb, ub, max_iter=max_iter,
                              max_time=max(max_time, 1.0), callback=tracker, ftol=1e-2)
    zf = res.z[: ms.n_base]
    stages.append({"stage": f"multiple shooting ({sum(len(s) for s in ms.segments)} segments)",
                   "objective": float(res.loss), "single_shooting_objective": float(fp.loss(zf)),
                   "iterations": res.iterations, "converged": res.converged, "message": res.message,
                   "time_s": round(time.perf_counter() - t, 3)})
    return zf


def _trf(fp: FitProblem, z: np.ndarray, max_iter: int, tracker: Tracker) -> tuple[np.ndarray, bool, str, int]:
    from scipy.optimize import least_squares

    count = [0]

    def jac(zz: np.ndarray) -> np.ndarray:
        r, J = fp.jacobian(zz)
        count[0] += 1
        tracker(count[0], zz, 0.5 * float(r @ r))
        return J

    res = least_squares(fp.residuals, z, jac=jac, bounds=(fp.lb, fp.ub), method="trf", x_scale="jac",
                        max_nfev=max_iter * 2, ftol=1e-10, xtol=1e-10, gtol=1e-8)
    return res.x, bool(res.status > 0), str(res.message), count[0]


def _lbfgs(fp: FitProblem, z: np.ndarray, max_iter: int, tracker: Tracker) -> tuple[np.ndarray, bool, str, int]:
    """L-BFGS-B on the loss with adjoint (discrete) gradients; cost nearly independent of #parameters."""
    from scipy.optimize import minimize

    def fg(zz: np.ndarray) -> tuple[float, np.ndarray]:
        p, x0s = fp.vectors(zz)
        d = fp.dtheta_dz(zz)
        total, grad = 0.0, np.zeros(len(zz))
        for e, (prob, x0) in enumerate(zip(fp.problems, x0s, strict=True)):
            try:
                g = loss_and_gradient(prob, params=p, x0=x0, method="auto", rtol=fp.rtol, atol=fp.atol)
            except SolverError:
                return 1e300, np.zeros(len(zz))
            total += g.loss
            grad[fp.p_pos] += g.grad_p[fp.p_cols]
            for k, i in fp.x_pos[e]:
                grad[k] += g.grad_x0[i]
        grad *= d
        gz, G = fp._gauge_rows(zz)
        return total + 0.5 * float(gz @ gz), grad + G.T @ gz

    count = [0]

    def cb(zz: np.ndarray) -> None:
        count[0] += 1
        tracker(count[0], zz, fp.loss(zz))

    bounds = [(None if not np.isfinite(a) else a, None if not np.isfinite(b) else b) for a, b in zip(fp.lb, fp.ub,
                                                                                                    strict=True)]
    res = minimize(fg, z, jac=True, method="L-BFGS-B", bounds=bounds, callback=cb,
                   options={"maxiter": max_iter * 10, "ftol": 1e-14, "gtol": 1e-8})
    return res.x, bool(res.success), str(res.message), int(res.nit)


def _fisher(fp: FitProblem, z: np.ndarray, loss: float, syms: Sequence[Any]) -> Any:
    from symode.identifiability.core import fisher_analysis

    _, J = fp.jacobian(z, gauge=False)
    bounds = {u.name: (u.lower, u.upper) for u in fp.unknowns}
    return fisher_analysis(J, fp.names, fp.natural(z), scales=fp.scales, n_obs=fp.n_obs, loss=loss,
                           symmetries=syms, bounds=bounds, rel_se_max=REL_SE_MAX)


def _result(fp: FitProblem, z: np.ndarray, loss: float, converged: bool, iterations: int, t0: float,
            message: str, interrupted: bool, stages: list[dict[str, Any]], syms: Sequence[Any]) -> FitResult:
    p, x0s = fp.vectors(z)
    params = {n: float(v) for n, v in zip(fp.model.parameters, p, strict=True)}
    x0 = [{n: float(v) for n, v in zip(fp.model.states, x, strict=True)} for x in x0s]
    return FitResult(spec=fp.model.spec, names=list(fp.names), scales=list(fp.scales), z=z,
                     theta=fp.natural(z), parameters=params, x0=x0, objective=float(loss), n_obs=fp.n_obs,
                     converged=converged, iterations=iterations, wall_time_s=time.perf_counter() - t0,
                     message=message, interrupted=interrupted, stages=stages, symmetries=list(syms),
                     datasets=fp.datasets, problem=fp)


def _multistart(fp: FitProblem, syms: Sequence[Any], n: int, *, seed: int, workers: int | None, method: str,
                shooting: str, segments: int, max_iter: int, max_time: float, t_start: float,
                progress: bool) -> list[dict[str, Any]]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    z_ref = fp.z_from_values()
    lb, ub = fp.lb.copy(), fp.ub.copy()
    # initial states: sample around the spec's values (+-2 in log), parameters over their whole box
    for k, u in enumerate(fp.unknowns):
        if u.kind == "x0":
            half = 2.0 if u.scale == "log" else max(abs(u.value), 1.0)
            lb[k], ub[k] = max(lb[k], z_ref[k] - half), min(ub[k], z_ref[k] + half)
    points = latin_hypercube(lb, ub, n, seed=seed, center=z_ref)
    jobs = [dict(spec=fp.model.spec, datasets=fp.datasets, z=pt, fixed=[u for u in fp.model.spec.parameters
                                                                        if u not in fp.names and
                                                                        fp.model.spec.parameters[u].estimate],
                 x0=[{s: float(v) for s, v in zip(fp.model.states, x, strict=True)} for x in fp.x0_base],
                 method=method, shooting=shooting, segments=segments, max_iter=max_iter,
                 max_time=max_time, rtol=fp.rtol, atol=fp.atol, symmetries=bool(syms))
            for pt in points]
    workers = workers or os.cpu_count() or 1
    out: list[dict[str, Any]] = []
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=n, desc="multi-start", leave=False)
        except Exception:  # pragma: no cover
            bar = None
    if workers <= 1:
        for k, job in enumerate(jobs):
            out.append({"start": f"lhs-{k}", **_start_worker(job)})
            if bar is not None:
                bar.update(1)
    else:
        ctx = mp.get_context("spawn")
        ex = ProcessPoolExecutor(max_workers=min(workers, n), mp_context=ctx)
        try:
            futs = {ex.submit(_start_worker, job): k for k, job in enumerate(jobs)}
            for fut in as_completed(futs):
                k = futs[fut]
                try:
                    out.append({"start": f"lhs-{k}", **fut.result()})
                except Exception as exc:   # a failed start is reported, not fatal
                    out.append({"start": f"lhs-{k}", "objective": math.inf, "converged": False,
                                "error": str(exc), "z": jobs[k]["z"].tolist()})
                if bar is not None:
                    bar.update(1)
        except BaseException:
            for f in futs:
                f.cancel()
            ex.shutdown(wait=False, cancel_futures=True)
            for proc in list(getattr(ex, "_processes", {}).values()):
                proc.terminate()
            raise
        ex.shutdown(wait=True)
    if bar is not None:
        bar.close()
    out.sort(key=lambda s: s["start"])
    return out


def _start_worker(job: dict[str, Any]) -> dict[str, Any]:
    """One multi-start run in a worker process (builds the model from the compiled cache)."""
    t = time.perf_counter()
    model = build_model(job["spec"])
    fp = FitProblem(model, job["datasets"], fixed=job["fixed"], x0=job["x0"], rtol=job["rtol"], atol=job["atol"])
    syms = _symmetries(model, fp) if job["symmetries"] else []
    z0 = fp.clip(np.asarray(job["z"], dtype=float))
    _apply_gauge(fp, syms, z0)
    tracker = Tracker(fp, None, None, t)
    stages: list[dict[str, Any]] = []
    z, conv, msg = local_fit(fp, z0, method=job["method"], shooting=job["shooting"], segments=job["segments"],
                              max_iter=job["max_iter"], max_time=job["max_time"], tracker=tracker, stages=stages)
    return {"objective": float(fp.loss(z)), "converged": bool(conv), "message": msg, "z": z.tolist(),
            "iterations": tracker.iterations, "time_s": round(time.perf_counter() - t, 2)}


def _spread(fp: FitProblem, starts: list[dict[str, Any]], syms: Sequence[Any]) -> dict[str, list[float]]:
    """Per-parameter [min, max] over starts whose objective is within chi2(1, 0.99)/2 of the best."""
    ok = [s for s in starts if np.isfinite(s["objective"])]
    if not ok:
        return {}
    best = min(s["objective"] for s in ok)
    close = [fp.natural(np.asarray(s["z"], dtype=float)) for s in ok if s["objective"] <= best + CHI2_1_99 / 2]
    if len(close) < 2:
        return {}
    arr = np.array(close)
    return {n: [float(arr[:, i].min()), float(arr[:, i].max())] for i, n in enumerate(fp.names)}


def _profiles(fp: FitProblem, z: np.ndarray, loss: float, result: FitResult, which: bool | Sequence[str], *,
              progress: bool) -> list[Any]:
    from symode.identifiability.core import profile_likelihood

    names = [n for n in fp.names if not n.startswith("x0.")] if which is True else list(which)  # type: ignore[arg-type]
    unknown = [n for n in names if n not in fp.names]
    if unknown:
        raise SymodeError(f"cannot profile {', '.join(unknown)}: not estimated")
    moved = {n for s in result.symmetries for n in fp.names if s.moves(n)}
    theta = fp.natural(z)
    bounds = {u.name: (u.lower, u.upper) for u in fp.unknowns}
    out = []
    for name in names:
        if name in moved:
            continue      # exactly flat: the profile adds nothing (reported as an exact symmetry)
        idx = fp.names.index(name)
        out.append(profile_likelihood(_profile_objective(fp, result.symmetries), theta, idx, names=fp.names,
                                      scales=fp.scales, bounds=bounds, loss_hat=loss, progress=progress,
                                      n_points=12))
    return out


def _profile_objective(fp: FitProblem, syms: Sequence[Any] = ()
                       ) -> Callable[[int, float, np.ndarray], tuple[float, np.ndarray]]:
    """Re-optimise all but one unknown. Symmetries moving the fixed one are broken by fixing it: the
    gauge keeps only the others (pinned at the start of each re-optimisation)."""
    def objective(index: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        keep = [k for k in range(len(fp.unknowns)) if k != index]
        base = np.asarray(start, dtype=float).copy()
        base[index] = value
        saved = (fp.gauge, fp.gauge_ref, fp.gauge_weight)
        if syms:
            from symode.symbolic.symmetries import symmetry_directions

            W = np.zeros((len(fp.names), len(syms)))
            W[keep] = symmetry_directions(syms, [fp.names[k] for k in keep])
            lin = [i for i, sc in enumerate(fp.scales) if sc != "log"]
            cols = [c for c in range(W.shape[1]) if np.any(W[:, c]) and not np.any(W[lin, c])]
            fp.set_gauge(W[:, cols] if cols else None, base)
        try:
            return _profile_solve(fp, base, keep)
        finally:
            fp.gauge, fp.gauge_ref, fp.gauge_weight = saved

    return objective


def _profile_solve(fp: FitProblem, base: np.ndarray, keep: list[int]) -> tuple[float, np.ndarray]:
    """Minimise over the unknowns ``keep`` with the others held at ``base``: (loss, full z)."""
    def full(w: np.ndarray) -> np.ndarray:
        zz = base.copy()
        zz[keep] = w
        return zz

    def fun(w: np.ndarray) -> np.ndarray:
        return fp.residuals(full(w))

    def jac(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r, J = fp.jacobian(full(w))
        return r, J[:, keep]

    res = levenberg_marquardt(fun, jac, base[keep], fp.lb[keep], fp.ub[keep], max_iter=30, ftol=1e-2,
                              stall_window=10, stall_tol=0.02)
    zz = full(res.z)
    return fp.loss(zz), zz


def provisional_result(model: Model, datasets: Sequence[Dataset], info: Progress) -> FitResult:
    """A FitResult of an intermediate point (no uncertainty analysis; converged = False) for checkpoints."""
    fp = FitProblem(model, datasets)
    z = np.asarray(info.z, dtype=float)
    return _result(fp, z, info.objective, False, info.iteration, time.perf_counter() - info.elapsed,
                   f"in progress ({info.stage})", False, [], [])


def _robust_fisher(fp: FitProblem, z: np.ndarray, loss: float, syms: Sequence[Any], result: FitResult, *,
                   progress: bool) -> None:
    """Parameters at a bound freeze their direction: the Fisher matrix there is conditional on them and
    understates the others' uncertainty. Profile each such parameter away from its bound (likelihood
    within the 99% threshold) and merge the Fisher analyses at those points: a parameter is identifiable
    only if it is at every point, and its intervals are the union."""
    from symode.identifiability.core import CHI2_1, profile_likelihood

    f = result.fisher
    if f is None or not f.at_bound:
        return
    theta = fp.natural(z)
    bounds = {u.name: (u.lower, u.upper) for u in fp.unknowns}
    points: list[np.ndarray] = []
    for name in f.at_bound:
        if name.startswith("x0."):
            continue
        idx = fp.names.index(name)
        try:
            prof = profile_likelihood(_profile_objective(fp, syms), theta, idx, names=fp.names, scales=fp.scales,
                                      bounds=bounds, loss_hat=loss, progress=progress, n_points=8,
                                      step=0.5 if fp.scales[idx] == "log" else None, max_evals=8)
        except Exception:   # pragma: no cover - the extra analysis must not lose the fit
            continue
        result.profiles.append(prof)
        for q, th in zip(prof.q, prof.thetas, strict=True):
            if 0 < q < CHI2_1["0.99"]:
                points.append(np.asarray(th, dtype=float))
    merged_iv = {n: {lev: list(v) for lev, v in f.intervals[n].items()} for n in f.names}
    for zz in points:
        try:
            g = _fisher(fp, zz, fp.loss(zz), syms)
        except Exception:  # pragma: no cover
            continue
        for n in f.names:
            if not g.identifiable[n] and f.identifiable[n]:
                f.identifiable[n] = False
                f.reasons[n] = (f"relative SE {g.rel_se[f.names.index(n)]:.0%} at an equally good point away "
                                f"from the bound of {', '.join(f.at_bound)}")
            for lev in ("0.95", "0.99"):
                merged_iv[n][lev] = _union(merged_iv[n][lev], g.intervals[n][lev])
            i = f.names.index(n)
            if g.se_transformed[i] > f.se_transformed[i]:
                f.se_transformed[i] = g.se_transformed[i]
                f.rel_se[i] = g.rel_se[i]
    f.intervals = merged_iv


def _check_borderline(fp: FitProblem, z: np.ndarray, loss: float, syms: Sequence[Any], result: FitResult, *,
                      progress: bool, skip: bool | Sequence[str]) -> None:
    """Wald intervals are only as good as the quadratic approximation: every parameter with a finite
    relative SE above PROFILE_CHECK_SE gets a short profile likelihood; its intervals
    become the union of both, and an open profile side makes it non-identifiable."""
    from symode.identifiability.core import profile_likelihood

    f = result.fisher
    if f is None:
        return
    done = {p.name for p in result.profiles}
    theta = fp.natural(z)
    bounds = {u.name: (u.lower, u.upper) for u in fp.unknowns}
    for i, name in enumerate(f.names):
        if name.startswith("x0.") or name in done or name in f.at_bound:
            continue
        if not (PROFILE_CHECK_SE < f.rel_se[i] < np.inf):
            continue
        step = float(min(max(f.se_transformed[i], 1e-3), 1.0)) if np.isfinite(f.se_transformed[i]) else None
        try:
            prof = profile_likelihood(_profile_objective(fp, syms), theta, i, names=fp.names, scales=fp.scales,
                                      bounds=bounds, loss_hat=loss, progress=progress, n_points=8, step=step,
                                      max_evals=8)
        except Exception:   # pragma: no cover - the check must not lose the fit
            continue
        result.profiles.append(prof)
        if not prof.identifiable and f.identifiable[name]:
            f.identifiable[name] = False
            f.reasons[name] = "profile likelihood open at the 95% level (Wald SE " \
                              f"{f.rel_se[i]:.0%} understates the uncertainty)"
