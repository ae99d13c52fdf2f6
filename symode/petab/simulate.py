"""Simulation of PEtab experiments with the compiled model, with sensitivities with respect to theta.

For an experiment with simulation condition c and parameters p = P_c theta + const:

- x(0) = x0(p) (the SBML initial values and assignments), with the condition's state overrides; with a
  pre-equilibration condition e, x(0) is the steady state of e instead (states that c overrides are
  reset), and dx(0)/dtheta is carried through;
- x(t_i) and G(t_i) = dx(t_i)/dtheta = S_x0(t_i) G(0) + S_p(t_i) P_c = S(t_i) [G(0); P_c] from the compiled
  integrator's sensitivities S = dx/d[x0, p] (exact derivatives of the discretised solution), propagated
  as the seeded directions [G(0); P_c] only (their nonzero columns);
- t = inf: the steady state, reached by integrating in chunks of growing length until
  wrms(f(x)) = sqrt(mean((f_i / (ss_atol + ss_rtol |x_i|))^2)) < 1 and, with sensitivities, the same
  norm of dG/dt = (df/dx) G + (df/dp) P (weights ss_atol + ss_rtol |G_ij|) is < 1, chaining G over the
  chunks (valid with conservation laws, where df/dx is singular). The second test matters when x(0) is
  already (nearly) the steady state but dx/dtheta is not, as with slow modes. Once wrms(f) < 1 the state
  is polished by Newton's method (:mod:`symode.petab.steadystate`, conserved totals kept), with the exact
  derivative map of the polished state; only when the polish fails does the integration go on and the
  second test apply.

For a gradient by the adjoint (:meth:`Simulator.gradient`), every solve (trajectory, steady-state chunk)
is recorded (:meth:`symode.solve.backend.CompiledBackend.record`) and differentiated afterwards in reverse
mode through its own steps with the weights w_i = d nllh/dx(t_i): no sensitivity matrix is formed, and a
pre-equilibration shared by several experiments is differentiated once, with the sum of their weights.

The integration grid holds the breakpoints of time-dependent piecewise terms, so the integrator restarts
at each discontinuity. Experiments with several periods, a start other than t = 0 or expression-valued
condition changes, and every experiment of a model with SBML events, run through
:class:`symode.petab.timeline.Timeline` (the others take no extra work).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symode.errors import SolverError
from symode.petab.functions import Breakpoints, InitialStates
from symode.petab.periods import Experiment
from symode.petab.problem import Condition, PetabProblem
from symode.petab.steadystate import NewtonSteadyState, newton_polish
from symode.petab.timeline import Timeline
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
    newton: bool = True           # polish steady states by Newton's method (symode.petab.steadystate)
    newton_max_steps: int = 10


@dataclass
class SteadyState:
    """A steady state reached from some start: x, G = dx/dtheta (forward mode) or the recorded chunks
    (adjoint mode)."""

    x: np.ndarray
    G: np.ndarray | None = None
    chunks: list[Any] = field(default_factory=list)
    start: np.ndarray | None = None     # where the integration started (adjoint mode)
    p: np.ndarray | None = None
    t: float = 0.0                      # the integration time it took
    label: str = ""
    newton: NewtonSteadyState | None = None   # the Newton polish of the integrated state, if it succeeded


@dataclass
class ExperimentResult:
    x: np.ndarray                  # (nt, nx) at the experiment's times
    G: np.ndarray | None           # (nt, nx, n_theta) (mode "forward")
    x_inf: np.ndarray | None       # steady state (rows with t = inf)
    G_inf: np.ndarray | None
    p: np.ndarray | None = None
    grid: np.ndarray | None = None
    pos: np.ndarray | None = None  # index of each measurement time in the grid
    record: Any = None             # mode "adjoint": the recorded trajectory, steady state and pre-equilibration
    inf: SteadyState | None = None
    preeq: SteadyState | None = None


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
        self.U = np.zeros(0)
        self._grids: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
        self._x0_last: dict[str, tuple[bytes, np.ndarray, np.ndarray]] = {}
        # experiments with several periods or a model with events (symode.petab.timeline)
        self.timeline = Timeline(self) if problem.sbml.events or not all(e.simple for e in problem.experiments) \
            else None

    def P(self, cond: Condition) -> np.ndarray:
        if cond.id not in self._P:
            self._P[cond.id] = cond.p.jacobian(self.n_theta)
        return self._P[cond.id]

    # -- initial states --------------------------------------------------------------------------------
    def initial(self, cond: Condition, theta: np.ndarray, sens: bool) -> tuple[np.ndarray, np.ndarray | None]:
        x0, J = self.initial_values(cond, theta)
        G0 = J @ self.P(cond) if sens else None
        return self.override(cond, theta, x0, G0)

    def initial_values(self, cond: Condition, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x0(p_c(theta)) and dx0/dp (read only), the last point of each condition kept: the adjoint asks
        for the Jacobian at the point the simulation just used."""
        key = theta.tobytes()
        hit = self._x0_last.get(cond.id)
        if hit is None or hit[0] != key:
            hit = (key, *self.x0(cond.p(theta)))
            self._x0_last[cond.id] = hit
        return hit[1], hit[2]

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
            cache: dict[str, SteadyState] | None = None) -> ExperimentResult:
        """States at the experiment's measurement times and, if needed, at steady state. ``mode``: "none"
        (states only), "forward" (also G = dx/dtheta there) or "adjoint" (every solve recorded, for
        :meth:`gradient`). ``cache`` holds the pre-equilibrations of one parameter point."""
        if self.timeline is not None and self.timeline.handles(exp):
            return self.timeline.run(exp, theta, mode, cache)
        forward = mode == "forward"
        record = mode == "adjoint"
        cond = exp.sim
        p = cond.p(theta)
        pre = None
        if exp.preeq is not None:
            pre = self.preequilibrium(exp, theta, mode, cache)
            x0, G0 = self.override(cond, theta, pre.x, pre.G)
        else:
            x0, G0 = self.initial(cond, theta, forward)
        grid, pos = self.grid(exp.times, p)
        x_out, G_out, rec = self.trajectory(grid, pos, x0, G0, p, self.P(cond) if forward else None, exp.label,
                                            record=record)
        inf = None
        if exp.has_inf:
            inf = self.steady_state(x0, G0, p, self.P(cond) if forward else None,
                                    f"condition {exp.label!r} (time inf)", record=record)
        return ExperimentResult(x_out, G_out, None if inf is None else inf.x, None if inf is None else inf.G, p,
                                grid, pos, rec, inf, pre)

    def preequilibrium(self, exp: Experiment, theta: np.ndarray, mode: str,
                       cache: dict[str, SteadyState] | None) -> SteadyState:
        """The steady state of the experiment's pre-equilibration condition (from ``cache`` if there)."""
        assert exp.preeq is not None
        key = exp.preeq.id
        pre = cache.get(key) if cache is not None else None
        if pre is None:
            forward = mode == "forward"
            xe, Ge = self.initial(exp.preeq, theta, forward)
            pre = self.steady_state(xe, Ge, exp.preeq.p(theta), self.P(exp.preeq) if forward else None,
                                    f"pre-equilibration condition {exp.preeq.id!r}", record=mode == "adjoint")
            if cache is not None:
                cache[key] = pre
        return pre

    def grid(self, times: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The integration grid (0, the measurement times and the breakpoints in between) and the
        position of each measurement time in it."""
        if len(times) == 0:
            return np.zeros(1), np.zeros(0, dtype=int)
        if self.breakpoints.n == 0:  # the grid depends on the times only: computed once
            key = times.tobytes()
            if key not in self._grids:
                grid = np.unique(np.concatenate([[0.0], times]))
                self._grids[key] = (grid, np.searchsorted(grid, times))
            return self._grids[key]
        bp = self.breakpoints(p)
        grid = np.unique(np.concatenate([[0.0], times, bp[(bp > 0) & (bp < times[-1])]]))
        return grid, np.searchsorted(grid, times)

    def trajectory(self, grid: np.ndarray, pos: np.ndarray, x0: np.ndarray, G0: np.ndarray | None,
                   p: np.ndarray, P: np.ndarray | None, label: str, record: bool = False
                   ) -> tuple[np.ndarray, np.ndarray | None, Any]:
        """x at the grid positions ``pos``, with G0: G there; ``record``: the recorded solve too."""
        nt = len(pos)
        x_out = np.empty((nt, self.nx))
        G_out = np.empty((nt, self.nx, self.n_theta)) if G0 is not None else None
        if nt == 0:
            return x_out, G_out, None
        if len(grid) == 1:  # every measurement at t = 0
            x_out[:] = x0
            if G_out is not None:
                G_out[:] = G0
            return x_out, G_out, None
        o = self.options
        if record:
            rec = self.backend.record(grid, x0, p, self.U, rtol=o.rtol, atol=o.atol, method=o.method)
            self.check(rec, grid, label)
            return rec.x[pos], None, rec
        if G0 is None:
            res = self.backend.integrate(grid, x0, p, self.U, rtol=o.rtol, atol=o.atol, method=o.method)
            self.check(res, grid, label)
            return res.x[pos], None, None
        assert P is not None
        seed, cols = self.seed(G0, P)
        res, G = self.backend.sensitivities(grid, x0, p, self.U, rtol=o.rtol, atol=o.atol, method=o.method,
                                            seed=seed)
        self.check(res, grid, label)
        x_out[:] = res.x[pos]
        G_out[:] = 0.0
        G_out[:, :, cols] = G[pos]
        return x_out, G_out, None

    @staticmethod
    def seed(G: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The forward sensitivities' seed [G; P] (dx/dtheta = S_x0 G + S_p P = S [G; P]) restricted to its
        nonzero columns, and their indices: a theta that moves neither x0 nor p (a noise or observable
        parameter) has dx/dtheta = 0, and is not propagated."""
        D = np.vstack([G, P])
        cols = np.flatnonzero(np.any(D != 0.0, axis=0))
        return D[:, cols], cols

    # -- the adjoint -----------------------------------------------------------------------------------
    def gradient(self, experiments: list[Experiment], results: list[ExperimentResult], theta: np.ndarray,
                 W: list[np.ndarray], W_inf: list[np.ndarray]) -> np.ndarray:
        """sum over experiments of sum_i W_i . dx(t_i)/dtheta + W_inf . dx_inf/dtheta (W: one row per
        measurement time of the experiment; W_inf: the weight of its steady state), by reverse mode through
        the recorded solves of mode "adjoint" (trajectory, steady-state chunks, pre-equilibration)."""
        grad = np.zeros(self.n_theta)
        pre_w: dict[str, np.ndarray] = {}
        pre_state: dict[str, tuple[Condition, SteadyState]] = {}
        for exp, res, w, w_inf in zip(experiments, results, W, W_inf, strict=True):
            cond = exp.sim
            if self.timeline is not None and self.timeline.handles(exp):
                gx0, g = self.timeline.adjoint(res, w)   # back to the state before the first period's changes
                grad += g
            else:
                if res.record is not None:
                    lam = np.zeros((len(res.grid), self.nx))  # type: ignore[arg-type]
                    lam[res.pos] = w    # the measurement times are distinct points of the grid
                    gx0, gp = res.record.adjoint(lam)
                else:  # measurements at t = 0 only
                    gx0, gp = w.sum(axis=0) if len(w) else np.zeros(self.nx), np.zeros(self.np)
                if res.inf is not None and np.any(w_inf):
                    gx, gq = self.steady_state_adjoint(res.inf, w_inf)
                    gx0, gp = gx0 + gx, gp + gq
                grad += gp @ self.P(cond)
                gx0 = self._override_adjoint(cond, gx0, grad)
            if exp.preeq is None:
                self._initial_adjoint(cond, theta, gx0, grad)
                continue
            assert res.preeq is not None
            pre_w[exp.preeq.id] = pre_w.get(exp.preeq.id, 0.0) + gx0
            pre_state[exp.preeq.id] = (exp.preeq, res.preeq)
        for key, v in pre_w.items():
            cond, ss = pre_state[key]
            gx, gq = self.steady_state_adjoint(ss, v)
            grad += gq @ self.P(cond)
            self._initial_adjoint(cond, theta, self._override_adjoint(cond, gx, grad), grad)
        return grad

    def steady_state_adjoint(self, ss: SteadyState, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(v . dx_ss/dx_start, v . dx_ss/dp) back through the recorded chunks.

        The integration stopped when wrms(f) < 1, which says nothing about dx_ss/dtheta: x can start at
        (nearly) its steady state while dx/dtheta does not (slow modes). The adjoint's own test is the
        rate of the gradient g(T) = v . dx(T)/d[x_start, p] in the integration time T,
        dg/dT = (f_x^T v) . dx(T)/d[x_start, p] + [0, f_p^T v] (v . dG/dt of the forward test, by a second
        reverse pass with the weight f_x^T v). When its weighted norm (weights ss_atol max|v| +
        ss_rtol |g|) is not < 1, the gradient comes from forward sensitivities carried until dG/dt
        vanishes (:meth:`steady_state` with G)."""
        if ss.newton is not None:  # exact at the polished steady state: no rate test needed
            v, gq = ss.newton.adjoint(v)
            gx, gp = self._reverse(ss, v)
            return gx, gp + gq
        gx, gp = self._reverse(ss, v)
        if not np.any(v):
            return gx, gp
        assert ss.start is not None and ss.p is not None
        w = self.backend.jac_x(ss.t, ss.x, ss.p, self.U).T @ v
        rx, rp = self._reverse(ss, w)
        rate = np.concatenate([rx, rp + self.backend.jac_p(ss.t, ss.x, ss.p, self.U).T @ v])
        g = np.concatenate([gx, gp])
        o = self.options
        weights = o.ss_atol * float(np.max(np.abs(v))) + o.ss_rtol * np.abs(g)
        if float(np.sqrt(np.mean((rate / weights) ** 2))) < 1.0:
            return gx, gp
        n = self.nx + self.np
        G0 = np.eye(self.nx, n)
        P = np.zeros((self.np, n))
        P[:, self.nx:] = np.eye(self.np)
        G = self.steady_state(ss.start, G0, ss.p, P, ss.label).G
        assert G is not None
        g = v @ G
        return g[: self.nx], g[self.nx:]

    @staticmethod
    def _reverse(ss: SteadyState, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gp = np.zeros(len(ss.p) if ss.p is not None else 0)
        lam = np.zeros((2, len(v)))
        for rec in reversed(ss.chunks):
            lam[1] = v
            v, gq = rec.adjoint(lam)
            gp = gp + gq
        return v, gp

    def _override_adjoint(self, cond: Condition, gx: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """Adds the overridden states' part of gx . dx/dtheta to grad; returns gx without it."""
        if len(cond.x_states):
            grad += gx[cond.x_states] @ cond.x.jacobian(self.n_theta)
            gx = gx.copy()
            gx[cond.x_states] = 0.0
        return gx

    def _initial_adjoint(self, cond: Condition, theta: np.ndarray, gx: np.ndarray, grad: np.ndarray) -> None:
        """Adds gx . dx0(p)/dtheta (the model's initial values) to grad."""
        if gx.any():
            _, J = self.initial_values(cond, theta)
            grad += (gx @ J) @ self.P(cond)

    def steady_state(self, x0: np.ndarray, G0: np.ndarray | None, p: np.ndarray, P: np.ndarray | None,
                     label: str, record: bool = False) -> SteadyState:
        """Integrate until wrms(f) < 1, then polish by Newton's method (:meth:`polish`); when the polish
        fails, go on until also, when G = dx/dtheta is carried (with G0), wrms(dG/dt) < 1 (see the module
        docstring). ``record``: record every chunk."""
        o = self.options
        ss = SteadyState(x0.copy(), None if G0 is None else G0.copy(), start=x0.copy(), p=p, label=label)
        t, length = 0.0, 1.0
        while True:
            ss.t = t
            x = ss.x
            f = self.backend.rhs(t, x, p, self.U)
            wrms = float(np.sqrt(np.mean((f / (o.ss_atol + o.ss_rtol * np.abs(x))) ** 2))) if len(x) else 0.0
            what = "dx/dt"
            if wrms < 1.0 and o.newton and self.polish(ss, p, P):
                return ss
            G = ss.G
            if wrms < 1.0 and G is not None and P is not None and G.size:
                # x may start at its steady state while G does not (slow modes), so G's rate is checked too
                dG = self.backend.jac_x(t, x, p, self.U) @ G + self.backend.jac_p(t, x, p, self.U) @ P
                wrms = float(np.sqrt(np.mean((dG / (o.ss_atol + o.ss_rtol * np.abs(G))) ** 2)))
                what = "dx/dt's sensitivities"
            if wrms < 1.0:
                return ss
            if t >= o.ss_max_time:
                raise SolverError(f"{label}: no steady state reached by t = {t:g} (weighted norm of {what} = "
                                  f"{wrms:.3g}; needs < 1)")
            grid = np.array([t, t + length])
            if record:
                res = self.backend.record(grid, x, p, self.U, rtol=o.rtol, atol=o.atol, method=o.method)
                self.check(res, grid, label)
                ss.chunks.append(res)
            elif ss.G is None:
                res = self.backend.integrate(grid, x, p, self.U, rtol=o.rtol, atol=o.atol, method=o.method)
                self.check(res, grid, label)
            else:
                assert P is not None
                seed, cols = self.seed(ss.G, P)
                res, G = self.backend.sensitivities(grid, x, p, self.U, rtol=o.rtol, atol=o.atol, method=o.method,
                                                    seed=seed)
                self.check(res, grid, label)
                ss.G = np.zeros_like(ss.G)
                ss.G[:, cols] = G[-1]
            ss.x = res.x[-1].copy()
            t += length
            length *= 4.0

    def polish(self, ss: SteadyState, p: np.ndarray, P: np.ndarray | None) -> bool:
        """Newton polish of the integrated state ss.x (:func:`symode.petab.steadystate.newton_polish`), with
        G = dx/dtheta mapped to the polished state; False (ss unchanged) when it fails."""
        o = self.options
        nw = newton_polish(self.backend, ss.t, ss.x, p, self.U, lambda x: o.ss_atol + o.ss_rtol * np.abs(x),
                           lambda x: o.atol + o.rtol * np.abs(x), o.newton_max_steps)
        if nw is None:
            return False
        if ss.G is not None:
            assert P is not None
            ss.G = nw.sensitivities(ss.G, P)
        ss.x, ss.newton = nw.x, nw
        return True

    @staticmethod
    def check(res: Any, grid: np.ndarray, label: str) -> None:
        if res.status == 0:
            return
        i = res.stats.get("fail_interval", -1)
        where = f" in [{grid[i]:g}, {grid[i + 1]:g}]" if 0 <= i < len(grid) - 1 else ""
        raise SolverError(f"{label}: ODE solver failed{where}: {ERRORS.get(res.status, res.status)}")
