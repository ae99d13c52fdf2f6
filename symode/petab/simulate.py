"""Simulation of PEtab experiments with the compiled model, with sensitivities with respect to theta.

For an experiment with simulation condition c and parameters p = P_c theta + const:

- x(0) = x0(p) (the SBML initial values and assignments), with the condition's state overrides; with a
  pre-equilibration condition e, x(0) is the steady state of e instead (states that c overrides are
  reset), and dx(0)/dtheta is carried through;
- x(t_i) and G(t_i) = dx(t_i)/dtheta = S_x0(t_i) G(0) + S_p(t_i) P_c from the compiled integrator's
  sensitivities S = dx/d[x0, p] (exact derivatives of the discretised solution);
- t = inf: the steady state, reached by integrating in chunks of growing length until
  wrms(f(x)) = sqrt(mean((f_i / (ss_atol + ss_rtol |x_i|))^2)) < 1, chaining G over the chunks
  (valid with conservation laws, where df/dx is singular).

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
    method: str = "auto"          # "auto", "explicit" or "stiff"
    ss_rtol: float = 1e-6
    ss_atol: float = 1e-8
    ss_max_time: float = 1e10


@dataclass
class ExperimentResult:
    x: np.ndarray                  # (nt, nx) at the experiment's times
    G: np.ndarray | None           # (nt, nx, n_theta)
    x_inf: np.ndarray | None       # steady state (rows with t = inf)
    G_inf: np.ndarray | None


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
    def run(self, exp: Experiment, theta: np.ndarray, sens: bool,
            cache: dict[str, tuple[np.ndarray, np.ndarray | None]] | None = None) -> ExperimentResult:
        """States (and dx/dtheta) at the experiment's measurement times and, if needed, at steady state."""
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
        times = exp.times
        x_out, G_out = self.trajectory(times, x0, G0, p, self.P(cond) if sens else None, exp.label)
        x_inf = G_inf = None
        if np.any(exp.time_index < 0):
            x_inf, G_inf = self.steady_state(x0, G0, p, self.P(cond) if sens else None,
                                             f"condition {exp.label!r} (time inf)")
        return ExperimentResult(x_out, G_out, x_inf, G_inf)

    def trajectory(self, times: np.ndarray, x0: np.ndarray, G0: np.ndarray | None, p: np.ndarray,
                   P: np.ndarray | None, label: str) -> tuple[np.ndarray, np.ndarray | None]:
        nt = len(times)
        x_out = np.empty((nt, self.nx))
        G_out = np.empty((nt, self.nx, self.n_theta)) if G0 is not None else None
        if nt == 0:
            return x_out, G_out
        t_end = float(times[-1])
        bp = self.breakpoints(p)
        grid = np.unique(np.concatenate([[0.0], times, bp[(bp > 0) & (bp < t_end)]]))
        pos = np.searchsorted(grid, times)
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

    def steady_state(self, x0: np.ndarray, G0: np.ndarray | None, p: np.ndarray, P: np.ndarray | None,
                     label: str) -> tuple[np.ndarray, np.ndarray | None]:
        """Integrate until wrms(f) < 1 (see the module docstring), carrying G = dx/dtheta."""
        o = self.options
        x, G = x0.copy(), None if G0 is None else G0.copy()
        t, length = 0.0, 1.0
        while True:
            f = self.backend.rhs(t, x, p, self._U)
            wrms = float(np.sqrt(np.mean((f / (o.ss_atol + o.ss_rtol * np.abs(x))) ** 2))) if len(x) else 0.0
            if wrms < 1.0:
                return x, G
            if t >= o.ss_max_time:
                raise SolverError(f"{label}: no steady state reached by t = {t:g} (weighted norm of dx/dt = "
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
