"""Fitting a spec with neural terms: the hybrid fit (:func:`symode.hybrid.fit_hybrid`: warm-started
multi-start Levenberg-Marquardt over a curriculum of horizons) wrapped as a :class:`FitResult`."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from symode.errors import SymodeError
from symode.fit.problem import FitProblem, check_data
from symode.fit.result import FitResult
from symode.solve.model import Model, build_model
from symode.spec.data import Dataset


def fit_neural(model: Model, data: list[Dataset], *, fixed: Sequence[str], x0: Sequence[dict[str, float]] | None,
               max_time: float | None, multistart: int, workers: int | None, progress: bool, rtol: float,
               atol: float, t0: float) -> FitResult:
    """:func:`symode.fit.fit` for a spec with neural terms: :func:`symode.hybrid.fit_hybrid`, wrapped as a
    FitResult (no Fisher analysis; every start in ``multistart``, the best of each phase in ``stages``)."""
    # here, not at the top: the hybrid fit pulls in scipy.optimize (~0.5 s), which other fits do not need
    from symode.hybrid import HYBRID_TIME_LIMIT, fit_hybrid

    if len(data) != 1:
        raise SymodeError(f"a model with neural terms is fitted to one data set at a time (got {len(data)})")
    check_data(model.spec, data[0])
    spec = model.spec.copy()
    for name in fixed:
        if name.startswith("x0.") and name[3:] in spec.states:
            spec.states[name[3:]].estimate = False
        elif name in spec.parameters:
            spec.parameters[name].estimate = False
        else:
            raise SymodeError(f"unknown parameter(s) to fix: {name}")
    if x0:
        spec = spec.with_values(x0=x0[0])
    say = (lambda s: print(s, file=sys.stderr, flush=True)) if progress else None
    res = fit_hybrid(spec, data[0], time_limit=HYBRID_TIME_LIMIT if max_time is None else max_time,
                     workers=workers, extra_starts=multistart, log=say)
    fitted = res.spec
    fp = FitProblem(build_model(fitted), data, fixed=fixed, rtol=rtol, atol=atol)
    z = fp.z_from_values()
    p, x0s = fp.vectors(z)

    def num(v: Any) -> float | None:
        return float(v) if v is not None and np.isfinite(v) else None

    starts, stages = [], []
    for h in res.history:
        parts = h.get("stages") or [{}]
        starts.append({"start": f"{h['phase']}: {h['name']}", "objective": num(h.get("objective")),
                       "score": num(h.get("score")), "iterations": int(sum(s.get("iterations", 0) for s in parts)),
                       "converged": "converged" in str(parts[-1].get("message", "")),
                       "message": str(h.get("error") or parts[-1].get("message", "")),
                       "time_s": round(float(h.get("seconds", 0.0)), 2),
                       "curriculum": [{k: num(v) if isinstance(v, float) else v for k, v in s.items()} for s in parts]})
    for phase in ("explore", "refine"):
        rows = [s for s in starts if s["start"].startswith(phase) and s["objective"] is not None]
        if rows:
            best = min(rows, key=lambda s: s["score"] if s["score"] is not None else math.inf)
            stages.append({"stage": f"neural {phase} ({len(rows)} starts, best {best['start'].split(': ')[1]})",
                           "objective": best["objective"], "iterations": sum(s["iterations"] for s in rows),
                           "converged": best["converged"], "message": best["message"],
                           "time_s": max(s["time_s"] for s in rows)})
    result = FitResult(spec=model.spec, names=fp.names, scales=fp.scales, z=z, theta=fp.natural(z),
                       parameters={n: float(p[j]) for j, n in enumerate(model.parameters)},
                       x0=[{s: float(v) for s, v in zip(model.states, x, strict=True)} for x in x0s],
                       objective=fp.loss(z), n_obs=fp.n_obs, converged="time limit" not in res.stopped,
                       iterations=res.n_gradients, wall_time_s=time.perf_counter() - t0,
                       message=f"neural training: {res.stopped}", stages=stages, datasets=data, problem=fp,
                       no_fisher_reason="no uncertainty analysis (model with neural terms)")
    result.multistart = starts
    return result
