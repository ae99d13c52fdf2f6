"""Uncertainty at the optimum: the Fisher analysis, its robust variant for parameters at a bound, the
profile-likelihood check of borderline Wald intervals, and requested profiles.

Wald intervals (:func:`symode.identifiability.fisher_analysis`) rest on the quadratic approximation of
the loss. Where it is doubtful a short profile likelihood (:func:`symode.identifiability.profile_likelihood`,
the other unknowns re-optimised by Levenberg-Marquardt at every point) decides: the reported intervals
become the union of both, and an open profile side makes a parameter non-identifiable.

Every profile is one job of :func:`symode.parallel.run_tasks` (local processes or a Dask cluster): the
worker rebuilds the fit problem from the spec, the data and the options (:func:`profile_worker`), so a
profile gives the same result wherever it runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from symode.errors import SymodeError
from symode.fit.problem import FitProblem, find_symmetries, spec_fixed, x0_dicts
from symode.fit.result import REL_SE_MAX, FitResult, union_interval
from symode.identifiability import CHI2_1, FisherResult, Profile, fisher_analysis, profile_likelihood
from symode.optim.lm import levenberg_marquardt
from symode.parallel import TaskFailure, run_tasks
from symode.progress import progress_bar
from symode.solve.model import build_model

#: Identifiable parameters with a Wald relative SE above this are checked by a (short) profile likelihood.
PROFILE_CHECK_SE = 0.05


def fisher_at(fp: FitProblem, z: np.ndarray, loss: float, syms: Sequence[Any]) -> FisherResult:
    """The Fisher analysis at ``z`` (exact Jacobian without the gauge rows, the symmetries as exact null
    directions, the fit's identifiability limit :data:`~symode.fit.result.REL_SE_MAX`)."""
    _, J = fp.jacobian(z, gauge=False)
    return fisher_analysis(J, fp.names, fp.natural(z), scales=fp.scales, n_obs=fp.n_obs, loss=loss,
                           symmetries=syms, bounds=fp.bounds(), rel_se_max=REL_SE_MAX)


def robust_fisher(fp: FitProblem, z: np.ndarray, loss: float, syms: Sequence[Any], result: FitResult, *,
                   progress: bool, workers: int | None = None) -> None:
    """Parameters at a bound freeze their direction: the Fisher matrix there is conditional on them and
    understates the others' uncertainty. Profile each such parameter away from its bound (likelihood
    within the 99% threshold) and merge the Fisher analyses at those points: a parameter is identifiable
    only if it is at every point, and its intervals are the union."""
    f = result.fisher
    if f is None or not f.at_bound:
        return
    requests = []
    for name in f.at_bound:
        if name.startswith("x0."):
            continue
        idx = fp.names.index(name)
        requests.append(dict(index=idx, n_points=8, step=0.5 if fp.scales[idx] == "log" else None, max_evals=8))
    points: list[np.ndarray] = []
    for prof in run_profiles(fp, z, loss, syms, requests, workers=workers, progress=progress):
        if isinstance(prof, TaskFailure):   # the extra analysis must not lose the fit
            continue
        result.profiles.append(prof)
        for q, th in zip(prof.q, prof.thetas, strict=True):
            if 0 < q < CHI2_1["0.99"]:
                points.append(np.asarray(th, dtype=float))
    merged_iv = {n: {lev: list(v) for lev, v in f.intervals[n].items()} for n in f.names}
    for zz in points:
        try:
            g = fisher_at(fp, zz, fp.loss(zz), syms)
        except Exception:  # pragma: no cover
            continue
        for n in f.names:
            if not g.identifiable[n] and f.identifiable[n]:
                f.identifiable[n] = False
                f.reasons[n] = (f"relative SE {g.rel_se[f.names.index(n)]:.0%} at an equally good point away "
                                f"from the bound of {', '.join(f.at_bound)}")
            for lev in ("0.95", "0.99"):
                merged_iv[n][lev] = union_interval(merged_iv[n][lev], g.intervals[n][lev])
            i = f.names.index(n)
            if g.se_transformed[i] > f.se_transformed[i]:
                f.se_transformed[i] = g.se_transformed[i]
                f.rel_se[i] = g.rel_se[i]
    f.intervals = merged_iv


def check_borderline(fp: FitProblem, z: np.ndarray, loss: float, syms: Sequence[Any], result: FitResult, *,
                      progress: bool, skip: bool | Sequence[str], workers: int | None = None) -> None:
    """Wald intervals are only as good as the quadratic approximation: every parameter with a finite
    relative SE above PROFILE_CHECK_SE gets a short profile likelihood; its intervals
    become the union of both, and an open profile side makes it non-identifiable."""
    f = result.fisher
    if f is None:
        return
    done = {p.name for p in result.profiles}
    requests = []
    for i, name in enumerate(f.names):
        if name.startswith("x0.") or name in done or name in f.at_bound:
            continue
        if not (PROFILE_CHECK_SE < f.rel_se[i] < np.inf):
            continue
        step = float(min(max(f.se_transformed[i], 1e-3), 1.0)) if np.isfinite(f.se_transformed[i]) else None
        requests.append(dict(index=fp.names.index(name), n_points=8, step=step, max_evals=8))
    for prof in run_profiles(fp, z, loss, syms, requests, workers=workers, progress=progress):
        if isinstance(prof, TaskFailure):   # the check must not lose the fit
            continue
        result.profiles.append(prof)
        name, i = prof.name, f.names.index(prof.name)
        if not prof.identifiable and f.identifiable[name]:
            f.identifiable[name] = False
            f.reasons[name] = "profile likelihood open at the 95% level (Wald SE " \
                              f"{f.rel_se[i]:.0%} understates the uncertainty)"


def profiles(fp: FitProblem, z: np.ndarray, loss: float, result: FitResult, which: bool | Sequence[str], *,
             progress: bool, workers: int | None = None) -> list[Profile]:
    """Profile likelihoods of ``which`` (True: every estimated parameter), except those an exact symmetry
    moves (exactly flat)."""
    names = [n for n in fp.names if not n.startswith("x0.")] if which is True else list(which)  # type: ignore[arg-type]
    unknown = [n for n in names if n not in fp.names]
    if unknown:
        raise SymodeError(f"cannot profile {', '.join(unknown)}: not estimated")
    moved = {n for s in result.symmetries for n in fp.names if s.moves(n)}
    # exactly flat along a symmetry: the profile adds nothing (reported as an exact symmetry)
    requests = [dict(index=fp.names.index(n), n_points=12) for n in names if n not in moved]
    out = run_profiles(fp, z, loss, result.symmetries, requests, workers=workers, progress=progress)
    for req, prof in zip(requests, out, strict=True):
        if isinstance(prof, TaskFailure):
            raise SymodeError(f"profile likelihood of {fp.names[req['index']]} failed: {prof}")
    return out


def run_profiles(fp: FitProblem, z: np.ndarray, loss: float, syms: Sequence[Any], requests: Sequence[dict[str, Any]],
                 *, workers: int | None, progress: bool) -> list[Profile | TaskFailure]:
    """The profiles of ``requests`` (``index`` of the unknown, and keyword arguments of
    :func:`~symode.identifiability.profile_likelihood`) as jobs on the parallel executor, in request
    order; a profile that raised is a :class:`~symode.parallel.TaskFailure`."""
    if not requests:
        return []
    base = dict(spec=fp.model.spec, datasets=fp.datasets, fixed=spec_fixed(fp), x0=x0_dicts(fp), rtol=fp.rtol,
                atol=fp.atol, symmetries=bool(syms), z=np.asarray(z, dtype=float), loss=float(loss))
    jobs = [dict(base, request=dict(r)) for r in requests]
    bar = progress_bar(total=len(jobs), desc="profiles", unit="profile", enabled=progress)
    try:
        return run_tasks(profile_worker, jobs, workers=1 if len(jobs) == 1 else workers,
                         on_result=lambda _k, _r: bar.update(1))
    finally:
        bar.close()


def profile_worker(job: dict[str, Any]) -> Profile:
    """One profile likelihood (in a worker: the fit problem rebuilt from the spec, the compiled model from
    the cache), the other unknowns re-optimised at every point."""
    model = build_model(job["spec"])
    fp = FitProblem(model, job["datasets"], fixed=job["fixed"], x0=job["x0"], rtol=job["rtol"], atol=job["atol"])
    syms = find_symmetries(model) if job["symmetries"] else []
    fp.set_symmetry_gauge(syms, fp.z_from_values())     # as the fit itself did
    req = dict(job["request"])
    z = np.asarray(job["z"], dtype=float)
    return profile_likelihood(_profile_objective(fp, syms), fp.natural(z), req.pop("index"), names=fp.names,
                              scales=fp.scales, bounds=fp.bounds(), loss_hat=job["loss"], progress=False, **req)


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

    res = levenberg_marquardt(fun, jac, base[keep], fp.lb[keep], fp.ub[keep], max_iter=30, ftol=1e-2,
                              stall_window=10, stall_tol=0.02)
    zz = full(res.z)
    return fp.loss(zz), zz
