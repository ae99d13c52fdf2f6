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

Starts are a Latin hypercube in the box of the estimated parameters on their scales (lin, log, log10),
run in parallel (:mod:`symode.parallel`). At the best optimum the Fisher information (expected, for the
noise model: (g'(y) dy/dz / sigma)^2 + 2 (dsigma/dz / sigma)^2 for normal noise) gives Wald intervals
and identifiability flags (:func:`symode.identifiability.fisher_analysis`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from symode.errors import SolverError, SymodeError
from symode.identifiability import FisherResult, fisher_analysis
from symode.optim.lm import levenberg_marquardt
from symode.optim.sampling import latin_hypercube
from symode.parallel import TaskFailure, get_executor, run_tasks
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


@dataclass
class StartResult:
    """One local optimisation."""

    start: list[float]          # z at the start (scaled)
    z: list[float]              # z at the end
    llh: float
    converged: bool
    iterations: int
    message: str
    time_s: float
    error: str | None = None
    cpu_s: float = 0.0          # CPU time of the start's process (wall time on a loaded machine is larger)


@dataclass
class PetabFitResult:
    """The best optimum of a multistart fit and every start's outcome."""

    problem: str
    parameter_ids: list[str]                 # estimated, in parameter-table order
    scales: list[str]
    z: np.ndarray                            # best point on the parameter scales
    parameters: dict[str, float]             # best point, linear scale
    llh: float
    chi2: float
    starts: list[StartResult]
    method: str
    wall_time_s: float
    fisher: FisherResult | None = None
    n_measurements: int = 0
    warnings: list[str] = field(default_factory=list)

    def n_reaching(self, llh: float, tol: float = 0.0) -> int:
        """How many starts ended with llh >= ``llh - tol``."""
        return sum(1 for s in self.starts if s.error is None and s.llh >= llh - tol)

    def to_json(self) -> dict[str, Any]:
        def num(v: float) -> float | None:
            return float(v) if math.isfinite(v) else None

        doc: dict[str, Any] = {
            "problem": self.problem, "method": self.method, "llh": num(self.llh), "chi2": num(self.chi2),
            "n_measurements": self.n_measurements, "wall_time_s": self.wall_time_s,
            "parameters": {k: {"value": v, "scale": s, "scaled": float(z)}
                           for (k, v), s, z in zip(self.parameters.items(), self.scales, self.z, strict=True)},
            "starts": [{"llh": num(s.llh), "converged": s.converged, "iterations": s.iterations,
                        "message": s.message, "time_s": s.time_s, "cpu_s": s.cpu_s, "start": s.start, "end": s.z,
                        **({"error": s.error} if s.error else {})} for s in self.starts],
            "n_starts": len(self.starts),
            "n_within_0.1_of_best": self.n_reaching(self.llh, 0.1),
        }
        if self.fisher is not None:
            doc["identifiability"] = self.fisher.to_dict()
        if self.warnings:
            doc["warnings"] = list(self.warnings)
        return doc


# ----------------------------------------------------------------------------------------------------
# one start (module level, so that worker processes can run it)
# ----------------------------------------------------------------------------------------------------

_OBJECTIVES: dict[tuple[str, tuple[float, float, str]], PetabObjective] = {}


def _objective(path: str, options: SolverOptions) -> PetabObjective:
    key = (str(Path(path).resolve()), (options.rtol, options.atol, options.method))
    if key not in _OBJECTIVES:
        _OBJECTIVES[key] = PetabObjective.from_yaml(path, validate=False, options=options)
    return _OBJECTIVES[key]


def _fit_start(job: dict[str, Any]) -> StartResult:
    obj = _objective(job["path"], job["options"])
    pr = obj.problem
    lb, ub = pr.scaled_bounds()
    z0 = np.clip(np.asarray(job["z0"], dtype=float), lb, ub)
    t0, c0 = time.perf_counter(), time.process_time()
    method = job["method"]
    groups = analytic_noise(pr) if job.get("hierarchical") else None

    def local(z_start: np.ndarray) -> tuple[np.ndarray, bool, int, str, float]:
        if method == "scoring":
            z, converged, iterations, message = _scoring(obj, z_start, lb, ub, job["max_iter"], job["max_time"],
                                                         groups)
        elif method == "lbfgs":
            z, converged, iterations, message = _lbfgs(obj, z_start, lb, ub, job["max_iter"], groups)
        else:
            ls = LeastSquares(obj, z_start)
            if method == "lm":
                res = levenberg_marquardt(ls.residuals, ls.jacobian, z_start, lb, ub, max_iter=job["max_iter"],
                                          max_time=job["max_time"], ftol=1e-6)
                z, converged, iterations, message = res.z, res.converged, res.iterations, res.message
            else:
                z, converged, iterations, message = _trf(ls, z_start, lb, ub, job["max_iter"])
        return z, converged, iterations, message, obj.evaluate(pr.from_scaled(z)).llh

    try:
        z, converged, iterations, message, llh = local(z0)
    except SymodeError as exc:
        return StartResult(list(map(float, z0)), list(map(float, z0)), -math.inf, False, 0, "failed",
                           time.perf_counter() - t0, error=str(exc))
    budget = int(job.get("escape_bounds", 0))
    if budget > 0 and math.isfinite(llh):
        est = np.nonzero(pr.estimated)[0]
        fixed = {int(np.nonzero(est == g.theta_index)[0][0]) for g in groups or []}
        z, llh, refits = _escape_bounds(local, np.asarray(z, dtype=float), float(llh), lb, ub, fixed, budget)
        if refits:
            message = f"{message}; {refits} bound-flip refits"
    return StartResult(list(map(float, z0)), list(map(float, z)), float(llh), bool(converged), int(iterations),
                       message, time.perf_counter() - t0, cpu_s=time.process_time() - c0)


def _escape_bounds(local: Any, z: np.ndarray, llh: float, lb: np.ndarray, ub: np.ndarray, fixed: set[int],
                   budget: int) -> tuple[np.ndarray, float, int]:
    """Leave local optima that sit on bounds: refit from the point with one parameter on a bound (within 1%
    of the box width) moved to the opposite side of its box (10% of the width inside the other bound), best
    first, at most ``budget`` refits; returns the best point, its llh and the number of refits.

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
           groups: list[NoiseGroup] | None = None) -> tuple[np.ndarray, bool, int, str]:
    """L-BFGS-B on -llh; with ``groups`` on the reduced objective (those noise parameters analytic)."""
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
        if not math.isfinite(ev.llh) or ev.gradient is None or not np.all(np.isfinite(ev.gradient[free])):
            return 1e300, np.zeros(len(zr))
        return -ev.llh, -ev.gradient[free]

    res = minimize(fg, z0[free], jac=True, method="L-BFGS-B", bounds=list(zip(lb[free], ub[free], strict=True)),
                   options={"maxiter": max_iter, "ftol": 1e-12, "gtol": 1e-8})
    return full(res.x), bool(res.success), int(res.nit), str(res.message)


def _scoring(obj: PetabObjective, z0: np.ndarray, lb: np.ndarray, ub: np.ndarray, max_iter: int,
             max_time: float, groups: list[NoiseGroup] | None = None, ftol: float = 1e-6
             ) -> tuple[np.ndarray, bool, int, str]:
    """Fisher scoring with Levenberg-Marquardt damping on -llh: steps (F + lam D) d = -grad with the
    expected Fisher information F (normal noise: sum (g' dy/dz / sigma)^2 + 2 (dsigma/dz / sigma)^2) and
    the exact gradient, kept in the box (active set, clipping); a step is taken if -llh decreases. With
    ``groups`` those noise parameters are set to their analytic optimum after every simulation and the
    others are optimised on the reduced objective."""
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
        if not groups:
            return z, -ev.llh if math.isfinite(ev.llh) else math.inf
        a = ev.residuals * ev.sigma
        z = z.copy()
        nllh = -ev.llh
        for k, g, v in zip(analytic, groups, optimal_noise(pr, groups, a), strict=True):
            z[k] = pr.to_scaled_value(g.theta_index, v)
            rows, old = g.rows, ev.sigma[g.rows]
            if g.laplace:
                nllh += float(np.sum(np.log(v / old) + np.abs(a[rows]) * (1 / v - 1 / old)))
            else:
                nllh += float(np.sum(np.log(v / old) + 0.5 * a[rows] ** 2 * (1 / v**2 - 1 / old**2)))
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
        return g, J.T @ J

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
              hierarchical: bool = True, escape_bounds: int = 8, progress: bool = True) -> PetabFitResult:
    """Multistart fit of a PEtab problem (a YAML path or a built :class:`PetabObjective`).

    ``n_starts`` Latin-hypercube starts in the scaled box (or the rows of ``starts``), each a local fit
    by ``method`` ("scoring", "lm", "trf", "lbfgs"; default "scoring", "lbfgs" with Laplace noise), on
    ``workers`` processes (default: all CPUs). A start whose local optimum has parameters on bounds gets up
    to ``escape_bounds`` further local fits from those parameters flipped to the other side of their box
    (:func:`_escape_bounds`; 0 turns this off). The best optimum gets a Fisher-information analysis."""
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
    if not pr.estimated.any():
        raise SymodeError("no parameter is estimated (estimate = 1 in the parameter table)", file=path)
    lb, ub = pr.scaled_bounds()
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
             "max_time": max_time, "hierarchical": hierarchical, "escape_bounds": escape_bounds} for z in starts]
    bar = progress_bar(total=len(jobs), desc="multistart", unit="start", enabled=progress)
    best = [-math.inf]

    def on_result(_k: int, res: Any) -> None:
        if isinstance(res, StartResult) and res.llh > best[0]:
            best[0] = res.llh
            bar.set_postfix_str(f"best llh {best[0]:.6g}")
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
    ok = [s for s in out if s.error is None and math.isfinite(s.llh)]
    if not ok:
        raise SolverError(f"every start failed (first: {out[0].error})")
    top = max(ok, key=lambda s: s.llh)
    z = np.array(top.z)
    theta = pr.from_scaled(z)
    ev = obj.evaluate(theta, jacobian=True)
    ids = pr.estimated_ids
    result = PetabFitResult(
        problem=path, parameter_ids=ids, scales=[pr.scales[pr.parameter_ids.index(i)] for i in ids], z=z,
        parameters={i: float(theta[pr.parameter_ids.index(i)]) for i in ids}, llh=ev.llh, chi2=ev.chi2,
        starts=out, method=method, wall_time_s=time.perf_counter() - t0, n_measurements=ev.n_measurements,
        warnings=list(pr.warnings))
    result.fisher = _fisher(obj, ev, z, lb, ub)
    return result


def _fisher(obj: PetabObjective, ev: Any, z: np.ndarray, lb: np.ndarray, ub: np.ndarray) -> FisherResult | None:
    """Fisher information at the optimum, in the coordinates fisher_analysis expects (natural log for
    log and log10 parameters)."""
    pr = obj.problem
    if ev.residual_jacobian is None or ev.sigma_jacobian is None:
        return None
    laplace = obj.laplace
    with np.errstate(invalid="ignore", divide="ignore"):
        Jr = ev.residual_jacobian + (ev.residuals / ev.sigma)[:, None] * ev.sigma_jacobian   # -g'(y) dy/dz / sigma
        Js = ev.sigma_jacobian / ev.sigma[:, None] * np.where(laplace, 1.0, math.sqrt(2.0))[:, None]
    J = np.vstack([Jr, Js[np.any(ev.sigma_jacobian != 0, axis=1)]])
    ids = pr.estimated_ids
    scales = [pr.scales[pr.parameter_ids.index(i)] for i in ids]
    J = J / np.array([LN10 if s == "log10" else 1.0 for s in scales])[None, :]
    theta = pr.from_scaled(z)[pr.estimated]
    bounds = [(pr.lower[pr.parameter_ids.index(i)], pr.upper[pr.parameter_ids.index(i)]) for i in ids]
    if not np.all(np.isfinite(J)):
        return None
    return fisher_analysis(J, ids, theta, scales=["lin" if s == "lin" else "log" for s in scales],
                           n_obs=ev.n_measurements, loss=0.5 * ev.chi2, bounds=bounds)


def render_report(res: PetabFitResult) -> str:
    """A short Markdown report: the best optimum, the starts (waterfall) and the Fisher analysis."""
    lines = [f"# Fit of {Path(res.problem).name}", "",
             f"- best llh: **{res.llh:.6f}** (chi2 {res.chi2:.6g}, {res.n_measurements} measurements)",
             f"- starts: {len(res.starts)} ({res.method}); within 0.1 of the best: {res.n_reaching(res.llh, 0.1)}; "
             f"failed: {sum(s.error is not None for s in res.starts)}",
             f"- wall time: {res.wall_time_s:.1f} s", "", "## Parameters", "",
             "| parameter | value | scale | 95% interval | identifiable |", "|---|---|---|---|---|"]
    fisher = res.fisher
    for pid, scale in zip(res.parameter_ids, res.scales, strict=True):
        iv = fisher.intervals[pid]["0.95"] if fisher is not None else [None, None]
        ident = ("yes" if fisher.identifiable[pid] else f"no ({fisher.reasons.get(pid, '')})") if fisher else "?"
        lo, hi = (f"{v:.4g}" if v is not None else "open" for v in iv)
        lines.append(f"| {pid} | {res.parameters[pid]:.6g} | {scale} | [{lo}, {hi}] | {ident} |")
    lines += ["", "## Starts (sorted by llh)", "", "| llh | converged | iterations | time (s) | message |",
              "|---|---|---|---|---|"]
    for s in sorted(res.starts, key=lambda s: -s.llh if math.isfinite(s.llh) else math.inf):
        lines.append(f"| {s.llh:.6f} | {s.converged} | {s.iterations} | {s.time_s:.1f} | {s.error or s.message} |")
    return "\n".join(lines) + "\n"
