"""Uncertainty at the optimum: the Fisher analysis, its merge over equally good points, and the profile
objective (one unknown fixed, the others re-optimised) that the checks of :mod:`symode.fit.checks` walk.

Wald intervals (:func:`symode.identifiability.fisher_analysis`) rest on the quadratic approximation of
the loss. Where it is doubtful a short profile likelihood (:func:`symode.identifiability.profile_likelihood`,
the other unknowns re-optimised by Levenberg-Marquardt at every point) decides: the reported intervals
become the union of both, and an open profile side makes a parameter non-identifiable."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from symode.fit.local import ROUGH_RTOL
from symode.fit.problem import FitProblem
from symode.fit.result import REL_SE_MAX, FitResult, union_interval
from symode.identifiability import (
    CHI2_1,
    RCOND,
    FisherResult,
    Profile,
    fisher_analysis,
)
from symode.optim.lm import levenberg_marquardt
from symode.timing import Budget, TimeLimit

#: Identifiable parameters with a Wald relative SE above this are checked by a (short) profile likelihood.
PROFILE_CHECK_SE = 0.05


#: A flat direction is profiled along the parameter with at least this component in it (unit vector).
FLAT_COMPONENT = 0.5


#: At most this many equally good points per profile get a Fisher analysis (the farthest on each side).
MERGE_POINTS = 4


#: First step of a borderline check, in Wald standard errors (just past the 99% end, z = 2.576).
BORDERLINE_STEP = 2.7


def fisher_at(fp: FitProblem, z: np.ndarray, loss: float, syms: Sequence[Any], *, rcond: float = RCOND
              ) -> FisherResult:
    """The Fisher analysis at ``z`` (exact Jacobian without the gauge rows, the symmetries as exact null
    directions, the fit's identifiability limit :data:`~symode.fit.result.REL_SE_MAX`; ``rcond`` as in
    :func:`~symode.identifiability.fisher_analysis`)."""
    _, J = fp.jacobian(z, gauge=False, rtol=fp.rtol)
    return fisher_analysis(J, fp.names, fp.natural(z), scales=fp.scales, n_obs=fp.n_obs, loss=loss,
                           symmetries=syms, bounds=fp.bounds(), rel_se_max=REL_SE_MAX, rcond=rcond)


def far_points(prof: Profile) -> list[np.ndarray]:
    """Up to :data:`MERGE_POINTS` re-optimised points of a profile within the 99% threshold, the farthest
    from the optimum on each side first."""
    z0 = float(prof.values_transformed[int(np.argmin(np.abs(prof.q)))])
    ok = [(float(zv), np.asarray(th, dtype=float)) for zv, q, th in
          zip(prof.values_transformed, prof.q, prof.thetas, strict=True) if 0 < q < CHI2_1["0.99"]]
    lower = sorted((p for p in ok if p[0] < z0), key=lambda p: p[0])
    upper = sorted((p for p in ok if p[0] > z0), key=lambda p: -p[0])
    half = MERGE_POINTS // 2
    picked = lower[:half] + upper[:half]
    picked += [p for p in lower[half:] + upper[half:]][: MERGE_POINTS - len(picked)]
    return [th for _, th in picked]


def merge_fisher(fp: FitProblem, syms: Sequence[Any], result: FitResult, points: list[np.ndarray],
                  budget: Budget, profiled: list[str]) -> None:
    """Parameters at a bound freeze their direction: the Fisher matrix there is conditional on them and
    understates the others' uncertainty; along a flat direction the optimum is one of many equally good
    points. Merge the Fisher analyses at the profile points of ``profiled`` (likelihood within the 99%
    threshold): a parameter is identifiable only if it is at every point, and its intervals are the union.

    At those points the null space is only what carries no information at all (relative eigenvalue below
    the absolute floor, ``rcond=0``): the profile walks the flat direction explicitly, so a weak eigenvalue
    adds its share c^2/lambda to the variance of a parameter with a component c in it, as at the optimum
    (:func:`symode.identifiability.fisher.undetermined`), where the weak directions are in addition
    reported as flat and a parameter whose share alone exceeds the limit is undetermined."""
    f = result.fisher
    merged_iv = {n: {lev: list(v) for lev, v in f.intervals[n].items()} for n in f.names}
    for zz in points:
        try:
            with fp.bounded(budget):
                g = fisher_at(fp, zz, fp.loss(zz), syms, rcond=0.0)
        except TimeLimit:
            result.cut_short.append({"phase": "Fisher analysis at equally good points", "name": "", "sides": "",
                                     "effect": f"only part of the points along the profiles of {', '.join(profiled)} "
                                               "were analysed: the intervals and flags may be optimistic"})
            break
        except Exception:  # pragma: no cover
            continue
        for n in f.names:
            if not g.identifiable[n] and f.identifiable[n]:
                f.identifiable[n] = False
                f.reasons[n] = (f"relative SE {g.rel_se[f.names.index(n)]:.0%} at an equally good point (profile "
                                f"of {', '.join(profiled)})")
            for lev in ("0.95", "0.99"):
                merged_iv[n][lev] = union_interval(merged_iv[n][lev], g.intervals[n][lev])
            i = f.names.index(n)
            if g.se_transformed[i] > f.se_transformed[i]:
                f.se_transformed[i] = g.se_transformed[i]
                f.rel_se[i] = g.rel_se[i]
    f.intervals = merged_iv


#: A profile point's re-optimisation that after GIVE_UP_ITER iterations is still GIVE_UP_Q (in q = 2 (loss -
#: loss_hat)) above the optimum stops there: the point is far past every threshold (q 3.84 / 6.63) either way,
#: and such runs (a start that has to leave a stiff region) otherwise take all 30 iterations.
GIVE_UP_ITER = 15


GIVE_UP_Q = 1000 * CHI2_1["0.99"]


class _GiveUp(Exception):
    def __init__(self, w: np.ndarray) -> None:
        super().__init__("profile point far above the thresholds")
        self.w = np.array(w, dtype=float)


def profile_objective(fp: FitProblem, syms: Sequence[Any] = (), loss_hat: float | None = None
                      ) -> Callable[[int, float, np.ndarray], tuple[float, np.ndarray]]:
    """Re-optimise all but one unknown. Symmetries moving the fixed one are broken by fixing it: the
    gauge keeps only the others (pinned at the start of each re-optimisation). With ``loss_hat`` (the
    optimum's loss) a re-optimisation far above the thresholds stops early (:data:`GIVE_UP_ITER`)."""
    give_up = None if loss_hat is None else float(loss_hat) + 0.5 * GIVE_UP_Q

    def objective(index: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        keep = [k for k in range(len(fp.unknowns)) if k != index]
        base = np.asarray(start, dtype=float).copy()
        base[index] = value
        saved = (fp.gauge, fp.gauge_ref, fp.gauge_weight)
        if syms:
            fp.set_symmetry_gauge(syms, base, free=keep)
        try:
            return _profile_solve(fp, base, keep, give_up)
        finally:
            fp.gauge, fp.gauge_ref, fp.gauge_weight = saved

    return objective


def _profile_solve(fp: FitProblem, base: np.ndarray, keep: list[int], give_up: float | None = None
                   ) -> tuple[float, np.ndarray]:
    """Minimise over the unknowns ``keep`` with the others held at ``base``: (loss, full z)."""
    def full(w: np.ndarray) -> np.ndarray:
        zz = base.copy()
        zz[keep] = w
        return zz

    def fun(w: np.ndarray) -> np.ndarray:
        return fp.residuals(full(w))

    def jac(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r, J = fp.jacobian(full(w))
        return r, J[:, keep]

    def watch(it: int, w: np.ndarray, loss: float) -> None:
        if give_up is not None and it >= GIVE_UP_ITER and loss > give_up:
            raise _GiveUp(w)

    # re-optimised at the rough tolerance of a local fit's first phase; the loss returned is at the problem's
    try:
        with fp.tolerance(max(fp.rtol, ROUGH_RTOL)):
            res = levenberg_marquardt(fun, jac, base[keep], fp.lb[keep], fp.ub[keep], max_iter=30, ftol=1e-2,
                                      stall_window=10, stall_tol=0.02, timings=fp.timings, callback=watch)
    except _GiveUp as stop:
        zz = full(stop.w)
        return fp.loss(zz, check=False), zz
    if res.message == "time limit":    # an unfinished re-optimisation overstates the profile: abandon it
        raise TimeLimit("profile point abandoned at the time limit")
    zz = full(res.z)
    return fp.loss(zz, check=False), zz
