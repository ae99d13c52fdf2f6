"""The whole ``symode design`` computation: the design problem at nominal values, the optimised
experiment, the reference experiment, random designs, robustness and the explanations of what stays
undetermined (no files written: :func:`symode.report.design.write_design` writes them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from symode.design.evaluator import Evaluator
from symode.design.experiment import Constraints, Design, Measurement, base_measurements
from symode.design.explain import undetermined_explanations
from symode.design.optimise import DesignResult, measurement_options, optimise_design, random_baseline
from symode.design.problem import GOOD_REL_SE, DesignProblem, Evaluation
from symode.design.robustness import Robustness, intervals_spread, robustness
from symode.solve.model import Model
from symode.spec import Spec

__all__ = ["DesignRun", "run_design"]


@dataclass
class DesignRun:
    """Everything ``symode design`` computes; the report writers present it."""

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
               model: Model | None = None, log: Callable[[str], None] | None = None,
               workers: int | None = None) -> DesignRun:
    """The whole `symode design` computation (no files written; see
    :func:`symode.report.design.write_design`). The batches of independent evaluations (screening,
    gradients, final candidates, random designs, robustness samples) run on ``workers`` local processes
    (default all CPUs; 1: in this process) or the cluster of :func:`symode.parallel.use_scheduler`."""
    with Evaluator(DesignProblem(spec, params=params, x0=x0, model=model, constraints=constraints or Constraints(),
                                 candidates=_candidates(spec, candidates)), workers=workers) as evaluator:
        return _run(evaluator, nominal_source=nominal_source, fit_doc=fit_doc, reference=reference,
                    extra_noise=extra_noise, every_h=every_h, days=days, segment_h=segment_h, criterion=criterion,
                    targets=targets, target_rel_se=target_rel_se, time_limit=time_limit, n_random=n_random,
                    n_robust=n_robust, seed=seed, progress=progress, log=log)


def _candidates(spec: Spec, candidates: Sequence[str] | None) -> list[str]:
    if candidates is None:
        return [s for s, st in spec.states.items() if st.role == "metabolite" and s not in spec.observables]
    return list(candidates)


def _run(evaluator: Evaluator, *, nominal_source: str, fit_doc: Mapping[str, Any] | None, reference: Design | None,
         extra_noise: tuple[float, float], every_h: float, days: float, segment_h: float, criterion: str,
         targets: Sequence[str] | None, target_rel_se: float, time_limit: float, n_random: int, n_robust: int,
         seed: int, progress: bool, log: Callable[[str], None] | None) -> DesignRun:
    problem = evaluator.problem
    c = problem.constraints
    base = base_measurements(problem.spec, every_h)
    kw = dict(criterion=criterion, targets=targets, target_rel_se=target_rel_se)
    if log:
        log(f"unknowns: {', '.join(problem.names)}; measurement plans: "
            f"{len(measurement_options(problem, base, budget=(c.budget_n, c.budget_h), noise=extra_noise))}")
    result = optimise_design(problem, base, days=days, segment_h=segment_h, budget=(c.budget_n, c.budget_h),
                             extra_noise=extra_noise, time_limit=time_limit, seed=seed, progress=progress, log=log,
                             evaluator=evaluator, **kw)
    proposed = result.best
    if reference is None:
        nominal = float(problem.spec.inputs[problem.input_name].default or 0.5 * (c.d_min + c.d_max))
        reference = Design(days * 24, dict(zip(problem.model.states, problem.x0, strict=True)), np.array([0.0]),
                           np.array([nominal]), list(base), input_name=problem.input_name,
                           label=f"{days:g} d at constant {problem.input_name} = {nominal:g}, spec observables")
    ref_ev = problem.evaluate(reference, **kw)
    random = random_baseline(problem, base, n=n_random, days=days, segment_h=segment_h,
                             budget=(c.budget_n, c.budget_h), extra_noise=extra_noise, seed=seed + 12345,
                             progress=progress, evaluator=evaluator, **kw) if n_random else []
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
                       evaluator=evaluator, **kw) if n_robust else None
    rob_r = robustness(problem, reference, n=n_robust, spread=spread, seed=seed + 7, progress=progress,
                       evaluator=evaluator, **kw) if n_robust else None
    doc = proposed.design.to_json(proposed.rel_se_dict())
    settings = {"nominal_source": nominal_source, "criterion": criterion, "targets": list(targets or []),
                "target_rel_se": target_rel_se, "days": days, "segment_h": segment_h, "every_h": every_h,
                "extra_noise": extra_noise, "candidates": list(problem.candidates), "time_limit": time_limit,
                "n_random": n_random, "n_robust": n_robust, "seed": seed,
                "fit_spread": fit_doc is not None and "confidence_intervals" in (fit_doc or {})}
    settings["best_any"] = best_any
    settings["n_pool"] = len(pool)
    return DesignRun(problem, result, proposed, ref_ev, random, allc, rob_p, rob_r, undetermined, doc, settings)
