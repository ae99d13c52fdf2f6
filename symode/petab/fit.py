"""Fitting a PEtab problem: multistart local optimisation of the llh within the parameter table's bounds.

Least squares (default, normal noise): -llh = 1/2 ||res(z)||^2 + const with

    res = [ r_i = (g(m_i) - g(y_i)) / sigma_i                        every measurement
            e_i = sqrt(2 log sigma_i + C)                             rows whose sigma depends on z ]

(the log sigma_i term of the normal density written as a residual, as Data2Dynamics does; C keeps the
root real: C = 50 unless the starting sigmas need more). So estimated noise parameters are fitted with
the same Gauss-Newton machinery as the others: symode's bounded Levenberg-Marquardt (``method="lm"``,
:func:`symode.optim.lm.levenberg_marquardt`) or scipy's trust-region reflective (``"trf"``), with the
exact residual Jacobian from forward sensitivities. Laplace noise (|r| is not a sum of squares) uses
L-BFGS-B on -llh with the adjoint gradient (``"lbfgs"``, also available for any problem).

With prior distributions (PEtab v2 parameter tables, v1 objective priors) the fit maximises the
unnormalised log-posterior llh + sum log pi_k (MAP; ``priors=False``: the likelihood alone): the
log-prior's gradient and its curvature information on the parameter scales
(:meth:`symode.petab.priors.Priors.on_scale`) join the gradient and the Fisher information of scoring and
L-BFGS-B; least squares ("lm", "trf") refuse informative priors, and a noise parameter with an informative
prior is not set analytically. Starts are ranked by the objective.

Starts are a Latin hypercube in the box of the estimated parameters on their scales (lin, log, log10),
run in parallel (:mod:`symode.parallel`). At the best optimum the Fisher information (expected, for the
noise model: (g'(y) dy/dz / sigma)^2 + 2 (dsigma/dz / sigma)^2 for normal noise) gives Wald intervals
and identifiability flags (:func:`symode.identifiability.fisher_analysis`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from symode.errors import SolverError, SymodeError
from symode.identifiability import FisherResult, fisher_analysis
from symode.optim.lm import levenberg_marquardt
from symode.optim.sampling import latin_hypercube
from symode.parallel import TaskFailure, get_executor, run_tasks
from symode.petab.fit_result import PetabFitResult, StartResult
from symode.petab.hierarchical import NoiseGroup, analytic_noise, optimal_noise
from symode.petab.objective import PetabObjective
from symode.petab.simulate import SolverOptions
from symode.progress import progress_bar

METHODS = ("scoring", "lm", "trf", "lbfgs")
LN10 = math.log(10.0)


class LeastSquares:
    """-llh of a problem with normal noise as 1/2 ||res(z)||^2 + const (see the module docstring)."""

    def __init__(self, obj: PetabObjective, z0: np.ndarray) -> None:
        self.obj = obj
        pr = obj.problem
        ev = obj.evaluate(pr.from_scaled(z0), jacobian=True)
        assert ev.sigma_jacobian is not None
        self.sigma_rows = np.nonzero(np.any(ev.sigma_jacobian != 0, axis=1))[0]
        min_log = float(np.min(np.log(ev.sigma[self.sigma_rows]))) if len(self.sigma_rows) else 0.0
        self.C = max(50.0, 2.0 - 2.0 * min_log)
        self.n = len(ev.residuals) + len(self.sigma_rows)

    def _stack(self, ev: Any) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            arg = 2.0 * np.log(ev.sigma[self.sigma_rows]) + self.C
            e = np.where(arg > 0, np.sqrt(np.maximum(arg, 0.0)), np.inf)
        return np.concatenate([ev.residuals, e])

    def residuals(self, z: np.ndarray) -> np.ndarray:
        try:
            ev = self.obj.evaluate(self.obj.problem.from_scaled(z))
        except SolverError:
            return np.full(self.n, np.inf)
        return self._stack(ev)

    def jacobian(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ev = self.obj.evaluate(self.obj.problem.from_scaled(z), jacobian=True)
        assert ev.residual_jacobian is not None and ev.sigma_jacobian is not None
        res = self._stack(ev)
        s = ev.sigma[self.sigma_rows]
        e = res[len(ev.residuals):]
        with np.errstate(invalid="ignore", divide="ignore"):
            De = ev.sigma_jacobian[self.sigma_rows] / (s * e)[:, None]
        return res, np.vstack([ev.residual_jacobian, De])


# ----------------------------------------------------------------------------------------------------
# one start (module level, so that worker processes can run it)
# ----------------------------------------------------------------------------------------------------

_OBJECTIVES: dict[tuple[str, tuple[float, float, str]], PetabObjective] = {}


def prior_term(pr: Any) -> Any:
    """z -> (log-prior, its gradient on the estimated parameters' scales, its curvature information)
    (:meth:`symode.petab.priors.Priors.on_scale`)."""
    return lambda z: pr.priors.on_scale(pr.from_scaled(z), pr.estimated, pr.scales)


def fit_bounds(pr: Any, priors: bool) -> tuple[np.ndarray, np.ndarray]:
    """The box of the estimated parameters on their scales; with ``priors`` narrowed to the support of their
    uniform and log-uniform priors (outside it the posterior is 0)."""
    lb, ub = pr.scaled_bounds()
    if priors:
        est = list(np.nonzero(pr.estimated)[0])
        for p in pr.priors.priors:
            if p.kind in ("uniform", "log-uniform"):
                i = est.index(p.index)
                lb[i] = max(lb[i], pr.to_scaled_value(p.index, p.a))
                ub[i] = min(ub[i], pr.to_scaled_value(p.index, p.b))
    return lb, ub


def _objective(path: str, options: SolverOptions) -> PetabObjective:
    key = (str(Path(path).resolve()), (options.rtol, options.atol, options.method))
    if key not in _OBJECTIVES:
        _OBJECTIVES[key] = PetabObjective.from_yaml(path, validate=False, options=options)
    return _OBJECTIVES[key]


def _fit_start(job: dict[str, Any]) -> StartResult:
    obj = _objective(job["path"], job["options"])
    pr = obj.problem
    lb, ub = fit_bounds(pr, bool(job.get("priors")))
    z0 = np.clip(np.asarray(job["z0"], dtype=float), lb, ub)
    t0, c0 = time.perf_counter(), time.process_time()
    method = job["method"]
    prior = prior_term(pr) if job.get("priors") else None
    groups = analytic_noise(pr) if job.get("hierarchical") else None
    if groups and prior is not None:   # a noise parameter with an informative prior is fitted, not set
        informative = pr.priors.informative_indices
        groups = [g for g in groups if g.theta_index not in informative]

    def local(z_start: np.ndarray) -> tuple[np.ndarray, bool, int, str, float]:
        """A local fit from z_start: (z, converged, iterations, message, objective at z)."""
        if method == "scoring":
            z, converged, iterations, message = _scoring(obj, z_start, lb, ub, job["max_iter"], job["max_time"],
                                                         groups, prior=prior)
        elif method == "lbfgs":
            z, converged, iterations, message = _lbfgs(obj, z_start, lb, ub, job["max_iter"], groups, prior=prior)
        else:
            ls = LeastSquares(obj, z_start)
            if method == "lm":
                res = levenberg_marquardt(ls.residuals, ls.jacobian, z_start, lb, ub, max_iter=job["max_iter"],
                                          max_time=job["max_time"], ftol=1e-6)
                z, converged, iterations, message = res.z, res.converged, res.iterations, res.message
            else:
                z, converged, iterations, message = _trf(ls, z_start, lb, ub, job["max_iter"])
        value = obj.evaluate(pr.from_scaled(z)).llh
        return z, converged, iterations, message, value + (prior(z)[0] if prior is not None else 0.0)

    try:
        z, converged, iterations, message, value = local(z0)
    except SymodeError as exc:
        return StartResult(list(map(float, z0)), list(map(float, z0)), -math.inf, False, 0, "failed",
                           time.perf_counter() - t0, error=str(exc))
    budget = int(job.get("escape_bounds", 0))
    if budget > 0 and math.isfinite(value):
        est = np.nonzero(pr.estimated)[0]
        fixed = {int(np.nonzero(est == g.theta_index)[0][0]) for g in groups or []}
        z, value, refits = _escape_bounds(local, np.asarray(z, dtype=float), float(value), lb, ub, fixed, budget)
        if refits:
            message = f"{message}; {refits} bound-flip refits"
    log_prior = prior(np.asarray(z, dtype=float))[0] if prior is not None else 0.0
    return StartResult(list(map(float, z0)), list(map(float, z)), float(value - log_prior), bool(converged),
                       int(iterations), message, time.perf_counter() - t0, cpu_s=time.process_time() - c0,
                       log_prior=float(log_prior))


def _escape_bounds(local: Any, z: np.ndarray, llh: float, lb: np.ndarray, ub: np.ndarray, fixed: set[int],
                   budget: int) -> tuple[np.ndarray, float, int]:
    """Leave local optima that sit on bounds: refit from the point with one parameter on a bound (within 1%
    of the box width) moved to the opposite side of its box (10% of the width inside the other bound), best
    first, at most ``budget`` refits; returns the best point, its objective (``local``'s last value: the llh,
    or the log-posterior) and the number of refits.

    A rate constant at a bound of a wide log-scale box is a regime (the reaction negligible, or
    instantaneous) that a local method cannot leave when the llh is flat beyond the bound and worse in
    between. Every new local optimum found (told apart by its llh) is explored the same way, also when it
    is worse than the best so far, since the way to the best optimum may pass through it."""
    best_z, best_llh = z, llh
    seen = {round(llh, 4)}
    queue = [(llh, z)]
    refits = 0
    while queue and refits < budget:
        queue.sort(key=lambda item: item[0])
        _, zc = queue.pop()
        span = 1e-2 * (ub - lb)   # on a flat plateau a local method stops just short of the bound
        on_bound = [i for i in range(len(zc)) if i not in fixed and np.isfinite(span[i])
                    and (zc[i] <= lb[i] + span[i] or zc[i] >= ub[i] - span[i])]
        for i in on_bound:
            if refits >= budget:
                break
            trial = zc.copy()
            trial[i] = lb[i] + 0.1 * (ub[i] - lb[i]) if zc[i] >= ub[i] - span[i] else ub[i] - 0.1 * (ub[i] - lb[i])
            refits += 1
            try:
                zn, _, _, _, ln = local(trial)
            except SymodeError:
                continue
            if not math.isfinite(ln) or round(ln, 4) in seen:
                continue
            seen.add(round(ln, 4))
            zn = np.asarray(zn, dtype=float)
            queue.append((ln, zn))
            if ln > best_llh:
                best_z, best_llh = zn, ln
    return best_z, best_llh, refits


def _trf(ls: LeastSquares, z0: np.ndarray, lb: np.ndarray, ub: np.ndarray, max_iter: int
         ) -> tuple[np.ndarray, bool, int, str]:
    from scipy.optimize import least_squares

    cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    def both(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        key = z.tobytes()
        if key not in cache:
            cache.clear()
            cache[key] = ls.jacobian(z)
        return cache[key]

    def fun(z: np.ndarray) -> np.ndarray:
        r = ls.residuals(z)
        return np.where(np.isfinite(r), r, 1e150)

    res = least_squares(fun, z0, jac=lambda z: both(z)[1], bounds=(lb, ub), method="trf", x_scale="jac",
                        max_nfev=max_iter, ftol=1e-10, xtol=1e-10, gtol=1e-8)
    return res.x, bool(res.success), int(res.nfev), str(res.message)


def _lbfgs(obj: PetabObjective, z0: np.ndarray, lb: np.ndarray, ub: np.ndarray, max_iter: int,
           groups: list[NoiseGroup] | None = None, prior: Any = None) -> tuple[np.ndarray, bool, int, str]:
    """L-BFGS-B on -llh (minus the log-prior with ``prior``, :func:`prior_term`); with ``groups`` on the
    reduced objective (those noise parameters analytic)."""
    from scipy.optimize import minimize

    pr = obj.problem
    est = np.nonzero(pr.estimated)[0]
    analytic = [int(np.nonzero(est == g.theta_index)[0][0]) for g in groups or []]
    free = np.array([k for k in range(len(z0)) if k not in analytic], dtype=int)
    z_full = z0.copy()

    def full(zr: np.ndarray) -> np.ndarray:
        z = z_full.copy()
        z[free] = zr
        if groups:
            ev = obj.evaluate(pr.from_scaled(z))
            values = optimal_noise(pr, groups, ev.residuals * ev.sigma)
            for k, v in zip(analytic, values, strict=True):
                z[k] = pr.to_scaled_value(groups[analytic.index(k)].theta_index, v)
        return z

    def fg(zr: np.ndarray) -> tuple[float, np.ndarray]:
        try:
            z = full(zr)
            z_full[:] = z
            ev = obj.evaluate(pr.from_scaled(z), gradient=True)
        except SolverError:
            return 1e300, np.zeros(len(zr))
        value, grad = ev.llh, ev.gradient
        if prior is not None and grad is not None:
            lp, g_prior, _ = prior(z)
            value, grad = value + lp, grad + g_prior
        if not math.isfinite(value) or grad is None or not np.all(np.isfinite(grad[free])):
            return 1e300, np.zeros(len(zr))
        return -value, -grad[free]

    res = minimize(fg, z0[free], jac=True, method="L-BFGS-B", bounds=list(zip(lb[free], ub[free], strict=True)),
                   options={"maxiter": max_iter, "ftol": 1e-12, "gtol": 1e-8})
    return full(res.x), bool(res.success), int(res.nit), str(res.message)


def _scoring(obj: PetabObjective, z0: np.ndarray, lb: np.ndarray, ub: np.ndarray, max_iter: int,
             max_time: float, groups: list[NoiseGroup] | None = None, ftol: float = 1e-6, prior: Any = None
             ) -> tuple[np.ndarray, bool, int, str]:
    """Fisher scoring with Levenberg-Marquardt damping on -llh: steps (F + lam D) d = -grad with the
    expected Fisher information F (normal noise: sum (g' dy/dz / sigma)^2 + 2 (dsigma/dz / sigma)^2) and
    the exact gradient, kept in the box (active set, clipping); a step is taken if -llh decreases. With
    ``groups`` those noise parameters are set to their analytic optimum after every simulation and the
    others are optimised on the reduced objective. With ``prior`` (:func:`prior_term`) on -llh - log-prior:
    its gradient joins g and its curvature information the diagonal of F."""
    t_start = time.perf_counter()
    pr = obj.problem
    est = np.nonzero(pr.estimated)[0]
    analytic = [int(np.nonzero(est == g.theta_index)[0][0]) for g in groups or []]
    free = np.array([k for k in range(len(z0)) if k not in analytic], dtype=int)

    def complete(z: np.ndarray) -> tuple[np.ndarray, float]:
        """z with the analytic noise parameters at their optimum, and -llh there (inf on failure)."""
        try:
            ev = obj.evaluate(pr.from_scaled(z))
        except SolverError:
            return z, math.inf
        nllh = -ev.llh
        if not groups:
            if prior is not None:
                nllh -= prior(z)[0]
            return z, nllh if math.isfinite(nllh) else math.inf
        a = ev.residuals * ev.sigma
        z = z.copy()
        for k, g, v in zip(analytic, groups, optimal_noise(pr, groups, a), strict=True):
            z[k] = pr.to_scaled_value(g.theta_index, v)
            rows, old = g.rows, ev.sigma[g.rows]
            if g.laplace:
                nllh += float(np.sum(np.log(v / old) + np.abs(a[rows]) * (1 / v - 1 / old)))
            else:
                nllh += float(np.sum(np.log(v / old) + 0.5 * a[rows] ** 2 * (1 / v**2 - 1 / old**2)))
        if prior is not None:
            nllh -= prior(z)[0]
        return z, nllh if math.isfinite(nllh) else math.inf

    def derivatives(z: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            ev = obj.evaluate(pr.from_scaled(z), gradient=True, jacobian=True)
        except SolverError:
            return None
        assert ev.gradient is not None and ev.residual_jacobian is not None and ev.sigma_jacobian is not None
        with np.errstate(invalid="ignore", divide="ignore"):
            Jy = ev.residual_jacobian + (ev.residuals / ev.sigma)[:, None] * ev.sigma_jacobian
            Js = ev.sigma_jacobian / ev.sigma[:, None] * np.where(obj.laplace, 1.0, math.sqrt(2.0))[:, None]
        J = np.vstack([Jy, Js])[:, free]
        g = -ev.gradient[free]
        if not (np.all(np.isfinite(J)) and np.all(np.isfinite(g))):
            return None
        F = J.T @ J
        if prior is not None:
            _, g_prior, info = prior(z)
            g = g - g_prior[free]
            F[np.diag_indices_from(F)] += info[free]
        return g, F

    z, f = complete(np.clip(z0, lb, ub))
    if not math.isfinite(f):
        raise SolverError("the objective is not finite at the starting point")
    d = derivatives(z)
    if d is None:
        raise SolverError("the gradient is not finite at the starting point")
    g, A = d
    lam, small, it = 1e-3, 0, 0
    dmax = np.zeros(len(free))
    lbf, ubf = lb[free], ub[free]
    msg, converged = "maximum number of iterations", False
    while it < max_iter:
        it += 1
        if time.perf_counter() - t_start > max_time:
            msg = "time limit"
            break
        zf = z[free]
        dmax = np.maximum(dmax, np.diag(A))
        D = np.maximum(dmax, 1e-12 * max(float(dmax.max()), 1e-300))
        span = 1e-9 * np.maximum(1.0, np.abs(zf))
        act = ((zf <= lbf + span) & (g > 0)) | ((zf >= ubf - span) & (g < 0))
        fr = ~act
        accepted = False
        for _ in range(40):
            M = (A + lam * np.diag(D))[np.ix_(fr, fr)]
            try:
                step = np.zeros(len(zf))
                step[fr] = -np.linalg.solve(M, g[fr])
            except np.linalg.LinAlgError:
                lam *= 4.0
                continue
            znew_f = np.clip(zf + step, lbf, ubf)
            step = znew_f - zf
            trial = z.copy()
            trial[free] = znew_f
            trial, fn = complete(trial)
            pred = -(g @ step) - 0.5 * float(step @ A @ step)
            if fn < f:
                dn = derivatives(trial)
                if dn is None:
                    lam *= 2.0
                    continue
                actual = f - fn
                z, f, (g, A) = trial, fn, dn
                lam = max(lam / 3.0, 1e-12)
                accepted = True
                small = small + 1 if (actual < ftol and pred < 10 * ftol) else 0
                if small >= 3:
                    msg, converged = "converged (objective change below ftol)", True
                elif float(np.max(np.abs(step))) < 1e-10:
                    msg, converged = "converged (step below 1e-10)", True
                break
            lam *= 2.0
            if lam > 1e16:
                break
        if converged:
            break
        if not accepted:
            gf = np.where(fr, g, 0.0)
            converged = float(np.max(np.abs(gf))) < 1e-4 or lam > 1e16
            msg = "converged (no decrease possible)" if converged else "stalled (no acceptable step)"
            break
    return z, converged, it, msg


# ----------------------------------------------------------------------------------------------------
# the multistart fit
# ----------------------------------------------------------------------------------------------------

def fit_petab(problem: str | Path | PetabObjective, *, n_starts: int = 20, seed: int = 0, method: str | None = None,
              workers: int | None = None, max_iter: int = 300, max_time: float = 600.0,
              starts: np.ndarray | None = None, options: SolverOptions | None = None,
              hierarchical: bool = True, escape_bounds: int = 8, progress: bool = True, priors: bool = True
              ) -> PetabFitResult:
    """Multistart fit of a PEtab problem (a YAML path or a built :class:`PetabObjective`).

    ``n_starts`` Latin-hypercube starts in the scaled box (or the rows of ``starts``), each a local fit
    by ``method`` ("scoring", "lm", "trf", "lbfgs"; default "scoring", "lbfgs" with Laplace noise), on
    ``workers`` processes (default: all CPUs). A start whose local optimum has parameters on bounds gets up
    to ``escape_bounds`` further local fits from those parameters flipped to the other side of their box
    (:func:`_escape_bounds`; 0 turns this off). With the problem's prior distributions (PEtab v2, v1
    objective priors) the fit maximises the unnormalised log-posterior (``priors=False``: the likelihood).
    The best optimum gets a Fisher-information analysis (with priors: plus their curvature, a Laplace
    approximation)."""
    t0 = time.perf_counter()
    options = options or SolverOptions()
    obj = problem if isinstance(problem, PetabObjective) else _objective(str(problem), options)
    pr = obj.problem
    path = str(pr.path)
    _OBJECTIVES.setdefault((str(Path(path).resolve()), (options.rtol, options.atol, options.method)), obj)
    laplace = any(o.distribution == "laplace" for o in pr.observables.values())
    method = method or ("lbfgs" if laplace else "scoring")
    if method not in METHODS:
        raise SymodeError(f"unknown fit method {method!r} (choose from {', '.join(METHODS)})", field="method")
    if laplace and method in ("lm", "trf"):
        raise SymodeError("Laplace noise is not a least-squares problem: use method 'scoring' or 'lbfgs'",
                          field="method")
    use_priors = bool(priors and pr.priors)
    if use_priors and method in ("lm", "trf") and pr.priors.informative:
        raise SymodeError("the prior distributions make this no least-squares problem: use method 'scoring' or "
                          "'lbfgs' (or fit the likelihood alone without priors)", field="method")
    if not pr.estimated.any():
        raise SymodeError("no parameter is estimated (estimate = 1 in the parameter table)", file=path)
    lb, ub = fit_bounds(pr, use_priors)
    unbounded = [pid for pid, lo, hi in zip(pr.estimated_ids, lb, ub, strict=True)
                 if not (np.isfinite(lo) and np.isfinite(hi))]
    if unbounded:
        raise SymodeError(f"parameter {unbounded[0]!r} has an infinite bound: fits need finite lowerBound and "
                          "upperBound for every estimated parameter", file=path, field="lowerBound")
    if starts is None:
        if n_starts < 1:
            raise SymodeError("need at least one start", field="n_starts")
        starts = latin_hypercube(lb, ub, n_starts, seed=seed)
    starts = np.atleast_2d(np.asarray(starts, dtype=float))
    jobs = [{"path": path, "options": options, "z0": z, "method": method, "max_iter": max_iter,
             "max_time": max_time, "hierarchical": hierarchical, "escape_bounds": escape_bounds,
             "priors": use_priors} for z in starts]
    bar = progress_bar(total=len(jobs), desc="multistart", unit="start", enabled=progress)
    best = [-math.inf]

    def on_result(_k: int, res: Any) -> None:
        if isinstance(res, StartResult) and res.objective > best[0]:
            best[0] = res.objective
            bar.set_postfix_str(f"best {'log-posterior' if use_priors else 'llh'} {best[0]:.6g}")
        bar.update(1)

    n_workers = 1 if len(jobs) == 1 else workers
    executor = get_executor(n_workers)
    try:
        results = run_tasks(_fit_start, jobs, executor=executor, on_result=on_result)
    finally:
        executor.close()
        bar.close()
    out: list[StartResult] = []
    for z0, res in zip(starts, results, strict=True):
        if isinstance(res, TaskFailure):
            res = StartResult(list(map(float, z0)), list(map(float, z0)), -math.inf, False, 0, "failed", 0.0,
                              error=str(res))
        out.append(res)
    ok = [s for s in out if s.error is None and math.isfinite(s.objective)]
    if not ok:
        raise SolverError(f"every start failed (first: {out[0].error})")
    top = max(ok, key=lambda s: s.objective)
    z = np.array(top.z)
    theta = pr.from_scaled(z)
    ev = obj.evaluate(theta, jacobian=True)
    ids = pr.estimated_ids
    result = PetabFitResult(
        problem=path, parameter_ids=ids, scales=[pr.scales[pr.parameter_ids.index(i)] for i in ids], z=z,
        parameters={i: float(theta[pr.parameter_ids.index(i)]) for i in ids}, llh=ev.llh, chi2=ev.chi2,
        starts=out, method=method, wall_time_s=time.perf_counter() - t0, n_measurements=ev.n_measurements,
        warnings=list(pr.warnings),
        log_prior=top.log_prior if use_priors else None)
    if pr.priors and not use_priors:
        result.warnings.append("the prior distributions were left out: the fit maximised the likelihood")
    result.fisher = _fisher(obj, ev, z, lb, ub, prior_term(pr) if use_priors else None)
    return result


def _fisher(obj: PetabObjective, ev: Any, z: np.ndarray, lb: np.ndarray, ub: np.ndarray, prior: Any = None
            ) -> FisherResult | None:
    """Fisher information at the optimum, in the coordinates fisher_analysis expects (natural log for
    log and log10 parameters); with ``prior`` (:func:`prior_term`) plus the priors' curvature information
    (as rows sqrt(info_k) e_k)."""
    pr = obj.problem
    if ev.residual_jacobian is None or ev.sigma_jacobian is None:
        return None
    laplace = obj.laplace
    with np.errstate(invalid="ignore", divide="ignore"):
        Jr = ev.residual_jacobian + (ev.residuals / ev.sigma)[:, None] * ev.sigma_jacobian   # -g'(y) dy/dz / sigma
        Js = ev.sigma_jacobian / ev.sigma[:, None] * np.where(laplace, 1.0, math.sqrt(2.0))[:, None]
    J = np.vstack([Jr, Js[np.any(ev.sigma_jacobian != 0, axis=1)]])
    if prior is not None:
        J = np.vstack([J, np.diag(np.sqrt(prior(z)[2]))])
    ids = pr.estimated_ids
    scales = [pr.scales[pr.parameter_ids.index(i)] for i in ids]
    J = J / np.array([LN10 if s == "log10" else 1.0 for s in scales])[None, :]
    theta = pr.from_scaled(z)[pr.estimated]
    bounds = [(pr.lower[pr.parameter_ids.index(i)], pr.upper[pr.parameter_ids.index(i)]) for i in ids]
    if not np.all(np.isfinite(J)):
        return None
    return fisher_analysis(J, ids, theta, scales=["lin" if s == "lin" else "log" for s in scales],
                           n_obs=ev.n_measurements, loss=0.5 * ev.chi2, bounds=bounds)
