"""Profile checks of the Fisher analysis, within a time budget and in parallel.

Which checks (:func:`plan_checks`), in order:

1. parameters at a bound, and the parameter dominating each flat direction of the Fisher matrix that is
   no exact symmetry (:func:`flat_parameters`): profiled, and the Fisher analyses at the farthest equally
   good points merged (:func:`symode.fit.uncertainty.merge_fisher`): the optimum is one of many there;
2. borderline Wald intervals (relative SE above :data:`~symode.fit.uncertainty.PROFILE_CHECK_SE`): a short
   profile whose first step goes just past the Wald 99% end; an open 95% side makes the parameter
   non-identifiable, the intervals become the union of both;
3. profiles asked for (``fit(profile=...)``).

Each check's two sides are independent walks: with more than one worker they run as separate tasks
(:mod:`symode.parallel`) and are joined by :func:`symode.identifiability.profiles.merge_sides`. Every task
gets a fair share of the time left; a check that exceeds it is abandoned (its unfinished sides are
*undecided*, see :attr:`symode.identifiability.Profile.decided`) and listed in ``result.cut_short`` with
what that means for the flags (:data:`CUT_EFFECT`).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from symode.errors import SymodeError
from symode.fit.local import ROUGH_RTOL, FitInterrupted
from symode.fit.problem import FitProblem, spec_fixed, x0_dicts
from symode.fit.result import FitResult
from symode.fit.uncertainty import (
    BORDERLINE_STEP,
    FLAT_COMPONENT,
    PROFILE_CHECK_SE,
    far_points,
    merge_fisher,
    profile_objective,
)
from symode.identifiability import Profile, profile_likelihood, symmetry_directions
from symode.identifiability.profiles import merge_sides
from symode.parallel import Executor, TaskFailure, get_executor, process_memo, run_tasks
from symode.progress import progress_bar
from symode.solve.model import build_model
from symode.timing import Budget, TimeLimit

#: Below this many seconds left the checks run in this process (a pool of workers takes seconds to start,
#: more on a busy machine).
MIN_PARALLEL_S = 20.0


@dataclass
class Check:
    """A profile-based check of one parameter: ``kind`` "at bound" (Fisher analysis away from a bound),
    "flat" (Fisher analysis along a flat direction that is no exact symmetry), "borderline" (a Wald
    interval in doubt) or "profile" (requested)."""

    kind: str
    name: str


#: What an unfinished check means for the result (shown in fit.json's ``cut_short`` and the report).
CUT_EFFECT = {
    "at bound": "fewer points away from the bound were analysed: the other parameters' intervals and flags may "
                "be optimistic",
    "flat": "fewer equally good points along the flat direction were analysed: the other parameters' intervals "
            "and flags may be optimistic",
    "borderline": "undecided: the flag and interval rest on the Wald (Fisher) standard error alone",
    "profile": "the profile is unfinished on the side(s) cut short: its interval there is the Wald interval",
}


def plan_checks(fp: FitProblem, result: FitResult, which: bool | Sequence[str]) -> list[Check]:
    """The profile checks the analysis would run now, in order (see the module docstring)."""
    f = result.fisher
    if f is None:
        return []
    out = [Check("at bound", n) for n in f.at_bound if not n.startswith("x0.")]
    out += [Check("flat", n) for n in flat_parameters(fp, result) if n not in f.at_bound]
    out += [Check("borderline", n) for n in borderline(result)]
    out += [Check("profile", n) for n in requested(fp, result, which)]
    return out


def flat_parameters(fp: FitProblem, result: FitResult) -> list[str]:
    """The parameter that dominates each flat direction of the Fisher matrix that is no exact symmetry
    (component >= :data:`FLAT_COMPONENT` after projecting out the symmetries; initial states excluded).
    Along such a direction the optimum is one of many equally good points, and the Fisher analysis there
    depends on which: like a parameter at a bound it is profiled and the analyses merged."""
    f = result.fisher
    if not f.null_directions:
        return []
    W = symmetry_directions(result.symmetries, fp.names) if result.symmetries else np.zeros((len(fp.names), 0))
    Q = np.linalg.qr(W)[0] if W.shape[1] else W
    out: list[str] = []
    for nd in f.null_directions:
        v = np.array([nd.get(n, 0.0) for n in fp.names])
        r = v - Q @ (Q.T @ v)
        if np.linalg.norm(r) < 0.5:        # (nearly) an exact symmetry: the loss is exactly flat there
            continue
        r /= np.linalg.norm(r)
        k = int(np.argmax(np.abs(r)))
        name = fp.names[k]
        if abs(r[k]) >= FLAT_COMPONENT and not name.startswith("x0.") and name not in out:
            out.append(name)
    return out


def borderline(result: FitResult) -> list[str]:
    """Parameters whose Wald interval gets a profile check (not at a bound, not profiled yet)."""
    f = result.fisher
    done = {p.name for p in result.profiles}
    return [n for i, n in enumerate(f.names) if not n.startswith("x0.") and n not in done and n not in f.at_bound
            and PROFILE_CHECK_SE < f.rel_se[i] < np.inf]


def requested(fp: FitProblem, result: FitResult, which: bool | Sequence[str]) -> list[str]:
    """Parameters to profile on request (True: every estimated one), except those an exact symmetry moves
    (exactly flat: reported as a symmetry)."""
    if not which:
        return []
    names = [n for n in fp.names if not n.startswith("x0.")] if which is True else list(which)  # type: ignore[arg-type]
    unknown = [n for n in names if n not in fp.names]
    if unknown:
        raise SymodeError(f"cannot profile {', '.join(unknown)}: not estimated")
    moved = {n for s in result.symmetries for n in fp.names if s.moves(n)}
    return [n for n in names if n not in moved]


def run_checks(fp: FitProblem, z: np.ndarray, loss: float, syms: Sequence[Any], result: FitResult, *,
               which: bool | Sequence[str], budget: Budget, progress: bool, only_requested: bool = False,
               workers: int | None = 1, executor: Executor | None = None) -> None:
    """Every planned check within ``budget`` (``workers`` processes; None: all cores; or ``executor``, e.g.
    from :func:`start_check_workers`, left open). ``only_requested``: the requested profiles only."""
    f = result.fisher
    if f is None:
        return
    plan = [Check("profile", n) for n in requested(fp, result, which)] if only_requested \
        else plan_checks(fp, result, which)
    first = [c for c in plan if c.kind in ("at bound", "flat")]
    with contextlib.ExitStack() as stack:
        ex = executor if executor is not None else stack.enter_context(get_executor(workers))
        profs = _batch(fp, z, loss, syms, result, first, budget.share(len(first) / max(len(plan), 1)), progress,
                       ex, "at-bound and flat profiles")
        points = [pt for c, prof in zip(first, profs, strict=True) if prof is not None for pt in far_points(prof)]
        if points:
            with fp.timings.phase("at-bound and flat profiles"):
                merge_fisher(fp, syms, result, points, budget, [c.name for c in first])
        rest = [] if only_requested else [Check("borderline", n) for n in borderline(result)]
        rest += [Check("profile", n) for n in requested(fp, result, which)
                 if n not in {p.name for p in result.profiles}]
        profs = _batch(fp, z, loss, syms, result, rest, budget, progress, ex, "borderline checks and profiles")
    for c, prof in zip(rest, profs, strict=True):
        i = f.names.index(c.name)
        if c.kind == "borderline" and prof is not None and prof.decided and not prof.identifiable \
                and f.identifiable[c.name]:
            f.identifiable[c.name] = False
            f.reasons[c.name] = "profile likelihood open at the 95% level (Wald SE " \
                                f"{f.rel_se[i]:.0%} understates the uncertainty)"


def _settings(fp: FitProblem, result: FitResult, c: Check) -> dict[str, Any]:
    """profile_likelihood keywords of a check."""
    i = fp.names.index(c.name)
    trace = profile_trace(fp, result, c)
    if c.kind in ("at bound", "flat"):
        # (bisecting an overshoot places equally good points near the 99% end: the farthest ones, merged)
        return dict(n_points=8, step=0.5 if fp.scales[i] == "log" else None, max_evals=8, trace=trace)
    if c.kind == "borderline":
        # first step just past the Wald 99% end: where the quadratic approximation holds, one point per side
        # (q there ~ 7.3 > 6.63) decides; where the profile is flatter the walk goes on from there. Its
        # interval is united with the Wald one: an overshooting step is not bisected where that cannot move
        # the united interval's ends (covered)
        se = result.fisher.se_transformed[i]
        return dict(n_points=8, max_evals=8, trace=trace, covered=result.fisher.intervals[c.name],
                    step=float(min(max(BORDERLINE_STEP * se, 1e-3), 2.0)) if np.isfinite(se) else None)
    return dict(n_points=12, trace=trace)


def profile_trace(fp: FitProblem, result: FitResult, c: Check) -> np.ndarray | None:
    """Where the other unknowns go as the checked one moves, by the quadratic approximation at the optimum
    (the profile's warm start, transformed space, 1 at the checked one): along the flat direction it
    dominates for a "flat" check, else Sigma[:, i] / Sigma[i, i] of the Fisher covariance on its determined
    directions (the minimiser of the quadratic model with z_i fixed, weak directions held); None where neither
    is defined."""
    f = result.fisher
    i = fp.names.index(c.name)
    if c.kind == "flat" or not np.isfinite(f.se_transformed[i]):
        W = symmetry_directions(result.symmetries, fp.names) if result.symmetries else np.zeros((len(fp.names), 0))
        Q = np.linalg.qr(W)[0] if W.shape[1] else W
        best = None
        for nd in f.null_directions:
            v = np.array([nd.get(n, 0.0) for n in fp.names])
            v = v - Q @ (Q.T @ v)
            if abs(v[i]) > 1e-3 and (best is None or abs(v[i]) > abs(best[i])):
                best = v
        return None if best is None else best / best[i]
    cov = f.covariance_determined     # not along weak directions: the profile's start stays where the model holds
    if cov is None or not cov[i, i] > 0:
        return None
    trace = cov[:, i] / cov[i, i]
    return trace if np.all(np.isfinite(trace)) else None


def start_loss(fp: FitProblem) -> Any:
    """The loss at a profile point's start, at the re-optimisations' tolerance (one forward solve): the
    profiles choose between a predicted start and the previous point with it."""
    def loss(z: np.ndarray) -> float:
        with fp.tolerance(max(fp.rtol, ROUGH_RTOL)):
            return fp.loss(z, check=False)
    return loss


def _batch(fp: FitProblem, z: np.ndarray, loss: float, syms: Sequence[Any], result: FitResult,
           checks: list[Check], budget: Budget, progress: bool, ex: Executor, phase: str) -> list[Profile | None]:
    """The profiles of ``checks`` within ``budget``: in this process one after the other (each a fair share
    of the time left), or each side a task on ``ex``'s workers (each wave of tasks a fair share)."""
    if not checks:
        return []
    out: list[Profile | None] = []
    with fp.timings.phase(phase):
        if ex.workers <= 1 or budget.left < MIN_PARALLEL_S:
            for k, c in enumerate(checks):
                out.append(_check(fp, z, loss, syms, result, c, budget.share(1.0 / (len(checks) - k)), progress))
            return out
        jobs = []
        waves = math.ceil(2 * len(checks) / ex.workers)
        seconds = budget.left / waves      # a task's fair share; all end by the batch's deadline
        base = dict(worker_job(fp), syms=list(syms), z=np.asarray(z, dtype=float), loss=float(loss),
                    share=seconds, deadline=time.time() + budget.left)
        for c in checks:
            kw = _settings(fp, result, c)
            for side in ("lower", "upper"):
                jobs.append(dict(base, index=fp.names.index(c.name), kw=kw, side=side))
        t = time.perf_counter()
        bar = progress_bar(total=len(jobs), desc="profile checks", unit="sides", enabled=progress)
        try:
            results = run_tasks(side_worker, jobs, executor=ex, on_result=lambda _k, _r: bar.update(1))
        finally:
            bar.close()
        for k, c in enumerate(checks):
            halves = []
            for res in results[2 * k: 2 * k + 2]:
                if isinstance(res, TaskFailure) or res is None:
                    continue
                prof, timings = res
                fp.timings.merge(timings, prefix=fp.timings.key("workers"))
                if prof is not None:
                    halves.append(prof)
            prof = merge_sides(*halves) if len(halves) == 2 else (halves[0] if halves else None)
            if prof is not None and len(halves) == 1:      # one side never started: unfinished, not open
                missing = "upper" if "lower" in prof.stop else "lower"
                prof.stop[missing] = "time limit"
            _record_cut(result, c, prof, time.perf_counter() - t, seconds)
            if prof is not None:
                result.profiles.append(prof)
            out.append(prof)
    return out


def worker_job(fp: FitProblem) -> dict[str, Any]:
    """What a worker process needs to rebuild ``fp`` (once per process and problem: :func:`worker_problem`)."""
    return dict(spec=fp.model.spec, datasets=fp.datasets, fixed=spec_fixed(fp), x0=x0_dicts(fp), rtol=fp.rtol,
                atol=fp.atol, key=fp.key)


def worker_problem(job: dict[str, Any]) -> FitProblem:
    """The problem of :func:`worker_job` in this process (built on first use, then remembered)."""
    def build() -> FitProblem:
        model = build_model(job["spec"])
        return FitProblem(model, job["datasets"], fixed=job["fixed"], x0=job["x0"], rtol=job["rtol"],
                          atol=job["atol"])

    return process_memo(("fit-checks", job["key"]), build)


def warm_worker(job: dict[str, Any]) -> None:
    """A worker's start-up before its first check: imports, the model's library and the problem."""
    worker_problem(job)


def start_check_workers(fp: FitProblem, workers: int | None, budget: Budget) -> Executor | None:
    """The executor for the profile checks, its worker processes started now, in the background (a thread
    waits for them): their start-up (imports, loading the model, ~1-2 s each) overlaps the local fit, which
    keeps one core busy, instead of delaying the first check. None (the checks make their own) when they
    would run in this process or with too little time to go parallel."""
    if budget.left < 2 * MIN_PARALLEL_S:
        return None
    ex = get_executor(workers)
    if ex.workers <= 1:
        ex.close()
        return None
    threading.Thread(target=run_tasks, args=(warm_worker, [worker_job(fp)] * ex.workers),
                     kwargs=dict(executor=ex), daemon=True, name="start check workers").start()
    return ex


def side_worker(job: dict[str, Any]) -> tuple[Profile | None, dict[str, Any]]:
    """One side of one profile check (in a worker process: the problem is rebuilt once per process)."""
    fp = worker_problem(job)
    fp.timings = type(fp.timings)()
    z = job["z"]
    try:
        # its share from when it starts, never past the batch's wall-clock deadline (time.time is shared by the
        # processes of a machine; a worker's start-up counts)
        with fp.bounded(Budget(max(min(job["share"], job["deadline"] - time.time()), 0.0))):
            prof = profile_likelihood(profile_objective(fp, job["syms"], job["loss"]), fp.natural(z), job["index"],
                                      names=fp.names, scales=fp.scales, bounds=fp.bounds(), loss_hat=job["loss"],
                                      progress=False, sides=(job["side"],), start_loss=start_loss(fp),
                                      **job["kw"])
    except TimeLimit:
        prof = None
    return prof, fp.timings.to_dict()


def _check(fp: FitProblem, z: np.ndarray, loss: float, syms: Sequence[Any], result: FitResult, c: Check,
           share: Budget, progress: bool) -> Profile | None:
    """The profile of one check in this process within ``share`` (None if it could not start)."""
    t = time.perf_counter()
    prof = None
    try:
        with fp.bounded(share):
            prof = profile_likelihood(profile_objective(fp, syms, loss), fp.natural(z), fp.names.index(c.name),
                                      names=fp.names, scales=fp.scales, bounds=fp.bounds(), loss_hat=loss,
                                      progress=progress, start_loss=start_loss(fp), **_settings(fp, result, c))
    except TimeLimit:
        pass
    except (KeyboardInterrupt, FitInterrupted):
        raise
    except Exception:   # pragma: no cover - the extra analysis must not lose the fit
        return None
    _record_cut(result, c, prof, time.perf_counter() - t, share.deadline - t)
    if prof is not None:
        result.profiles.append(prof)
    return prof


def _record_cut(result: FitResult, c: Check, prof: Profile | None, seconds: float, share: float) -> None:
    """List a check the time limit cut short in ``result.cut_short``."""
    if prof is not None and not prof.cut_short:
        return
    sides = " and ".join(prof.cut_short) if prof is not None else "lower and upper"
    result.cut_short.append({"phase": f"{c.kind} check" if c.kind != "profile" else "profile", "name": c.name,
                             "sides": sides, "seconds": round(seconds, 2), "share_s": round(share, 2),
                             "effect": CUT_EFFECT[c.kind]})
