"""Robustness of a design to the nominal values: the design re-evaluated at parameter samples
(log-normal: from a fit's intervals, or +-20% around the nominal values), with the spread of the
criterion, of every relative standard error and the fraction of samples that keep the culture above
its floor. A sample whose evaluation fails counts as infeasible with score -inf.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from symode.design.evaluator import Evaluator
from symode.design.experiment import Design
from symode.design.problem import GOOD_REL_SE, DesignProblem
from symode.progress import progress_bar

__all__ = ["Robustness", "intervals_spread", "robustness"]


@dataclass
class Robustness:
    """Criterion scores, relative SEs and floor feasibility of one design over parameter samples."""

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
    ``default`` (+-20%). Entries of the fit document that are not intervals of two positive numbers
    (open sides, malformed documents) give ``cap``, or ``default`` when missing."""
    out = {n: default for n in names}
    ci = (fit_doc or {}).get("confidence_intervals") if isinstance(fit_doc, Mapping) else None
    if not isinstance(ci, Mapping):
        return out
    for n in names:
        iv = ci.get(n)
        if isinstance(iv, Mapping):
            iv = iv.get("0.95") or iv.get("95") or next(iter(iv.values()), None)
        if isinstance(iv, (list, tuple)) and len(iv) == 2:
            lo, hi = (_positive(v) for v in iv)
            if lo is None or hi is None:
                out[n] = cap
            else:
                out[n] = min(max((math.log(hi) - math.log(lo)) / (2 * 1.959963984540054), 1e-3), cap)
    return out


def _positive(v: Any) -> float | None:
    """``v`` as a finite positive number, else None."""
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def robustness(problem: DesignProblem, design: Design, *, n: int = 20, spread: Mapping[str, float] | None = None,
               criterion: str = "D", seed: int = 7, targets: Sequence[str] | None = None,
               target_rel_se: float = GOOD_REL_SE, progress: bool = False,
               evaluator: Evaluator | None = None) -> Robustness:
    """Evaluate a design at ``n`` log-normal samples of the estimated model parameters (one batch on
    ``evaluator``; default: one after the other in this process)."""
    est = [nm for nm in problem.names if not nm.startswith("x0.")]
    spread = dict(spread) if spread is not None else {nm: 0.2 for nm in est}
    rng = np.random.default_rng(seed)
    scores, rels, feas = [], [], []
    nominal = dict(zip(problem.model.parameters, problem.p, strict=True))
    bar = progress_bar(desc="robustness", total=n, unit="sample", enabled=progress)
    samples = []
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
        samples.append(params)
    options = dict(criterion=criterion, targets=targets, target_rel_se=target_rel_se)
    evs = (evaluator or Evaluator(problem, workers=1)).evaluate(
        [(design, dict(options, params=params)) for params in samples], on_result=lambda _k, _e: bar.update(1))
    for ev in evs:
        scores.append(problem.score(ev.criteria, criterion) if ev.ok else -math.inf)
        rels.append(ev.rel_se if ev.rel_se is not None else np.full(len(problem.names), np.inf))
        feas.append(ev.ok and ev.min_floor_state >= ev.floor)
    bar.close()
    return Robustness(n, criterion, np.array(scores), np.array(rels).reshape(n, len(problem.names)),
                      np.array(feas, dtype=bool), list(problem.names), dict(spread))
