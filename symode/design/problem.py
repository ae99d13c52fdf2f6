"""The design problem: the Fisher information of an experiment and the criteria that rank designs.

A *design* is an experiment: its length, the initial state, the designed input (the reactor's dilution
rate) as a piecewise-constant profile, and the measured quantities with their noise models and sampling
intervals. Its value is judged by the Fisher information of the unknowns (the spec's estimated
parameters and estimated initial states) at nominal values:

    J_ik = (dy_k(t_i)/dtheta) / sigma_k(t_i),   FIM = J^T J,
    sigma^2 = absolute^2 + (relative * y)^2      (at the *predicted* y)

with dy/dtheta from forward sensitivities of the compiled model (:meth:`CompiledBackend.sensitivities`),
in transformed coordinates (log theta for log-scale quantities, so standard errors are relative).
Predicted standard errors are Cramer-Rao bounds (:func:`symode.identifiability.cramer_rao`), which treat
the exact scaling symmetries of the model *with this design's measurements*
(:func:`symode.identifiability.scaling_symmetries`) as null directions: a parameter moved by a symmetry
has an infinite standard error under every design that keeps the symmetry's hidden state unobserved.

Criteria (all on a fixed parameter subspace so that designs with different measurements compare):
the subspace is the complement of the symmetries that survive even when *every* admissible
measurement is made ("persistent" symmetries), in relative coordinates, with a weak Gaussian prior of
``prior_se`` (default 10, i.e. a factor e^10) in log units on every direction (Bayesian design, keeps
the criteria finite when a candidate misses a measurement):

- ``D`` (default): log det(Q^T F Q + I / prior_se^2)  — maximise;
- ``A``: trace of the inverse (sum of predicted variances of log-parameters) — minimise;
- ``E``: the smallest eigenvalue — maximise;
- ``target``: named parameters below a relative standard error (e.g. 10%): minimise
  sum_i max(0, log(se_i / target)), ties broken by the D-criterion.

A point where the sensitivities fail is a *failed evaluation* (``ok`` False, criteria at their worst,
``failure`` says why), never an exception: the ODE solver stops, a state or sensitivity is not finite,
or the Fisher matrix is numerically meaningless (non-finite, or its eigenvalues on the subspace fall
below the prior's ``1 / prior_se^2``, which exact arithmetic forbids: the sensitivities have grown by
many orders of magnitude). The explicit integrator is tried first (fast); on failure the evaluation is
repeated with the automatic stiff switch before it is given up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symode.design.experiment import Constraints, Design
from symode.errors import SymodeError
from symode.identifiability import cramer_rao, log_jacobian, relative_factors, relative_generators
from symode.solve.model import Model, build_model
from symode.solve.simulation import interval_inputs
from symode.spec.schema import Noise, Observable, Spec
from symode.symbolic.symmetries import scaling_symmetries, symmetry_directions

__all__ = ["CRITERIA", "FLOOR_DT", "GOOD_REL_SE", "METHODS", "PRIOR_SE", "DesignProblem", "Evaluation",
           "failed_criteria"]

#: Weak prior (SE in log units) that keeps the criteria finite along directions a design does not inform.
PRIOR_SE = 10.0
#: Relative standard error under which a parameter counts as "determined" in summaries.
GOOD_REL_SE = 0.1
#: Sampling step (h) at which the culture floor is checked along the predicted trajectory.
FLOOR_DT = 0.25
CRITERIA = ("D", "A", "E", "target")
#: Integrators tried in turn for the sensitivities: explicit first (the automatic switch to Rosenbrock is
#: far slower on the sensitivity system here), the automatic stiff switch when that fails.
METHODS = ("explicit", "auto")


@dataclass(eq=False)
class Evaluation:
    """The Fisher information of one design at one parameter point, its criteria and its constraint
    check (``ok`` False: a failed point, criteria at their worst)."""

    design: Design
    names: list[str]
    scales: list[str]
    theta: np.ndarray
    fim: np.ndarray                       # transformed coordinates
    criteria: dict[str, float]            # D, A, E (and target when asked)
    floor: float
    min_floor_state: float
    times: np.ndarray                     # evaluation grid
    x: np.ndarray                         # predicted states on the grid
    n_obs: int
    ok: bool = True                       # the information could be computed (see ``failure``)
    J: np.ndarray | None = None
    rel_se: np.ndarray | None = None      # Cramer-Rao relative SE (inf: undetermined), full evaluations
    symmetries: list[Any] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    failure: str = ""                     # why the evaluation failed (ok False), else ""

    @property
    def feasible(self) -> bool:
        return self.ok and not self.violations

    def rel_se_dict(self) -> dict[str, float]:
        return dict(zip(self.names, (self.rel_se if self.rel_se is not None else
                                     np.full(len(self.names), np.nan)), strict=True))

    def n_good(self, limit: float = GOOD_REL_SE, *, parameters_only: bool = True) -> int:
        return sum(1 for n, r in self.rel_se_dict().items()
                   if r < limit and not (parameters_only and n.startswith("x0.")))


class DesignProblem:
    """A model at nominal values, the unknowns and the symmetry bookkeeping for evaluating designs."""

    def __init__(self, spec: Spec, *, params: Mapping[str, float] | None = None,
                 x0: Mapping[str, float] | None = None, model: Model | None = None,
                 constraints: Constraints | None = None, candidates: Sequence[str] = (),
                 prior_se: float = PRIOR_SE, rtol: float = 1e-8, atol: float = 1e-10,
                 methods: Sequence[str] = METHODS) -> None:
        if spec.neural:
            raise SymodeError(f"experiment design needs a mechanistic model, but the spec has neural terms "
                              f"({', '.join(n.id for n in spec.neural)}): replace them by kinetic laws first, or "
                              "design with the mechanistic spec at a fit's values (--fit)", field="neural",
                              file=spec.source)
        self.spec = spec.with_values(params or {}, x0 or {})
        self.model = model.with_spec(self.spec) if model is not None else build_model(self.spec)
        m = self.model
        self.constraints = constraints or Constraints()
        self.rtol, self.atol, self.prior_se = rtol, atol, prior_se
        self.methods = tuple(methods)        # integrators tried in turn for the sensitivities
        self.p = m.parameter_vector()
        self.x0 = m.x0_vector()
        self.nx = len(m.states)
        self.input_name = spec.reactor.dilution or (m.inputs[0] if m.inputs else "")
        if self.input_name not in m.inputs:
            raise SymodeError("the spec has no dilution input to design", field="reactor.dilution", file=spec.source)
        self.floor_state = self.constraints.floor_state or next(
            (s for s, st in spec.states.items() if st.role == "main"), m.states[0])
        if self.floor_state not in m.states:
            raise SymodeError(f"unknown floor state {self.floor_state!r}", field="floor_state", file=spec.source)
        est_x0 = [s for s in m.states if self.spec.states[s].estimate]
        est_p = [n for n in m.parameters if self.spec.parameters[n].estimate]
        self.names = [f"x0.{s}" for s in est_x0] + est_p
        self.cols = [m.states.index(s) for s in est_x0] + [self.nx + m.parameters.index(n) for n in est_p]
        self.theta = np.concatenate([self.x0, self.p])[self.cols]
        scales = []
        for s in est_x0:
            st = self.spec.states[s]
            scales.append("log" if st.x0 > 0 and st.lower is not None and st.lower >= 0 else "lin")
        scales += ["log" if self.spec.parameters[n].scale == "log" and self.spec.parameters[n].value > 0
                   else "lin" for n in est_p]
        self.scales = scales
        self.rf = relative_factors(self.theta, scales)
        self.candidates = list(candidates)
        for c in self.candidates:
            if c not in m.states and c not in self.spec.observables:
                raise SymodeError(f"unknown measurable quantity {c!r} (a state or an observable of the spec)",
                                  field="candidates", file=spec.source)
        self._sym_cache: dict[frozenset[str], list[Any]] = {}
        admissible = list(self.spec.observables) + [c for c in self.candidates if c not in self.spec.observables]
        self.persistent = self.symmetries(admissible)
        W = relative_generators(symmetry_directions(self.persistent, self.names), self.theta, scales)
        n = len(self.names)
        if W.shape[1]:
            u, s, _ = np.linalg.svd(W, full_matrices=True)
            k = int(np.sum(s > 1e-12 * max(s[0], 1e-300)))
            self.Q = u[:, k:]
        else:
            self.Q = np.eye(n)
        self.moved_persistent = {nm for nm in self.names if any(s.moves(nm) for s in self.persistent)}
        self.n_evaluations = 0

    # -- symmetries of a measurement set ---------------------------------------------------------------
    def measured_spec(self, names: Sequence[str]) -> Spec:
        """The spec with exactly these observables (a state becomes an observable of itself; noise levels
        do not matter for symmetries)."""
        sp = self.spec.copy()
        obs: dict[str, Observable] = {}
        for n in dict.fromkeys(names):
            if n in sp.observables:
                obs[n] = sp.observables[n]
            else:
                obs[n] = Observable(n, n, Noise(0.002, 0.05), self.spec.states[n].unit, f"{n} (designed)")
        sp.observables = obs
        return sp

    def symmetries(self, measured: Sequence[str]) -> list[Any]:
        key = frozenset(measured)
        if key not in self._sym_cache:
            self._sym_cache[key] = scaling_symmetries(self.measured_spec(sorted(key)))
        return self._sym_cache[key]

    # -- one design --------------------------------------------------------------------------------------
    def evaluate(self, design: Design, *, coarse: float | None = None, full: bool = True,
                 params: Mapping[str, float] | None = None, criterion: str = "D",
                 targets: Sequence[str] | None = None, target_rel_se: float = GOOD_REL_SE,
                 rtol: float | None = None) -> Evaluation:
        """Fisher information of a design. ``coarse`` (h): lump dense samples onto this grid (for
        optimisation); ``full``: also Cramer-Rao SEs with this design's exact symmetries; ``params``:
        evaluate at other parameter values (robustness). Never raises on numerical trouble: a failed point
        comes back with ``ok`` False and ``failure`` set."""
        m = self.model
        T = float(design.duration_h)
        p = self.p if not params else m.parameter_vector({**dict(zip(m.parameters, self.p, strict=True)),
                                                          **params})
        x0 = m.x0_vector({**dict(zip(m.states, self.x0, strict=True)), **design.x0})
        theta = np.concatenate([x0, p])[self.cols]
        plan = []
        pts = [np.array([0.0, T]), design.d_times[(design.d_times > 0) & (design.d_times < T)],
               np.arange(0.0, T + 1e-9, coarse or FLOOR_DT)]
        for meas in design.measurements:
            t = meas.sample_times(T)
            w = 1.0
            if coarse and meas.times is None and meas.every_h < coarse:
                t = np.arange(0.0, T + 1e-9, coarse)
                w = coarse / meas.every_h
            plan.append((meas, t, w))
            pts.append(t)
        grid = np.unique(np.round(np.concatenate(pts), 9))
        grid = grid[(grid >= 0) & (grid <= T + 1e-9)]
        values = {n: np.full(len(grid), float(inp.default if inp.default is not None else 0.0))
                  for n, inp in self.spec.inputs.items()}
        values[design.input_name] = design.d_at(grid)
        U = interval_inputs(m, grid, values)
        fi = m.states.index(self.floor_state)
        floor = self.constraints.floor_fraction * float(x0[fi])
        n = len(self.names)
        self.n_evaluations += 1
        kw = dict(criterion=criterion, targets=targets, target_rel_se=target_rel_se)
        failure, x = "", np.full((len(grid), self.nx), np.nan)
        for method in self.methods:
            try:
                res, S = m.backend.sensitivities(grid, x0, p, U, rtol=rtol or self.rtol, atol=self.atol,
                                                 method=method)
            except (ArithmeticError, ValueError, np.linalg.LinAlgError) as exc:
                failure = f"sensitivities failed ({exc})"
                continue
            x = res.x
            if res.status != 0:
                failure = f"ODE solver failed ({res.message})"
                continue
            if not (np.all(np.isfinite(res.x)) and np.all(np.isfinite(S))):
                failure = "the states or their sensitivities are not finite"
                continue
            with np.errstate(over="ignore", invalid="ignore"):
                J, n_obs = self._jacobian(m, plan, grid, res.x, S, p, U, theta)
                F = J.T @ J
            crit, failure = self.criteria_or_failure(F, **kw)
            if crit is not None:
                break
        else:
            return Evaluation(design, self.names, self.scales, theta, np.zeros((n, n)), failed_criteria(criterion),
                              floor, -math.inf, grid, x, 0, ok=False, violations=[failure], failure=failure)
        ev = Evaluation(design, self.names, self.scales, theta, F, crit, floor,
                        float(np.min(res.x[:, fi])), grid, res.x, n_obs, J=J if full else None)
        ev.violations = self.check(design, ev)
        if full:
            ev.symmetries = self.symmetries([mm.name for mm in design.measurements])
            try:
                ev.rel_se = cramer_rao(J, self.names, self.scales, theta, symmetries=ev.symmetries)
            except (ArithmeticError, ValueError, np.linalg.LinAlgError):   # J is finite and trusted here
                ev.rel_se = np.full(n, np.inf)
        return ev

    def _jacobian(self, m: Model, plan: Sequence[tuple[Any, np.ndarray, float]], grid: np.ndarray,
                  x: np.ndarray, S: np.ndarray, p: np.ndarray, U: np.ndarray,
                  theta: np.ndarray) -> tuple[np.ndarray, int]:
        """The weighted Jacobian J_ik = (dy_k(t_i)/dtheta) / sigma_k(t_i) * sqrt(w) in transformed
        coordinates, and the number of observations."""
        n = len(self.names)
        rows = []
        n_obs = 0
        Ui = np.vstack([U, U[-1:]]) if len(U) else np.zeros((len(grid), m.layout.nu_interval))
        for meas, t, w in plan:
            idx = np.searchsorted(grid, t - 1e-7)
            if meas.name in m.states:
                si = m.states.index(meas.name)
                y = x[idx, si]
                dy = S[idx, si, :]
            else:
                k = m.observables.index(meas.name)
                y = np.empty(len(idx))
                dy = np.empty((len(idx), S.shape[2]))
                for r, i in enumerate(idx):
                    hx = m.backend.obs_jac_x(grid[i], x[i], p, Ui[i])[k]
                    hp = m.backend.obs_jac_p(grid[i], x[i], p, Ui[i])[k]
                    y[r] = m.backend.obs(grid[i], x[i], p, Ui[i])[k]
                    dy[r] = hx @ S[i] + np.concatenate([np.zeros(self.nx), hp])
            sigma = np.sqrt(meas.absolute ** 2 + (meas.relative * y) ** 2)
            sigma = np.maximum(sigma, 1e-12)
            rows.append(dy[:, self.cols] / sigma[:, None] * math.sqrt(w))
            n_obs += len(idx)
        J = log_jacobian(np.vstack(rows), theta, self.scales) if rows else np.zeros((0, n))
        return J, n_obs

    def criteria_or_failure(self, F: np.ndarray, *, criterion: str = "D", targets: Sequence[str] | None = None,
                            target_rel_se: float = GOOD_REL_SE) -> tuple[dict[str, float] | None, str]:
        """(:meth:`criteria`, "") when the Fisher matrix ``F`` is usable, else (None, the reason): non-finite
        entries, or a smallest eigenvalue on the subspace below half the prior's 1 / prior_se^2 (exactly
        at least that much: rounding errors of a matrix whose entries have grown by many orders of
        magnitude, typically sensitivities that grow exponentially in an unstable integration)."""
        if not np.all(np.isfinite(F)):
            return None, "the Fisher information is not finite (the sensitivities overflow)"
        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                crit = self.criteria(F, criterion=criterion, targets=targets, target_rel_se=target_rel_se)
        except (ArithmeticError, ValueError, np.linalg.LinAlgError) as exc:
            return None, f"the Fisher information cannot be decomposed ({exc})"
        if not all(math.isfinite(v) for v in crit.values()) or crit["E"] < 0.5 / self.prior_se ** 2:
            big = float(np.max(np.abs(np.diag(F)))) if F.size else 0.0
            return None, (f"the Fisher information is numerically meaningless (largest diagonal entry {big:.3g}, "
                          f"smallest eigenvalue {crit['E']:.3g}): the sensitivities blow up")
        return crit, ""

    def criteria(self, F: np.ndarray, *, criterion: str = "D", targets: Sequence[str] | None = None,
                 target_rel_se: float = GOOD_REL_SE) -> dict[str, float]:
        """D (log det), A (trace of covariance), E (min eigenvalue) on the fixed subspace, with the prior;
        ``target`` when asked. Raises ``LinAlgError`` on a non-finite ``F`` (see
        :meth:`criteria_or_failure`)."""
        Fr = F * np.outer(self.rf, self.rf)
        M = self.Q.T @ Fr @ self.Q
        M = 0.5 * M + 0.5 * M.T + np.eye(M.shape[0]) / self.prior_se ** 2
        if not np.all(np.isfinite(M)):
            raise np.linalg.LinAlgError("non-finite Fisher information")
        lam = np.linalg.eigvalsh(M)
        out = {"D": float(np.sum(np.log(np.maximum(lam, 1e-300)))), "A": float(np.sum(1.0 / lam)),
               "E": float(lam[0])}
        if criterion == "target":
            C = self.Q @ np.linalg.inv(M) @ self.Q.T
            se = np.sqrt(np.maximum(np.diag(C), 0.0))
            names = [t for t in (targets or self.names) if t not in self.moved_persistent]
            miss = sum(max(0.0, math.log(se[self.names.index(t)] / target_rel_se)) for t in names)
            out["target"] = float(miss)
        return out

    def score(self, crit: Mapping[str, float], criterion: str) -> float:
        """The criterion as a score, higher is better (-inf for a failed point)."""
        if criterion == "D":
            return crit["D"]
        if criterion == "target" and "target" not in crit:
            return -math.inf
        if criterion == "A":
            return -math.log(crit["A"])
        if criterion == "E":
            return math.log(crit["E"]) if crit["E"] > 0 else -math.inf
        return -crit["target"] + 1e-3 * crit["D"]

    def check(self, design: Design, ev: Evaluation) -> list[str]:
        """Constraint violations (empty: admissible)."""
        c = self.constraints
        out = []
        v = design.d_values
        if design.duration_h > c.max_days * 24 + 1e-9:
            out.append(f"duration {design.duration_h / 24:g} d > {c.max_days:g} d")
        if np.any(v < c.d_min - 1e-12) or np.any(v > c.d_max + 1e-12):
            out.append(f"D outside [{c.d_min:g}, {c.d_max:g}]")
        if len(v) > 1 and np.max(np.abs(np.diff(v))) > c.max_step + 1e-9:
            out.append(f"D changes by {np.max(np.abs(np.diff(v))):.3g} > {c.max_step:g} between segments")
        if ev.min_floor_state < ev.floor * (1 - 1e-9):
            out.append(f"{self.floor_state} falls to {ev.min_floor_state:.3g} < floor {ev.floor:.3g}")
        rate = sum(1.0 / mm.every_h for mm in design.measurements if mm.name not in self.spec.observables)
        if rate > c.budget_n / c.budget_h + 1e-9:
            out.append(f"extra measurements {rate:.3g}/h exceed the budget {c.budget_n}/{c.budget_h:g} h")
        return out


def failed_criteria(criterion: str = "D") -> dict[str, float]:
    """The criteria of a failed point: the worst value of each (scores -inf)."""
    out = {"D": -math.inf, "A": math.inf, "E": 0.0}
    if criterion == "target":
        out["target"] = math.inf
    return out
