"""Simulation of PEtab experiments with the compiled model, with sensitivities with respect to theta.

For an experiment with simulation condition c and parameters p = P_c theta + const:

- x(0) = x0(p) (the SBML initial values and assignments), with the condition's state overrides; with a
  pre-equilibration condition e, x(0) is the steady state of e instead (states that c overrides are
  reset), and dx(0)/dtheta is carried through;
- x(t_i) and G(t_i) = dx(t_i)/dtheta = S_x0(t_i) G(0) + S_p(t_i) P_c from the compiled integrator's
  sensitivities S = dx/d[x0, p] (exact derivatives of the discretised solution);
- t = inf: the steady state, reached by integrating in chunks of growing length until
  wrms(f(x)) = sqrt(mean((f_i / (ss_atol + ss_rtol |x_i|))^2)) < 1 and, with sensitivities, the same
  norm of dG/dt = (df/dx) G + (df/dp) P (weights ss_atol + ss_rtol |G_ij|) is < 1, chaining G over the
  chunks (valid with conservation laws, where df/dx is singular). The second test matters when x(0) is
  already (nearly) the steady state but dx/dtheta is not, as with slow modes.

The integration grid holds the breakpoints of time-dependent piecewise terms, so the integrator restarts
at each discontinuity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from symode.errors import SolverError
from symode.petab.functions import Breakpoints, InitialStates
from symode.petab.problem import Condition, Experiment, PetabProblem
from symode.solve.backend import ERRORS


@dataclass
class SolverOptions:
    """Integrator and steady-state settings."""

    rtol: float = 1e-8
    atol: float = 1e-10
    method: str = "stiff"         # "stiff" (RODAS4; default), "auto" or "explicit"
    ss_rtol: float = 1e-6
    ss_atol: float = 1e-8
    ss_max_time: float = 1e10


@dataclass
class ExperimentResult:
    x: np.ndarray                  # (nt, nx) at the experiment's times
    G: np.ndarray | None           # (nt, nx, n_theta) (mode "forward")
    x_inf: np.ndarray | None       # steady state (rows with t = inf)
    G_inf: np.ndarray | None
    x0: np.ndarray | None = None   # the simulation's start and dx0/dtheta, parameters and grid (for the adjoint)
    G0: np.ndarray | None = None
    p: np.ndarray | None = None
    grid: np.ndarray | None = None
    pos: np.ndarray | None = None  # index of each measurement time in the grid


class Simulator:
    """Runs a problem's experiments on a built model (:class:`symode.solve.model.Model`)."""

    def __init__(self, problem: PetabProblem, model: Any, options: SolverOptions | None = None) -> None:
        self.problem = problem
        self.model = model
        self.backend = model.backend
        self.options = options or SolverOptions()
        self.x0 = InitialStates(problem)
        self.breakpoints = Breakpoints(problem)
        self.nx = len(model.states)
        self.np = len(model.parameters)
        self.n_theta = problem.n_theta
        self._P: dict[str, np.ndarray] = {}
        self._U = np.zeros(0)

    def P(self, cond: Condition) -> np.ndarray:
        if cond.id not in self._P:
            self._P[cond.id] = cond.p.jacobian(self.n_theta)
        return self._P[cond.id]

    # -- initial states --------------------------------------------------------------------------------
    def initial(self, cond: Condition, theta: np.ndarray, sens: bool) -> tuple[np.ndarray, np.ndarray | None]:
        p = cond.p(theta)
        x0, J = self.x0(p)
        G0 = J @ self.P(cond) if sens else None
        return self.override(cond, theta, x0, G0)

    def override(self, cond: Condition, theta: np.ndarray, x: np.ndarray, G: np.ndarray | None
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        if len(cond.x_states):
            x = x.copy()
            x[cond.x_states] = cond.x(theta)
            if G is not None:
                G = G.copy()
                G[cond.x_states] = cond.x.jacobian(self.n_theta)
        return x, G

    # -- experiments -----------------------------------------------------------------------------------
    def run(self, exp: Experiment, theta: np.ndarray, mode: str = "none",
            cache: dict[str, tuple[np.ndarray, np.ndarray | None]] | None = None) -> ExperimentResult:
        """States at the experiment's measurement times and, if needed, at steady state. ``mode``: "none"
        (states only), "forward" (also G = dx/dtheta there) or "adjoint" (also dx0/dtheta and the steady
        state's G, for :meth:`adjoint`)."""
        sens = mode != "none"
        cond = exp.sim
        p = cond.p(theta)
        if exp.preeq is not None:
            key = exp.preeq.id
            if cache is not None and key in cache and (cache[key][1] is not None or not sens):
                x_pre, G_pre = cache[key]
            else:
                xe, Ge = self.initial(exp.preeq, theta, sens)
                x_pre, G_pre = self.steady_state(xe, Ge, exp.preeq.p(theta), self.P(exp.preeq) if sens else None,
                                                 f"pre-equilibration condition {exp.preeq.id!r}")
                if cache is not None:
                    cache[key] = (x_pre, G_pre)
            x0, G0 = self.override(cond, theta, x_pre, G_pre)
        else:
            x0, G0 = self.initial(cond, theta, sens)
        grid, pos = self.grid(exp.times, p)
        x_out, G_out = self.trajectory(grid, pos, x0, G0 if mode == "forward" else None, p,
                                       self.P(cond) if sens else None, exp.label)
        x_inf = G_inf = None
        if np.any(exp.time_index < 0):
            x_inf, G_inf = self.steady_state(x0, G0, p, self.P(cond) if sens else None,
                                             f"condition {exp.label!r} (time inf)")
        return ExperimentResult(x_out, G_out, x_inf, G_inf, x0, G0, p, grid, pos)

    def grid(self, times: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The integration grid (0, the measurement times and the breakpoints in between) and the
        position of each measurement time in it."""
        if len(times) == 0:
            return np.zeros(1), np.zeros(0, dtype=int)
        bp = self.breakpoints(p)
        grid = np.unique(np.concatenate([[0.0], times, bp[(bp > 0) & (bp < times[-1])]]))
        return grid, np.searchsorted(grid, times)

    def trajectory(self, grid: np.ndarray, pos: np.ndarray, x0: np.ndarray, G0: np.ndarray | None,
                   p: np.ndarray, P: np.ndarray | None, label: str) -> tuple[np.ndarray, np.ndarray | None]:
        nt = len(pos)
        x_out = np.empty((nt, self.nx))
        G_out = np.empty((nt, self.nx, self.n_theta)) if G0 is not None else None
        if nt == 0:
            return x_out, G_out
        if len(grid) == 1:  # every measurement at t = 0
            x_out[:] = x0
            if G_out is not None:
                G_out[:] = G0
            return x_out, G_out
        o = self.options
        if G0 is None:
            res = self.backend.integrate(grid, x0, p, self._U, rtol=o.rtol, atol=o.atol, method=o.method)
            self._check(res, grid, label)
            return res.x[pos], None
        res, S = self.backend.sensitivities(grid, x0, p, self._U, rtol=o.rtol, atol=o.atol, method=o.method)
        self._check(res, grid, label)
        S = S[pos]
        x_out[:] = res.x[pos]
        G_out[:] = np.einsum("tij,jk->tik", S[:, :, : self.nx], G0) + np.einsum("tij,jk->tik", S[:, :, self.nx:], P)
        return x_out, G_out

    def adjoint(self, res: ExperimentResult, W: np.ndarray, label: str) -> tuple[np.ndarray, np.ndarray]:
        """sum_i W_i . dx(t_i)/d[x0, p] over the measurement times, by the compiled discrete adjoint.

        The model's observables are its states (h = x), so the library's loss 1/2 sum ((x_i - d_i)/s_i)^2
        has dL/dx_i = (x_i - d_i)/s_i^2; with d_i = x_i - sign(W_i)(|x_i| + atol) and
        s_i^2 = (|x_i| + atol)/|W_i| that is W_i, without cancellation in x_i - d_i."""
        assert res.grid is not None and res.pos is not None and res.x0 is not None and res.p is not None
        nx = self.nx
        if len(res.grid) == 1 or not np.any(W):
            g = W.sum(axis=0) if len(res.grid) == 1 else np.zeros(nx)
            return g, np.zeros(self.np)
        data = np.full((len(res.grid), nx), np.nan)
        sigma = np.ones((len(res.grid), nx))
        Wg = np.zeros((len(res.grid), nx))
        np.add.at(Wg, res.pos, W)
        X = np.full((len(res.grid), nx), np.nan)
        X[res.pos] = res.x
        used = np.any(Wg != 0, axis=1)
        o = self.options
        mag = np.abs(X[used]) + o.atol
        w = Wg[used]
        nz = w != 0
        d = X[used].copy()
        d[nz] = X[used][nz] - np.sign(w[nz]) * mag[nz]
        s = np.ones_like(w)
        s[nz] = np.sqrt(mag[nz] / np.abs(w[nz]))
        data[used], sigma[used] = d, s
        ws = self.backend.workspace(res.grid, self._U, data, sigma)
        status, _, grad, _, _, stats = ws.gradient("discrete", res.x0, res.p, rtol=o.rtol, atol=o.atol,
                                                   method=o.method)
        if status != 0:
            i = stats.get("fail_interval", -1)
            where = f" in [{res.grid[i]:g}, {res.grid[i + 1]:g}]" if 0 <= i < len(res.grid) - 1 else ""
            raise SolverError(f"{label}: adjoint failed{where}: {ERRORS.get(status, status)}")
        return grad[:nx], grad[nx:]

    def steady_state(self, x0: np.ndarray, G0: np.ndarray | None, p: np.ndarray, P: np.ndarray | None,
                     label: str) -> tuple[np.ndarray, np.ndarray | None]:
        """Integrate until wrms(f) < 1 and, when G = dx/dtheta is carried, wrms(dG/dt) < 1 (see the module
        docstring)."""
        o = self.options
        x, G = x0.copy(), None if G0 is None else G0.copy()
        t, length = 0.0, 1.0
        while True:
            f = self.backend.rhs(t, x, p, self._U)
            wrms = float(np.sqrt(np.mean((f / (o.ss_atol + o.ss_rtol * np.abs(x))) ** 2))) if len(x) else 0.0
            what = "dx/dt"
            if wrms < 1.0 and G is not None and P is not None and G.size:
                # x may start at its steady state while G does not (slow modes), so G's rate is checked too
                dG = self.backend.jac_x(t, x, p, self._U) @ G + self.backend.jac_p(t, x, p, self._U) @ P
                wrms = float(np.sqrt(np.mean((dG / (o.ss_atol + o.ss_rtol * np.abs(G))) ** 2)))
                what = "dx/dt's sensitivities"
            if wrms < 1.0:
                return x, G
            if t >= o.ss_max_time:
                raise SolverError(f"{label}: no steady state reached by t = {t:g} (weighted norm of {what} = "
                                  f"{wrms:.3g}; needs < 1)")
            grid = np.array([t, t + length])
            if G is None:
                res = self.backend.integrate(grid, x, p, self._U, rtol=o.rtol, atol=o.atol, method=o.method)
                self._check(res, grid, label)
            else:
                res, S = self.backend.sensitivities(grid, x, p, self._U, rtol=o.rtol, atol=o.atol, method=o.method)
                self._check(res, grid, label)
                G = S[-1, :, : self.nx] @ G + S[-1, :, self.nx:] @ P
            x = res.x[-1].copy()
            t += length
            length *= 4.0

    @staticmethod
    def _check(res: Any, grid: np.ndarray, label: str) -> None:
        if res.status == 0:
            return
        i = res.stats.get("fail_interval", -1)
        where = f" in [{grid[i]:g}, {grid[i + 1]:g}]" if 0 <= i < len(grid) - 1 else ""
        raise SolverError(f"{label}: ODE solver failed{where}: {ERRORS.get(res.status, res.status)}")
