"""Multi-start: local fits from Latin-hypercube starts in the transformed box, in parallel
(:mod:`symode.parallel`), and the spread of the statistically indistinguishable optima.

Parameters are sampled over their whole (transformed) box, initial states around the spec's values
(+-2 in log, +-max(|x0|, 1) linear). A start whose objective is within chi2(1, 0.99)/2 of the best is as
good as the best: the per-parameter range over those starts widens the intervals."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from symode.fit.local import Tracker, local_fit
from symode.fit.problem import FitProblem, find_symmetries, spec_fixed, x0_dicts
from symode.fit.result import CHI2_1_99
from symode.optim.sampling import latin_hypercube
from symode.parallel import TaskFailure, default_workers, get_executor, run_tasks
from symode.progress import progress_bar
from symode.solve.model import build_model


def run_multistart(fp: FitProblem, syms: Sequence[Any], n: int, *, seed: int, workers: int | None, method: str,
                   shooting: str, segments: int, max_iter: int, max_time: float, progress: bool
                   ) -> list[dict[str, Any]]:
    """``n`` local fits from Latin-hypercube starts (``workers`` processes, default all CPUs); one row per
    start ("start", "objective", "converged", "message", "z", "iterations", "time_s"; "error" for a failed
    start, which is reported, not fatal)."""
    z_ref = fp.z_from_values()
    lb, ub = fp.lb.copy(), fp.ub.copy()
    # initial states: sample around the spec's values (+-2 in log), parameters over their whole box
    for k, u in enumerate(fp.unknowns):
        if u.kind == "x0":
            half = 2.0 if u.scale == "log" else max(abs(u.value), 1.0)
            lb[k], ub[k] = max(lb[k], z_ref[k] - half), min(ub[k], z_ref[k] + half)
    points = latin_hypercube(lb, ub, n, seed=seed, center=z_ref)
    base = dict(spec=fp.model.spec, datasets=fp.datasets, fixed=spec_fixed(fp), x0=x0_dicts(fp), method=method,
                shooting=shooting, segments=segments, max_iter=max_iter, max_time=max_time, rtol=fp.rtol,
                atol=fp.atol, symmetries=bool(syms))
    jobs = [dict(base, z=pt) for pt in points]
    bar = progress_bar(total=n, desc="multi-start", enabled=progress)
    workers = workers or default_workers()
    try:
        with get_executor(min(workers, n)) as executor:
            results = run_tasks(start_worker, jobs, executor=executor, on_result=lambda _k, _r: bar.update(1))
    finally:
        bar.close()
    out: list[dict[str, Any]] = []
    for k, (job, res) in enumerate(zip(jobs, results, strict=True)):
        if isinstance(res, TaskFailure):
            res = {"objective": math.inf, "converged": False, "error": res.error, "z": job["z"].tolist()}
        out.append({"start": f"lhs-{k}", **res})
    out.sort(key=lambda s: s["start"])
    return out


def start_worker(job: dict[str, Any]) -> dict[str, Any]:
    """One multi-start run (in a worker process: builds the model from the compiled cache)."""
    t = time.perf_counter()
    model = build_model(job["spec"])
    fp = FitProblem(model, job["datasets"], fixed=job["fixed"], x0=job["x0"], rtol=job["rtol"], atol=job["atol"])
    syms = find_symmetries(model) if job["symmetries"] else []
    z0 = fp.clip(np.asarray(job["z"], dtype=float))
    fp.set_symmetry_gauge(syms, z0)
    tracker = Tracker(fp, None, None, t)
    stages: list[dict[str, Any]] = []
    z, conv, msg = local_fit(fp, z0, method=job["method"], shooting=job["shooting"], segments=job["segments"],
                             max_iter=job["max_iter"], max_time=job["max_time"], tracker=tracker, stages=stages,
                             rough=True)
    return {"objective": float(fp.loss(z)), "converged": bool(conv), "message": msg, "z": z.tolist(),
            "iterations": tracker.iterations, "time_s": round(time.perf_counter() - t, 2),
            "timings": fp.timings.to_dict()}


def start_spread(fp: FitProblem, starts: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Per-unknown [min, max] over starts whose objective is within chi2(1, 0.99)/2 of the best."""
    ok = [s for s in starts if np.isfinite(s["objective"])]
    if not ok:
        return {}
    best = min(s["objective"] for s in ok)
    close = [fp.natural(np.asarray(s["z"], dtype=float)) for s in ok if s["objective"] <= best + CHI2_1_99 / 2]
    if len(close) < 2:
        return {}
    arr = np.array(close)
    return {n: [float(arr[:, i].min()), float(arr[:, i].max())] for i, n in enumerate(fp.names)}
