"""Multiple shooting: the time span cut into segments, each integrated from its own initial state.

Unknowns w = (z, s_1, ..., s_K): the single-shooting z (parameters, x0 = the first segment's start)
followed by every later segment's start state s_k (log of the state for states bounded below by 0,
the state itself otherwise). Residuals: the data residuals of each segment (samples in [t_k, t_k+1)
belong to segment k) and continuity residuals c = (log x_end - log x_next) / tol (or
(x_end - x_next) / (tol * scale) for linear states), so the optimiser may start from a trajectory that
follows the data and closes the gaps as it converges."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np

from symode.errors import SolverError
from symode.fit.problem import FAIL_RESIDUAL, FitProblem
from symode.solve.sensitivity import Problem, loss_and_gradient


class MultipleShooting:
    """Segments with their own initial states (all states, transformed like x0) and continuity residuals
    (log-state mismatch / ``tol`` for positive states, mismatch / (tol * scale) otherwise).

    Unknowns: the single-shooting z (parameters, x0 = the first segment's start) followed by every later
    segment's start state. Data residuals of samples in [t_k, t_k+1) belong to segment k."""

    def __init__(self, fp: FitProblem, n_segments: int, *, tol: float = 1e-3) -> None:
        self.fp, self.tol = fp, tol
        m = fp.model
        self.segments: list[list[tuple[int, int, Problem]]] = []   # per experiment: (start, end, problem)
        for e, prob in enumerate(fp.problems):
            nt = len(prob.times)
            k = max(1, min(n_segments, (nt - 1) // 8))
            edges = np.unique(np.linspace(0, nt - 1, k + 1).round().astype(int))
            segs = []
            for a, b in itertools.pairwise(edges):
                sub = Problem(m, fp.datasets[e], window=(prob.times[a], prob.times[b]))
                if b != nt - 1:    # the end sample belongs to the next segment
                    sub.data = sub.data.copy()
                    sub.data[-1] = np.nan
                    sub.sigma = sub.sigma.copy()
                    sub.sigma[-1] = 1.0
                    sub.observed = np.isfinite(sub.data)
                    sub.n_observations = int(sub.observed.sum())
                segs.append((int(a), int(b), sub))
            self.segments.append(segs)
        spec = m.spec
        # segment starts of states bounded below by >= 0 are log-transformed (like positive x0)
        self.state_scale = ["log" if spec.states[s].lower is not None and spec.states[s].lower >= 0 else "lin"
                            for s in m.states]
        self.n_base = len(fp.unknowns)
        self.n_extra = sum(len(s) - 1 for s in self.segments) * fp.nx
        ref = np.array([max(abs(v), 1e-6) for v in fp.x0_base[0]])
        self.lin_scale = ref

    def _to_s(self, x: np.ndarray) -> np.ndarray:
        return np.array([math.log(max(v, 1e-12)) if sc == "log" else v
                         for v, sc in zip(x, self.state_scale, strict=True)])

    def _from_s(self, s: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):     # an overflow is an infinite state: a failed trial point
            return np.array([np.exp(v) if sc == "log" else v for v, sc in zip(s, self.state_scale, strict=True)])

    def initial(self, z: np.ndarray) -> np.ndarray:
        """Segment starts from the data (observed states) and a simulation at z (hidden ones)."""
        fp = self.fp
        p, x0s = fp.vectors(z)
        extra = []
        for e, segs in enumerate(self.segments):
            prob = fp.problems[e]
            res = fp.model.backend.integrate(prob.times, x0s[e], p, prob.U, rtol=1e-6, atol=1e-8, method="auto")
            X = np.array(res.x, dtype=float)
            if res.status != 0 or not np.all(np.isfinite(X)):
                X = np.tile(x0s[e], (len(prob.times), 1))
            for o, name in enumerate(fp.model.observables):
                if name in fp.model.states:
                    i = fp.model.states.index(name)
                    col = prob.data[:, o]
                    for a, _, _ in segs[1:]:
                        win = col[max(0, a - 2): a + 3]
                        win = win[np.isfinite(win)]
                        if win.size:
                            X[a, i] = float(np.median(win))
            for a, _, _ in segs[1:]:
                lo = np.array([fp.model.spec.states[s].lower if fp.model.spec.states[s].lower is not None
                               else -np.inf for s in fp.model.states])
                extra.append(self._to_s(np.maximum(X[a], np.where(np.isfinite(lo), np.maximum(lo, 1e-9), X[a]))))
        return np.concatenate([z, *extra]) if extra else z.copy()

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lb = np.concatenate([self.fp.lb, np.full(self.n_extra, -np.inf)])
        ub = np.concatenate([self.fp.ub, np.full(self.n_extra, np.inf)])
        for k in range(self.n_extra):
            sc = self.state_scale[k % self.fp.nx]
            if sc == "log":
                lb[self.n_base + k], ub[self.n_base + k] = -40.0, 40.0
        return lb, ub

    def _eval(self, w: np.ndarray, jacobian: bool) -> tuple[np.ndarray, np.ndarray | None]:
        fp = self.fp
        z = w[: self.n_base]
        p, x0s = fp.vectors(z)
        d = fp.dtheta_dz(z)
        nx = fp.nx
        rs, Js = [], []
        off = self.n_base
        pcols = [nx + j for j in fp.p_cols]
        for e, segs in enumerate(self.segments):
            for k, (_a, _b, sub) in enumerate(segs):
                if k == 0:
                    x0 = x0s[e]
                    own = None
                else:
                    sv = w[off + (k - 1) * nx: off + k * nx]
                    x0 = self._from_s(sv)
                    own = off + (k - 1) * nx
                nxt = off + k * nx if k + 1 < len(segs) else None
                fp.budget.check()
                t0, c0 = time.perf_counter(), time.process_time()
                if not jacobian:
                    res = fp.model.backend.integrate(sub.times, x0, p, sub.U, rtol=fp.rtol, atol=fp.atol,
                                                     method="auto")
                    fp._record("residuals", t0, c0, res.stats)
                    if res.status != 0 or not np.all(np.isfinite(res.x)):
                        raise SolverError("segment solve failed")
                    _, r = fp.model.backend.residual_loss(sub.times, res.x, p, sub.U, sub.data, sub.sigma)
                    rs.append(r.reshape(-1)[sub.observed.reshape(-1)])
                    xend = res.x[-1]
                else:
                    g = loss_and_gradient(sub, params=p, x0=x0, method=fp.sens_method, jacobian=True,
                                          rtol=fp.rtol, atol=fp.atol, solver=fp.sens_solver)
                    res, S = fp.model.backend.sensitivities(sub.times, x0, p, sub.U, rtol=fp.rtol, atol=fp.atol,
                                                            method="explicit")
                    fp._record("sensitivities", t0, c0, g.stats)
                    if res.status != 0:
                        raise SolverError("segment sensitivities failed")
                    xend, Send = res.x[-1], S[-1]
                    rs.append(g.residuals)
                    Jd = np.zeros((len(g.residuals), len(w)))
                    Jd[:, fp.p_pos] = g.residual_jacobian[:, pcols] * d[fp.p_pos]
                    if own is None:
                        for kk, i in fp.x_pos[e]:
                            Jd[:, kk] = g.residual_jacobian[:, i] * d[kk]
                    else:
                        Jd[:, own: own + nx] = g.residual_jacobian[:, :nx] * self._ds(x0)
                    Js.append(Jd)
                if nxt is not None:
                    snext = w[nxt: nxt + nx]
                    xn = self._from_s(snext)
                    c, dc_dx = self._continuity(xend, xn)
                    rs.append(c)
                    if jacobian:
                        Jc = np.zeros((nx, len(w)))
                        Jc[:, fp.p_pos] = (dc_dx[:, None] * Send[:, pcols]) * d[fp.p_pos]
                        if own is None:
                            for kk, i in fp.x_pos[e]:
                                Jc[:, kk] = dc_dx * Send[:, i] * d[kk]
                        else:
                            Jc[:, own: own + nx] = dc_dx[:, None] * Send[:, :nx] * self._ds(x0)[None, :]
                        Jc[np.arange(nx), nxt + np.arange(nx)] = -self._dcn(xn)
                        Js.append(Jc)
            off += (len(segs) - 1) * nx
        gz, G = fp.gauge_rows(z)
        rs.append(gz)
        if jacobian:
            Gw = np.zeros((G.shape[0], len(w)))
            Gw[:, : self.n_base] = G
            Js.append(Gw)
        return np.concatenate(rs), (np.vstack(Js) if jacobian else None)

    def _ds(self, x: np.ndarray) -> np.ndarray:
        return np.array([v if sc == "log" else 1.0 for v, sc in zip(x, self.state_scale, strict=True)])

    def _continuity(self, xend: np.ndarray, xn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = np.empty(len(xn))
        dc = np.empty(len(xn))
        for i, sc in enumerate(self.state_scale):
            if sc == "log":
                xe = max(xend[i], 1e-12)
                c[i] = (math.log(xe) - math.log(xn[i])) / self.tol
                dc[i] = 1.0 / (xe * self.tol) if xend[i] > 1e-12 else 0.0
            else:
                c[i] = (xend[i] - xn[i]) / (self.tol * self.lin_scale[i])
                dc[i] = 1.0 / (self.tol * self.lin_scale[i])
        return c, dc

    def _dcn(self, xn: np.ndarray) -> np.ndarray:
        # d c / d s_next: log states: -1/tol (s = log x); linear: -1/(tol*scale)
        return np.array([1.0 / self.tol if sc == "log" else 1.0 / (self.tol * self.lin_scale[i])
                         for i, sc in enumerate(self.state_scale)])

    def residuals(self, w: np.ndarray) -> np.ndarray:
        try:
            r, _ = self._eval(w, False)
        except SolverError:
            return np.full(self._n_res(), FAIL_RESIDUAL)
        return r if np.all(np.isfinite(r)) else np.full(len(r), FAIL_RESIDUAL)

    def _n_res(self) -> int:
        n = sum(sub.n_observations for segs in self.segments for _, _, sub in segs)
        n += sum(len(s) - 1 for s in self.segments) * self.fp.nx
        return n + (0 if self.fp.gauge is None else self.fp.gauge.shape[1])

    def jacobian(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r, J = self._eval(w, True)
        return r, J  # type: ignore[return-value]
