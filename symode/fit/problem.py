"""The estimation problem: shared parameters and per-experiment initial states of one model fitted to
several data sets, their weighted residuals (plus the spec's penalties, :mod:`symode.fit.penalty`) and
exact residual Jacobian in the transformed space.

Unknowns ``z`` are log(theta) for ``scale: log`` parameters and for positive initial states, theta
otherwise (:mod:`symode.optim.transform`); bounds are mapped into that space. Every experiment shares the
parameters and has its own estimated initial states (``x0.<state>``, or ``x0.<state>[k]`` for the k-th
experiment when there are several). Residuals r = (y - d) / sigma over observed values; the Jacobian
dr/dz = dr/dtheta * dtheta/dz from forward sensitivities. An optional *gauge* adds residuals
w * G^T (z - z_ref) along exact symmetry directions G, pinning the orbit coordinate the loss is exactly
invariant along."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from symode.errors import DataError, SolverError, SymodeError
from symode.fit.penalty import PenaltyTerms
from symode.optim.transform import Transform, parameter_scale, state_scale
from symode.solve.model import Model
from symode.solve.sensitivity import Problem, loss_and_gradient
from symode.spec import Spec
from symode.spec.data import Dataset, check_columns, input_matrix
from symode.symbolic.symmetries import Symmetry, scaling_symmetries, symmetry_directions
from symode.timing import Budget, Timings

#: A residual for a failed solve (the trust region rejects the step).
FAIL_RESIDUAL = 1e6


#: Relative tolerance of the sensitivities an optimiser steps with (at most; the problem's own when
#: tighter is not asked for): the residuals stay at the problem's tolerance. The Jacobian of the
#: discretised solution at 1e-6 agrees with the one at 1e-8 to ~1e-8 (bench/fit.py --breakdown), and a
#: stiff solve at 1e-8 costs 3-4x as much (Rosenbrock steps rejected on round-off-level error estimates).
JAC_RTOL = 1e-6


@dataclass
class Unknown:
    """One estimated quantity."""

    name: str                 # "gA", "x0.Y" or "x0.Y[1]"
    kind: str                 # "param" or "x0"
    index: int                # into model.parameters or model.states
    experiment: int | None    # for x0
    scale: str                # "log" or "lin"
    lower: float | None       # natural-space bounds
    upper: float | None
    value: float              # natural-space start value


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


_SYMMETRIES: dict[tuple[Any, ...], list[Symmetry]] = {}


def find_symmetries(model: Model) -> list[Symmetry]:
    """The model's exact scaling symmetries; [] if detection fails (a refinement never blocks a fit).
    Remembered per compiled model structure and choice of estimated quantities (the symbolic detection
    takes seconds; refits of the same model need it once per process)."""
    spec = model.spec
    key = None if model.directory is None else (
        str(model.directory), tuple(spec.estimated_parameters),
        tuple((s, st.estimate, st.x0 == 0.0) for s, st in spec.states.items()))
    if key is not None and key in _SYMMETRIES:
        return list(_SYMMETRIES[key])
    try:
        syms = scaling_symmetries(model)
    except Exception:
        return []
    if key is not None:
        if len(_SYMMETRIES) > 64:
            _SYMMETRIES.clear()
        _SYMMETRIES[key] = list(syms)
    return syms


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
        #: names this problem to worker processes, which rebuild it once each (``symode.parallel.process_memo``)
        self.key = uuid.uuid4().hex
        #: tolerance of the sensitivities in :meth:`jacobian` by default (the Fisher analysis asks for rtol)
        self.jac_rtol = max(rtol, JAC_RTOL)
        self._last: tuple[np.ndarray, float, np.ndarray] | None = None    # (z, rtol, data residuals)
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
                self.unknowns.append(Unknown(name, "param", j, None, parameter_scale(par.scale, par.value),
                                             par.lower, par.upper, par.value))
        multi = len(self.datasets) > 1
        for e in range(len(self.datasets)):
            for i, sname in enumerate(model.states):
                st = spec.states[sname]
                if estimate_x0 and st.estimate and f"x0.{sname}" not in fixed:
                    name = f"x0.{sname}[{e}]" if multi else f"x0.{sname}"
                    self.unknowns.append(Unknown(name, "x0", i, e, state_scale(st.x0, st.lower), st.lower, st.upper,
                                                 float(self.x0_base[e][i])))
        self.names = [u.name for u in self.unknowns]
        self.scales = [u.scale for u in self.unknowns]
        self.transform = Transform(self.names, self.scales, [u.lower for u in self.unknowns],
                                   [u.upper for u in self.unknowns])
        self.scales_log = self.transform.log       # unknowns on a log scale
        self.lb, self.ub = self.transform.lb, self.transform.ub
        self.penalty = PenaltyTerms(spec.penalties, self.names,
                                    fixed=dict(zip(model.parameters, self.p_base, strict=True)))
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
        #: where the time goes (residual solves and sensitivities, split stiff / non-stiff; see bench/fit.py)
        self.timings = Timings()
        #: the wall-clock budget of the work in progress: every solve checks it first (TimeLimit)
        self.budget = Budget()

    @contextmanager
    def tolerance(self, rtol: float) -> Iterator[None]:
        """Solve at relative tolerance ``rtol`` inside the block (residuals and sensitivities)."""
        saved = (self.rtol, self.jac_rtol)
        self.rtol, self.jac_rtol = rtol, max(rtol, JAC_RTOL)
        try:
            yield
        finally:
            self.rtol, self.jac_rtol = saved

    @contextmanager
    def bounded(self, budget: Budget) -> Iterator[None]:
        """Solves inside the block check ``budget`` (at most the budget already in force) and raise
        :class:`~symode.timing.TimeLimit` once it is spent."""
        saved = self.budget
        self.budget = budget if budget.deadline <= saved.deadline else saved
        try:
            yield
        finally:
            self.budget = saved

    def _record(self, what: str, t0: float, c0: float, stats: dict[str, Any]) -> None:
        """Wall and CPU time since (t0, c0) of one solve (``what``: "residuals" or "sensitivities"), split by
        integrator."""
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        stiff = stats.get("method_used") == "stiff" or stats.get("n_switches", 0) > 0
        self.timings.add(what, seconds, cpu=cpu)
        self.timings.add(f"{what}/{'stiff' if stiff else 'non-stiff'}", seconds, cpu=cpu)

    # -- transforms ----------------------------------------------------------------------------------
    def z_from_values(self, params: dict[str, float] | None = None,
                      x0: Sequence[dict[str, float]] | dict[str, float] | None = None) -> np.ndarray:
        """z at the spec's values, overridden by ``params`` (name -> value) and ``x0``."""
        theta = np.empty(len(self.unknowns))
        x0s = [x0] * len(self.datasets) if isinstance(x0, dict) else list(x0 or [])
        for k, u in enumerate(self.unknowns):
            v = u.value
            if u.kind == "param" and params and u.name in params:
                v = float(params[u.name])
            if u.kind == "x0" and u.experiment is not None and u.experiment < len(x0s):
                v = float(x0s[u.experiment].get(self.model.states[u.index], v))
            theta[k] = v
        return self.clip(self.transform.to_z(theta))

    def clip(self, z: np.ndarray) -> np.ndarray:
        """z strictly inside finite boxes (1e-10 of their width from the sides)."""
        return self.transform.clip(z, margin=1e-10)

    def natural(self, z: np.ndarray) -> np.ndarray:
        """Natural-space values within the bounds (SolverError past the float range: a failed point)."""
        return self.transform.natural(z)

    def named(self, z: Sequence[float]) -> dict[str, float]:
        """{unknown name: natural value} at ``z``."""
        return {n: float(v) for n, v in zip(self.names, self.natural(np.asarray(z, dtype=float)), strict=True)}

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
        return self.transform.dtheta_dz(z)

    # -- gauge (exact symmetries) --------------------------------------------------------------------
    def set_gauge(self, directions: np.ndarray | None, ref: np.ndarray, weight: float = 1.0) -> None:
        """Pin the orbit coordinate along exact symmetry directions (columns, transformed space)."""
        if directions is None or directions.shape[1] == 0:
            self.gauge = None
            return
        q, _ = np.linalg.qr(directions)
        self.gauge, self.gauge_ref, self.gauge_weight = q, ref.copy(), weight

    def set_symmetry_gauge(self, symmetries: Sequence[Symmetry], ref: np.ndarray,
                           free: Sequence[int] | None = None) -> None:
        """Gauge along the symmetries' generators over the unknowns ``free`` (default all; the others are
        held fixed, so a symmetry moving them is broken). Generators that move a linear-scale unknown are
        no pure translation in z and are left out."""
        idx = list(range(len(self.names))) if free is None else list(free)
        W = np.zeros((len(self.names), len(symmetries)))
        if symmetries:
            W[idx] = symmetry_directions(symmetries, [self.names[k] for k in idx])
        lin = [i for i, s in enumerate(self.scales) if s != "log"]
        cols = [c for c in range(W.shape[1]) if np.any(W[:, c]) and not np.any(W[lin, c])]
        self.set_gauge(W[:, cols] if cols else None, ref)

    def gauge_rows(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The gauge residuals w G^T (z - z_ref) and their Jacobian w G^T (empty without a gauge)."""
        if self.gauge is None:
            return np.zeros(0), np.zeros((0, len(z)))
        w = self.gauge_weight
        return w * self.gauge.T @ (z - self.gauge_ref), w * self.gauge.T

    # -- residuals -----------------------------------------------------------------------------------
    def data_residuals(self, z: np.ndarray, rtol: float | None = None, *, check: bool = True) -> np.ndarray:
        """Weighted residuals of every observed value (raises SolverError on a failed solve; TimeLimit
        before a solve once :attr:`budget` is spent, unless ``check`` is False)."""
        p, x0s = self.vectors(z)
        out = []
        for prob, x0 in zip(self.problems, x0s, strict=True):
            if check:
                self.budget.check()
            be = self.model.backend
            t0, c0 = time.perf_counter(), time.process_time()
            res = be.integrate(prob.times, x0, p, prob.U, rtol=rtol or self.rtol, atol=self.atol, method="auto")
            self._record("residuals", t0, c0, res.stats)
            self.n_solves += 1
            if res.status != 0 or not np.all(np.isfinite(res.x)):
                raise SolverError(f"ODE solver failed: {res.message}")
            _, r = be.residual_loss(prob.times, res.x, p, prob.U, prob.data, prob.sigma)
            out.append(r.reshape(-1)[prob.observed.reshape(-1)])
        r = np.concatenate(out)
        if rtol is None or rtol == self.rtol:
            self._last = (np.array(z, dtype=float), self.rtol, r)
        return r

    def penalty_rows(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The penalty residuals (the spec's ``penalties``) and their Jacobian in z."""
        if not len(self.penalty):
            return np.zeros(0), np.zeros((0, len(z)))
        return self.penalty.rows(self.natural(z), self.dtheta_dz(z))

    def residuals(self, z: np.ndarray) -> np.ndarray:
        """Data residuals, then the penalty and gauge residuals; FAIL_RESIDUAL everywhere if a solve fails."""
        try:
            r = self.data_residuals(z)
            pr, _ = self.penalty_rows(z)
        except SolverError:
            r, pr = np.full(self.n_obs, FAIL_RESIDUAL), np.full(len(self.penalty), FAIL_RESIDUAL)
        if not np.all(np.isfinite(r)):
            r = np.full(self.n_obs, FAIL_RESIDUAL)
        g, _ = self.gauge_rows(z)
        return np.concatenate([r, pr, g])

    def jacobian(self, z: np.ndarray, *, gauge: bool = True, rtol: float | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """(residuals, dr/dz): the residuals at the problem's tolerance, the exact Jacobian of the
        discretised solution at ``rtol`` (default :attr:`jac_rtol`) from forward sensitivities."""
        rtol = self.jac_rtol if rtol is None else rtol
        p, x0s = self.vectors(z)
        d = self.dtheta_dz(z)
        rows, rs = [], []
        for e, (prob, x0) in enumerate(zip(self.problems, x0s, strict=True)):
            res = None
            for method, solver in dict.fromkeys(((self.sens_method, self.sens_solver), ("forward", "explicit"))):
                self.budget.check()
                t0, c0 = time.perf_counter(), time.process_time()
                try:
                    res = loss_and_gradient(prob, params=p, x0=x0, method=method, jacobian=True,
                                            rtol=rtol, atol=self.atol, solver=solver)
                    break
                except SolverError:
                    continue
                finally:
                    self._record("sensitivities", t0, c0, res.stats if res is not None else {})
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
        if rtol != self.rtol:    # residuals at the problem's tolerance: usually just computed at this z
            last = self._last
            same = last is not None and last[1] == self.rtol and np.array_equal(last[0], z)
            r = last[2] if same else self.data_residuals(z)
        if len(self.penalty):
            pr, PJ = self.penalty_rows(z)
            r, J = np.concatenate([r, pr]), np.vstack([J, PJ])
        if gauge:
            g, G = self.gauge_rows(z)
            r, J = np.concatenate([r, g]), np.vstack([J, G])
        return r, J

    def data_loss(self, z: np.ndarray, *, check: bool = True) -> float:
        """1/2 sum r^2 over the data residuals (inf if the solve fails). ``check=False``: also once the
        budget is spent (one more solve, e.g. to rank or report what was found)."""
        try:
            r = self.data_residuals(z, check=check)
        except SolverError:
            return math.inf
        return 0.5 * float(r @ r) if np.all(np.isfinite(r)) else math.inf

    def penalty_loss(self, z: np.ndarray) -> float:
        """The penalty part of the objective (0 without penalties)."""
        if not len(self.penalty):
            return 0.0
        try:
            return self.penalty.value(self.natural(z))
        except SolverError:
            return math.inf

    def loss(self, z: np.ndarray, *, check: bool = True) -> float:
        """The objective: the data part 1/2 sum r^2 (inf if the solve fails) plus the penalties
        (``check`` as in :meth:`data_loss`)."""
        return self.data_loss(z, check=check) + self.penalty_loss(z)

    def bounds(self) -> dict[str, tuple[float | None, float | None]]:
        """{name: (lower, upper)} natural-space bounds of every unknown."""
        return {u.name: (u.lower, u.upper) for u in self.unknowns}


def spec_fixed(fp: FitProblem) -> list[str]:
    """The spec's estimated parameters this problem holds fixed (to rebuild it elsewhere)."""
    spec = fp.model.spec
    return [n for n in spec.parameters if n not in fp.names and spec.parameters[n].estimate]


def x0_dicts(fp: FitProblem, x0s: Sequence[np.ndarray] | None = None) -> list[dict[str, Any]]:
    """Initial states per experiment as {state: value} (default: the problem's base values)."""
    return [{s: float(v) for s, v in zip(fp.model.states, x, strict=True)} for x in (x0s or fp.x0_base)]
