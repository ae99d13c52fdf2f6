"""Uncertainty at the optimum: the Fisher analysis, its robust variant for parameters at a bound, the
profile-likelihood check of borderline Wald intervals, and requested profiles.

Wald intervals (:func:`symode.identifiability.fisher_analysis`) rest on the quadratic approximation of
the loss. Where it is doubtful a short profile likelihood (:func:`symode.identifiability.profile_likelihood`,
the other unknowns re-optimised by Levenberg-Marquardt at every point) decides: the reported intervals
become the union of both, and an open profile side makes a parameter non-identifiable."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from symode.errors import SymodeError
from symode.fit.local import ROUGH_RTOL, FitInterrupted
from symode.fit.problem import FitProblem
from symode.fit.result import REL_SE_MAX, FitResult, union_interval
from symode.identifiability import (
    CHI2_1,
    FisherResult,
    Profile,
    fisher_analysis,
    profile_likelihood,
    symmetry_directions,
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


def fisher_at(fp: FitProblem, z: np.ndarray, loss: float, syms: Sequence[Any]) -> FisherResult:
    """The Fisher analysis at ``z`` (exact Jacobian without the gauge rows, the symmetries as exact null
    directions, the fit's identifiability limit :data:`~symode.fit.result.REL_SE_MAX`)."""
    _, J = fp.jacobian(z, gauge=False, rtol=fp.rtol)
    return fisher_analysis(J, fp.names, fp.natural(z), scales=fp.scales, n_obs=fp.n_obs, loss=loss,
                           symmetries=syms, bounds=fp.bounds(), rel_se_max=REL_SE_MAX)


@dataclass
class Check:
    """A profile-based check of one parameter: ``kind`` "at bound" (Fisher analysis away from a bound),
    "flat" (Fisher analysis along a flat direction that is no exact symmetry),
    "borderline" (a Wald interval in doubt) or "profile" (requested)."""

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
    """The profile checks the analysis would run, in order: parameters at a bound, then borderline Wald
    intervals (relative SE above :data:`PROFILE_CHECK_SE`, finite), then the requested profiles."""
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
    """Parameters whose Wald interval gets a profile check (not at a bound, not requested)."""
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
               which: bool | Sequence[str], budget: Budget, progress: bool, only_requested: bool = False) -> None:
    """Every planned check within ``budget``: each gets a fair share of what is left (the time left over
    the checks still to run); a check that exceeds its share is abandoned and listed in
    ``result.cut_short``. ``only_requested``: the requested profiles only (no checks)."""
    f = result.fisher
    if f is None:
        return
    at_bound = [] if only_requested else [c for c in plan_checks(fp, result, False) if c.kind in ("at bound", "flat")]
    n_planned = len(plan_checks(fp, result, which))
    done = 0
    points: list[np.ndarray] = []
    for c in at_bound:
        with fp.timings.phase("at-bound profiles"):
            prof = _check(fp, z, loss, syms, result, c, budget.share(1.0 / max(n_planned - done, 1)), progress)
            done += 1
            if prof is None:
                continue
            result.profiles.append(prof)
            points += _far_points(prof)
    if points:
        with fp.timings.phase("at-bound profiles"):
            _merge_fisher(fp, syms, result, points, budget, [c.name for c in at_bound])
    rest = [] if only_requested else [Check("borderline", n) for n in borderline(result)]
    rest += [Check("profile", n) for n in requested(fp, result, which) if n not in {p.name for p in result.profiles}]
    n_planned = done + len(rest)
    for c in rest:
        with fp.timings.phase("borderline checks" if c.kind == "borderline" else "profiles"):
            prof = _check(fp, z, loss, syms, result, c, budget.share(1.0 / max(n_planned - done, 1)), progress)
        done += 1
        if prof is None:
            continue
        result.profiles.append(prof)
        i = f.names.index(c.name)
        if c.kind == "borderline" and prof.decided and not prof.identifiable and f.identifiable[c.name]:
            f.identifiable[c.name] = False
            f.reasons[c.name] = "profile likelihood open at the 95% level (Wald SE " \
                                f"{f.rel_se[i]:.0%} understates the uncertainty)"


def _check(fp: FitProblem, z: np.ndarray, loss: float, syms: Sequence[Any], result: FitResult, c: Check,
           share: Budget, progress: bool) -> Profile | None:
    """The profile of one check within ``share`` (None if it could not start); a cut-short one is
    recorded in ``result.cut_short``."""
    f = result.fisher
    i = fp.names.index(c.name)
    if c.kind in ("at bound", "flat"):
        kw: dict[str, Any] = dict(n_points=8, step=0.5 if fp.scales[i] == "log" else None, max_evals=8)
    elif c.kind == "borderline":
        # first step just past the Wald 99% end: where the quadratic approximation holds, one point per side
        # (q there ~ 7.3 > 6.63) decides; where the profile is flatter the walk goes on from there
        se = f.se_transformed[i]
        kw = dict(n_points=8, step=float(min(max(BORDERLINE_STEP * se, 1e-3), 2.0)) if np.isfinite(se) else None,
                  max_evals=8)
    else:
        kw = dict(n_points=12)
    t = time.perf_counter()
    prof = None
    try:
        with fp.bounded(share):
            prof = profile_likelihood(_profile_objective(fp, syms), fp.natural(z), i, names=fp.names,
                                      scales=fp.scales, bounds=fp.bounds(), loss_hat=loss, progress=progress,
                                      slope=_slope(f, i), **kw)
    except TimeLimit:
        pass
    except (KeyboardInterrupt, FitInterrupted):
        raise
    except Exception:   # pragma: no cover - the extra analysis must not lose the fit
        return None
    if prof is None or prof.cut_short:
        sides = " and ".join(prof.cut_short) if prof is not None else "both"
        result.cut_short.append({"phase": f"{c.kind} check" if c.kind != "profile" else "profile",
                                 "name": c.name, "sides": sides, "seconds": round(time.perf_counter() - t, 2),
                                 "share_s": round(share.deadline - t, 2),
                                 "effect": CUT_EFFECT[c.kind]})
    return prof


def _far_points(prof: Profile) -> list[np.ndarray]:
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


def _slope(f: FisherResult, i: int) -> np.ndarray | None:
    """How the optimum of the other unknowns moves per unit of unknown i (transformed space), to first
    order: cov[:, i] / cov[i, i] of the Fisher covariance (0 where undetermined)."""
    cov = f.covariance
    if cov is None or not (np.isfinite(cov[i, i]) and cov[i, i] > 0):
        return None
    out = np.asarray(cov[:, i], dtype=float) / cov[i, i]
    out[~np.isfinite(out) | ~np.isfinite(f.se_transformed)] = 0.0
    return out


def _merge_fisher(fp: FitProblem, syms: Sequence[Any], result: FitResult, points: list[np.ndarray],
                  budget: Budget, profiled: list[str]) -> None:
    """Parameters at a bound freeze their direction: the Fisher matrix there is conditional on them and
    understates the others' uncertainty; along a flat direction the optimum is one of many equally good
    points. Merge the Fisher analyses at the profile points of ``profiled`` (likelihood within the 99%
    threshold): a parameter is identifiable only if it is at every point, and its intervals are the union."""
    f = result.fisher
    merged_iv = {n: {lev: list(v) for lev, v in f.intervals[n].items()} for n in f.names}
    for zz in points:
        try:
            with fp.bounded(budget):
                g = fisher_at(fp, zz, fp.loss(zz), syms)
        except TimeLimit:
            result.cut_short.append({"phase": "at bound check", "name": ", ".join(profiled), "sides": "",
                                     "effect": CUT_EFFECT["at bound"]})
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


def _profile_objective(fp: FitProblem, syms: Sequence[Any] = ()
                       ) -> Callable[[int, float, np.ndarray], tuple[float, np.ndarray]]:
    """Re-optimise all but one unknown. Symmetries moving the fixed one are broken by fixing it: the
    gauge keeps only the others (pinned at the start of each re-optimisation)."""
    def objective(index: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        keep = [k for k in range(len(fp.unknowns)) if k != index]
        base = np.asarray(start, dtype=float).copy()
        base[index] = value
        saved = (fp.gauge, fp.gauge_ref, fp.gauge_weight)
        if syms:
            fp.set_symmetry_gauge(syms, base, free=keep)
        try:
            return _profile_solve(fp, base, keep)
        finally:
            fp.gauge, fp.gauge_ref, fp.gauge_weight = saved

    return objective


def _profile_solve(fp: FitProblem, base: np.ndarray, keep: list[int]) -> tuple[float, np.ndarray]:
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

    # re-optimised at the rough tolerance of a local fit's first phase; the loss returned is at the problem's
    with fp.tolerance(max(fp.rtol, ROUGH_RTOL)):
        res = levenberg_marquardt(fun, jac, base[keep], fp.lb[keep], fp.ub[keep], max_iter=30, ftol=1e-2,
                                  stall_window=10, stall_tol=0.02, timings=fp.timings)
    if res.message == "time limit":    # an unfinished re-optimisation overstates the profile: abandon it
        raise TimeLimit("profile point abandoned at the time limit")
    zz = full(res.z)
    return fp.loss(zz, check=False), zz
