"""The PEtab objective: log-likelihood, chi2 and their gradient with respect to the estimated parameters.

For measurement m_i with simulation y_i, noise parameter sigma_i and transformation g (lin: v, log: ln v,
log10: log10 v), r_i = (g(m_i) - g(y_i)) / sigma_i and

    normal:   -log p_i = 1/2 log(2 pi sigma_i^2) + r_i^2 / 2 + J_i
    Laplace:  -log p_i = log(2 sigma_i) + |r_i| + J_i

with the Jacobian of the transformation J_i = 0 (lin), log m_i (log), log(m_i ln 10) (log10), as PEtab
defines them. llh = sum_i log p_i, chi2 = sum_i r_i^2. The gradient of llh with respect to theta comes
from dy_i/dtheta = dy/dx G(t_i) + dy/dp P_c + dy/dphi Phi_i (and the same for sigma), with G = dx/dtheta
from the compiled sensitivities (:mod:`symode.petab.simulate`) and dy/dx, dy/dp, dy/dphi from CasADi's
symbolic derivatives (:mod:`symode.petab.functions`); on a parameter's scale it is multiplied by
dtheta/dz = 1, theta or theta ln 10 (lin, log, log10).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from symode.petab.functions import ObservableFunction, observable_functions
from symode.petab.problem import PetabProblem, load_petab, scale_derivative
from symode.petab.simulate import ExperimentResult, Simulator, SolverOptions

LN10 = math.log(10.0)


@dataclass
class Evaluation:
    """The objective at one parameter point."""

    llh: float
    chi2: float
    n_measurements: int
    simulation: np.ndarray                 # y per measurement row (untransformed)
    sigma: np.ndarray                      # noise parameter per row
    residuals: np.ndarray                  # r = (g(m) - g(y)) / sigma per row
    gradient: np.ndarray | None = None     # d llh / d z (estimated parameters on their scales)
    residual_jacobian: np.ndarray | None = None   # dr/dz (rows x estimated)
    sigma_jacobian: np.ndarray | None = None      # dsigma/dz
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _Observed:
    """Per-row values and, when derivatives are wanted, their partial derivatives (rows x ...)."""

    y: np.ndarray
    sigma: np.ndarray
    d: dict[str, np.ndarray] | None = None    # dydx, dydp, dydphi, dsdx, dsdp, dsdphi per observable function


class PetabObjective:
    """A PEtab problem built for evaluation: the compiled model, the observable functions and a simulator.

    >>> obj = PetabObjective.from_yaml("problem.yaml")        # doctest: +SKIP
    >>> ev = obj.evaluate(gradient=True)                     # at the nominal values
    >>> ev.llh, dict(zip(obj.problem.estimated_ids, ev.gradient))
    """

    def __init__(self, problem: PetabProblem, model: Any = None, options: SolverOptions | None = None) -> None:
        from symode.solve.model import build_model

        t0 = time.perf_counter()
        self.problem = problem
        self.model = model if model is not None else build_model(adjoint_spec(problem.spec))
        t1 = time.perf_counter()
        self.simulator = Simulator(problem, self.model, options)
        self.functions: list[ObservableFunction] = observable_functions(problem)
        self.timings = {"compile": t1 - t0, "functions": time.perf_counter() - t1}
        n_rows = len(problem.measured)
        row_cond = [""] * n_rows
        for exp in problem.experiments:
            for r in exp.rows:
                row_cond[r] = exp.sim.id
        self.row_condition = row_cond
        self.transformation = np.empty(n_rows, dtype=object)
        self.laplace = np.zeros(n_rows, dtype=bool)
        for fn in self.functions:
            self.transformation[fn.rows] = fn.observable.transformation
            self.laplace[fn.rows] = fn.observable.distribution == "laplace"
        self.times = problem.measurements["time"].to_numpy(dtype=float)
        # per observable function: its rows grouped by condition, and the rows' phi mappings as matrices
        self._groups = [[(cid, np.nonzero(np.array([row_cond[r] == cid for r in fn.rows]))[0])
                         for cid in dict.fromkeys(row_cond[r] for r in fn.rows)] for fn in self.functions]
        self._phi_index = [np.array([problem.row_phi[r].index for r in fn.rows], dtype=int).reshape(len(fn.rows), -1)
                           for fn in self.functions]
        self._phi_value = [np.array([problem.row_phi[r].value for r in fn.rows], dtype=float).reshape(len(fn.rows), -1)
                           for fn in self.functions]

    @classmethod
    def from_yaml(cls, path: str | Path, *, validate: bool = True, options: SolverOptions | None = None
                  ) -> PetabObjective:
        """Load (:func:`symode.petab.problem.load_petab`) and build; ``timings['build']`` is the total."""
        t0 = time.perf_counter()
        problem = load_petab(path, validate=validate)
        t1 = time.perf_counter()
        obj = cls(problem, options=options)
        obj.timings["load"] = t1 - t0
        obj.timings["build"] = time.perf_counter() - t0
        return obj

    # -- pieces ------------------------------------------------------------------------------------------
    def simulate(self, theta: np.ndarray, mode: str) -> tuple[list[ExperimentResult], np.ndarray, np.ndarray | None]:
        """Every experiment (:meth:`Simulator.run` with ``mode``), and the states per measurement row (and
        with mode "forward" dx/dtheta per row)."""
        pr = self.problem
        n_rows = len(pr.measured)
        X = np.zeros((n_rows, self.simulator.nx))
        G = np.zeros((n_rows, self.simulator.nx, pr.n_theta)) if mode == "forward" else None
        cache: dict[str, Any] = {}
        results = []
        for exp in pr.experiments:
            res = self.simulator.run(exp, theta, mode, cache)
            results.append(res)
            finite = exp.time_index >= 0
            rows_f, rows_i = exp.rows[finite], exp.rows[~finite]
            X[rows_f] = res.x[exp.time_index[finite]]
            if len(rows_i):
                X[rows_i] = res.x_inf
            if G is not None:
                G[rows_f] = res.G[exp.time_index[finite]]  # type: ignore[index]
                if len(rows_i):
                    G[rows_i] = res.G_inf  # type: ignore[index]
        return results, X, G

    def observe(self, theta: np.ndarray, X: np.ndarray, derivatives: bool) -> _Observed:
        """y and sigma at every measurement row (and their partial derivatives)."""
        pr = self.problem
        n_rows = len(pr.measured)
        y, sigma = np.zeros(n_rows), np.zeros(n_rows)
        p_cond = {cid: c.p(theta) for cid, c in pr.conditions.items()}
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("dydx", "dydp", "dydphi", "dsdx", "dsdp", "dsdphi")}
        for k, fn in enumerate(self.functions):
            rows = fn.rows
            t = np.where(np.isfinite(self.times[rows]), self.times[rows], 0.0)[None, :]
            Pm = np.column_stack([p_cond[self.row_condition[r]] for r in rows])
            idx = self._phi_index[k]
            phi = np.where(idx >= 0, theta[np.maximum(idx, 0)], self._phi_value[k]).T
            args = [t, X[rows].T, Pm, phi]
            if not derivatives:
                yv, sv = fn.values(*args)
                y[rows], sigma[rows] = np.asarray(yv).ravel(), np.asarray(sv).ravel()
                continue
            out = [np.asarray(v) for v in fn.derivatives(*args)]
            y[rows], sigma[rows] = out[0].ravel(), out[1].ravel()
            for name, v in zip(parts, out[2:], strict=True):
                parts[name].append(_split(v, len(rows)))
        return _Observed(y, sigma, parts if derivatives else None)

    def _theta_rows(self, k: int, dp: np.ndarray, dphi: np.ndarray, theta_size: int) -> np.ndarray:
        """(rows, n_theta): dp @ P_c per row (condition mapping) plus dphi scattered by the rows' phi maps."""
        pr = self.problem
        fn = self.functions[k]
        out = np.zeros((len(fn.rows), theta_size))
        for cid, sel in self._groups[k]:
            out[sel] += dp[sel] @ self.simulator.P(pr.conditions[cid])
        if fn.n_phi:
            idx = self._phi_index[k]
            rr, cc = np.nonzero(idx >= 0)
            np.add.at(out, (rr, idx[rr, cc]), dphi[rr, cc])
        return out

    # -- the objective -------------------------------------------------------------------------------------
    def evaluate(self, theta: np.ndarray | None = None, *, gradient: bool = False, jacobian: bool = False,
                 method: str = "adjoint") -> Evaluation:
        """llh, chi2 and simulations at theta (linear scale; default nominal). ``gradient``: d llh/dz on the
        estimated parameters' scales, by ``method`` "adjoint" (compiled discrete adjoint through the
        trajectories; forward sensitivities for steady states) or "forward" (forward sensitivities);
        ``jacobian``: dr/dz and dsigma/dz (forward sensitivities)."""
        if method not in ("adjoint", "forward"):
            raise ValueError(f"unknown gradient method {method!r}")
        pr = self.problem
        theta = pr.nominal.copy() if theta is None else np.asarray(theta, dtype=float)
        t0 = time.perf_counter()
        mode = "forward" if jacobian or (gradient and method == "forward") else ("adjoint" if gradient else "none")
        results, X, G = self.simulate(theta, mode)
        obs = self.observe(theta, X, mode != "none")
        m, y, s = pr.measured, obs.y, obs.sigma
        g_m, g_y = self._transform(m), self._transform(y)
        r = (g_m - g_y) / s
        jac_m = np.zeros(len(m))
        log_rows = self.transformation == "log"
        log10_rows = self.transformation == "log10"
        with np.errstate(divide="ignore", invalid="ignore"):
            jac_m[log_rows] = np.log(m[log_rows])
            jac_m[log10_rows] = np.log(m[log10_rows] * LN10)
            nllh = np.where(self.laplace, np.log(2 * s) + np.abs(r),
                            0.5 * np.log(2 * np.pi * s**2) + 0.5 * r**2) + jac_m
        ev = Evaluation(llh=float(-np.sum(nllh)), chi2=float(np.sum(r**2)), n_measurements=len(m), simulation=y,
                        sigma=s, residuals=r)
        if mode != "none":
            assert obs.d is not None
            with np.errstate(divide="ignore", invalid="ignore"):
                dg_y = self._transform_derivative(y)
                dn_dr = np.where(self.laplace, np.sign(r), r)
                a = -dn_dr * dg_y / s                  # d nllh / dy
                b = 1.0 / s - dn_dr * r / s            # d nllh / dsigma
            dz = scale_derivative(theta, pr.scales)[pr.estimated]
            if mode == "forward":
                assert G is not None
                Dy, Ds = self._row_jacobians(obs, G, pr.n_theta)
                Dy, Ds = Dy[:, pr.estimated] * dz, Ds[:, pr.estimated] * dz
                if gradient:
                    ev.gradient = -(a @ Dy + b @ Ds)
                if jacobian:
                    with np.errstate(divide="ignore", invalid="ignore"):
                        ev.residual_jacobian = -(dg_y / s)[:, None] * Dy - (r / s)[:, None] * Ds
                    ev.sigma_jacobian = Ds
            else:
                ev.gradient = -self._adjoint_gradient(obs, results, a, b)[pr.estimated] * dz
        ev.timings = {"gradient" if mode != "none" else "simulate": time.perf_counter() - t0}
        return ev

    def _row_jacobians(self, obs: _Observed, G: np.ndarray, n_theta: int) -> tuple[np.ndarray, np.ndarray]:
        """dy/dtheta and dsigma/dtheta per row (forward mode)."""
        assert obs.d is not None
        n_rows = len(obs.y)
        Dy, Ds = np.zeros((n_rows, n_theta)), np.zeros((n_rows, n_theta))
        for k, fn in enumerate(self.functions):
            rows = fn.rows
            d = {name: v[k] for name, v in obs.d.items()}
            Dy[rows] = (np.einsum("ri,rij->rj", d["dydx"], G[rows])
                        + self._theta_rows(k, d["dydp"], d["dydphi"], n_theta))
            Ds[rows] = (np.einsum("ri,rij->rj", d["dsdx"], G[rows])
                        + self._theta_rows(k, d["dsdp"], d["dsdphi"], n_theta))
        return Dy, Ds

    def _adjoint_gradient(self, obs: _Observed, results: list[ExperimentResult], a: np.ndarray,
                          b: np.ndarray) -> np.ndarray:
        """d nllh/dtheta: direct terms plus, per experiment, the adjoint of sum_i w_i . x(t_i) with
        w_i = a_i dy_i/dx + b_i dsigma_i/dx (and w . G for steady-state rows)."""
        assert obs.d is not None
        pr = self.problem
        n_theta, nx = pr.n_theta, self.simulator.nx
        grad = np.zeros(n_theta)
        Wx = np.zeros((len(obs.y), nx))
        for k, fn in enumerate(self.functions):
            rows = fn.rows
            d = {name: v[k] for name, v in obs.d.items()}
            ak, bk = a[rows][:, None], b[rows][:, None]
            Wx[rows] = ak * d["dydx"] + bk * d["dsdx"]
            grad += self._theta_rows(k, ak * d["dydp"] + bk * d["dsdp"], ak * d["dydphi"] + bk * d["dsdphi"],
                                     n_theta).sum(axis=0)
        for exp, res in zip(pr.experiments, results, strict=True):
            finite = exp.time_index >= 0
            W = np.zeros((len(exp.times), nx))
            np.add.at(W, exp.time_index[finite], Wx[exp.rows[finite]])
            if len(exp.times):
                gx0, gp = self.simulator.adjoint(res, W, exp.label)
                assert res.G0 is not None
                grad += gx0 @ res.G0 + gp @ self.simulator.P(exp.sim)
            if np.any(~finite):
                assert res.G_inf is not None
                grad += Wx[exp.rows[~finite]].sum(axis=0) @ res.G_inf
        return grad

    def _transform(self, v: np.ndarray) -> np.ndarray:
        out = v.astype(float).copy()
        with np.errstate(divide="ignore", invalid="ignore"):
            sel = self.transformation == "log"
            out[sel] = np.log(v[sel])
            sel = self.transformation == "log10"
            out[sel] = np.log10(v[sel])
        return out

    def _transform_derivative(self, v: np.ndarray) -> np.ndarray:
        out = np.ones(len(v))
        with np.errstate(divide="ignore", invalid="ignore"):
            sel = self.transformation == "log"
            out[sel] = 1.0 / v[sel]
            sel = self.transformation == "log10"
            out[sel] = 1.0 / (v[sel] * LN10)
        return out

    # -- outputs -----------------------------------------------------------------------------------------
    def simulation_table(self, ev: Evaluation) -> Any:
        """The measurement table with its ``measurement`` column replaced by ``simulation`` (a PEtab
        simulation table)."""
        df = self.problem.measurements.copy()
        df["measurement"] = ev.simulation
        return df.rename(columns={"measurement": "simulation"})


def _split(v: np.ndarray, n: int) -> np.ndarray:
    """A mapped Jacobian row (1, n*m), the rows' blocks side by side -> (n, m)."""
    if v.size == 0:
        return np.zeros((n, 0))
    return v.reshape(n, -1)


def adjoint_spec(spec: Any) -> Any:
    """The spec with every state as an observable (h = x), which the compiled adjoint needs
    (see :meth:`symode.petab.simulate.Simulator.adjoint`)."""
    from symode.spec import spec_from_dict

    d = spec.to_dict()
    d["observables"] = {name: {"expr": name, "noise": {"absolute": 1.0}} for name in spec.states}
    return spec_from_dict(d, file=f"<{spec.name}>")
