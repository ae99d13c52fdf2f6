"""Optimising a design: the D(t) levels and the extra measurements that maximise a criterion.

D(t) levels on equal segments (e.g. 24 h), within
[d_min, d_max] and with at most ``max_step`` change between consecutive segments (enforced exactly by
the parametrisation), the main culture above ``floor_fraction`` of its starting value along the
predicted trajectory (a penalty while optimising, checked at every 15 min for the result), and every
admissible choice of extra measurements under a budget (at most N extra quantities every H hours).
Structured and random starts are screened, the best are refined by L-BFGS-B with finite-difference
gradients on a coarse sampling grid (dense samples lumped: information per unit time is kept), and the
best candidates are re-evaluated exactly. Wall time is bounded (``time_limit``).

:func:`random_baseline` draws random admissible designs for comparison.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize

from symode.design.evaluator import Evaluator
from symode.design.experiment import Constraints, Design, Measurement
from symode.design.problem import CRITERIA, GOOD_REL_SE, DesignProblem, Evaluation
from symode.errors import SymodeError
from symode.progress import progress_bar

__all__ = ["FAILED_SCORE", "DesignResult", "measurement_options", "no_information_message", "optimise_design",
           "option_label", "piecewise_design", "project_levels", "random_baseline", "random_design_levels",
           "structured_starts"]

#: Coarse score of a failed evaluation (no usable Fisher information) while optimising.
FAILED_SCORE = -1e6


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


def no_information_message(reason: str) -> str:
    """The one-line error when no design has a usable Fisher information at the nominal values."""
    return (f"no design has a usable Fisher information at these nominal values ({reason}): the model blows up "
            "or is too stiff there; fit it first and pass --fit fit.json, or give --params with values where "
            "the model is well behaved")


def option_label(ms: Sequence[Measurement], base: Sequence[Measurement]) -> str:
    names = {b.name for b in base}
    extra = [f"{m.name} every {m.every_h:g} h" for m in ms if m.name not in names]
    return " + ".join(extra) if extra else "no extra measurement"


def optimise_design(problem: DesignProblem, base: Sequence[Measurement], *, days: float = 30.0,
                    segment_h: float = 24.0, budget: tuple[int, float] = (1, 2.0),
                    extra_noise: tuple[float, float] = (0.05, 0.002), criterion: str = "D",
                    targets: Sequence[str] | None = None, target_rel_se: float = GOOD_REL_SE,
                    time_limit: float = 180.0, coarse: float = 1.0, seed: int = 0, progress: bool = True,
                    n_local: int = 3, log: Callable[[str], None] | None = None,
                    evaluator: Evaluator | None = None) -> DesignResult:
    """Optimise D(t) levels and the extra measurements for a criterion within a wall-time budget.

    The screening, every finite-difference gradient and the final exact evaluations are batches of
    independent evaluations on ``evaluator`` (default: one after the other in this process)."""
    if criterion not in CRITERIA:
        raise SymodeError(f"unknown criterion {criterion!r} (choose from {', '.join(CRITERIA)})", field="criterion")
    c = problem.constraints
    if days * 24 > c.max_days * 24 + 1e-9:
        raise SymodeError(f"{days:g} days exceed the maximum of {c.max_days:g}", field="days")
    ev_map = evaluator or Evaluator(problem, workers=1)
    T = days * 24.0
    n = math.ceil(T / segment_h - 1e-9)
    rng = np.random.default_rng(seed)
    t_start = time.perf_counter()
    deadline = t_start + time_limit
    options = measurement_options(problem, base, budget=budget, noise=extra_noise)
    kw = dict(criterion=criterion, targets=targets, target_rel_se=target_rel_se)
    bar = progress_bar(desc="design", unit="eval", enabled=progress)
    history: list[tuple[float, float]] = []
    best_seen = [-math.inf]
    failures: list[str] = []          # reasons of failed evaluations (no usable Fisher information)

    def coarse_request(u: np.ndarray, opt: int) -> tuple[Design, dict[str, Any]]:
        d = piecewise_design(problem, project_levels(u, c), options[opt], duration_h=T, segment_h=segment_h)
        return d, dict(coarse=coarse, full=False, rtol=1e-7, **kw)

    def coarse_scores(points: Sequence[tuple[np.ndarray, int]]) -> list[float]:
        evs = ev_map.evaluate([coarse_request(u, o) for u, o in points], on_result=lambda _k, _e: bar.update(1))
        return [score_of(ev) for ev in evs]

    def score_of(ev: Evaluation) -> float:
        if not ev.ok:
            failures.append(ev.failure)
            return FAILED_SCORE
        s = problem.score(ev.criteria, criterion)
        margin = 1.02 * ev.floor
        if ev.min_floor_state < margin:
            s -= 50.0 * (margin - ev.min_floor_state) / max(ev.floor, 1e-12) + 5.0
        elif s > best_seen[0]:
            best_seen[0] = s
            history.append((time.perf_counter() - t_start, s))
        return s

    # 1. screen structured and random starts for every measurement plan (one batch)
    nominal = float(problem.spec.inputs[problem.input_name].default or 0.5 * (c.d_min + c.d_max))
    nominal = min(max(nominal, c.d_min), c.d_max)
    starts = [project_levels(u, c) for u in structured_starts(n, c, rng, nominal=nominal)]
    points = [(u, o) for o in range(len(options)) for u in starts]
    screened = [(s, o, u) for s, (u, o) in zip(coarse_scores(points), points, strict=True)]
    if all(s <= FAILED_SCORE for s, _o, _u in screened):
        bar.close()
        raise SymodeError(no_information_message(failures[-1] if failures else "no evaluation"))
    screened.sort(key=lambda r: -r[0])
    if log:
        log(f"screened {len(screened)} starts over {len(options)} measurement plan(s); best coarse score "
            f"{screened[0][0]:.4g} ({option_label(options[screened[0][1]], base)})")

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
            if time.perf_counter() > local_deadline:
                raise _Stop
            shifted = [u.copy()]                   # the point and its forward-difference neighbours: one batch
            steps = []
            for k in range(len(u)):
                uk = u.copy()
                steps.append(h if uk[k] + h <= c.d_max else -h)
                uk[k] += steps[-1]
                shifted.append(uk)
            scores = coarse_scores([(uk, o) for uk in shifted])
            for sk, uk in zip(scores, shifted, strict=True):
                if sk > state["best"][0]:
                    state["best"] = (sk, uk.copy())
            f0 = scores[0]
            g = (np.array(scores[1:]) - f0) / np.array(steps)
            return -f0, -g

        try:
            minimize(fun, u0, jac=True, method="L-BFGS-B", bounds=[(c.d_min, c.d_max)] * n,
                     options={"maxiter": 200, "ftol": 1e-10, "gtol": 1e-6})
        except _Stop:
            pass
        refined.append((state["best"][0], o, project_levels(state["best"][1], c)))

    # 3. exact evaluation of the best distinct candidates (one batch)
    refined.sort(key=lambda r: -r[0])
    chosen: list[Design] = []
    seen: list[tuple[int, np.ndarray]] = []
    for _s, o, u in refined + screened:
        if len(chosen) >= max(2 * n_local, len(options) + 1):
            break
        if any(o == so and np.allclose(u, su) for so, su in seen):
            continue
        seen.append((o, u))
        chosen.append(piecewise_design(problem, u, options[o], duration_h=T, segment_h=segment_h, label="proposed"))
    finals = ev_map.evaluate([(d, kw) for d in chosen])
    bar.close()
    if not any(e.ok for e in finals):
        raise SymodeError(no_information_message(finals[-1].failure if finals else "no evaluation"))
    feasible = [e for e in finals if e.feasible] or [e for e in finals if e.ok]
    best = max(feasible, key=lambda e: problem.score(e.criteria, criterion))
    per_option: dict[str, float] = {}
    for e in finals:
        if e.feasible:
            lab = option_label(e.design.measurements, base)
            per_option[lab] = max(per_option.get(lab, -math.inf), problem.score(e.criteria, criterion))
    return DesignResult(best, options, history, finals, time.perf_counter() - t_start, problem.n_evaluations,
                        criterion, per_option)


def random_baseline(problem: DesignProblem, base: Sequence[Measurement], *, n: int = 50, days: float = 30.0,
                    segment_h: float = 24.0, budget: tuple[int, float] = (1, 2.0),
                    extra_noise: tuple[float, float] = (0.05, 0.002), criterion: str = "D",
                    targets: Sequence[str] | None = None, target_rel_se: float = GOOD_REL_SE, seed: int = 12345,
                    max_tries: int | None = None, progress: bool = False,
                    evaluator: Evaluator | None = None) -> list[Evaluation]:
    """``n`` random admissible piecewise-constant designs (uniform levels, max-step projection, rejected
    when the culture falls below its floor), each with its best admissible measurement plan; exact
    evaluations. The draws are evaluated in batches on ``evaluator`` and accepted in the order drawn (the
    designs one after the other would give)."""
    c = problem.constraints
    T = days * 24.0
    k = math.ceil(T / segment_h - 1e-9)
    rng = np.random.default_rng(seed)
    options = measurement_options(problem, base, budget=budget, noise=extra_noise)
    ev_map = evaluator or Evaluator(problem, workers=1)
    out: list[Evaluation] = []
    tries = 0
    limit = max_tries or 20 * n
    bar = progress_bar(desc="random designs", total=n, unit="design", enabled=progress)
    kw = dict(criterion=criterion, targets=targets, target_rel_se=target_rel_se, full=False)
    while len(out) < n and tries < limit:
        draws = [random_design_levels(k, c, rng) for _ in range(min(n - len(out), limit - tries))]
        evs = ev_map.evaluate([(piecewise_design(problem, lv, opt, duration_h=T, segment_h=segment_h,
                                                 label="random"), kw) for lv in draws for opt in options])
        for j in range(len(draws)):
            tries += 1
            ok = [e for e in evs[j * len(options):(j + 1) * len(options)] if e.feasible]
            if not ok:
                continue
            best = max(ok, key=lambda e: problem.score(e.criteria, criterion))
            best.design.label = f"random {len(out) + 1}"
            out.append(best)
            bar.update(1)
            if len(out) >= n:
                break
    bar.close()
    return out
