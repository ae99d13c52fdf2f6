"""The robust hybrid fit: several warm starts, Levenberg-Marquardt with exact Jacobians over a
curriculum of horizons, the best starts refined on the whole training block (:func:`fit_hybrid`)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from symode.errors import SolverError
from symode.hybrid.lsq import SOLVER, STIFF_SOLVER, WindowLSQ, ZeroUptake, step_cap, stiff_here, zero_uptake_rows
from symode.hybrid.training import TrainResult, l2_penalty
from symode.hybrid.unknowns import Unknowns
from symode.hybrid.warmstart import balanced_rates, spec_weights, warm_start
from symode.optim.lm import levenberg_marquardt
from symode.parallel import TaskFailure, default_workers, get_executor, run_tasks
from symode.parallel.threads import blas_threads
from symode.solve.model import build_model
from symode.solve.sensitivity import Problem
from symode.spec import Spec
from symode.spec.data import Dataset

#: Default wall-clock limit (s) of :func:`fit_hybrid` (symode fit on a neural spec).
HYBRID_TIME_LIMIT = 600.0


#: Horizons (h from the first sample) of the curriculum; the whole training block comes last.
HYBRID_HORIZONS = (24.0, 48.0, 96.0, 192.0, 384.0, 768.0)


@dataclass
class HybridSetup:
    """What every stage of :func:`fit_hybrid` needs (rebuilt in worker processes)."""

    model: Any
    unk: Unknowns
    data: Dataset
    t_split: float
    full: Any
    val_rows: np.ndarray
    n_val: int
    is_weight: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    rtol: float
    atol: float
    zero: list[ZeroUptake] = field(default_factory=list)
    solver: str = "explicit"

    @classmethod
    def build(cls, spec: Spec, data: Dataset, holdout: float, rtol: float, atol: float,
              zero_uptake: bool = True, solver: str | None = None) -> HybridSetup:
        model = build_model(spec)
        unk = Unknowns(model)
        times = data.times
        t_split = float(times[0] + (1 - holdout) * (times[-1] - times[0])) if holdout > 0 else float(times[-1])
        full = Problem(model, data)
        val_rows = full.times > t_split
        weights = set(spec.neural_weights)
        lo = unk.lo.copy()
        hi = unk.hi.copy()
        z0 = unk.z0()
        x0_log = np.zeros(len(z0), dtype=bool)
        x0_log[unk.npz:] = unk.logmask[unk.npz:]
        lo = np.where(x0_log, np.maximum(lo, z0 - math.log(1e3)), lo)   # initial states: within 1000x
        hi = np.where(x0_log, np.minimum(hi, z0 + math.log(1e3)), hi)
        return cls(model=model, unk=unk, data=data, t_split=t_split, full=full, val_rows=val_rows,
                   n_val=int(full.observed[val_rows].sum()),
                   is_weight=np.array([n in weights for n in unk.names], dtype=bool), lo=lo, hi=hi,
                   rtol=rtol, atol=atol, zero=zero_uptake_rows(spec, data, model, unk) if zero_uptake else [],
                   solver=solver or SOLVER)

    def problem(self, horizon: float | None) -> Any:
        t0 = float(self.data.times[0])
        t_end = self.t_split if horizon is None else min(t0 + horizon, self.t_split)
        return Problem(self.model, self.data, window=(t0, t_end))

    def losses(self, z: np.ndarray, max_steps: int = 0) -> tuple[float, float]:
        """(training-block, held-out) data loss 1/2 sum r^2, simulating from t0 over all the data."""
        p, x0 = self.unk.vectors(z)
        full = self.full
        r = self.model.backend.integrate(full.times, x0, p, full.U, rtol=self.rtol, atol=self.atol,
                                         method=self.solver, max_steps=max_steps or 4 * step_cap(len(full.times)))
        if r.status != 0 or not np.all(np.isfinite(r.x)):
            return math.inf, math.inf
        _, res = self.model.backend.residual_loss(full.times, r.x, p, full.U, full.data, full.sigma)
        res = np.where(full.observed, res, 0.0)
        return 0.5 * float(np.sum(res[~self.val_rows] ** 2)), 0.5 * float(np.sum(res[self.val_rows] ** 2))


def lm_stage(st: HybridSetup, z: np.ndarray, horizon: float | None, free: np.ndarray, max_iter: int,
             deadline: float, counter: dict[str, int]) -> tuple[np.ndarray, dict[str, Any]]:
    """Levenberg-Marquardt (:func:`symode.optim.lm.levenberg_marquardt`, exact Jacobians) over the free
    unknowns on the window [t0, t0 + horizon] (None: the training block), until ``deadline`` (epoch s).
    With the explicit integrator, a stage whose start cannot be simulated, or whose LM stalls on trial
    steps that cannot be, switches ``st`` (the whole start from then on) to :data:`STIFF_SOLVER` if the
    model there is stiff (:func:`stiff_here`) and goes on."""
    t = time.time()
    prob = st.problem(horizon)

    def make_lsq(zz: np.ndarray) -> WindowLSQ:      # with the start's current solver
        return WindowLSQ(st.model, st.unk, prob, zz, free, st.rtol, st.atol, counter, st.zero, st.solver)

    lsq = make_lsq(z)
    r0 = lsq.fun(z[free])
    n_obs = prob.n_observations
    info: dict[str, Any] = {"horizon": horizon if horizon is not None else "training block",
                            "free": int(free.sum()), "start_rms": math.sqrt(float(np.mean(r0[:n_obs] ** 2)))}

    def switch(zz: np.ndarray) -> bool:
        """Switch this start to :data:`STIFF_SOLVER` if the explicit integrator failed on a stiff model."""
        if st.solver != "explicit" or not STIFF_SOLVER or not stiff_here(st.model, st.unk, prob, zz, st.rtol,
                                                                         st.atol):
            return False
        st.solver = STIFF_SOLVER
        info["solver"] = f"switched to {STIFF_SOLVER} (stiff)"
        return True

    if not np.all(np.isfinite(r0)) and switch(z):
        lsq = make_lsq(z)
        r0 = lsq.fun(z[free])
    if not np.all(np.isfinite(r0)) or deadline - t <= 0:
        info.update(iterations=0, message="skipped (solver failure or time limit)", seconds=time.time() - t)
        return z, info
    its = 0
    for _attempt in range(2):
        try:
            res = levenberg_marquardt(lsq.fun, lsq.jac, z[free], st.lo[free], st.hi[free], max_iter=max_iter - its,
                                      max_time=max(deadline - time.time(), 0.0), stall_window=15, stall_tol=0.5)
        except (ValueError, np.linalg.LinAlgError, SolverError) as exc:   # non-finite Jacobian at the start
            info.update(iterations=its, message=f"failed: {exc}", seconds=time.time() - t)
            return z, info
        z = lsq.z(res.z)
        its += res.iterations
        # stalled because trial steps could not be simulated explicitly: go on with the stiff integrator
        # if the model there is stiff (the data may want a stiff model: fast uptake of a metabolite)
        if not (res.message.startswith("stalled") and lsq.failed is not None and its < max_iter
                and time.time() < deadline and switch(lsq.z(lsq.failed))):
            break
        lsq = make_lsq(z)
        if not np.all(np.isfinite(lsq.fun(z[free]))):
            break
    r = lsq.fun(z[free])[:prob.n_observations]
    info.update(iterations=its, message=res.message, rms=math.sqrt(float(np.mean(r**2))),
                seconds=round(time.time() - t, 2))
    return z, info


#: Longest share of a start's time one network-frozen ("mech") stage of :func:`fit_hybrid` may take.
MECH_SHARE = 0.15


def run_start(job: dict[str, Any]) -> dict[str, Any]:
    """One candidate of :func:`fit_hybrid` (runs in a worker process or inline): the stages of
    ``job["plan"]`` (horizon, "mech" | "all", max iterations) from ``job["z"]`` or from a warm start."""
    t = time.time()
    deadline = min(job["deadline"], t + job.get("budget", math.inf))
    st = HybridSetup.build(job["spec"], job["data"], job["holdout"], job["rtol"], job["atol"],
                           job.get("zero_uptake", True), job.get("solver"))
    counter: dict[str, int] = {}
    if job.get("z") is not None:
        z = np.asarray(job["z"], dtype=float)
    else:
        z = st.unk.z0()
        if job.get("warm") is not None:
            warm = dict(job["warm"])
            balance = bool(warm.pop("balance", False))
            values = warm_start(st.model.spec, st.data, **warm)
            if balance:
                values.update(balanced_rates(st.model.spec, st.data, {**spec_weights(st.model.spec), **values}))
            index = {n: k for k, n in enumerate(st.unk.names)}
            for n, v in values.items():
                if n in index:
                    k = index[n]
                    z[k] = math.log(v) if st.unk.logmask[k] else v
            z = np.clip(z, st.lo, st.hi)
    stages = []
    span = st.t_split - float(st.data.times[0])
    last_ok = job.get("from_horizon")      # longest horizon trained on so far
    queue = list(job["plan"])
    retries = 0
    while queue:
        horizon, which, its = queue.pop(0)
        if time.time() > deadline:
            break
        free = ~st.is_weight if which == "mech" else np.ones(len(z), dtype=bool)
        if not free.any():
            continue
        # the network-frozen stages are a warm-up: at most MECH_SHARE of the start's time each
        stage_deadline = min(deadline, time.time() + MECH_SHARE * (deadline - t)) if which == "mech" else deadline
        z, info = lm_stage(st, z, horizon, free, its, stage_deadline, counter)
        stages.append(info)
        h = span if horizon is None else min(horizon, span)
        if info["message"].startswith("skipped (solver"):
            # the model trained up to last_ok fails on the longer window: extend the horizon more gently
            if which == "all" and last_ok is not None and h - last_ok > 0.05 * last_ok and retries < 6:
                retries += 1
                queue[:0] = [(last_ok + (h - last_ok) / 3, which, its), (horizon, which, its)]
            continue
        if which == "all":
            last_ok = max(h, last_ok or 0.0)
    tr, va = st.losses(z)
    n_tr = max(int(st.full.observed[~st.val_rows].sum()), 1)
    score = va / st.n_val if st.n_val else tr / n_tr
    return {"name": job["name"], "z": z.tolist(), "score": score, "objective": tr + va, "stages": stages,
            "seconds": time.time() - t, "n_gradients": counter.get("grad", 0), "horizon": last_ok,
            "solver": st.solver}


def _run_jobs(jobs: list[dict[str, Any]], workers: int, say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Run candidate jobs in ``workers`` processes (:mod:`symode.parallel`; inline if 1), in job order; a
    failed job is reported and scores inf."""
    def failed(job: dict[str, Any], error: TaskFailure) -> dict[str, Any]:
        return {"name": job["name"], "z": job.get("z"), "score": math.inf, "error": error.error, "stages": []}

    def report(k: int, r: Any) -> None:
        if isinstance(r, TaskFailure):
            r = failed(jobs[k], r)
        last = r["stages"][-1] if r.get("stages") else {}
        say(f"  start {r['name']}: score {r['score']:.4g} (rms of last stage {last.get('rms', float('nan')):.4f}, "
            f"{r.get('seconds', 0):.0f} s)" + (f": {r['error']}" if r.get("error") else ""))

    with get_executor(min(workers, len(jobs))) as executor:
        results = run_tasks(run_start, jobs, executor=executor, on_result=report)
    return [failed(job, r) if isinstance(r, TaskFailure) else r for job, r in zip(jobs, results, strict=True)]


def default_starts(spec: Spec, extra: int = 0) -> list[tuple[str, dict[str, Any] | None]]:
    """The starting points of :func:`fit_hybrid`: (name, :func:`warm_start` keyword arguments or None for
    the spec's own weights; ``balance``: True also starts the production rates and uptake yields from
    :func:`balanced_rates`). Warm starts with the emphasis on each uptake output, with the spec's and with
    balanced turnover, with equal shares, the spec's weights, then ``extra`` warm starts from other weight
    seeds and saturation constants.

    Both turnovers are needed: on data with fast uptake of B only the balanced starts avoid a stiff futile
    cycle, on other data only the spec's starting values lead to the right basin (docs/neural.md,
    Robustness)."""
    n_out = max((sum(1 for e in spec.interactions if e.kind == "uptake" and e.law == "neural"
                     and e.rate and e.rate.startswith(t.id + ".")) for t in spec.neural), default=0)
    starts: list[tuple[str, dict[str, Any] | None]] = []
    for k in reversed(range(n_out if n_out > 1 else 0)):
        starts += [(f"warm-emphasis-{k}", {"emphasis": k}), (f"warm-emphasis-{k}-balanced", {"emphasis": k,
                                                                                             "balance": True})]
    if n_out <= 1:
        starts += [("warm-balanced", {"balance": True}), ("warm-K/3", {"k_factor": 1 / 3}),
                   ("warm-K*3", {"k_factor": 3.0})]
    starts += [("warm", {}), ("spec", None)]
    for k in range(extra):
        starts.append((f"warm-seed-{k + 1}", {"seed_shift": k + 1, "k_factor": (0.5, 2.0)[k % 2],
                                              "emphasis": (k % n_out) if n_out > 1 else None}))
    return starts


def fit_hybrid(spec: Spec | str | Path, data: Dataset, *, time_limit: float = HYBRID_TIME_LIMIT,
               workers: int | None = None, extra_starts: int = 0, holdout: float = 0.0,
               horizons: Sequence[float] = HYBRID_HORIZONS, stage_iter: int = 25, refine: int = 2,
               polish: int = 150, rtol: float = 1e-6, atol: float = 1e-9,
               log: Callable[[str], None] | None = print) -> TrainResult:
    """Fit a hybrid (neural) model robustly: several starts, Levenberg-Marquardt with exact Jacobians
    over a curriculum of horizons, and the best start polished on all the training data.

    1. Starts (:func:`default_starts`): warm starts whose networks mimic a Monod-type law sized from the
       data (:func:`warm_start`), with different shares between the outputs, and whose production rates
       and uptake yields balance the observed metabolite levels (:func:`balanced_rates`); and the spec's
       own values.
    2. Each start (in parallel, ``workers`` processes, default all cores; all but the last ``workers``
       starts get their fair share of half the time limit, the last ones what is left of that half): the
       non-network parameters and initial states with the network frozen (LM on 24 h, then 48 h, each at
       most :data:`MECH_SHARE` of the start's time), then everything on the horizons ``horizons`` (LM,
       ``stage_iter`` iterations each); scored by the loss over all the data (the held-out block's if
       ``holdout`` > 0, simulated from t0).
    3. The ``refine`` best starts (in parallel; beyond the best only if within 1.5x of its score): LM on
       the whole training block, up to ``polish`` iterations; the best by the same score is returned.

    LM residuals are the weighted data residuals plus sqrt(2 n l2) w per network weight (the objective of
    :func:`train`) plus, for every network output used as an uptake rate of substrate M, rows that keep that
    rate at 0 when M = 0 (no uptake without substrate; without them the network keeps consuming at M = 0 and
    an unobserved metabolite goes negative between samples). Jacobians are exact (discrete forward
    sensitivities through the integrator, :data:`SOLVER`). A start whose explicit integration fails (the
    first evaluation of a stage, or every trial step of a stalled LM) on a model that is stiff there
    (:func:`stiff_here`) continues with :data:`STIFF_SOLVER`.
    Past ``time_limit`` seconds every stage stops and the best point so far is returned.
    """
    with blas_threads(1):
        return _fit_hybrid(spec, data, time_limit=time_limit, workers=workers, extra_starts=extra_starts,
                           holdout=holdout, horizons=horizons, stage_iter=stage_iter, refine=refine, polish=polish,
                           rtol=rtol, atol=atol, log=log)


def _fit_hybrid(spec: Spec | str | Path, data: Dataset, *, time_limit: float, workers: int | None,
                extra_starts: int, holdout: float, horizons: Sequence[float], stage_iter: int, refine: int,
                polish: int, rtol: float, atol: float, log: Callable[[str], None] | None) -> TrainResult:
    t_start = time.time()
    say = log or (lambda s: None)
    model = build_model(spec) if not hasattr(spec, "backend") else spec  # type: ignore[union-attr]
    spec = model.spec
    workers = max(1, workers if workers is not None else default_workers())
    deadline_explore = t_start + 0.5 * time_limit
    deadline = t_start + time_limit
    times = data.times
    t_split = float(times[0] + (1 - holdout) * (times[-1] - times[0])) if holdout > 0 else float(times[-1])
    kept: list[float | None] = [float(h) for h in horizons if times[0] + h < t_split]
    early = [(h, "mech", 20) for h in (kept[:2] or [None])] + [(h, "all", stage_iter) for h in (kept or [None])]
    base = dict(spec=spec, data=data, holdout=holdout, rtol=rtol, atol=atol, solver=SOLVER)
    starts = default_starts(spec, extra_starts)
    if not balanced_rates(spec, data, spec_weights(spec)):     # nothing to balance: the balanced starts are duplicates
        starts = [(n, w) for n, w in starts if not (w or {}).get("balance")]
    n_par = min(workers, len(starts))
    share = 0.5 * time_limit * n_par / len(starts)   # fair share of the explore phase
    # all but the last n_par starts get their fair share; the last ones may use what is left of the explore
    # phase (the time of starts that ended early), so that no start is starved by the ones before it
    jobs = [dict(base, name=name, warm=warm, z=None, plan=early, deadline=deadline_explore,
                 budget=share if k < len(starts) - n_par else math.inf) for k, (name, warm) in enumerate(starts)]
    say(f"fit_hybrid: {len(jobs)} starts on {min(workers, len(jobs))} processes, curriculum "
        + ", ".join(f"{h:g} h" for h in kept if h is not None) + f", time limit {time_limit:.0f} s")
    explored = _run_jobs(jobs, workers, say)
    ranked = sorted((r for r in explored if r.get("z") is not None and np.isfinite(r["score"])),
                    key=lambda r: r["score"])
    if not ranked:
        raise SolverError("every start failed (see the messages above)")
    chosen = [r for r in ranked[:max(refine, 1)] if r["score"] <= 1.5 * ranked[0]["score"]]
    say(f"refining {len(chosen)} best start(s) on the training block ({time.time() - t_start:.0f} s so far)")
    jobs = [dict(base, name=r["name"], z=r["z"], plan=[(None, "all", polish)], deadline=deadline,
                 from_horizon=r.get("horizon"), solver=r.get("solver", SOLVER)) for r in chosen]
    refined = _run_jobs(jobs, workers, say)
    candidates = [r for r in refined if r.get("z") is not None and np.isfinite(r["score"])] or ranked[:1]
    best = min(candidates, key=lambda r: r["score"])
    st = HybridSetup.build(spec, data, holdout, rtol, atol, solver=best.get("solver", SOLVER))
    z = np.asarray(best["z"], dtype=float)
    tr, va = st.losses(z)
    p, _ = st.unk.vectors(z)
    pen, _ = l2_penalty(spec, p, list(model.parameters))
    n_train = int(st.full.observed[~st.val_rows].sum())
    history = [{"phase": "explore", **{k: v for k, v in r.items() if k != "z"}} for r in explored]
    history += [{"phase": "refine", **{k: v for k, v in r.items() if k != "z"}} for r in refined]
    elapsed = time.time() - t_start
    stopped = f"best of {len(explored)} starts: {best['name']}" + (" (time limit)" if elapsed > time_limit else "")
    out = TrainResult(spec=st.unk.spec_at(z), loss=tr, val_loss=va if st.n_val else 0.0, penalty=pen,
                      n_train=n_train, n_val=st.n_val, t_split=st.t_split, stopped=stopped, seconds=elapsed,
                      n_gradients=sum(r.get("n_gradients", 0) for r in explored + refined), history=history)
    say(f"done ({stopped}): train rms {math.sqrt(2 * tr / max(n_train, 1)):.4f}"
        + (f", held-out rms {math.sqrt(2 * va / st.n_val):.4f}" if st.n_val else "")
        + f", {out.n_gradients} Jacobians, {elapsed:.0f} s")
    return out
