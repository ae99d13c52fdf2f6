"""The outcome of a fit: values, intervals, identifiability flags and reasons, diagnostics, JSON."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symode.fit.problem import FitProblem
from symode.identifiability import CHI2_1
from symode.spec import Spec
from symode.spec.data import Dataset

#: chi2(1) 99% quantile: starts within CHI2_1_99 / 2 of the best loss are statistically indistinguishable.
CHI2_1_99 = CHI2_1["0.99"]


#: Relative standard error above which a parameter is not reported identifiable (margin below the 50%
#: Cramer-Rao criterion: SEs at the estimate and at the truth differ).
REL_SE_MAX = 0.2


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
    analysis: str = "full"                       # "none", "fisher" or "full" (see symode.fit.api.fit)
    #: checks a time budget stopped before they finished: phase, name, sides, effect (what it means)
    cut_short: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, Any] = field(default_factory=dict)   # symode.timing.Timings.to_dict() of the fit
    penalty: float = 0.0                         # the penalties' part of the objective
    #: per stability penalty: name, lambda_max, margin, satisfied (symode.fit.penalty.PenaltyTerms)
    stability: list[dict[str, Any]] = field(default_factory=list)

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
                    piv = list(prof.intervals[lev])
                    for k, side in enumerate(("lower", "upper")):   # an unfinished side says nothing
                        if piv[k] is None and side in prof.cut_short:
                            piv[k] = iv[lev][k]
                    iv[lev] = union_interval(iv[lev], piv)
            if n in self.spread:      # starts statistically indistinguishable from the best
                for lev in ("0.95", "0.99"):
                    iv[lev] = union_interval(iv[lev], self.spread[n])
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
            if p.name in flags and p.decided and not p.identifiable:
                flags[p.name] = False
        return flags

    def reasons(self) -> dict[str, str]:
        out = dict(self.fisher.reasons) if self.fisher is not None else {}
        ident = self.identifiable
        for n, (lo, hi) in self.spread.items():
            if not ident.get(n, True) and n not in out:
                out[n] = f"multi-start: equally good optima from {lo:.3g} to {hi:.3g}"
        for p in self.profiles:
            if p.decided and not p.identifiable and p.name in ident:
                out[p.name] = (out.get(p.name, "") + "; " if p.name in out else "") + "flat profile likelihood"
        for c in self.cut_short:
            n = c.get("name", "")
            if n in ident:
                note = f"{c['phase']} cut short by the time limit ({c['effect']})"
                out[n] = (out[n] + "; " if n in out else "") + note
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
        out["objective_definition"] = "1/2 sum ((y - data) / sigma)^2 over observed values" + (
            " + penalties" if self.spec.penalties else "")
        out["penalty"] = float(self.penalty)
        if self.stability:
            out["stability"] = [dict(s) for s in self.stability]
        out["data_objective"] = float(self.objective - self.penalty)
        out["weighted_ssr"] = 2.0 * float(self.objective - self.penalty)
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
        out["analysis"] = self.analysis
        out["cut_short"] = self.cut_short
        if self.timings:
            out["timings"] = self.timings
        return out


def union_interval(a: Sequence[float | None], b: Sequence[float | None]) -> list[float | None]:
    """The smallest interval containing both (None: an open side)."""
    lo = None if a[0] is None or b[0] is None else min(a[0], b[0])
    hi = None if a[1] is None or b[1] is None else max(a[1], b[1])
    return [lo, hi]


def make_result(fp: FitProblem, z: np.ndarray, loss: float, converged: bool, iterations: int, t0: float,
                message: str, interrupted: bool, stages: list[dict[str, Any]], syms: Sequence[Any]) -> FitResult:
    """A FitResult at ``z`` (no uncertainty analysis yet); wall time counted from ``t0``."""
    p, x0s = fp.vectors(z)
    params = {n: float(v) for n, v in zip(fp.model.parameters, p, strict=True)}
    x0 = [{n: float(v) for n, v in zip(fp.model.states, x, strict=True)} for x in x0s]
    return FitResult(spec=fp.model.spec, names=list(fp.names), scales=list(fp.scales), z=z,
                     theta=fp.natural(z), parameters=params, x0=x0, objective=float(loss), n_obs=fp.n_obs,
                     converged=converged, iterations=iterations, wall_time_s=time.perf_counter() - t0,
                     message=message, interrupted=interrupted, stages=stages, symmetries=list(syms),
                     datasets=fp.datasets, problem=fp, penalty=fp.penalty_loss(z),
                     stability=fp.penalty.stability_summary(fp.natural(z)) if fp.penalty.stability else [])
