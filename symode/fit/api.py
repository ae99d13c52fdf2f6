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

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from symode.errors import SymodeError
from symode.fit.local import FitInterrupted, Progress, Tracker, local_fit
from symode.fit.multistart import run_multistart, start_spread
from symode.fit.neural import fit_neural
from symode.fit.problem import FitProblem, find_symmetries
from symode.fit.result import FitResult, make_result
from symode.fit.uncertainty import check_borderline, fisher_at, profiles, robust_fisher
from symode.progress import progress_bar
from symode.solve.model import Model, build_model
from symode.spec import Spec, load_spec
from symode.spec.data import Dataset, read_csv


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
    profile: profile likelihoods (True: every estimated parameter not moved by an exact symmetry), one
    parallel job per parameter (``workers`` processes, or the cluster of :func:`symode.parallel.use_scheduler`).
    callback(Progress) after every iteration; raising KeyboardInterrupt or FitInterrupted stops the
    fit and returns the best point so far with converged = False. max_time: seconds per local fit
    (default 1800).

    A spec with neural terms (estimated network weights) goes to :func:`symode.hybrid.fit_hybrid` unless
    ``neural`` is False: warm-started multi-start Levenberg-Marquardt over a curriculum of horizons, on
    one data set, within ``max_time`` seconds in all (default :data:`symode.hybrid.HYBRID_TIME_LIMIT`);
    ``multistart`` adds starts, ``workers`` processes run them. The result has no Fisher analysis
    (intervals are the bounds, nothing is flagged identifiable); ``stages`` lists every start.
    """
    t0 = time.perf_counter()
    if method not in ("lm", "trf", "lbfgs"):
        raise SymodeError(f"unknown fit method {method!r} (lm, trf, lbfgs)", field="method")
    if shooting not in ("auto", "single", "multiple"):
        raise SymodeError(f"unknown shooting {shooting!r} (auto, single, multiple)", field="shooting")
    model = as_model(spec_or_model)
    data = as_datasets(datasets)
    if neural and any(model.spec.parameters[w].estimate and w not in fixed for w in model.spec.neural_weights):
        return fit_neural(model, data, fixed=fixed, x0=x0, max_time=max_time, multistart=multistart,
                          workers=workers, progress=progress, rtol=rtol, atol=atol, t0=t0)
    max_time = 1800.0 if max_time is None else max_time
    fp = FitProblem(model, data, fixed=fixed, x0=x0, rtol=rtol, atol=atol)
    if not fp.unknowns:
        raise SymodeError("nothing to estimate (every parameter and initial state is fixed)")
    syms = find_symmetries(model) if symmetries else []
    z_start = fp.z_from_values()
    fp.set_symmetry_gauge(syms, z_start)
    bar = progress_bar(total=max_iter, desc="fit", unit="it", enabled=progress)
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
            starts = run_multistart(fp, syms, multistart, seed=seed, workers=workers, method=method,
                                    shooting=shooting, segments=segments, max_iter=max_iter, max_time=max_time,
                                    progress=progress)
            starts.insert(0, {"start": "spec", "objective": float(fp.loss(z)), "converged": converged,
                              "z": z.tolist()})
            best = min(starts, key=lambda s: s["objective"])
            if best["objective"] < fp.loss(z) - 1e-6:
                z = np.array(best["z"])
                converged = bool(best["converged"])
                message = f"best of {len(starts)} starts: {best['start']}"
                tracker.offer(z, fp.loss(z))
            spread = start_spread(fp, starts)
    except (KeyboardInterrupt, FitInterrupted):
        interrupted, converged = True, False
        message = "interrupted: best point so far"
        z = tracker.best_z if tracker.best_z is not None else z_start
        starts, spread = [], {}
    finally:
        bar.close()
    z = np.asarray(z, dtype=float)
    loss = fp.loss(z)
    result = make_result(fp, z, loss, converged, tracker.iterations, t0, message, interrupted, stages, syms)
    result.multistart = [{k: v for k, v in s.items() if k != "z"} | {"parameters": fp.named(s["z"])}
                         for s in starts]
    result.spread = spread
    if not interrupted:
        try:
            result.fisher = fisher_at(fp, z, loss, syms)
            robust_fisher(fp, z, loss, syms, result, progress=progress, workers=workers)
            check_borderline(fp, z, loss, syms, result, progress=progress, skip=profile, workers=workers)
            if profile:
                result.profiles = profiles(fp, z, loss, result, profile, progress=progress, workers=workers)
        except (KeyboardInterrupt, FitInterrupted):
            result.interrupted, result.converged = True, False
            result.message = "interrupted during the uncertainty analysis"
    result.wall_time_s = time.perf_counter() - t0
    return result


def provisional_result(model: Model, datasets: Sequence[Dataset], info: Progress, *,
                       fixed: Sequence[str] = ()) -> FitResult:
    """A FitResult of an intermediate point (no uncertainty analysis; converged = False) for checkpoints;
    ``fixed``: the parameters the fit holds at their values (as given to :func:`fit`)."""
    fp = FitProblem(model, datasets, fixed=fixed)
    z = np.asarray(info.z, dtype=float)
    return make_result(fp, z, info.objective, False, info.iteration, time.perf_counter() - info.elapsed,
                       f"in progress ({info.stage})", False, [], [])
