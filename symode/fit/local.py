"""Local fits from one start: single shooting with Levenberg-Marquardt (:mod:`symode.optim.lm`), scipy's
trust-region reflective (``trf``) or L-BFGS-B with adjoint gradients (``lbfgs``), and multiple shooting
first or as a fallback (:class:`symode.fit.shooting.MultipleShooting`).

All work on the transformed unknowns z of a :class:`~symode.fit.problem.FitProblem` with its exact
residual Jacobian; a :class:`Tracker` sees every iteration (progress, callbacks, best point so far)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from symode.errors import SolverError
from symode.fit.problem import FitProblem
from symode.fit.shooting import MultipleShooting
from symode.optim.lm import levenberg_marquardt
from symode.solve.sensitivity import loss_and_gradient
from symode.timing import Budget, TimeLimit


class FitInterrupted(Exception):
    """Raised by a callback to stop the fit; the best point so far is returned."""


@dataclass
class Progress:
    """What a callback sees: stage name, iteration, objective, best objective so far, elapsed time."""

    stage: str
    iteration: int
    objective: float
    best: float
    elapsed: float
    z: np.ndarray


class Tracker:
    """The iteration callback of every local optimiser: counts iterations, keeps the best single-shooting
    point (what an interrupted fit returns), advances the progress bar and calls the user's callback."""

    def __init__(self, fp: FitProblem, callback: Callable[[Progress], None] | None, bar: Any,
                 t0: float) -> None:
        self.fp, self.callback, self.bar, self.t0 = fp, callback, bar, t0
        self.best_z: np.ndarray | None = None
        self.best = math.inf
        self.iterations = 0
        self.stage = ""

    def offer(self, z: np.ndarray, loss: float) -> None:
        if np.isfinite(loss) and loss < self.best:
            self.best, self.best_z = float(loss), np.array(z[: len(self.fp.unknowns)], dtype=float)

    def __call__(self, it: int, z: np.ndarray, loss: float) -> None:
        self.iterations += 1
        if self.stage == "single shooting":
            self.offer(z, loss)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{self.stage}: objective {loss:.6g}")
        if self.callback is not None:
            self.callback(Progress(self.stage, self.iterations, float(loss), self.best,
                                   time.perf_counter() - self.t0, np.array(z[: len(self.fp.unknowns)])))


def local_fit(fp: FitProblem, z0: np.ndarray, *, method: str, shooting: str, segments: int, max_iter: int,
              max_time: float, tracker: Tracker, stages: list[dict[str, Any]], rough: bool = False
              ) -> tuple[np.ndarray, bool, str]:
    """Single shooting from z0; multiple shooting first (or as a fallback when single shooting fails or
    stalls far above the noise level). Every solve inside is bounded by ``max_time`` seconds (and by the
    budget already in force on ``fp``); a stage cut short returns its last accepted point. ``rough``:
    Levenberg-Marquardt's single shooting in two phases (:func:`_lm`)."""
    with fp.bounded(Budget(max_time)), fp.timings.phase("local fit"):
        return _local_fit(fp, z0, method=method, shooting=shooting, segments=segments, max_iter=max_iter,
                          max_time=max_time, tracker=tracker, stages=stages, rough=rough)


def _local_fit(fp: FitProblem, z0: np.ndarray, *, method: str, shooting: str, segments: int, max_iter: int,
               max_time: float, tracker: Tracker, stages: list[dict[str, Any]], rough: bool
               ) -> tuple[np.ndarray, bool, str]:
    t_start = time.perf_counter()
    expected = 0.5 * fp.n_obs
    z = z0
    if shooting == "multiple":
        z = _ms_stage(fp, z, segments, max_iter, max_time, tracker, stages)
    tracker.stage = "single shooting"
    z1, conv, msg = _single(fp, z, method, max_iter, max_time - (time.perf_counter() - t_start), tracker, stages,
                            rough)
    L1 = _loss(fp, z1)
    failed = not np.isfinite(L1) or (L1 > 3.0 * expected + 50 and (not conv or L1 > 10 * expected))
    if shooting == "auto" and failed and not fp.budget.expired:
        zm = _ms_stage(fp, z0, segments, max_iter, max_time - (time.perf_counter() - t_start), tracker, stages)
        tracker.stage = "single shooting"
        z2, conv2, msg2 = _single(fp, zm, method, max_iter, max_time - (time.perf_counter() - t_start), tracker,
                                  stages, rough)
        if _loss(fp, z2) < L1:
            return z2, conv2, "multiple shooting, then " + msg2
    return z1, conv, msg


def _loss(fp: FitProblem, z: np.ndarray) -> float:
    return fp.loss(z, check=False)


def _single(fp: FitProblem, z: np.ndarray, method: str, max_iter: int, max_time: float, tracker: Tracker,
            stages: list[dict[str, Any]], rough: bool = False) -> tuple[np.ndarray, bool, str]:
    """One single-shooting stage by ``method``, recorded in ``stages``."""
    t = time.perf_counter()
    L0 = fp.loss(z, check=False)
    it0 = tracker.iterations
    try:
        if method == "lbfgs":
            zf, conv, msg, it = _lbfgs(fp, z, max_iter, tracker)
        elif method == "trf":
            zf, conv, msg, it = _trf(fp, z, max_iter, tracker)
        else:
            zf, conv, msg, it = _lm(fp, z, max_iter, max_time, tracker, rough)
    except TimeLimit:     # cut short inside an optimiser that does not stop by itself: the best point seen
        zf = tracker.best_z if tracker.best_z is not None and tracker.best < L0 else z
        conv, msg, it = False, "time limit", tracker.iterations - it0
    stages.append({"stage": f"single shooting ({method})", "start_objective": float(L0),
                   "objective": float(fp.loss(zf, check=False)), "iterations": int(it), "converged": bool(conv),
                   "message": msg, "time_s": round(time.perf_counter() - t, 3)})
    return zf, conv, msg


#: The first Levenberg-Marquardt phase of a single-shooting fit solves at this relative tolerance (when the
#: problem's is tighter) and stops at a loose objective change (ROUGH_FTOL, far below the chi-square
#: resolution 0.5); the second polishes at the problem's tolerance. Far from the optimum the model may be
#: stiff, where a Rosenbrock solve at 1e-8 costs several times one at 1e-6 (bench/fit.py --breakdown).
ROUGH_RTOL = 1e-6


ROUGH_FTOL = 1e-2


def _lm(fp: FitProblem, z: np.ndarray, max_iter: int, max_time: float, tracker: Tracker, rough: bool
        ) -> tuple[np.ndarray, bool, str, int]:
    """Levenberg-Marquardt; ``rough``: in two phases, at :data:`ROUGH_RTOL` to a loose convergence, then at the
    problem's tolerance from there."""
    t0 = time.perf_counter()
    it = 0
    if rough and fp.rtol < ROUGH_RTOL:
        with fp.tolerance(ROUGH_RTOL):
            res = levenberg_marquardt(fp.residuals, fp.jacobian, z, fp.lb, fp.ub, max_iter=max_iter,
                                      max_time=max_time, callback=tracker, timings=fp.timings, ftol=ROUGH_FTOL)
        z, it = res.z, res.iterations
        if res.message == "time limit":
            return res.z, False, res.message, it
        if it >= max_iter:      # the rough phase used every iteration allowed
            return res.z, False, f"iteration limit ({max_iter}) reached", it
    res = levenberg_marquardt(fp.residuals, fp.jacobian, z, fp.lb, fp.ub, max_iter=max_iter - it,
                              max_time=max_time - (time.perf_counter() - t0), callback=tracker,
                              timings=fp.timings)
    return res.z, res.converged, res.message, it + res.iterations


def _ms_stage(fp: FitProblem, z: np.ndarray, segments: int, max_iter: int, max_time: float, tracker: Tracker,
              stages: list[dict[str, Any]]) -> np.ndarray:
    """A multiple-shooting stage (LM, loose tolerance) from z; returns its single-shooting part."""
    t = time.perf_counter()
    tracker.stage = "multiple shooting"
    with fp.timings.phase("multiple shooting"):
        return _ms_run(fp, z, segments, max_iter, max_time, tracker, stages, t)


def _ms_run(fp: FitProblem, z: np.ndarray, segments: int, max_iter: int, max_time: float, tracker: Tracker,
            stages: list[dict[str, Any]], t: float) -> np.ndarray:
    ms = MultipleShooting(fp, segments)
    w0 = ms.initial(z)
    lb, ub = ms.bounds()
    w0 = np.clip(w0, lb, ub)
    try:
        res = levenberg_marquardt(ms.residuals, ms.jacobian, w0, lb, ub, max_iter=max_iter,
                                  max_time=max_time, callback=tracker, ftol=1e-2, timings=fp.timings)
    except TimeLimit:      # the budget ran out at the first point: nothing gained
        stages.append({"stage": "multiple shooting", "objective": float("nan"), "message": "time limit",
                       "iterations": 0, "converged": False, "time_s": round(time.perf_counter() - t, 3)})
        return z
    zf = res.z[: ms.n_base]
    stages.append({"stage": f"multiple shooting ({sum(len(s) for s in ms.segments)} segments)",
                   "objective": float(res.loss), "single_shooting_objective": float(fp.loss(zf, check=False)),
                   "iterations": res.iterations, "converged": res.converged, "message": res.message,
                   "time_s": round(time.perf_counter() - t, 3)})
    return zf


def _trf(fp: FitProblem, z: np.ndarray, max_iter: int, tracker: Tracker) -> tuple[np.ndarray, bool, str, int]:
    """scipy's trust-region reflective least squares with the exact residual Jacobian."""
    count = [0]

    def jac(zz: np.ndarray) -> np.ndarray:
        r, J = fp.jacobian(zz)
        count[0] += 1
        tracker(count[0], zz, 0.5 * float(r @ r))
        return J

    from scipy.optimize import least_squares  # here: scipy.optimize takes ~0.5 s to import

    res = least_squares(fp.residuals, z, jac=jac, bounds=(fp.lb, fp.ub), method="trf", x_scale="jac",
                        max_nfev=max_iter * 2, ftol=1e-10, xtol=1e-10, gtol=1e-8)
    return res.x, bool(res.status > 0), str(res.message), count[0]


def _lbfgs(fp: FitProblem, z: np.ndarray, max_iter: int, tracker: Tracker) -> tuple[np.ndarray, bool, str, int]:
    """L-BFGS-B on the loss with adjoint (discrete) gradients; cost nearly independent of #parameters."""
    def fg(zz: np.ndarray) -> tuple[float, np.ndarray]:
        p, x0s = fp.vectors(zz)
        d = fp.dtheta_dz(zz)
        total, grad = 0.0, np.zeros(len(zz))
        for e, (prob, x0) in enumerate(zip(fp.problems, x0s, strict=True)):
            try:
                g = loss_and_gradient(prob, params=p, x0=x0, method="auto", rtol=fp.rtol, atol=fp.atol)
            except SolverError:
                return 1e300, np.zeros(len(zz))
            total += g.loss
            grad[fp.p_pos] += g.grad_p[fp.p_cols]
            for k, i in fp.x_pos[e]:
                grad[k] += g.grad_x0[i]
        grad *= d
        gz, G = fp.gauge_rows(zz)
        pz, P = fp.penalty_rows(zz)
        return total + 0.5 * float(gz @ gz + pz @ pz), grad + G.T @ gz + P.T @ pz

    count = [0]

    def cb(zz: np.ndarray) -> None:
        count[0] += 1
        tracker(count[0], zz, fp.loss(zz))

    from scipy.optimize import minimize

    res = minimize(fg, z, jac=True, method="L-BFGS-B", bounds=fp.transform.scipy_bounds(), callback=cb,
                   options={"maxiter": max_iter * 10, "ftol": 1e-14, "gtol": 1e-8})
    return res.x, bool(res.success), str(res.message), int(res.nit)
