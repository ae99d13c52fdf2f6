"""The worker of the candidate pool: one candidate model fitted from a start (picklable job in, plain
dict out, so it runs in any :mod:`symode.parallel` executor).

Besides the fit, each candidate gets the statistics that rank its edges: Wald statistics
|strength| / SE from the Gauss-Newton covariance (J^T J)^+ at the optimum, and knockouts (the objective
increase when an edge's strength is set to 0 without refitting).
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np

from symode.discover.candidates import Candidate
from symode.discover.strategies import information_criteria
from symode.errors import SolverError
from symode.fit import FitProblem, Tracker, local_fit
from symode.fit.problem import x0_dicts
from symode.optim.lm import levenberg_marquardt
from symode.parallel.threads import blas_threads
from symode.solve.model import build_model
from symode.spec import spec_from_dict

__all__ = ["fit_candidate"]


class _Hopeless(Exception):
    """A candidate fit that cannot reach the objective it needs to be accepted."""


def fit_candidate(job: dict[str, Any]) -> dict[str, Any]:
    """Worker: fit one candidate model (LM from a warm start, no uncertainty analysis). ``job``: the
    candidate's spec (dict), its edges, the starting values, the data sets and the budgets (``max_iter``:
    Levenberg-Marquardt iterations, the budget every decision rests on; ``target`` and ``patience``: the
    iteration-counted early abandon; ``max_time``: a wall-clock safety cap only, reported as ``stop`` =
    "time limit" when hit; ``x0s``: the initial states of every data file, ``shooting``: "single" or
    "multiple"; ``stall``: Levenberg-Marquardt's (window, tolerance) of the stall test; ``geodesic``:
    whether its steps use geodesic acceleration (default true); ``it0``: iterations
    already done by earlier stages of the same fit, counted by the hopeless rules).
    Returns :meth:`Candidate.to_dict`; a fit whose objective is not finite (the solver failed
    at every point tried) has ``failed`` set to the reason.

    BLAS runs on one thread here wherever the job runs (a pool or cluster worker, or this process): the
    result then has the same rounding, hence the same iterates, on every backend (and multi-threaded
    BLAS on these small matrices is slower anyway, by orders of magnitude on a busy machine)."""
    with blas_threads(1):
        return _fit_candidate(job)


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the C compiler building a candidate's
    model library runs as a child: ~0.7 s per new model, which process time alone does not show)."""
    t = os.times()
    return time.process_time() + t.children_user + t.children_system


def _fit_candidate(job: dict[str, Any]) -> dict[str, Any]:
    t0, cpu0 = time.perf_counter(), _cpu()
    spec = spec_from_dict(job["spec"], file="<candidate>")
    start = {n: v for n, v in job["parameters"].items() if n in spec.parameters}
    spec = spec.with_values(start, {n: v for n, v in job["x0"].items() if n in spec.states})
    model = build_model(spec)
    x0s = job.get("x0s") or None
    fp = FitProblem(model, job["datasets"], x0=[{n: v for n, v in x.items() if n in spec.states} for x in x0s]
                    if x0s else None)
    z = fp.z_from_values()
    failure = ""
    max_iter = int(job["max_iter"])
    losses: list[float] = []            # objective after each accepted iteration (single shooting)
    if job.get("shooting", "single") == "multiple":
        stages: list[dict[str, Any]] = []
        tracker = Tracker(fp, None, None, t0)
        try:
            z, conv, msg = local_fit(fp, z, method="lm", shooting="multiple", segments=12,
                                     max_iter=max_iter, max_time=job["max_time"], tracker=tracker, stages=stages)
            stop = "converged" if conv else ("time limit" if "time limit" in msg else "iterations")
        except (SolverError, ValueError, np.linalg.LinAlgError) as exc:
            conv, failure, stop = False, f"multiple shooting failed ({type(exc).__name__}: {exc})", "failed"
        iterations = tracker.iterations
    else:
        # A candidate can only be accepted if its objective ends below ``target``; a fit still far above it
        # after many iterations is abandoned (bad candidates otherwise crawl to the iteration limit).
        # ``patience`` stretches those iteration counts (cold starts begin far from their optimum).
        target = job.get("target")
        last: dict[str, Any] = {"z": z, "it": 0}
        n1, n2 = (round(n * job.get("patience", 1.0)) for n in (30, 80))
        it0 = int(job.get("it0", 0))
        window, tol = job.get("stall", (30, 0.05))

        def watch(it: int, zz: np.ndarray, loss: float) -> None:
            last["z"], last["it"] = zz, it
            losses.append(loss)
            if target is not None and ((it + it0 >= n1 and loss > 1.25 * target + 50) or
                                       (it + it0 >= n2 and loss > 1.05 * target + 10)):
                raise _Hopeless

        try:
            res = levenberg_marquardt(fp.residuals, fp.jacobian, z, fp.lb, fp.ub, max_iter=max_iter,
                                      max_time=job["max_time"], callback=watch, stall_window=int(window),
                                      stall_tol=float(tol), geodesic=bool(job.get("geodesic", True)))
            z, conv, iterations = res.z, res.converged, res.iterations
            stop = ("converged" if conv else "time limit" if res.message == "time limit"
                    else "iterations" if iterations >= max_iter else "stalled")
        except _Hopeless:
            z, conv, iterations, stop = last["z"], False, last["it"], "hopeless"   # abandoned: the last point
        except (SolverError, ValueError, np.linalg.LinAlgError) as exc:
            z, conv, iterations = last["z"], False, last["it"]   # the sensitivities failed: the last point
            failure, stop = f"solver failure ({type(exc).__name__}: {str(exc)[:120]})", "failed"
    loss = fp.loss(z, check=False)
    if not np.isfinite(loss) or loss >= 1e300:
        loss = 1e300
        failure = failure or "the objective is not finite (the ODE solver failed)"
    else:
        failure = ""                            # a solver error along the way, but a usable point
    p, x0s = fp.vectors(z)
    params = {n: float(v) for n, v in zip(model.parameters, p, strict=True)}
    x0_all = x0_dicts(fp, x0s)
    x0 = x0_all[0]
    # Wald statistics of the edge strengths from the Gauss-Newton covariance at the optimum.
    wald: dict[str, float] = {}
    try:
        _, J = fp.jacobian(z, gauge=False)
        d = fp.dtheta_dz(z)
        Jn = J / d                                       # d r / d theta
        F = Jn.T @ Jn
        cov = np.linalg.pinv(F, rcond=1e-12)
        for e in spec.interactions:
            if e.prunable and isinstance(e.strength, str) and e.strength in fp.names:
                i = fp.names.index(e.strength)
                v = float(fp.natural(z)[i])
                se = math.sqrt(max(cov[i, i], 0.0))
                signed = (fp.lb[i] < 0) if fp.scales[i] != "log" else False   # e.g. gLV a_ij of either sign
                wald[e.id] = 0.0 if (v <= 0 and not signed) or v == 0 else (abs(v) / se if se > 0 else math.inf)
    except Exception:   # ranking is a heuristic: fall back to raw strengths
        wald = {}
    # Knockouts: the objective increase when one edge's strength is set to 0 without refitting (an upper
    # bound of the increase after refitting; cheap, one simulation per edge, and meaningful in sloppy
    # models where the Wald statistics are not).
    knock: dict[str, float] = {}
    for e in spec.interactions:
        if e.prunable and isinstance(e.strength, str) and e.strength in fp.names:
            i = fp.names.index(e.strength)
            if fp.scales[i] != "lin":
                continue
            zk = z.copy()
            zk[i] = max(0.0, fp.lb[i])
            lk = fp.loss(zk)
            knock[e.id] = float(lk - loss) if np.isfinite(lk) else 1e300
    # The recent rate of descent (objective decrease per iteration over the last <= 30 iterations).
    tail = losses[-31:]
    rate = max(0.0, (tail[0] - tail[-1]) / (len(tail) - 1)) if len(tail) > 1 else 0.0
    k = len(fp.names)
    aicc, bic = information_criteria(float(loss), k, fp.n_obs)
    return Candidate(edges=list(job["edges"]), parameters=params, x0=x0, objective=float(loss), k=k,
                     n_obs=fp.n_obs, aicc=aicc, bic=bic, wald={k2: (v if math.isfinite(v) else 1e300)
                                                               for k2, v in wald.items()},
                     converged=bool(conv), time_s=time.perf_counter() - t0, knockout=knock, x0s=x0_all,
                     failed=failure, iterations=int(iterations), stop=stop, rate=float(rate),
                     cpu_s=_cpu() - cpu0).to_dict()
