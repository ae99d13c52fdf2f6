"""Optimal experiment design: what to measure and how to drive the dilution rate D(t).

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

Optimisation (:func:`optimise_design`): D(t) levels on equal segments (e.g. 24 h), within
[d_min, d_max] and with at most ``max_step`` change between consecutive segments (enforced exactly by
the parametrisation), the main culture above ``floor_fraction`` of its starting value along the
predicted trajectory (a penalty while optimising, checked at every 15 min for the result), and every
admissible choice of extra measurements under a budget (at most N extra quantities every H hours).
Structured and random starts are screened, the best are refined by L-BFGS-B with finite-difference
gradients on a coarse sampling grid (dense samples lumped: information per unit time is kept), and the
best candidates are re-evaluated exactly. Wall time is bounded (``time_limit``).

Robustness (:func:`robustness`): the design re-evaluated at parameter samples (log-normal: from a fit's
intervals, or +-20% around the nominal values), with the spread of the criterion, of every relative
standard error and the fraction of samples that keep the culture above its floor.

Conventions in ``design.json``: an infinite (undetermined) relative standard error is written as
``null``.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from symode.errors import DataError, SymodeError
from symode.identifiability import cramer_rao, log_jacobian, relative_factors, relative_generators
from symode.solve.model import Model, build_model
from symode.spec.schema import Noise, Observable, Spec
from symode.symbolic.symmetries import scaling_symmetries, symmetry_directions

#: Weak prior (SE in log units) that keeps the criteria finite along directions a design does not inform.
PRIOR_SE = 10.0
#: Relative standard error under which a parameter counts as "determined" in summaries.
GOOD_REL_SE = 0.1
#: Sampling step (h) at which the culture floor is checked along the predicted trajectory.
FLOOR_DT = 0.25
CRITERIA = ("D", "A", "E", "target")


# ====================================================================================================
# Designs
# ====================================================================================================

@dataclass
class Measurement:
    """A measured quantity: a state or a spec observable, its noise model and its sampling."""

    name: str
    every_h: float
    relative: float
    absolute: float
    times: np.ndarray | None = None     # explicit sample times (e.g. from a data set) instead of every_h

    def sample_times(self, duration: float) -> np.ndarray:
        if self.times is not None:
            t = np.asarray(self.times, dtype=float)
            return t[(t >= 0) & (t <= duration + 1e-9)]
        n = math.floor(duration / self.every_h + 1e-9)
        return np.arange(n + 1) * self.every_h

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "every_h": float(self.every_h),
                "noise": {"relative": float(self.relative), "absolute": float(self.absolute)}}


@dataclass(eq=False)
class Design:
    """One experiment: duration, x0, piecewise-constant D(t) (value d_values[k] from d_times[k] to the
    next change) and the measurements."""

    duration_h: float
    x0: dict[str, float]
    d_times: np.ndarray
    d_values: np.ndarray
    measurements: list[Measurement]
    input_name: str = "D"
    label: str = ""

    def d_at(self, t: np.ndarray) -> np.ndarray:
        """D at times t (the value of the segment containing t; right-continuous)."""
        k = np.searchsorted(self.d_times, np.asarray(t, dtype=float) + 1e-9, side="right") - 1
        return self.d_values[np.clip(k, 0, len(self.d_values) - 1)]

    @property
    def extras(self) -> list[str]:
        return [m.name for m in self.measurements]

    def to_json(self, predicted_rel_se: Mapping[str, float] | None = None) -> dict[str, Any]:
        """The design.json document (inf relative SE -> null)."""
        return {"duration_h": float(self.duration_h),
                "x0": {k: float(v) for k, v in self.x0.items()},
                "inputs": {self.input_name: {"times_h": [float(t) for t in self.d_times],
                                             "values": [float(v) for v in self.d_values]}},
                "observables": [m.to_dict() for m in self.measurements],
                "predicted_rel_se": {k: (float(v) if np.isfinite(v) else None)
                                     for k, v in (predicted_rel_se or {}).items()}}


def design_from_json(doc: Mapping[str, Any]) -> Design:
    """A Design from a design.json document."""
    try:
        (name, prof), = doc["inputs"].items()
        ms = [Measurement(o["name"], float(o["every_h"]), float(o["noise"].get("relative", 0.0)),
                          float(o["noise"].get("absolute", 0.0))) for o in doc["observables"]]
        return Design(float(doc["duration_h"]), {k: float(v) for k, v in doc["x0"].items()},
                      np.asarray(prof["times_h"], dtype=float), np.asarray(prof["values"], dtype=float), ms,
                      input_name=name)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"not a design document ({exc})") from None


def design_from_data(data: Any, spec: Spec, *, duration: float | None = None, label: str = "") -> Design:
    """The design of an existing experiment (a Dataset): its sample times per observable, its D(t)."""
    inp = spec.reactor.dilution or next(iter(spec.inputs))
    T = float(data.times[-1]) if duration is None else float(duration)
    ms = []
    for name, obs in spec.observables.items():
        col = data.columns.get(name)
        if col is None:
            continue
        t = data.times[np.isfinite(col)]
        step = float(np.median(np.diff(t))) if len(t) > 1 else T
        ms.append(Measurement(name, step, obs.noise.relative, obs.noise.absolute, times=t))
    x0 = {s: st.x0 for s, st in spec.states.items()}
    return Design(T, x0, np.asarray(data.times, dtype=float), np.asarray(data.columns[inp], dtype=float), ms,
                  input_name=inp, label=label)


@dataclass
class Constraints:
    """What keeps an experiment admissible (and the culture alive)."""

    d_min: float = 0.05
    d_max: float = 0.3
    max_step: float = 0.1          # max |D_k+1 - D_k| between consecutive segments (1/h)
    floor_fraction: float = 0.1    # main culture >= floor_fraction * its starting value, everywhere
    floor_state: str | None = None  # default: the spec's state with role "main"
    max_days: float = 30.0
    budget_n: int = 1              # at most budget_n extra measured quantities ...
    budget_h: float = 2.0          # ... every budget_h hours


def parse_budget(text: str) -> tuple[int, float]:
    """'1/2h' or '1/2' -> (1, 2.0): at most one extra measured quantity every 2 h; '0' -> none."""
    t = text.strip().lower().replace(" ", "")
    try:
        if t in ("0", "none"):
            return 0, 2.0
        n, h = t.split("/")
        n_i, h_f = int(n), float(h.rstrip("h"))
    except ValueError:
        raise SymodeError(f"budget {text!r}: expected N/H (N extra measured quantities every H hours, "
                          "e.g. 1/2h)", field="budget") from None
    if n_i < 0 or h_f <= 0:
        raise SymodeError(f"budget {text!r}: need N >= 0 and H > 0", field="budget")
    return n_i, h_f


# ====================================================================================================
# Evaluation
# ====================================================================================================

@dataclass(eq=False)
class Evaluation:
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
    ok: bool = True                       # the solve succeeded
    J: np.ndarray | None = None
    rel_se: np.ndarray | None = None      # Cramer-Rao relative SE (inf: undetermined), full evaluations
    symmetries: list[Any] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

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
                 prior_se: float = PRIOR_SE, rtol: float = 1e-8, atol: float = 1e-10) -> None:
        self.spec = spec.with_values(params or {}, x0 or {})
        self.model = model.with_spec(self.spec) if model is not None else build_model(self.spec)
        m = self.model
        self.constraints = constraints or Constraints()
        self.rtol, self.atol, self.prior_se = rtol, atol, prior_se
        self.p = m.parameter_vector()
        self.x0 = m.x0_vector()
        self.nx = len(m.states)
        self.input_name = spec.reactor.dilution or (m.inputs[0] if m.inputs else "")
        if self.input_name not in m.inputs:
            raise SymodeError("the spec has no dilution input to design", field="reactor.dilution")
        self.floor_state = self.constraints.floor_state or next(
            (s for s, st in spec.states.items() if st.role == "main"), m.states[0])
        if self.floor_state not in m.states:
            raise SymodeError(f"unknown floor state {self.floor_state!r}", field="floor_state")
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
                                  field="candidates")
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
        evaluate at other parameter values (robustness)."""
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
        from symode.solve.simulation import interval_inputs

        U = interval_inputs(m, grid, values)
        # explicit first: the automatic switch to Rosenbrock is far slower on the sensitivity system here
        for method in ("explicit", "auto"):
            res, S = m.backend.sensitivities(grid, x0, p, U, rtol=rtol or self.rtol, atol=self.atol, method=method)
            if res.status == 0:
                break
        fi = m.states.index(self.floor_state)
        floor = self.constraints.floor_fraction * float(x0[fi])
        n = len(self.names)
        ok = res.status == 0 and np.all(np.isfinite(res.x)) and np.all(np.isfinite(S))
        self.n_evaluations += 1
        if not ok:
            return Evaluation(design, self.names, self.scales, theta, np.zeros((n, n)),
                              {"D": -math.inf, "A": math.inf, "E": 0.0}, floor, -math.inf, grid, res.x, 0, ok=False,
                              violations=[f"ODE solver failed ({res.message})"])
        rows = []
        n_obs = 0
        Ui = np.vstack([U, U[-1:]]) if len(U) else np.zeros((len(grid), m.layout.nu_interval))
        for meas, t, w in plan:
            idx = np.searchsorted(grid, t - 1e-7)
            if meas.name in m.states:
                si = m.states.index(meas.name)
                y = res.x[idx, si]
                dy = S[idx, si, :]
            else:
                k = m.observables.index(meas.name)
                y = np.empty(len(idx))
                dy = np.empty((len(idx), S.shape[2]))
                for r, i in enumerate(idx):
                    hx = m.backend.obs_jac_x(grid[i], res.x[i], p, Ui[i])[k]
                    hp = m.backend.obs_jac_p(grid[i], res.x[i], p, Ui[i])[k]
                    y[r] = m.backend.obs(grid[i], res.x[i], p, Ui[i])[k]
                    dy[r] = hx @ S[i] + np.concatenate([np.zeros(self.nx), hp])
            sigma = np.sqrt(meas.absolute ** 2 + (meas.relative * y) ** 2)
            sigma = np.maximum(sigma, 1e-12)
            rows.append(dy[:, self.cols] / sigma[:, None] * math.sqrt(w))
            n_obs += len(idx)
        J = log_jacobian(np.vstack(rows), theta, self.scales) if rows else np.zeros((0, n))
        F = J.T @ J
        ev = Evaluation(design, self.names, self.scales, theta, F, {}, floor,
                        float(np.min(res.x[:, fi])), grid, res.x, n_obs, J=J if full else None)
        ev.criteria = self.criteria(F, criterion=criterion, targets=targets, target_rel_se=target_rel_se)
        ev.violations = self.check(design, ev)
        if full:
            ev.symmetries = self.symmetries([mm.name for mm in design.measurements])
            ev.rel_se = cramer_rao(J, self.names, self.scales, theta, symmetries=ev.symmetries)
        return ev

    def criteria(self, F: np.ndarray, *, criterion: str = "D", targets: Sequence[str] | None = None,
                 target_rel_se: float = GOOD_REL_SE) -> dict[str, float]:
        """D (log det), A (trace of covariance), E (min eigenvalue) on the fixed subspace, with the prior;
        ``target`` when asked."""
        Fr = F * np.outer(self.rf, self.rf)
        M = self.Q.T @ Fr @ self.Q
        M = 0.5 * (M + M.T) + np.eye(M.shape[0]) / self.prior_se ** 2
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
        """Higher is better."""
        if criterion == "D":
            return crit["D"]
        if criterion == "A":
            return -math.log(crit["A"])
        if criterion == "E":
            return math.log(max(crit["E"], 1e-300))
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


# ====================================================================================================
# Candidate designs
# ====================================================================================================

def base_measurements(spec: Spec, every_h: float = 0.25) -> list[Measurement]:
    """The spec's observables, every ``every_h`` hours, with their noise models."""
    return [Measurement(n, every_h, o.noise.relative, o.noise.absolute) for n, o in spec.observables.items()]


def measurement_options(problem: DesignProblem, base: Sequence[Measurement], *, budget: tuple[int, float],
                        noise: tuple[float, float] = (0.05, 0.002)) -> list[list[Measurement]]:
    """Every admissible measurement plan: the base measurements plus k <= N extra quantities (each
    every k*H/N hours, so that at most N are measured every H hours)."""
    n, h = budget
    extras = [c for c in problem.candidates if c not in {b.name for b in base}]
    options: list[list[Measurement]] = []
    for k in range(min(n, len(extras)), 0, -1):
        for combo in itertools.combinations(extras, k):
            options.append(list(base) + [Measurement(c, h * k / n, noise[0], noise[1]) for c in combo])
    return options or [list(base)]


def project_levels(u: np.ndarray, c: Constraints) -> np.ndarray:
    """Levels within [d_min, d_max] with |D_k+1 - D_k| <= max_step (sequential clipping)."""
    u = np.clip(np.asarray(u, dtype=float), c.d_min, c.d_max)
    out = u.copy()
    for k in range(1, len(u)):
        out[k] = min(max(u[k], out[k - 1] - c.max_step), out[k - 1] + c.max_step)
    return np.clip(out, c.d_min, c.d_max)


def piecewise_design(problem: DesignProblem, levels: np.ndarray, measurements: Sequence[Measurement], *,
                     duration_h: float, segment_h: float, label: str = "") -> Design:
    n = len(levels)
    return Design(duration_h, dict(zip(problem.model.states, problem.x0, strict=True)),
                  np.arange(n) * float(segment_h), np.asarray(levels, dtype=float), list(measurements),
                  input_name=problem.input_name, label=label)


def structured_starts(n: int, c: Constraints, rng: np.random.Generator, n_random: int = 4,
                      nominal: float | None = None) -> list[np.ndarray]:
    """Constant, square-wave, staircase and random level vectors (projected later)."""
    lo, hi = c.d_min, c.d_max
    mid = 0.5 * (lo + hi)
    starts = [np.full(n, nominal if nominal is not None else mid)]
    for period in (2, 4, 6, 10):
        for a, b in ((lo, hi), (mid, hi), (lo, mid + 0.25 * (hi - lo))):
            starts.append(np.where((np.arange(n) // (period // 2)) % 2 == 0, a, b))
    starts.append(np.linspace(lo, hi, n))
    starts.append(np.linspace(hi, lo, n))
    for _ in range(n_random):
        starts.append(rng.uniform(lo, hi, n))
    return starts


def random_design_levels(n: int, c: Constraints, rng: np.random.Generator) -> np.ndarray:
    """A random admissible level vector: uniform levels, then the max-step projection."""
    return project_levels(rng.uniform(c.d_min, c.d_max, n), c)


# ====================================================================================================
# Optimisation
# ====================================================================================================

@dataclass
class DesignResult:
    best: Evaluation
    options: list[list[Measurement]]
    history: list[tuple[float, float]]              # (elapsed s, best exact-ish score)
    evaluated: list[Evaluation]                     # exact evaluations of the final candidates
    elapsed_s: float
    n_evaluations: int
    criterion: str
    per_option: dict[str, float] = field(default_factory=dict)   # best exact score per measurement plan


def _option_label(ms: Sequence[Measurement], base: Sequence[Measurement]) -> str:
    names = {b.name for b in base}
    extra = [f"{m.name} every {m.every_h:g} h" for m in ms if m.name not in names]
    return " + ".join(extra) if extra else "no extra measurement"


def optimise_design(problem: DesignProblem, base: Sequence[Measurement], *, days: float = 30.0,
                    segment_h: float = 24.0, budget: tuple[int, float] = (1, 2.0),
                    extra_noise: tuple[float, float] = (0.05, 0.002), criterion: str = "D",
                    targets: Sequence[str] | None = None, target_rel_se: float = GOOD_REL_SE,
                    time_limit: float = 180.0, coarse: float = 1.0, seed: int = 0, progress: bool = True,
                    n_local: int = 3, log: Callable[[str], None] | None = None) -> DesignResult:
    """Optimise D(t) levels and the extra measurements for a criterion within a wall-time budget."""
    from scipy.optimize import minimize

    if criterion not in CRITERIA:
        raise SymodeError(f"unknown criterion {criterion!r} (choose from {', '.join(CRITERIA)})", field="criterion")
    c = problem.constraints
    if days * 24 > c.max_days * 24 + 1e-9:
        raise SymodeError(f"{days:g} days exceed the maximum of {c.max_days:g}", field="days")
    T = days * 24.0
    n = math.ceil(T / segment_h - 1e-9)
    rng = np.random.default_rng(seed)
    t_start = time.perf_counter()
    deadline = t_start + time_limit
    options = measurement_options(problem, base, budget=budget, noise=extra_noise)
    kw = dict(criterion=criterion, targets=targets, target_rel_se=target_rel_se)
    bar = _bar(progress, "design")
    history: list[tuple[float, float]] = []
    best_seen = [-math.inf]

    def coarse_score(u: np.ndarray, opt: int) -> float:
        lv = project_levels(u, c)
        d = piecewise_design(problem, lv, options[opt], duration_h=T, segment_h=segment_h)
        ev = problem.evaluate(d, coarse=coarse, full=False, rtol=1e-7, **kw)
        if bar is not None:
            bar.update(1)
        if not ev.ok:
            return -1e6
        s = problem.score(ev.criteria, criterion)
        margin = 1.02 * ev.floor
        if ev.min_floor_state < margin:
            s -= 50.0 * (margin - ev.min_floor_state) / max(ev.floor, 1e-12) + 5.0
        elif s > best_seen[0]:
            best_seen[0] = s
            history.append((time.perf_counter() - t_start, s))
        return s

    # 1. screen structured and random starts for every measurement plan
    nominal = float(problem.spec.inputs[problem.input_name].default or 0.5 * (c.d_min + c.d_max))
    nominal = min(max(nominal, c.d_min), c.d_max)
    starts = structured_starts(n, c, rng, nominal=nominal)
    screened: list[tuple[float, int, np.ndarray]] = []
    for o in range(len(options)):
        for u in starts:
            if time.perf_counter() > deadline and screened:
                break
            u = project_levels(u, c)
            screened.append((coarse_score(u, o), o, u))
    screened.sort(key=lambda r: -r[0])
    if log:
        log(f"screened {len(screened)} starts over {len(options)} measurement plan(s); best coarse score "
            f"{screened[0][0]:.4g} ({_option_label(options[screened[0][1]], base)})")

    # 2. local refinement (L-BFGS-B, forward-difference gradients) of the best starts, distinct plans first
    picks: list[tuple[float, int, np.ndarray]] = []
    for r in screened:
        if len(picks) < n_local and (r[1] not in [p[1] for p in picks] or len(picks) >= len(options)):
            picks.append(r)
    for r in screened:
        if len(picks) >= n_local:
            break
        if not any(r is p for p in picks):
            picks.append(r)
    refined: list[tuple[float, int, np.ndarray]] = list(picks)
    h = 2e-3 * (c.d_max - c.d_min)
    for i, (s0, o, u0) in enumerate(picks):
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            break
        share = remaining / (len(picks) - i)
        local_deadline = time.perf_counter() + share

        class _Stop(Exception):
            pass

        state = {"best": (s0, u0.copy())}

        def fun(u: np.ndarray, o: int = o, state: dict = state, local_deadline: float = local_deadline) -> tuple:
            f0 = coarse_score(u, o)
            if f0 > state["best"][0]:
                state["best"] = (f0, u.copy())
            g = np.zeros_like(u)
            for k in range(len(u)):
                if time.perf_counter() > local_deadline:
                    raise _Stop
                uk = u.copy()
                step = h if uk[k] + h <= c.d_max else -h
                uk[k] += step
                fk = coarse_score(uk, o)
                if fk > state["best"][0]:
                    state["best"] = (fk, uk.copy())
                g[k] = (fk - f0) / step
            return -f0, -g

        try:
            minimize(fun, u0, jac=True, method="L-BFGS-B", bounds=[(c.d_min, c.d_max)] * n,
                     options={"maxiter": 200, "ftol": 1e-10, "gtol": 1e-6})
        except _Stop:
            pass
        refined.append((state["best"][0], o, project_levels(state["best"][1], c)))

    # 3. exact evaluation of the best distinct candidates
    refined.sort(key=lambda r: -r[0])
    finals: list[Evaluation] = []
    seen: list[tuple[int, np.ndarray]] = []
    for _s, o, u in refined + screened:
        if len(finals) >= max(2 * n_local, len(options) + 1):
            break
        if any(o == so and np.allclose(u, su) for so, su in seen):
            continue
        seen.append((o, u))
        d = piecewise_design(problem, u, options[o], duration_h=T, segment_h=segment_h, label="proposed")
        finals.append(problem.evaluate(d, **kw))
    if bar is not None:
        bar.close()
    feasible = [e for e in finals if e.feasible] or finals
    best = max(feasible, key=lambda e: problem.score(e.criteria, criterion))
    per_option: dict[str, float] = {}
    for e in finals:
        if e.feasible:
            lab = _option_label(e.design.measurements, base)
            per_option[lab] = max(per_option.get(lab, -math.inf), problem.score(e.criteria, criterion))
    return DesignResult(best, options, history, finals, time.perf_counter() - t_start, problem.n_evaluations,
                        criterion, per_option)


def random_baseline(problem: DesignProblem, base: Sequence[Measurement], *, n: int = 50, days: float = 30.0,
                    segment_h: float = 24.0, budget: tuple[int, float] = (1, 2.0),
                    extra_noise: tuple[float, float] = (0.05, 0.002), criterion: str = "D",
                    targets: Sequence[str] | None = None, target_rel_se: float = GOOD_REL_SE, seed: int = 12345,
                    max_tries: int | None = None, progress: bool = False) -> list[Evaluation]:
    """``n`` random admissible piecewise-constant designs (uniform levels, max-step projection, rejected
    when the culture falls below its floor), each with its best admissible measurement plan; exact
    evaluations."""
    c = problem.constraints
    T = days * 24.0
    k = math.ceil(T / segment_h - 1e-9)
    rng = np.random.default_rng(seed)
    options = measurement_options(problem, base, budget=budget, noise=extra_noise)
    out: list[Evaluation] = []
    tries = 0
    bar = _bar(progress, "random designs", total=n)
    kw = dict(criterion=criterion, targets=targets, target_rel_se=target_rel_se)
    while len(out) < n and tries < (max_tries or 20 * n):
        tries += 1
        lv = random_design_levels(k, c, rng)
        evs = [problem.evaluate(piecewise_design(problem, lv, opt, duration_h=T, segment_h=segment_h,
                                                 label=f"random {len(out) + 1}"), full=False, **kw)
               for opt in options]
        evs = [e for e in evs if e.feasible]
        if not evs:
            continue
        out.append(max(evs, key=lambda e: problem.score(e.criteria, criterion)))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return out


def _bar(progress: bool, desc: str, total: int | None = None) -> Any:
    if not progress:
        return None
    try:
        from tqdm import tqdm

        return tqdm(desc=desc, total=total, unit="eval", leave=False)
    except Exception:  # pragma: no cover
        return None


# ====================================================================================================
# Robustness
# ====================================================================================================

@dataclass
class Robustness:
    n: int
    criterion: str
    scores: np.ndarray                  # score per sample (higher is better)
    rel_se: np.ndarray                  # (n, n_names)
    feasible: np.ndarray                # bool per sample: culture above its floor
    names: list[str]
    spread: dict[str, float]            # parameter -> log-normal SD used

    def summary(self) -> dict[str, Any]:
        def q(a: np.ndarray) -> list[float]:
            a = a[np.isfinite(a)]
            return [float(v) for v in np.percentile(a, [10, 50, 90])] if len(a) else [math.inf] * 3
        return {"n": self.n, "criterion": self.criterion, "score_p10_p50_p90": q(self.scores),
                "feasible_fraction": float(np.mean(self.feasible)) if self.n else float("nan"),
                "rel_se_p10_p50_p90": {nm: q(self.rel_se[:, i]) for i, nm in enumerate(self.names)}}


def intervals_spread(fit_doc: Mapping[str, Any] | None, names: Sequence[str], default: float = 0.2,
                     cap: float = 1.0) -> dict[str, float]:
    """Log-normal SD per parameter: from a fit's 95% intervals ((log hi - log lo) / 3.92, capped), else
    ``default`` (+-20%)."""
    out = {n: default for n in names}
    ci = (fit_doc or {}).get("confidence_intervals") or {}
    for n in names:
        iv = ci.get(n)
        if isinstance(iv, Mapping):
            iv = iv.get("0.95") or iv.get("95") or next(iter(iv.values()), None)
        if isinstance(iv, (list, tuple)) and len(iv) == 2:
            lo, hi = iv
            if lo is None or hi is None or lo <= 0 or hi <= 0:
                out[n] = cap
            else:
                out[n] = min(max((math.log(hi) - math.log(lo)) / (2 * 1.959963984540054), 1e-3), cap)
    return out


def robustness(problem: DesignProblem, design: Design, *, n: int = 20, spread: Mapping[str, float] | None = None,
               criterion: str = "D", seed: int = 7, targets: Sequence[str] | None = None,
               target_rel_se: float = GOOD_REL_SE, progress: bool = False) -> Robustness:
    """Evaluate a design at ``n`` log-normal samples of the estimated model parameters."""
    est = [nm for nm in problem.names if not nm.startswith("x0.")]
    spread = dict(spread) if spread is not None else {nm: 0.2 for nm in est}
    rng = np.random.default_rng(seed)
    scores, rels, feas = [], [], []
    nominal = dict(zip(problem.model.parameters, problem.p, strict=True))
    bar = _bar(progress, "robustness", total=n)
    for _ in range(n):
        params = {}
        for nm in est:
            v = nominal[nm] * math.exp(rng.normal(0.0, spread.get(nm, 0.2)))
            par = problem.spec.parameters[nm]
            if par.lower is not None:
                v = max(v, par.lower)
            if par.upper is not None:
                v = min(v, par.upper)
            params[nm] = v
        ev = problem.evaluate(design, params=params, criterion=criterion, targets=targets,
                              target_rel_se=target_rel_se)
        scores.append(problem.score(ev.criteria, criterion) if ev.ok else -math.inf)
        rels.append(ev.rel_se if ev.rel_se is not None else np.full(len(problem.names), np.inf))
        feas.append(ev.ok and ev.min_floor_state >= ev.floor)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return Robustness(n, criterion, np.array(scores), np.array(rels).reshape(n, len(problem.names)),
                      np.array(feas, dtype=bool), list(problem.names), dict(spread))


# ====================================================================================================
# Why parameters stay undetermined
# ====================================================================================================

def undetermined_explanations(problem: DesignProblem, evaluations: Sequence[Evaluation], *,
                              limit: float = 0.5) -> dict[str, str]:
    """Parameters undetermined under every admissible design, with the reason.

    Structural: moved by a symmetry that survives every admissible measurement (the report names the
    hidden state to measure). Practical: relative SE above ``limit`` in every evaluation given (the
    proposed design, the random designs and the design with *all* candidate measurements at once), with a
    kinetic reason where one applies (an inhibition or saturation constant far from any metabolite level
    reached by any of those designs)."""
    spec = problem.spec
    out: dict[str, str] = {}
    for s in problem.persistent:
        hidden = ", ".join(s.states) or "a hidden state"
        inv = ", ".join(s.invariants)
        for nm in s.exponents:
            if nm in problem.names:
                out[nm] = (f"exact symmetry {s.description}: no admissible measurement observes {hidden}, so "
                           f"every design leaves the observables unchanged along it; only {inv} are determined. "
                           f"Measuring {hidden} (in absolute units, at least once) breaks it.")
    evs = [e for e in evaluations if e.rel_se is not None and e.ok]
    if not evs:
        return out
    lvl: dict[str, float] = {}
    for e in evs:
        for i, s in enumerate(problem.model.states):
            lvl[s] = max(lvl.get(s, 0.0), float(np.max(e.x[:, i])))
    value = dict(zip(problem.names, problem.theta, strict=True))
    for i, nm in enumerate(problem.names):
        if nm in out:
            continue
        best = min(float(e.rel_se[i]) for e in evs)
        if best <= limit:
            continue
        why = (f"relative SE at least {('inf' if not np.isfinite(best) else f'{100 * best:.0f}%')} in every "
               f"design evaluated (admissible ones and, as an upper bound, every candidate measured at once)")
        for e in spec.interactions:
            src = e.source
            if not src or src not in lvl:
                continue
            if e.kind == "inhibition":
                for role in ("I", "Ki"):
                    if e.params.get(role) == nm and value[nm] > 10 * lvl[src]:
                        why += (f": {nm} = {value[nm]:.3g} is far above any reachable level of {src} (at most "
                                f"{lvl[src]:.3g}), so the inhibition factor 1/(1 + {src}/{nm}) stays above "
                                f"{1 / (1 + lvl[src] / value[nm]):.4f} and barely changes the dynamics")
            if e.kind == "uptake" and e.params.get("K") == nm:
                if value[nm] > 10 * lvl[src]:
                    why += (f": {nm} = {value[nm]:.3g} is far above any reachable level of {src} (at most "
                            f"{lvl[src]:.3g}): uptake stays in its linear range, only mu/{nm} is determined")
            if e.kind == "uptake" and e.params.get("mu") == nm and isinstance(e.params.get("K"), str):
                K = e.params["K"]
                if K in value and value[K] > 10 * lvl[src]:
                    why += (f": {src} stays far below {K} = {value[K]:.3g} (at most {lvl[src]:.3g}), so "
                            f"{nm} and {K} enter only as the ratio {nm}/{K}")
            if e.kind == "production" and e.target and e.params.get("v") == nm and e.target in lvl:
                why += f"; {e.target} stays at most {lvl[e.target]:.3g}"
        out[nm] = why
    return out


# ====================================================================================================
# Nominal values
# ====================================================================================================

def load_nominal(path: str | Path) -> tuple[dict[str, float], dict[str, float], dict[str, Any]]:
    """(parameters, x0, document) from a fit.json or params file (JSON/YAML). Values may be numbers or
    {"value": v}."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read ({exc.strerror})", file=str(path)) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        import yaml

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise DataError(f"neither JSON nor YAML ({exc})", file=str(path)) from None
    if not isinstance(doc, dict):
        raise DataError("expected a mapping with 'parameters' and/or 'x0'", file=str(path))

    def values(block: Any, what: str) -> dict[str, float]:
        out = {}
        for k, v in (block or {}).items():
            if isinstance(v, Mapping):
                v = v.get("value")
            try:
                fv = float(v)
            except (TypeError, ValueError):
                raise DataError(f"expected a number, got {v!r}", file=str(path), field=f"{what}.{k}") from None
            if not math.isfinite(fv):
                raise DataError(f"non-finite value {v!r}", file=str(path), field=f"{what}.{k}")
            out[str(k)] = fv
        return out

    params = {**values(doc.get("constants"), "constants"), **values(doc.get("parameters"), "parameters")}
    raw_x0 = doc.get("x0")
    if isinstance(raw_x0, list):          # one block per experiment: use the first
        raw_x0 = raw_x0[0] if raw_x0 else {}
    x0 = values(raw_x0 if isinstance(raw_x0, Mapping) else {}, "x0")
    return params, x0, doc


def check_nominal(spec: Spec, params: Mapping[str, float], x0: Mapping[str, float], file: str) -> None:
    for k in params:
        if k not in spec.parameters:
            raise DataError(f"unknown parameter {k!r}", file=file, field=f"parameters.{k}")
    for k in x0:
        if k not in spec.states:
            raise DataError(f"unknown state {k!r}", file=file, field=f"x0.{k}")


# ====================================================================================================
# Plots, report and the `symode design` pipeline
# ====================================================================================================

def _fmt_rel(v: float) -> str:
    if v is None or not np.isfinite(v):
        return "inf"
    return f"{100 * v:.3g}%"


def plot_inputs(path: str | Path, proposed: Design, reference: Design | None, c: Constraints) -> None:
    from symode.viz.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 2.6))
    if reference is not None:
        t = np.append(reference.d_times, reference.duration_h)
        ax.step(t / 24, np.append(reference.d_values, reference.d_values[-1]), where="post", color="0.6", lw=0.8,
                label=f"before ({reference.label or 'reference'})")
    t = np.append(proposed.d_times, proposed.duration_h)
    ax.step(t / 24, np.append(proposed.d_values, proposed.d_values[-1]), where="post", color="C0", lw=1.5,
            label="proposed")
    for y in (c.d_min, c.d_max):
        ax.axhline(y, color="C3", ls=":", lw=0.8)
    ax.set_xlabel("time [d]")
    ax.set_ylabel(f"{proposed.input_name} [1/h]")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title("Dilution rate: proposed experiment")
    save_figure(fig, path)


def plot_predicted(path: str | Path, ev: Evaluation, problem: DesignProblem) -> None:
    from symode.viz.plots import pyplot, save_figure

    plt = pyplot()
    states = problem.model.states
    n = len(states) + 1
    ncols = 2
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(12, 2.2 * nrows), sharex=True, squeeze=False)
    t = ev.times / 24
    measured = {m.name: m for m in ev.design.measurements}
    for ax, (i, s) in zip(axes.flat, enumerate(states), strict=False):
        ax.plot(t, ev.x[:, i], color="C0", lw=1.0)
        if s == problem.floor_state:
            ax.axhline(ev.floor, color="C3", ls="--", lw=0.8, label=f"floor {ev.floor:g}")
            ax.legend(fontsize=8)
        tag = f" (measured every {measured[s].every_h:g} h)" if s in measured else " (hidden)"
        ax.set_ylabel(s)
        ax.set_title(s + tag, fontsize=9)
        ax.grid(alpha=0.3)
    ax = axes.flat[len(states)]
    ax.step(t, ev.design.d_at(ev.times), where="post", color="C2", lw=1.0)
    ax.set_ylabel(ev.design.input_name)
    ax.grid(alpha=0.3)
    for a in axes.flat[n:]:
        a.axis("off")
    for a in axes[-1]:
        a.set_xlabel("time [d]")
    fig.suptitle("Predicted trajectories under the proposed experiment (nominal parameters)")
    fig.tight_layout()
    save_figure(fig, path)


def plot_intervals(path: str | Path, names: Sequence[str], before: np.ndarray, after: np.ndarray,
                   labels: tuple[str, str] = ("before", "proposed")) -> None:
    """Predicted 95% intervals (factor around the nominal value; log scale), before vs after."""
    from symode.viz.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(names)), 3.4))
    x = np.arange(len(names))
    cap = math.log(1e3)
    for off, rel, col, lab in ((-0.15, before, "0.55", labels[0]), (0.15, after, "C0", labels[1])):
        half = np.minimum(np.where(np.isfinite(rel), 1.959963984540054 * rel, cap), cap)
        ax.vlines(x + off, np.exp(-half), np.exp(half), color=col, lw=4, label=lab)
        inf = ~np.isfinite(rel)
        ax.plot(x[inf] + off, np.full(inf.sum(), 1.0), "x", color=col, ms=6)
    ax.axhline(1.0, color="k", lw=0.6)
    for f in (0.9, 1.1):
        ax.axhline(f, color="C3", ls=":", lw=0.6)
    ax.set_yscale("log")
    ax.set_ylim(1e-3, 1e3)
    ax.set_xticks(x)
    ax.set_xticklabels([n[3:] + "(0)" if n.startswith("x0.") else n for n in names], rotation=45, ha="right")
    ax.set_ylabel("95% interval / nominal")
    ax.set_title("Predicted 95% intervals (x: undetermined; dotted: +-10%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    save_figure(fig, path)


@dataclass
class DesignRun:
    problem: DesignProblem
    result: DesignResult
    proposed: Evaluation
    reference: Evaluation | None
    random: list[Evaluation]
    all_candidates: Evaluation | None
    robust_proposed: Robustness | None
    robust_reference: Robustness | None
    undetermined: dict[str, str]
    document: dict[str, Any]
    settings: dict[str, Any]

    @property
    def best_random(self) -> Evaluation | None:
        if not self.random:
            return None
        crit = self.result.criterion
        return max(self.random, key=lambda e: self.problem.score(e.criteria, crit))


def run_design(spec: Spec, *, params: Mapping[str, float] | None = None, x0: Mapping[str, float] | None = None,
               nominal_source: str = "the spec's values", fit_doc: Mapping[str, Any] | None = None,
               reference: Design | None = None, constraints: Constraints | None = None,
               candidates: Sequence[str] | None = None, extra_noise: tuple[float, float] = (0.05, 0.002),
               every_h: float = 0.25, days: float = 30.0, segment_h: float = 24.0, criterion: str = "D",
               targets: Sequence[str] | None = None, target_rel_se: float = GOOD_REL_SE, time_limit: float = 180.0,
               n_random: int = 50, n_robust: int = 20, seed: int = 0, progress: bool = True,
               model: Model | None = None, log: Callable[[str], None] | None = None) -> DesignRun:
    """The whole `symode design` computation (no files written; see :func:`write_design`)."""
    c = constraints or Constraints()
    if candidates is None:
        candidates = [s for s, st in spec.states.items() if st.role == "metabolite" and s not in spec.observables]
    problem = DesignProblem(spec, params=params, x0=x0, model=model, constraints=c, candidates=candidates)
    base = base_measurements(problem.spec, every_h)
    kw = dict(criterion=criterion, targets=targets, target_rel_se=target_rel_se)
    if log:
        log(f"unknowns: {', '.join(problem.names)}; measurement plans: "
            f"{len(measurement_options(problem, base, budget=(c.budget_n, c.budget_h), noise=extra_noise))}")
    result = optimise_design(problem, base, days=days, segment_h=segment_h, budget=(c.budget_n, c.budget_h),
                             extra_noise=extra_noise, time_limit=time_limit, seed=seed, progress=progress, log=log,
                             **kw)
    proposed = result.best
    if reference is None:
        nominal = float(problem.spec.inputs[problem.input_name].default or 0.5 * (c.d_min + c.d_max))
        reference = Design(days * 24, dict(zip(problem.model.states, problem.x0, strict=True)), np.array([0.0]),
                           np.array([nominal]), list(base), input_name=problem.input_name,
                           label=f"{days:g} d at constant {problem.input_name} = {nominal:g}, spec observables")
    ref_ev = problem.evaluate(reference, **kw)
    random = random_baseline(problem, base, n=n_random, days=days, segment_h=segment_h,
                             budget=(c.budget_n, c.budget_h), extra_noise=extra_noise, seed=seed + 12345,
                             progress=progress, **kw) if n_random else []
    if random:   # the best random design in full (symmetries and Cramer-Rao SEs)
        i_best = max(range(len(random)), key=lambda i: problem.score(random[i].criteria, criterion))
        random[i_best] = problem.evaluate(random[i_best].design, **kw)
    extra = [Measurement(cand, c.budget_h, extra_noise[0], extra_noise[1]) for cand in problem.candidates]
    allc = problem.evaluate(Design(proposed.design.duration_h, proposed.design.x0, proposed.design.d_times,
                                   proposed.design.d_values, list(base) + extra, problem.input_name,
                                   "all candidates"), **kw) if extra else None
    # extreme constant designs widen the range of reachable metabolite levels for the explanations
    extremes = []
    for lvl in (c.d_min, c.d_max):
        d = Design(days * 24, proposed.design.x0, np.array([0.0]), np.array([lvl]), list(base) + extra,
                   problem.input_name, f"constant {lvl:g}")
        e = problem.evaluate(d, **kw)
        if e.ok:
            extremes.append(e)
    pool = [proposed, *random, *([allc] if allc else []), *extremes]
    pool = [e for e in pool if e.rel_se is not None]
    undetermined = undetermined_explanations(problem, pool)
    best_any = {nm: min(float(e.rel_se[i]) for e in pool) for i, nm in enumerate(problem.names)}
    spread = intervals_spread(fit_doc, [n for n in problem.names if not n.startswith("x0.")])
    rob_p = robustness(problem, proposed.design, n=n_robust, spread=spread, seed=seed + 7, progress=progress,
                       **kw) if n_robust else None
    rob_r = robustness(problem, reference, n=n_robust, spread=spread, seed=seed + 7, progress=progress,
                       **kw) if n_robust else None
    doc = proposed.design.to_json(proposed.rel_se_dict())
    settings = {"nominal_source": nominal_source, "criterion": criterion, "targets": list(targets or []),
                "target_rel_se": target_rel_se, "days": days, "segment_h": segment_h, "every_h": every_h,
                "extra_noise": extra_noise, "candidates": list(problem.candidates), "time_limit": time_limit,
                "n_random": n_random, "n_robust": n_robust, "seed": seed,
                "fit_spread": fit_doc is not None and "confidence_intervals" in (fit_doc or {})}
    settings["best_any"] = best_any
    settings["n_pool"] = len(pool)
    return DesignRun(problem, result, proposed, ref_ev, random, allc, rob_p, rob_r, undetermined, doc, settings)


def render_report(run: DesignRun, *, figures: Mapping[str, str] | None = None) -> str:
    from symode.identifiability import fisher_analysis, render_markdown

    pb, res, P, R = run.problem, run.result, run.proposed, run.reference
    c = pb.constraints
    crit = res.criterion
    names = pb.names
    br = run.best_random
    L = [f"# Experiment design for `{pb.spec.name}`", ""]
    L.append(f"Nominal values: {run.settings['nominal_source']}. Criterion: **{crit}**"
             + (f" (targets {', '.join(run.settings['targets']) or 'all'} below "
                f"{_fmt_rel(run.settings['target_rel_se'])})" if crit == "target" else "")
             + f". Optimised in {res.elapsed_s:.0f} s ({res.n_evaluations} Fisher-information evaluations).")
    L.append("")
    L.append(f"Constraints: at most {c.max_days:g} days; {pb.input_name} piecewise constant on "
             f"{run.settings['segment_h']:g}-h segments in [{c.d_min:g}, {c.d_max:g}] 1/h, changing by at most "
             f"{c.max_step:g} 1/h between segments; {pb.floor_state} never below {c.floor_fraction:g} x its "
             f"starting value (checked every {FLOOR_DT:g} h of the predicted trajectory); at most {c.budget_n} "
             f"extra measured quantit{'y' if c.budget_n == 1 else 'ies'} every {c.budget_h:g} h, chosen among "
             f"{', '.join(pb.candidates) or 'none'} (noise {run.settings['extra_noise'][0]:g} relative + "
             f"{run.settings['extra_noise'][1]:g} absolute).")
    L.append("")
    L += ["## Proposed experiment", ""]
    d = P.design
    L.append(f"- duration: {d.duration_h / 24:g} days; x0: " + ", ".join(f"{k} = {v:.4g}" for k, v in d.x0.items()))
    L.append("- measurements: " + "; ".join(
        f"{m.name} every {m.every_h:g} h ({m.relative:g} relative + {m.absolute:g} absolute)" for m in d.measurements))
    L.append(f"- {pb.input_name}(t) levels (each for {run.settings['segment_h']:g} h): "
             + ", ".join(f"{v:.3f}" for v in d.d_values))
    L.append(f"- lowest predicted {pb.floor_state}: {P.min_floor_state:.4g} (floor {P.floor:.4g}); "
             f"constraints {'all satisfied' if P.feasible else 'VIOLATED: ' + '; '.join(P.violations)}")
    L.append("")
    if figures:
        L += [f"![{k}]({v})" for k, v in figures.items()]
        L.append("")
    L += ["## Criteria", "",
          "D: log det of the Fisher information of the log-parameters on the subspace free of the persistent "
          f"symmetries, with a weak prior (SE {pb.prior_se:g} in log units); higher is better. A: sum of "
          "predicted variances (lower is better). E: smallest eigenvalue (higher is better).", "",
          f"| design | D | A | E | parameters < {_fmt_rel(GOOD_REL_SE)} | constraints |", "|---|---|---|---|---|---|"]
    rows = [(f"before: {R.design.label}", R)] if R is not None else []
    rows.append(("proposed", P))
    if br is not None:
        rows.append((f"best of {len(run.random)} random admissible designs "
                     f"({_option_label(br.design.measurements, base_measurements(pb.spec))})", br))
    if run.all_candidates is not None:
        rows.append(("proposed D(t) with all candidates measured (over budget; upper bound)", run.all_candidates))
    for lab, e in rows:
        n_good = e.n_good() if e.rel_se is not None else "—"
        L.append(f"| {lab} | {e.criteria['D']:.4g} | {e.criteria['A']:.4g} | {e.criteria['E']:.3g} | {n_good} | "
                 f"{'ok' if e.feasible else '; '.join(e.violations)} |")
    L.append("")
    if res.per_option:
        L.append("Best exact score per measurement plan: " + "; ".join(f"{k}: {v:.4g}" for k, v in
                                                                       res.per_option.items()) + ".")
        L.append("")
    L += ["## Predicted relative standard errors", "",
          "Cramer-Rao bounds at the nominal values (SE of log theta for log-scale quantities; inf: not "
          "determined — moved by an exact symmetry of the design's measurements or a flat direction).", ""]
    head = "| quantity | nominal | before | proposed |" + (" best random |" if br is not None else "")
    head += " best in any evaluated design |"
    L += [head, "|---|---|---|---|" + ("---|" if br is not None else "") + "---|"]
    best_any = run.settings.get("best_any", {})
    rb = R.rel_se_dict() if R is not None else {}
    rp = P.rel_se_dict()
    rr = br.rel_se_dict() if br is not None else {}
    for i, nm in enumerate(names):
        row = f"| {nm} | {pb.theta[i]:.4g} | {_fmt_rel(rb.get(nm, math.nan))} | **{_fmt_rel(rp[nm])}** |"
        if br is not None:
            row += f" {_fmt_rel(rr[nm])} |"
        row += f" {_fmt_rel(best_any.get(nm, math.nan))} |"
        L.append(row)
    L.append("")
    L += ["## Undetermined under every admissible design", "",
          f"Quantities moved by a symmetry that no admissible measurement breaks, and quantities whose relative "
          f"SE stays above 50% in all {run.settings.get('n_pool', 0)} designs evaluated (proposed, random, "
          f"constant extremes of D, and the proposed D(t) with every candidate measured at once):", ""]
    if run.undetermined:
        L += [f"- **{k}**: {v}" for k, v in run.undetermined.items()]
    else:
        L.append("None: every estimated quantity is determined by some admissible design.")
    L.append("")
    broken = [s for s in pb.symmetries([b.name for b in base_measurements(pb.spec)])
              if not any(_same_sym(s, q) for q in pb.persistent)]
    if broken:
        L += ["Symmetries of the current measurements that an admissible extra measurement breaks:", ""]
        for s in broken:
            L.append(f"- {s.description}: measure {', '.join(s.states)} to break it"
                     + (" (the proposed experiment does)" if set(s.states) & set(d.extras) else ""))
        L.append("")
    if run.robust_proposed is not None:
        rp_, rr_ = run.robust_proposed.summary(), (run.robust_reference.summary() if run.robust_reference else None)
        src = "the fit's 95% intervals" if run.settings.get("fit_spread") else "+-20% (log-normal SD 0.2)"
        L += ["## Robustness to the nominal values", "",
              f"{run.robust_proposed.n} parameter samples (log-normal, spread from {src}):", "",
              f"| design | {crit}-score p10 / p50 / p90 | culture above floor |", "|---|---|---|"]
        for lab, sm in (("proposed", rp_), ("before", rr_)):
            if sm is None:
                continue
            q = sm["score_p10_p50_p90"]
            L.append(f"| {lab} | {q[0]:.4g} / {q[1]:.4g} / {q[2]:.4g} | {100 * sm['feasible_fraction']:.0f}% |")
        L += ["", "Relative SE under the proposed experiment over the samples (p10 / p50 / p90):", ""]
        L += ["| quantity | p10 | p50 | p90 |", "|---|---|---|---|"]
        for nm, q in rp_["rel_se_p10_p50_p90"].items():
            L.append(f"| {nm} | {_fmt_rel(q[0])} | {_fmt_rel(q[1])} | {_fmt_rel(q[2])} |")
        L.append("")
    if P.J is not None:
        fa = fisher_analysis(P.J, names, P.theta, scales=pb.scales, n_obs=P.n_obs, loss=0.5 * P.n_obs,
                             symmetries=P.symmetries, rel_se_max=GOOD_REL_SE * 5)
        ranges = {s: (float(np.min(P.x[:, i])), float(np.max(P.x[:, i]))) for i, s in enumerate(pb.model.states)}
        L += ["## Predicted identifiability under the proposed experiment", "",
              "(Fisher analysis at the nominal values; identifiable combinations are eigenvectors of the "
              "information matrix.)", ""]
        L.append(render_markdown(fa, spec=pb.spec, state_ranges=ranges, heading="###"))
    return "\n".join(L) + "\n"


def _same_sym(a: Any, b: Any) -> bool:
    keys = set(a.exponents) | set(b.exponents)
    va = np.array([a.exponents.get(k, 0.0) for k in keys])
    vb = np.array([b.exponents.get(k, 0.0) for k in keys])
    return bool(abs(abs(va @ vb) - np.linalg.norm(va) * np.linalg.norm(vb)) < 1e-9)


def write_design(run: DesignRun, out: str | Path) -> dict[str, Path]:
    """Write OUTDIR/report.md, design.json and the plots (each atomically)."""
    from symode.io import atomic_write_json, atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    P, R = run.proposed, run.reference
    plot_inputs(out / "design_D.png", P.design, R.design if R is not None else None, run.problem.constraints)
    plot_predicted(out / "predicted_trajectories.png", P, run.problem)
    before = R.rel_se if R is not None and R.rel_se is not None else np.full(len(run.problem.names), np.inf)
    plot_intervals(out / "predicted_intervals.png", run.problem.names, before, P.rel_se)
    figs = {"proposed D(t)": "design_D.png", "predicted trajectories": "predicted_trajectories.png",
            "predicted intervals before vs after": "predicted_intervals.png"}
    atomic_write_json(out / "design.json", run.document)
    atomic_write_text(out / "report.md", render_report(run, figures=figs))
    return {"report": out / "report.md", "design": out / "design.json",
            **{k: out / v for k, v in figs.items()}}


def simulate_design_data(problem: DesignProblem, design: Design, *, seed: int = 0,
                         params: Mapping[str, float] | None = None) -> tuple[Spec, Any]:
    """Synthetic data of a design (independent Gaussian noise from each measurement's noise model):
    (spec observing exactly the design's measurements, Dataset with blank cells between samples)."""
    from symode.solve.simulation import simulate
    from symode.solve.synth import make_dataset

    sp = problem.measured_spec(design.extras)
    for m_ in design.measurements:
        sp.observables[m_.name].noise = Noise(m_.absolute, m_.relative)
    if params:
        sp = sp.with_values(params)
    sp = sp.with_values(None, design.x0)
    T = design.duration_h
    times = np.unique(np.round(np.concatenate([m_.sample_times(T) for m_ in design.measurements]
                                              + [design.d_times[design.d_times < T], [0.0, T]]), 9))
    model = build_model(sp)
    D = design.d_at(times)
    traj = simulate(model, times, inputs={design.input_name: D})
    rng = np.random.default_rng(seed)
    cols = {}
    for m_ in design.measurements:
        y = traj[m_.name]
        sigma = np.sqrt(m_.absolute ** 2 + (m_.relative * y) ** 2)
        obs = y + sigma * rng.normal(size=y.shape)
        keep = np.zeros(len(times), dtype=bool)
        keep[np.searchsorted(times, m_.sample_times(T) - 1e-7)] = True
        obs[~keep] = np.nan
        cols[m_.name] = obs
    return sp, make_dataset(times, {design.input_name: D}, cols)
