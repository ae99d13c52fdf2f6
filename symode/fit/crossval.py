"""Leave-one-file-out cross-validation: for every data file, fit the model to the other files, predict the
held-out file from its first sample (inputs from its own file) and score the prediction.

Score of a fold: the RMSE of log10(x + offset) (default offset 1e-5) between prediction and data over the
held-out file's samples after the first, for every state observed directly (an observable named like the
state), observed values only. A prediction *blows up* when the solver fails, a value is not finite, or a
state exceeds ``BLOWUP_FACTOR`` times the largest value of that state in the training files (at least
1); from there on it is scored at that cap and the fold is reported as a failure (``status:
blow-up``), as is a fold whose fit raised (``status: failed``, no score). Nothing here raises for a
bad fold.

The training-mean trajectory (the mean of log10(x + offset) over the training files at each time,
interpolated to the held-out times) is scored on the same samples as a reference a model should beat,
and so is the equal-weight average of the two on that scale (``combined_rmse``: a forecast combination of
the model's prediction and the training mean, nothing fitted to the held-out file; :func:`combined`).

Options: the fits' start (``init``: the spec's values or gradient matching), and the penalty strength
chosen per fold (``penalty_grid``: multipliers of the spec's penalty scales, each scored by an inner
leave-one-file-out loop on the fold's training files, with ODE fits or with gradient matching,
:func:`holdout_errors`).

>>> res = crossval("glv.yaml", ["m1.csv", "m2.csv", "m3.csv"], "out")      # doctest: +SKIP
>>> res["mean_rmse"], [f["status"] for f in res["folds"]]                 # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from symode.errors import SymodeError
from symode.fit.experiments import X0_MODES, experiment_x0, first_sample_x0, observed_states
from symode.fit.gradient_matching import INITS, initial_spec, matching_design, solve_design
from symode.fit.penalty import scaled_penalties
from symode.io import atomic_write_json, atomic_write_text
from symode.parallel.threads import blas_threads
from symode.spec import Spec, load_spec, read_csv, spec_from_dict
from symode.spec.data import Dataset

SCORE_OFFSET = 1e-5
BLOWUP_FACTOR = 1e3


def log_rmse(pred: np.ndarray, obs: np.ndarray, offset: float = SCORE_OFFSET) -> float | None:
    """RMSE of log10(x + offset) over the rows after the first, observed (finite) entries only."""
    p, o = np.asarray(pred, float)[1:], np.asarray(obs, float)[1:]
    ok = np.isfinite(o) & np.isfinite(p)
    if not ok.any():
        return None
    d = np.log10(np.maximum(p[ok], 0.0) + offset) - np.log10(np.maximum(o[ok], 0.0) + offset)
    return float(math.sqrt(np.mean(d * d)))


def state_matrix(data: Dataset, states: Sequence[str]) -> np.ndarray:
    """(n_times, n_states) of the data's columns for ``states`` (NaN where absent)."""
    return np.column_stack([np.asarray(data.columns.get(s, np.full(len(data.times), np.nan)), dtype=float)
                            for s in states])


def training_mean(train: Sequence[Dataset], states: Sequence[str], times: np.ndarray,
                  offset: float = SCORE_OFFSET) -> np.ndarray:
    """10^(mean over ``train`` of log10(x + offset) at each time, interpolated to ``times``) - offset."""
    grid = np.unique(np.concatenate([d.times for d in train]))
    acc, cnt = np.zeros((len(grid), len(states))), np.zeros((len(grid), len(states)))
    for d in train:
        x = state_matrix(d, states)
        idx = np.searchsorted(grid, d.times)
        ok = np.isfinite(x)
        acc[idx] += np.where(ok, np.log10(np.maximum(np.where(ok, x, 0.0), 0.0) + offset), 0.0)
        cnt[idx] += ok
    out = np.full((len(times), len(states)), np.nan)
    for i in range(len(states)):
        have = cnt[:, i] > 0
        if have.any():
            out[:, i] = np.interp(times, grid[have], acc[have, i] / cnt[have, i])
    return 10.0 ** out - offset


def predict(model: Any, params: dict[str, float], x0: dict[str, float], data: Dataset,
            cap: np.ndarray) -> tuple[np.ndarray, float | None, str]:
    """States at the data's times from ``x0`` with the data's inputs: (x, blow-up time or None, message).
    Rows from a blow-up on hold NaN."""
    from symode.solve.simulation import interval_inputs
    from symode.spec.data import input_matrix

    p = model.parameter_vector({k: v for k, v in params.items() if k in model.parameters})
    x0v = model.x0_vector({k: v for k, v in x0.items() if k in model.states})
    U = interval_inputs(model, data.times, input_matrix(model.spec, data, data.times))
    be = model.backend
    res = be.integrate(data.times, x0v, p, U, rtol=1e-8, atol=1e-12, method="auto")
    x = np.array(res.x, dtype=float)
    message = res.message
    if res.status != 0:                 # find the failing interval: one sample interval at a time
        x = np.full_like(x, np.nan)
        x[0] = x0v
        for k in range(len(data.times) - 1):
            step = be.integrate(data.times[k:k + 2], x[k], p, U[k:k + 1], rtol=1e-8, atol=1e-12, method="auto")
            if step.status != 0:
                message = step.message
                break
            x[k + 1] = step.x[-1]
    bad = ~np.all(np.isfinite(x) & (x <= cap[None, :]), axis=1)
    if not bad.any():
        return x, None, ""
    k = int(np.argmax(bad))
    x[k:] = np.nan
    why = f"the solver failed ({message})" if res.status != 0 else "a state above the cap or not finite"
    return x, float(data.times[k]), f"blow-up at time {data.times[k]:g}: {why}"


def _finite(v: Any) -> Any:
    """JSON-safe: a non-finite float becomes None."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


def held_out_score(model: Any, spec: Spec, train: Sequence[Dataset], test: Dataset, params: dict[str, float],
                   start: dict[str, float], offset: float) -> dict[str, Any]:
    """Predict ``test`` from ``start`` with ``params``; {"x", "status", "message", "rmse"} (a blow-up is
    scored at the cap from there on: see the module docstring)."""
    states = observed_states(spec)
    obs = state_matrix(test, states)
    trained = np.concatenate([state_matrix(d, states) for d in train])
    with np.errstate(all="ignore"):
        top = np.nanmax(np.where(np.isfinite(trained), trained, np.nan), axis=0)
    top = np.where(np.isfinite(top), top, 1.0)
    cap_states = BLOWUP_FACTOR * np.maximum(top, 1.0)
    cap = np.full(len(model.states), np.inf)
    for i, s in enumerate(states):
        cap[model.states.index(s)] = cap_states[i]
    x, t_blow, msg = predict(model, params, start, test, cap)
    pred = x[:, [model.states.index(s) for s in states]]
    scored = np.where(np.isnan(pred), cap_states[None, :], pred) if t_blow is not None else pred
    return {"x": x, "status": "ok" if t_blow is None else "blow-up", "message": msg,
            "rmse": log_rmse(scored, obs, offset), "scored": scored}


def combined(pred: np.ndarray, mean: np.ndarray, offset: float = SCORE_OFFSET) -> np.ndarray:
    """The equal-weight average of two predictions on the score's scale: 10^((log10(pred + offset) +
    log10(mean + offset)) / 2) - offset (where one is missing, the other)."""
    lp = np.log10(np.maximum(np.asarray(pred, float), 0.0) + offset)
    lm = np.log10(np.maximum(np.asarray(mean, float), 0.0) + offset)
    avg = np.where(np.isnan(lp), lm, np.where(np.isnan(lm), lp, 0.5 * (lp + lm)))
    return 10.0 ** avg - offset


def fold_task(job: dict[str, Any]) -> dict[str, Any]:
    """Worker: fit the training files, predict the held-out one (see the module docstring). One BLAS
    thread, as in the worker processes, also when the folds run in this process (``workers=1``):
    threads contending for busy cores made the fits' linear algebra many times slower."""
    with blas_threads(1):
        return _fold(job)


def _fold(job: dict[str, Any]) -> dict[str, Any]:
    from symode.fit.api import fit
    from symode.solve.model import build_model

    t0 = time.perf_counter()
    spec = spec_from_dict(job["spec"], file="<crossval>")
    train, test = job["train"], job["test"]
    t_init = time.perf_counter()
    fspec, x0 = experiment_x0(initial_spec(spec, train, job["init"]), train, job["x0"])
    t_init = time.perf_counter() - t_init
    model = build_model(fspec)
    res = fit(model, train, x0=x0, progress=False, analysis="none", symmetries=False, workers=1,
              max_iter=job["max_iter"], max_time=job["max_time"], shooting=job["shooting"], method=job["method"])
    t_fit = time.perf_counter() - t0
    start = {**(res.x0[0] if res.x0 else {}), **first_sample_x0(spec, test)}
    out = held_out_score(model, spec, train, test, res.parameters, start, job["offset"])
    states = observed_states(spec)
    mean = training_mean(train, states, test.times, job["offset"])
    obs = state_matrix(test, states)
    return {**out, "training_mean_rmse": log_rmse(mean, obs, job["offset"]),
            "combined_rmse": log_rmse(combined(out["scored"], mean, job["offset"]), obs, job["offset"]),
            "objective": float(res.objective), "penalty": float(res.penalty), "iterations": int(res.iterations),
            "converged": bool(res.converged), "fit_message": res.message, "fit_time_s": round(t_fit, 2),
            "init_time_s": round(t_init, 2),
            "time_s": round(time.perf_counter() - t0, 2), "parameters": res.parameters, "x0": start}


def holdout_errors(spec: Spec, datasets: Sequence[Dataset], variants: Sequence[tuple[Collection[str], float]],
                   offset: float = SCORE_OFFSET) -> list[list[float]]:
    """Leave-one-file-out errors of gradient matching (:mod:`symode.fit.gradient_matching`, no ODE fit):
    for every variant (parameters held at 0, penalty scale factor), the error of predicting each file from
    its first sample with the estimate from the other files (inf where a file cannot be scored)."""
    from symode.solve.model import build_model

    design = matching_design(spec, datasets)
    model = build_model(spec)
    base = {n: p.value for n, p in spec.parameters.items()}
    out = []
    for zero, factor in variants:
        errs = []
        for j, test in enumerate(datasets):
            others = [i for i in range(len(datasets)) if i != j]
            values = solve_design(design, others, zero, factor).values
            score = held_out_score(model, spec, [datasets[i] for i in others], test, base | values,
                                   first_sample_x0(spec, test), offset)
            errs.append(math.inf if score["rmse"] is None else float(score["rmse"]))
        out.append(errs)
    return out


def gm_grid_task(job: dict[str, Any]) -> list[float]:
    """Worker: mean gradient-matching leave-one-out error on a fold's training files for every multiplier."""
    spec = spec_from_dict(job["spec"], file="<crossval>")
    errs = holdout_errors(spec, job["train"], [((), m) for m in job["grid"]], job["offset"])
    return [float(np.mean(e)) for e in errs]


INNER = ("fit", "gradient-matching")


def choose_penalties(jobs: Sequence[dict[str, Any]], grid: Sequence[float], inner: str, inner_max_iter: int,
                     workers: int | None, progress: bool) -> list[tuple[float, dict[str, float | None]]]:
    """For every outer fold's job, the penalty multiplier of ``grid`` with the lowest mean inner
    leave-one-file-out error on its training files, and the inner scores: [(multiplier, {multiplier: mean
    RMSE or None if an inner fold failed})]. Ties go to the first multiplier of the grid."""
    from symode.parallel import TaskFailure, run_tasks
    from symode.progress import progress_bar

    bar = progress_bar(total=len(jobs), desc="inner crossval", unit="fold", enabled=progress)
    means: list[dict[float, float]] = []
    try:
        if inner == "gradient-matching":
            results = run_tasks(gm_grid_task, [{**job, "grid": list(grid)} for job in jobs], workers=workers,
                                on_result=lambda k, r: bar.update(1))
            for r in results:
                ok = isinstance(r, list) and not isinstance(r, TaskFailure)
                means.append({m: (r[i] if ok else math.inf) for i, m in enumerate(grid)})
        else:
            inner_jobs, keys = [], []
            for k, job in enumerate(jobs):
                spec = spec_from_dict(job["spec"], file="<crossval>")
                train = job["train"]
                for m in grid:
                    scaled = scaled_penalties(spec, m).to_dict()
                    for j in range(len(train)):
                        inner_jobs.append({**job, "spec": scaled, "train": train[:j] + train[j + 1:],
                                           "test": train[j], "max_iter": inner_max_iter})
                        keys.append((k, m))
            done: dict[int, int] = {}

            def tick(i: int, r: Any) -> None:
                done[keys[i][0]] = done.get(keys[i][0], 0) + 1
                if done[keys[i][0]] == len(grid) * len(jobs[keys[i][0]]["train"]):
                    bar.update(1)

            results = run_tasks(fold_task, inner_jobs, workers=workers, on_result=tick)
            scores: dict[tuple[int, float], list[float]] = {}
            for key, r in zip(keys, results, strict=True):
                ok = isinstance(r, dict) and not isinstance(r, TaskFailure) and r.get("rmse") is not None
                scores.setdefault(key, []).append(float(r["rmse"]) if ok else math.inf)
            means = [{m: float(np.mean(scores[(k, m)])) for m in grid} for k in range(len(jobs))]
    finally:
        bar.close()
    out = []
    for mean in means:
        best = min(grid, key=lambda m: mean[m])
        out.append((best, {m: (v if math.isfinite(v) else None) for m, v in mean.items()}))
    return out


def crossval(spec: Spec | str | Path, datasets: Sequence[Dataset | str | Path], outdir: str | Path, *,
             x0: str = "first-sample", init: str = "spec", max_iter: int = 400, max_time: float = 1800.0,
             shooting: str = "single", method: str = "lm", offset: float = SCORE_OFFSET, workers: int | None = None,
             penalty_grid: Sequence[float] | None = None, inner: str = "fit", inner_max_iter: int | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Leave-one-file-out cross-validation; writes ``outdir/<stem>/prediction.csv`` (time and one column
    per state on the held-out file's times; NaN after a blow-up), ``outdir/<stem>/parameters.json`` (the
    fold's fitted parameters) and ``outdir/crossval.json``; returns the crossval.json content.

    init: the fits' starting values ("spec" or "gradient-matching": :mod:`symode.fit.gradient_matching`).
    penalty_grid: multipliers of every penalty scale of the spec (larger = weaker penalty); each fold uses
    the one with the lowest mean error of an inner leave-one-file-out loop on its training files (each
    inner fold an ODE fit of ``inner_max_iter`` iterations, default ``max_iter``, with ``inner="fit"``,
    or a gradient-matching estimate simulated from the held-out file's first sample with
    ``inner="gradient-matching"``, seconds instead of minutes); the choice and the inner scores are
    reported per fold (``penalty_multiplier``, ``inner_scores``)."""
    from symode.fit.problem import check_data
    from symode.parallel import TaskFailure, run_tasks
    from symode.progress import progress_bar

    spec = spec if isinstance(spec, Spec) else load_spec(spec)
    data = [d if isinstance(d, Dataset) else read_csv(d) for d in datasets]
    if len(data) < 2:
        raise SymodeError("cross-validation needs at least 2 data files")
    if x0 not in X0_MODES:
        raise SymodeError(f"unknown x0 mode {x0!r} ({', '.join(X0_MODES)})", field="x0")
    if init not in INITS:
        raise SymodeError(f"unknown init {init!r} ({', '.join(INITS)})", field="init")
    grid = [float(m) for m in penalty_grid or []]
    if grid:
        if inner not in INNER:
            raise SymodeError(f"unknown inner estimator {inner!r} ({', '.join(INNER)})", field="inner")
        if not all(m > 0 and math.isfinite(m) for m in grid):
            raise SymodeError("the penalty grid's multipliers must be positive numbers")
        if not spec.penalties:
            raise SymodeError("a penalty grid needs penalties (the spec's or --penalty) to scale")
        if len(data) < 3:
            raise SymodeError("choosing the penalty by inner cross-validation needs at least 3 data files")
    if not (offset > 0 and math.isfinite(offset)):
        raise SymodeError("the score offset must be a positive number")
    for d in data:
        check_data(spec, d)
    states = observed_states(spec)
    if not states:
        raise SymodeError("cross-validation scores states observed directly (an observable named like the "
                          "state); this spec has none")
    stems = [Path(d.file).stem for d in data]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise SymodeError(f"data files with the same name stem: {', '.join(dup)} (each fold writes OUT/<stem>/)")
    if init != "spec":
        initial_spec(spec, data, init)      # not a gLV-type spec: one error now, not one failed fold per file
    out = Path(outdir)
    base = spec.to_dict()
    jobs = [{"spec": base, "train": data[:k] + data[k + 1:], "test": data[k], "x0": x0, "init": init,
             "max_iter": max_iter, "max_time": max_time, "shooting": shooting, "method": method, "offset": offset}
            for k in range(len(data))]
    t0 = time.perf_counter()
    choices: list[tuple[float, dict[float, float | None]]] = []
    if grid:
        if inner == "gradient-matching" and init == "spec":
            initial_spec(spec, data, "gradient-matching")        # a clear error now if it does not apply
        choices = choose_penalties(jobs, grid, inner, inner_max_iter or max_iter, workers, progress)
        for job, (m, _) in zip(jobs, choices, strict=True):
            job["spec"] = scaled_penalties(spec, m).to_dict()
    bar = progress_bar(total=len(jobs), desc="crossval", unit="fold", enabled=progress)
    try:
        results = run_tasks(fold_task, jobs, workers=workers, on_result=lambda k, r: bar.update(1))
    finally:
        bar.close()
    folds = []
    for k, r in enumerate(results):
        d, stem = data[k], stems[k]
        fold: dict[str, Any] = {"held_out": d.file, "stem": stem}
        if choices:
            fold["penalty_multiplier"] = choices[k][0]
            fold["inner_scores"] = {f"{m:g}": v for m, v in choices[k][1].items()}
        if isinstance(r, TaskFailure) or not isinstance(r, dict):
            fold.update({"status": "failed", "message": f"the fold's fit or prediction failed: {r}", "rmse": None})
            folds.append(fold)
            continue
        model_states = list(spec.states)
        lines = ["time," + ",".join(model_states)]
        lines += [f"{t:.12g}," + ",".join("" if not np.isfinite(v) else f"{v:.12g}" for v in row)
                  for t, row in zip(d.times, r["x"], strict=True)]
        atomic_write_text(out / stem / "prediction.csv", "\n".join(lines) + "\n")
        atomic_write_json(out / stem / "parameters.json", {"parameters": {k2: _finite(v) for k2, v in
                                                                         r["parameters"].items()},
                                                          "x0": {k2: _finite(v) for k2, v in r["x0"].items()}})
        fold.update({k2: _finite(v) for k2, v in r.items() if k2 not in ("x", "scored", "parameters", "x0")})
        folds.append(fold)
    scored = [f for f in folds if f.get("rmse") is not None]
    means = [f for f in folds if f.get("training_mean_rmse") is not None]
    both = [f for f in folds if f.get("combined_rmse") is not None]
    result = {
        "spec": spec.name,
        "score": f"RMSE of log10(x + {offset:g}) over the held-out samples after the first "
                 f"(states {', '.join(states)})",
        "folds": folds,
        "mean_rmse": float(np.mean([f["rmse"] for f in scored])) if scored else None,
        "mean_training_mean_rmse": float(np.mean([f["training_mean_rmse"] for f in means])) if means else None,
        "mean_combined_rmse": float(np.mean([f["combined_rmse"] for f in both])) if both else None,
        "failures": [{"held_out": f["held_out"], "status": f["status"], "message": f["message"]}
                     for f in folds if f["status"] != "ok"],
        "settings": {"x0": x0, "init": init, "max_iter": max_iter, "max_time": max_time, "shooting": shooting,
                     "method": method, "offset": offset, "blowup_factor": BLOWUP_FACTOR,
                     "penalties": [p.to_dict() | {"parameters": len(p.parameters)} for p in spec.penalties],
                     "penalty_grid": grid or None, "inner": inner if grid else None,
                     "inner_max_iter": (inner_max_iter or max_iter) if grid and inner == "fit" else None},
        "wall_time_s": round(time.perf_counter() - t0, 2),
    }
    atomic_write_json(out / "crossval.json", result)
    return result
