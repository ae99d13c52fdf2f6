"""Simulation of experiments with several periods and time-triggered SBML events, with derivatives.

An experiment's main simulation starts at t0 (its first period's start) from x0(p_0), or from the
pre-equilibration's steady state, and its timeline holds jumps: the start of each later period k
(parameters p_k from then on, the condition's states re-initialised) and the events
(:mod:`symode.petab.events`), fired when t reaches tau(p). Every jump is a reset of the states

    x+ = R(x-, p, theta, t)

(states a condition or an event does not set: x+ = x-); a condition's values are computed from the
state and the parameters p_(k-1) just before its period, an event's from the state just before it and
the parameters in force. Between jumps the compiled integrator runs with the period's parameters, over
the measurement times and the breakpoints of time-dependent piecewise terms in between. At one time
the jumps run in this order: the period's changes, the events ``time >= tau``, the measurements at
that time, the events ``time > tau`` (which become true just after tau).

Derivatives, with G = dx/dtheta, P_k = dp_k/dtheta and D = R_p P + R_theta:

- forward: G+ = R_x G- + D, and for an event whose time tau(p) moves with theta (tau_theta =
  dtau/dp P), also + (R_x f- + R_t - f+) tau_theta, with f-/f+ the right-hand side just before/after it
  (the trajectory reaches the jump later and restarts later);
- adjoint: the weight v+ on x+ becomes v- = R_x^T v+ on x-, and theta gets D^T v+ + (v+ . (R_x f- + R_t
  - f+)) tau_theta; between jumps the recorded solves take the weights back
  (:meth:`symode.solve.backend.Recording.adjoint`), as in :mod:`symode.petab.simulate`.

The first period's changes are the first jump; what is left of the weight is the weight on x0(p_0) or on
the pre-equilibration's steady state, which :class:`symode.petab.simulate.Simulator` takes back as usual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import casadi as ca
import numpy as np
import sympy as sp

from symode.codegen.translate import to_casadi
from symode.petab.functions import BufferedFunction, model_symbols
from symode.petab.periods import Experiment
from symode.petab.problem import Condition, PetabProblem

if TYPE_CHECKING:
    from symode.petab.simulate import ExperimentResult, Simulator


class ResetMap:
    """x+ = R(x-, p, theta, t) and its Jacobians R_x, R_p, R_theta, R_t (one CasADi function).

    ``values``: state index -> sympy expression (in the model's symbols and ``theta_symbols``);
    ``fixed``: (state index, theta index or -1, value) for states set to a theta entry or a number."""

    def __init__(self, problem: PetabProblem, values: dict[int, Any], theta_symbols: dict[Any, int] | None = None,
                 fixed: list[tuple[int, int, float]] | None = None) -> None:
        t, x, p, mapping = model_symbols(problem)
        th = ca.SX.sym("theta", problem.n_theta)
        mapping.update({s: th[i] for s, i in (theta_symbols or {}).items()})
        out = [x[i] for i in range(x.shape[0])]
        items = list(values.items())
        for (i, _), v in zip(items, to_casadi([sp.sympify(e) for _, e in items], mapping), strict=True):
            out[i] = v
        for i, idx, value in fixed or []:
            out[i] = th[idx] if idx >= 0 else ca.SX(float(value))
        xp = ca.vertcat(*out) if out else ca.SX(0, 1)
        jac = [ca.densify(ca.jacobian(xp, v)) for v in (x, p, th, t)]
        self.fn = BufferedFunction(ca.Function("reset", [x, p, th, t], [ca.densify(xp), *jac]))

    @classmethod
    def of_condition(cls, problem: PetabProblem, cond: Condition) -> ResetMap:
        fixed = [(int(i), int(k), float(v)) for i, k, v in zip(cond.x_states, cond.x.index, cond.x.value, strict=True)]
        e = cond.x_expr
        return cls(problem, e.values if e else {}, e.theta if e else {}, fixed)

    def __call__(self, x: np.ndarray, p: np.ndarray, theta: np.ndarray, t: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        xp, Rx, Rp, Rth, Rt = self.fn(x, p, theta, t)
        return xp[:, 0].copy(), Rx.copy(), Rp.copy(), Rth.copy(), Rt[:, 0].copy()


class EventTimes:
    """tau(p) of every event and dtau/dp (one CasADi function)."""

    def __init__(self, problem: PetabProblem) -> None:
        _, _, p, mapping = model_symbols(problem)
        tau = ca.vertcat(*to_casadi([sp.sympify(ev.time) for ev in problem.sbml.events], mapping))
        self.fn = BufferedFunction(ca.Function("event_times", [p], [ca.densify(tau), ca.densify(ca.jacobian(tau, p))]))

    def __call__(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tau, J = self.fn(p)
        return tau[:, 0].copy(), J.copy()


class Timeline:
    """Runs the experiments that :class:`symode.petab.simulate.Simulator` does not run in one piece: several
    periods, a start other than t = 0, expression-valued condition changes, or a model with events."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        pr = sim.problem
        self.problem = pr
        self.events = pr.sbml.events
        ids = list(pr.sbml.states)
        self.event_resets = [ResetMap(pr, {ids.index(s): e for s, e in ev.assignments.items()}) for ev in self.events]
        self.event_times = EventTimes(pr) if self.events else None
        self._resets: dict[str, ResetMap] = {}

    def handles(self, exp: Experiment) -> bool:
        return bool(self.events) or not exp.simple

    def reset(self, cond: Condition) -> ResetMap:
        if cond.id not in self._resets:
            self._resets[cond.id] = ResetMap.of_condition(self.problem, cond)
        return self._resets[cond.id]

    def jumps(self, exp: Experiment, p0: np.ndarray, t_end: float) -> tuple[list[tuple[float, int, int, str]],
                                                                          np.ndarray, np.ndarray]:
        """The jumps after the first period's changes, in order: (time, phase, index, kind) with phase 0
        before the measurements at that time and 1 after, kind "period" or "event" (index into the
        periods or events; "event0": an event that fires at t0 because its trigger is already true there,
        not at tau). Also tau(p0) and dtau/dp."""
        main = exp.main
        t0 = main[0].start
        out = [(per.start, 0, k - len(main), "period") for k, per in enumerate(main) if k and per.start <= t_end]
        tau, dtau = self.event_times(p0) if self.event_times is not None else (np.zeros(0), np.zeros((0, 0)))
        for j, ev in enumerate(self.events):
            if tau[j] < t0 or (tau[j] == t0 and not ev.strict):   # the trigger is true at the start
                if not ev.initial_value:
                    out.append((t0, 0, j, "event0"))
            elif tau[j] <= t_end:
                out.append((float(tau[j]), 1 if ev.strict else 0, j, "event"))
        out.sort(key=lambda jump: (jump[0], jump[1], jump[2]))
        return out, tau, dtau

    # -- the forward pass --------------------------------------------------------------------------------
    def run(self, exp: Experiment, theta: np.ndarray, mode: str, cache: dict[str, Any] | None) -> ExperimentResult:
        """As :meth:`symode.petab.simulate.Simulator.run`; with mode "adjoint" ``record`` holds the
        operations (jumps, measurements, recorded solves) for :meth:`adjoint`."""
        from symode.petab.simulate import ExperimentResult

        sim, nx = self.sim, self.sim.nx
        sens = mode != "none"
        forward = mode == "forward"
        main = exp.main
        ps = [per.condition.p(theta) for per in main]
        Ps = [sim.P(per.condition) for per in main] if sens else [None] * len(main)
        pre = None
        if exp.preeq is not None:
            pre = sim.preequilibrium(exp, theta, mode, cache)
            x, G = pre.x, pre.G
            p_prev, P_prev = exp.preeq.p(theta), sim.P(exp.preeq) if sens else None
        else:
            x, J = sim.initial_values(main[0].condition, theta)
            G = J @ Ps[0] if forward else None
            p_prev, P_prev = ps[0], Ps[0]
        ops: list[tuple[Any, ...]] = []
        t0 = main[0].start
        times = exp.times
        t_end = float(times[-1]) if len(times) else t0
        x, G = self._jump(ops, self.reset(main[0].condition), x, G, p_prev, P_prev, theta, t0, sens)
        jumps, tau, dtau = self.jumps(exp, ps[0], t_end)
        tau_theta = dtau @ Ps[0] if sens and len(tau) else None
        stops = np.unique(np.concatenate([[t0, t_end], [j[0] for j in jumps]]))
        x_out = np.empty((len(times), nx))
        G_out = np.empty((len(times), nx, sim.n_theta)) if forward else None
        k, ji = 0, 0
        for si, s in enumerate(stops):
            for phase in (0, 1):
                while ji < len(jumps) and jumps[ji][0] == s and jumps[ji][1] == phase:
                    _, _, index, kind = jumps[ji]
                    ji += 1
                    if kind == "period":
                        k_new = index + len(main)
                        x, G = self._jump(ops, self.reset(main[k_new].condition), x, G, ps[k], Ps[k], theta, s, sens)
                        k = k_new
                    else:
                        tt = tau_theta[index] if kind == "event" and tau_theta is not None else None
                        x, G = self._jump(ops, self.event_resets[index], x, G, ps[k], Ps[k], theta, s, sens, tt)
                if phase == 0:
                    ti = int(np.searchsorted(times, s))
                    if ti < len(times) and times[ti] == s:
                        x_out[ti] = x
                        if G_out is not None:
                            G_out[ti] = G
                        ops.append(("measure", ti))
            if si + 1 < len(stops):
                x, G = self._segment(ops, exp, s, float(stops[si + 1]), x, G, ps[k], Ps[k], mode, x_out, G_out)
        return ExperimentResult(x_out, G_out, None, None, ps[0], None, None, ops if mode == "adjoint" else None,
                                None, pre)

    def _jump(self, ops: list[tuple[Any, ...]], R: ResetMap, x: np.ndarray, G: np.ndarray | None, p: np.ndarray,
              P: np.ndarray | None, theta: np.ndarray, t: float, sens: bool, tau_theta: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray | None]:
        xp, Rx, Rp, Rth, Rt = R(x, p, theta, t)
        if not sens:
            return xp, None
        assert P is not None
        D = Rp @ P + Rth
        E = None
        if tau_theta is not None and np.any(tau_theta):
            backend, U = self.sim.backend, self.sim.U
            E = Rx @ backend.rhs(t, x, p, U) + Rt - backend.rhs(t, xp, p, U)
        ops.append(("jump", Rx, D, E, tau_theta))
        if G is not None:
            G = Rx @ G + D
            if E is not None:
                G = G + np.outer(E, tau_theta)
        return xp, G

    def _segment(self, ops: list[tuple[Any, ...]], exp: Experiment, a: float, b: float, x: np.ndarray,
                 G: np.ndarray | None, p: np.ndarray, P: np.ndarray | None, mode: str, x_out: np.ndarray,
                 G_out: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Integrate from a to b with parameters p, filling the measurements strictly in between."""
        sim = self.sim
        times = exp.times
        idx = np.nonzero((times > a) & (times < b))[0]
        inner = times[idx]
        bp = sim.breakpoints(p) if sim.breakpoints.n else np.zeros(0)
        grid = np.unique(np.concatenate([[a, b], inner, bp[(bp > a) & (bp < b)]]))
        pos = np.searchsorted(grid, inner)
        label = f"condition {exp.label!r} in [{a:g}, {b:g}]"
        # the measurement positions and the segment's end, by the simulator's own solve (plain, seeded
        # forward sensitivities or recorded for the adjoint)
        xs, Gs, rec = sim.trajectory(grid, np.append(pos, len(grid) - 1), x, G, p, P, label,
                                     record=mode == "adjoint")
        x_out[idx] = xs[:-1]
        if rec is not None:
            ops.append(("segment", rec, pos, idx, P))
        if Gs is None:
            return xs[-1].copy(), None
        assert G_out is not None
        G_out[idx] = Gs[:-1]
        return xs[-1].copy(), Gs[-1]

    # -- the adjoint -------------------------------------------------------------------------------------
    def adjoint(self, res: ExperimentResult, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(v, g): v = sum_i w_i . dx(t_i)/dx_start on the state before the first period's changes (x0(p_0)
        or the pre-equilibration's steady state), and g the rest of sum_i w_i . dx(t_i)/dtheta, back
        through the operations that :meth:`run` recorded (``w``: one row per measurement time)."""
        v = np.zeros(self.sim.nx)
        grad = np.zeros(self.sim.n_theta)
        for op in reversed(res.record):
            if op[0] == "segment":
                _, rec, pos, idx, P = op
                lam = np.zeros(rec.x.shape)
                lam[pos] = w[idx]
                lam[-1] += v
                v, gp = rec.adjoint(lam)
                grad += gp @ P
            elif op[0] == "measure":
                v = v + w[op[1]]
            else:
                _, Rx, D, E, tau_theta = op
                grad += v @ D
                if E is not None:
                    grad += float(E @ v) * tau_theta
                v = Rx.T @ v
        return v, grad
