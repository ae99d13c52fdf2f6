"""The entry point of parameter estimation: :func:`fit`.

>>> result = fit("specs/chemostat.yaml", [read_csv("data.csv")])      # doctest: +SKIP
>>> result.parameters, result.intervals, result.identifiable             # doctest: +SKIP

Pipeline:

1. exact scaling symmetries of the model (:func:`symode.symbolic.symmetries.scaling_symmetries`); the
   fit never drifts along them: a gauge residual pins the orbit coordinate (the loss is exactly
   invariant along a symmetry, so the pin changes nothing but the representative of the orbit);
2. a local fit (:func:`symode.fit.local.local_fit`) from the spec's values: single shooting with the
   exact residual Jacobian from forward sensitivities, by Levenberg-Marquardt with geodesic acceleration
   (``method="lm"``, the default), scipy's trust-region reflective (``"trf"``) or L-BFGS-B with adjoint
   gradients (``"lbfgs"``, for many parameters); if it fails or stalls far above the noise level,
   multiple shooting first, then single shooting from its result;
3. optional multi-start (Latin hypercube in the transformed box, in parallel: :mod:`symode.fit.multistart`);
4. the uncertainty analysis at the optimum (:mod:`symode.fit.uncertainty`): standard errors, 95%/99%
   intervals, an identifiable flag and reason for every parameter, symmetries and identifiable
   combinations, profile checks of borderline Wald intervals.

A spec with neural terms goes to the hybrid fit (:func:`symode.fit.neural.fit_neural`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from symode.errors import SymodeError
from symode.fit.checks import run_checks, start_check_workers
from symode.fit.local import FitInterrupted, Progress, Tracker, local_fit
from symode.fit.multistart import run_multistart, start_spread
from symode.fit.neural import fit_neural
from symode.fit.problem import FitProblem, find_symmetries
from symode.fit.result import FitResult, make_result
from symode.fit.uncertainty import fisher_at
from symode.parallel import Executor
from symode.parallel.threads import blas_threads
from symode.progress import progress_bar
from symode.solve.model import Model, build_model
from symode.spec import Spec, load_spec
from symode.spec.data import Dataset, read_csv
from symode.timing import Budget, TimeLimit, Timings


def as_model(spec_or_model: Spec | Model | str | Path) -> Model:
    """A built model from a model, a spec or a spec file."""
    if isinstance(spec_or_model, Model):
        return spec_or_model
    spec = spec_or_model if isinstance(spec_or_model, Spec) else load_spec(spec_or_model)
    return build_model(spec)


def as_datasets(datasets: Dataset | str | Path | Sequence[Dataset | str | Path]) -> list[Dataset]:
    """Data sets from data sets or CSV paths (one or a sequence)."""
    if isinstance(datasets, (Dataset, str, Path)):
        datasets = [datasets]
    return [d if isinstance(d, Dataset) else read_csv(d) for d in datasets]


#: Default ``max_time`` of a fit (seconds, the whole fit: local fits, multi-start and the analysis).
DEFAULT_MAX_TIME = 600.0


#: Share of ``max_time`` the local fit and multi-start may use; the rest is held for the analysis (more
#: when the fit ends early: the analysis gets whatever is left).
LOCAL_SHARE = 0.75


ANALYSES = ("none", "fisher", "full")


#: Fits of at most this many unknowns run with one BLAS thread (:func:`symode.parallel.threads.blas_threads`;
#: idle OpenBLAS threads spin on the cores the checks' workers need: 30% more CPU for a chemostat fit).
ONE_BLAS_THREAD_MAX = 200


def fit(spec_or_model: Spec | Model | str | Path, datasets: Dataset | str | Path | Sequence[Any], *,
        method: str = "lm", multistart: int = 0, shooting: str = "auto", progress: bool = True,
        fixed: Sequence[str] = (), x0: Sequence[dict[str, float]] | None = None, segments: int = 12,
        max_iter: int = 400, max_time: float | None = None, rtol: float = 1e-8, atol: float = 1e-10,
        seed: int = 0, workers: int | None = None, profile: bool | Sequence[str] = False,
        symmetries: bool = True, callback: Callable[[Progress], None] | None = None,
        neural: bool = True, analysis: str = "full", started: float | None = None) -> FitResult:
    """Fit the estimated parameters (and initial states) of a spec to one or more data sets.

    method: "lm" (Levenberg-Marquardt with geodesic acceleration and the exact residual Jacobian,
    the default), "trf" (scipy's trust-region reflective) or "lbfgs" (L-BFGS-B with adjoint gradients,
    for many parameters). shooting: "single", "multiple" (a multiple-shooting stage first, then single
    shooting) or "auto" (multiple shooting only if single shooting from the start fails or stalls far
    above the noise level). multistart: extra Latin-hypercube starts in the transformed box (run in
    parallel, ``workers`` processes; default all cores). fixed: parameter names held at their values.
    profile: profile likelihoods (True: every estimated parameter not moved by an exact symmetry), one
    parallel job per parameter (``workers`` processes, or the cluster of :func:`symode.parallel.use_scheduler`).
    callback(Progress) after every iteration; raising KeyboardInterrupt or FitInterrupted stops the
    fit and returns the best point so far with converged = False. max_iter: iterations per local fit.

    max_time: seconds for the whole fit (default :data:`DEFAULT_MAX_TIME`), honoured to within about one
    ODE solve: the local fit and multi-start get up to :data:`LOCAL_SHARE` of it, the analysis the rest;
    every profile check gets a fair share of the analysis time left and is abandoned when it exceeds it.
    ``result.cut_short`` lists what the limit stopped and what that means for the flags; ``result.timings``
    says where the time went (:class:`symode.timing.Timings`).

    analysis: "full" (default: Fisher intervals and flags, exact symmetries, profile checks of parameters
    at a bound and of borderline Wald intervals), "fisher" (no profile checks: Wald intervals only) or
    "none" (no uncertainty analysis: intervals are the bounds, nothing is flagged identifiable).
    started: ``time.perf_counter()`` when the work began (e.g. a command's start, so that reading the data
    and building the model count against ``max_time``; default: now).

    A spec with neural terms (estimated network weights) goes to :func:`symode.hybrid.fit_hybrid` unless
    ``neural`` is False: warm-started multi-start Levenberg-Marquardt over a curriculum of horizons, on
    one data set, within ``max_time`` seconds in all (default :data:`symode.hybrid.HYBRID_TIME_LIMIT`);
    ``multistart`` adds starts, ``workers`` processes run them. The result has no Fisher analysis
    (intervals are the bounds, nothing is flagged identifiable); ``stages`` lists every start.
    """
    t0 = time.perf_counter() if started is None else float(started)
    if method not in ("lm", "trf", "lbfgs"):
        raise SymodeError(f"unknown fit method {method!r} (lm, trf, lbfgs)", field="method")
    if shooting not in ("auto", "single", "multiple"):
        raise SymodeError(f"unknown shooting {shooting!r} (auto, single, multiple)", field="shooting")
    if analysis not in ANALYSES:
        raise SymodeError(f"unknown analysis {analysis!r} ({', '.join(ANALYSES)})", field="analysis")
    if max_iter < 1:
        raise SymodeError(f"max_iter must be at least 1, got {max_iter}", field="max_iter")
    if max_time is not None and not max_time > 0:
        raise SymodeError(f"max_time must be positive, got {max_time}", field="max_time")
    timings = Timings()
    with timings.phase("model build"):
        model = as_model(spec_or_model)
    data = as_datasets(datasets)
    if neural and any(model.spec.parameters[w].estimate and w not in fixed for w in model.spec.neural_weights):
        return fit_neural(model, data, fixed=fixed, x0=x0, max_time=max_time, multistart=multistart,
                          workers=workers, progress=progress, rtol=rtol, atol=atol, t0=t0)
    max_time = DEFAULT_MAX_TIME if max_time is None else float(max_time)
    budget = Budget(deadline=t0 + max_time)
    fp = FitProblem(model, data, fixed=fixed, x0=x0, rtol=rtol, atol=atol)
    fp.timings = timings
    if not fp.unknowns:
        raise SymodeError("nothing to estimate (every parameter and initial state is fixed)")
    # the checks' worker processes start now, their start-up overlapping the local fit
    pool = start_check_workers(fp, workers, budget) if analysis == "full" else None
    try:
        with blas_threads(1) if len(fp.unknowns) <= ONE_BLAS_THREAD_MAX else contextlib.nullcontext():
            with timings.phase("symmetries"):
                syms = find_symmetries(model) if symmetries else []
            z_start = fp.z_from_values()
            fp.set_symmetry_gauge(syms, z_start)
            bar = progress_bar(total=max_iter, desc="fit", unit="it", enabled=progress)
            tracker = Tracker(fp, callback, bar, t0)
            tracker.offer(z_start, fp.loss(z_start, check=False))
            local = Budget(deadline=t0 + LOCAL_SHARE * max_time)
            return _fit_and_analyse(fp, z_start, syms, t0, budget, local, tracker, bar, pool, method=method,
                                    shooting=shooting, segments=segments, max_iter=max_iter, multistart=multistart,
                                    seed=seed, workers=workers, progress=progress, analysis=analysis,
                                    profile=profile)
    finally:
        if pool is not None:
            pool.close()


def _fit_and_analyse(fp: FitProblem, z_start: np.ndarray, syms: Sequence[Any], t0: float, budget: Budget,
                     local: Budget, tracker: Tracker, bar: Any, pool: Executor | None, *, method: str, shooting: str,
                     segments: int, max_iter: int, multistart: int, seed: int, workers: int | None, progress: bool,
                     analysis: str, profile: bool | Sequence[str]) -> FitResult:
    """The local fit (and multi-start) from ``z_start``, then the uncertainty analysis (profile checks on
    ``pool`` if given)."""
    timings = fp.timings
    stages: list[dict[str, Any]] = []
    interrupted = False
    converged = False
    message = ""
    starts: list[dict[str, Any]] = []
    spread: dict[str, list[float]] = {}
    try:
        z, converged, message = local_fit(fp, z_start, method=method, shooting=shooting, segments=segments,
                                           max_iter=max_iter, max_time=local.left, tracker=tracker, stages=stages,
                                           rough=True)
        tracker.offer(z, fp.loss(z, check=False))
        if multistart > 0 and not local.expired:
            tracker.stage = "multi-start"
            with timings.phase("multi-start"):
                starts = run_multistart(fp, syms, multistart, seed=seed, workers=workers, method=method,
                                        shooting=shooting, segments=segments, max_iter=max_iter,
                                        max_time=local.left, progress=progress)
            starts.insert(0, {"start": "spec", "objective": float(fp.loss(z, check=False)), "converged": converged,
                              "z": z.tolist()})
            best = min(starts, key=lambda s: s["objective"])
            if best["objective"] < fp.loss(z, check=False) - 1e-6:
                z = np.array(best["z"])
                converged = bool(best["converged"])
                message = f"best of {len(starts)} starts: {best['start']}"
                tracker.offer(z, fp.loss(z, check=False))
            spread = start_spread(fp, starts)
    except (KeyboardInterrupt, FitInterrupted):
        interrupted, converged = True, False
        message = "interrupted: best point so far"
        z = tracker.best_z if tracker.best_z is not None else z_start
        starts, spread = [], {}
    finally:
        bar.close()
    z = np.asarray(z, dtype=float)
    loss = fp.loss(z, check=False)
    result = make_result(fp, z, loss, converged, tracker.iterations, t0, message, interrupted, stages, syms)
    result.multistart = [{k: v for k, v in s.items() if k not in ("z", "timings")}
                         | {"parameters": fp.named(s["z"])} for s in starts]
    for s in starts:
        if s.get("timings"):
            timings.merge(s["timings"], prefix="multi-start/workers")
    result.spread = spread
    result.analysis = analysis
    if not interrupted and not converged and message.endswith("time limit"):
        result.cut_short.append({"phase": "local fit", "name": "", "sides": "",
                                 "effect": "not converged within the time limit: the values are the best point "
                                           "found; intervals and flags describe that point"})
    if not interrupted:
        try:
            analyse(fp, z, loss, syms, result, analysis=analysis, profile=profile, budget=budget,
                    progress=progress, workers=workers, executor=pool)
        except (KeyboardInterrupt, FitInterrupted):
            result.interrupted, result.converged = True, False
            result.message = "interrupted during the uncertainty analysis"
    result.wall_time_s = time.perf_counter() - t0
    result.timings = timings.to_dict()
    result.timings["total_s"] = round(result.wall_time_s, 4)
    return result


def analyse(fp: FitProblem, z: np.ndarray, loss: float, syms: Sequence[Any], result: FitResult, *,
            analysis: str, profile: bool | Sequence[str], budget: Budget, progress: bool,
            workers: int | None = None, executor: Executor | None = None) -> None:
    """The uncertainty analysis at ``z`` within ``budget``: the Fisher analysis, then (``analysis="full"``)
    the profile checks (:func:`symode.fit.uncertainty.run_checks`) and the requested profiles."""
    if analysis == "none":
        result.no_fisher_reason = "no uncertainty analysis (analysis 'none')"
        return
    with fp.timings.phase("fisher"):
        try:
            with fp.bounded(budget):
                result.fisher = fisher_at(fp, z, loss, syms)
        except TimeLimit:
            result.no_fisher_reason = "no uncertainty analysis (time limit reached before the Fisher analysis)"
            result.cut_short.append({"phase": "fisher", "name": "", "sides": "",
                                     "effect": "no Fisher analysis: intervals are the bounds and no parameter is "
                                               "reported identifiable"})
            return
    if analysis == "full" or profile:
        run_checks(fp, z, loss, syms, result, which=profile, budget=budget, progress=progress,
                   only_requested=analysis != "full", workers=workers, executor=executor)


def provisional_result(model: Model, datasets: Sequence[Dataset], info: Progress, *,
                       fixed: Sequence[str] = ()) -> FitResult:
    """A FitResult of an intermediate point (no uncertainty analysis; converged = False) for checkpoints;
    ``fixed``: the parameters the fit holds at their values (as given to :func:`fit`)."""
    fp = FitProblem(model, datasets, fixed=fixed)
    z = np.asarray(info.z, dtype=float)
    return make_result(fp, z, info.objective, False, info.iteration, time.perf_counter() - info.elapsed,
                       f"in progress ({info.stage})", False, [], [])
