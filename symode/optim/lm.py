"""Bounded Levenberg-Marquardt with geodesic acceleration (Transtrum & Sethna 2012)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from symode.errors import SolverError
from symode.timing import TimeLimit, Timings


@dataclass
class LMResult:
    z: np.ndarray
    loss: float
    iterations: int
    converged: bool
    message: str
    history: list[float] = field(default_factory=list)


def levenberg_marquardt(fun: Callable[[np.ndarray], np.ndarray],
                        jac: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], z0: np.ndarray,
                        lb: np.ndarray, ub: np.ndarray, *, max_iter: int = 500, max_time: float = math.inf,
                        ftol: float = 1e-4, xtol: float = 1e-9, geodesic: bool = True,
                        stall_window: int = 30, stall_tol: float = 0.05,
                        callback: Callable[[int, np.ndarray, float], None] | None = None,
                        timings: Timings | None = None) -> LMResult:
    """Bounded Levenberg-Marquardt with Marquardt scaling, delayed gratification and geodesic
    acceleration: the second directional derivative of the residuals along the step (one extra residual
    evaluation) bends the step along curved, sloppy valleys, which plain trust-region steps creep along.

    Converged when ``ftol`` (absolute, in loss units; 1e-4 is far below the chi2 resolution 0.5) is
    met by the actual and predicted decrease three times in a row, when the objective fell by less than
    ``stall_tol`` over ``stall_window`` iterations (a creep far below the statistical resolution), or
    the step is below ``xtol``. Coordinates on a bound whose gradient points outwards are held there.

    ``max_time`` is checked before every trial step; a :class:`~symode.timing.TimeLimit` raised by ``fun``
    or ``jac`` (a budget checked per solve) also ends the run at the last accepted point ("time limit").
    ``timings`` records the seconds of the linear algebra ("linear algebra").
    """
    t_start = time.perf_counter()
    z = np.clip(np.asarray(z0, float), lb, ub)
    r, J = jac(z)
    if timings is None:
        timings = Timings()
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(J))):
        raise SolverError("residuals or their Jacobian are not finite at the starting point")
    loss = 0.5 * float(r @ r)
    state = _State(z, r, J, loss)
    try:
        _iterate(state, fun, jac, lb, ub, max_iter=max_iter, deadline=t_start + max_time, ftol=ftol, xtol=xtol,
                 geodesic=geodesic, stall_window=stall_window, stall_tol=stall_tol, callback=callback,
                 timings=timings)
    except TimeLimit:
        state.msg, state.converged = "time limit", False
    return LMResult(state.z, state.loss, state.it, state.converged, state.msg, state.history)


@dataclass
class _State:
    """The last accepted point of a Levenberg-Marquardt run (what a run cut short returns)."""

    z: np.ndarray
    r: np.ndarray
    J: np.ndarray
    loss: float
    it: int = 0
    converged: bool = False
    msg: str = "maximum number of iterations"
    history: list[float] = field(default_factory=list)


def _iterate(st: _State, fun: Callable[[np.ndarray], np.ndarray],
             jac: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], lb: np.ndarray, ub: np.ndarray, *,
             max_iter: int, deadline: float, ftol: float, xtol: float, geodesic: bool, stall_window: int,
             stall_tol: float, callback: Callable[[int, np.ndarray, float], None] | None, timings: Timings) -> None:
    z, r, J, loss = st.z, st.r, st.J, st.loss
    lam = 1e-3
    dmax = np.zeros(len(z))
    small = 0
    st.history = [loss]
    h = 0.1
    while st.it < max_iter:
        st.it += 1
        if time.perf_counter() > deadline:
            st.msg = "time limit"
            return
        t_la = time.perf_counter()
        g = J.T @ r
        A = J.T @ J
        timings.add("linear algebra", time.perf_counter() - t_la, 0)
        dmax = np.maximum(dmax, np.diag(A))
        D = np.maximum(dmax, 1e-12 * max(float(dmax.max()), 1e-300))
        accepted = False
        # active set: coordinates on a bound whose gradient pushes outwards stay there (no crawling
        # along a bound with clipped steps)
        span = 1e-9 * np.maximum(1.0, np.abs(z))
        active = ((z <= lb + span) & (g > 0)) | ((z >= ub - span) & (g < 0))
        free = ~active
        for _ in range(40):
            if time.perf_counter() > deadline:
                st.msg = "time limit"
                return
            t_la = time.perf_counter()
            M = A + lam * np.diag(D)
            Mf = M[np.ix_(free, free)]
            try:
                cf = np.linalg.cholesky(Mf)
            except np.linalg.LinAlgError:
                lam *= 4.0
                continue
            finally:
                timings.add("linear algebra", time.perf_counter() - t_la, 0)
            if not np.all(np.isfinite(cf)):     # J^T J overflowed
                raise SolverError("the normal matrix of the residual Jacobian is not finite")
            v = np.zeros_like(z)
            v[free] = -_chol_solve(cf, g[free])
            # keep the step inside the box
            znew = np.clip(z + v, lb, ub)
            v = znew - z
            a = np.zeros_like(v)
            if geodesic and np.linalg.norm(v) > 0:
                rh = fun(z + h * v)
                rvv = (2.0 / h) * ((rh - r) / h - J @ v)
                if np.all(np.isfinite(rvv)):
                    a = np.zeros_like(z)
                    a[free] = -_chol_solve(cf, (J.T @ rvv)[free])
                    if np.linalg.norm(a) > 0.75 * np.linalg.norm(v) * 2:   # acceleration too large: reject
                        lam *= 2.0
                        continue
            znew = np.clip(z + v + 0.5 * a, lb, ub)
            rn = fun(znew)
            with np.errstate(over="ignore", invalid="ignore"):   # a blown-up trial point: inf, rejected below
                ln = 0.5 * float(rn @ rn)
            pred = -(g @ v) - 0.5 * float(v @ A @ v)     # Gauss-Newton predicted decrease (>0)
            if np.isfinite(ln) and ln < loss:
                rj, Jj = _finite_jac(jac, znew)
                if rj is None:          # sensitivities fail or are not finite there: a failed trial step
                    lam *= 2.0
                    if lam > 1e16:
                        break
                    continue
                actual = loss - ln
                step = float(np.max(np.abs(znew - z)))
                z = znew
                lam = max(lam / 3.0, 1e-12)
                accepted = True
                small = small + 1 if (actual < ftol and pred < 10 * ftol) else 0
                r, J = rj, Jj
                loss = 0.5 * float(r @ r)
                st.z, st.r, st.J, st.loss = z, r, J, loss
                st.history.append(loss)
                if callback is not None:
                    callback(st.it, z, loss)
                if small >= 3:
                    st.msg, st.converged = "converged (objective change below ftol)", True
                elif len(st.history) > stall_window and st.history[-stall_window - 1] - loss < stall_tol:
                    st.msg, st.converged = (f"converged (objective change below {stall_tol:g} over "
                                            f"{stall_window} iterations)"), True
                if step < xtol:
                    st.msg, st.converged = "converged (step below xtol)", True
                break
            lam *= 2.0
            if lam > 1e16:
                break
        if st.converged:
            return
        if not accepted:
            gf = np.where(free, g, 0.0)
            pred_full = float(gf @ _lstsq(A, gf)) if np.any(gf) else 0.0
            st.converged = pred_full < 10 * ftol
            st.msg = "converged (no decrease possible)" if st.converged else "stalled (no acceptable step)"
            return


def _finite_jac(jac: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], z: np.ndarray
                ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(r, J) at ``z``, or (None, None) if the sensitivities fail or are not finite."""
    try:
        r, J = jac(z)
    except SolverError:
        return None, None
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(J))):
        return None, None
    return r, J


def _chol_solve(cf: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.linalg import solve_triangular

    y = solve_triangular(cf, b, lower=True)
    return solve_triangular(cf.T, y, lower=False)


def _lstsq(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(A, b, rcond=1e-12)[0]
