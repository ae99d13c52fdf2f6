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
from symode.petab.simulate import SolverOptions, Simulator

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
class _Rows:
    """Per-row quantities: values and derivatives with respect to theta (linear scale)."""

    y: np.ndarray
    sigma: np.ndarray
    Dy: np.ndarray | None
    Dsigma: np.ndarray | None


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
        self.model = model if model is not None else build_model(problem.spec)
        t1 = time.perf_counter()
        self.simulator = Simulator(problem, self.model, options)
        self.functions: list[ObservableFunction] = observable_functions(problem)
        self.timings = {"compile": t1 - t0, "functions": time.perf_counter() - t1}
        n_rows = len(problem.measured)
        self._row_cond = [""] * n_rows
        for exp in problem.experiments:
            for r in exp.rows:
                self._row_cond[r] = exp.sim.id
        self._scale_deriv_cache: tuple[bytes, np.ndarray] | None = None
        tr = np.array([problem.observables[o.observable.id].transformation for o in self.functions for _ in o.rows])
        order = np.concatenate([o.rows for o in self.functions]) if self.functions else np.zeros(0, dtype=int)
        self.transformation = np.empty(n_rows, dtype=object)
        self.transformation[order] = tr
        dist = np.array([o.observable.distribution for o in self.functions for _ in o.rows])
        self.laplace = np.zeros(n_rows, dtype=bool)
        self.laplace[order] = dist == "laplace"

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

    # -- the core ----------------------------------------------------------------------------------------
    def rows(self, theta: np.ndarray, sens: bool) -> _Rows:
        """Simulate every experiment and evaluate every observable at every measurement row."""
        pr = self.problem
        n_rows, nx, n_theta = len(pr.measured), self.simulator.nx, pr.n_theta
        X = np.zeros((n_rows, nx))
        G = np.zeros((n_rows, nx, n_theta)) if sens else None
        T = pr.measurements["time"].to_numpy(dtype=float)
        cache: dict[str, Any] = {}
        for exp in pr.experiments:
            res = self.simulator.run(exp, theta, sens, cache)
            finite = exp.time_index >= 0
            rows_f, rows_i = exp.rows[finite], exp.rows[~finite]
            X[rows_f] = res.x[exp.time_index[finite]]
            if len(rows_i):
                X[rows_i] = res.x_inf
            if sens:
                G[rows_f] = res.G[exp.time_index[finite]]  # type: ignore[index]
                if len(rows_i):
                    G[rows_i] = res.G_inf  # type: ignore[index]
        p_cond = {cid: c.p(theta) for cid, c in pr.conditions.items()}
        y = np.zeros(n_rows)
        sigma = np.zeros(n_rows)
        Dy = np.zeros((n_rows, n_theta)) if sens else None
        Ds = np.zeros((n_rows, n_theta)) if sens else None
        for fn in self.functions:
            rows = fn.rows
            t = np.where(np.isfinite(T[rows]), T[rows], 0.0)[None, :]
            Pm = np.column_stack([p_cond[self._row_cond[r]] for r in rows])
            phi = np.column_stack([pr.row_phi[r](theta) for r in rows]) if fn.n_phi else np.zeros((0, len(rows)))
            args = [t, X[rows].T, Pm, phi]
            if not sens:
                yv, sv = fn.values(*args)
                y[rows], sigma[rows] = np.array(yv).ravel(), np.array(sv).ravel()
                continue
            out = [np.array(v) for v in fn.derivatives(*args)]
            y[rows], sigma[rows] = out[0].ravel(), out[1].ravel()
            n = len(rows)
            dydx, dydp, dydphi, dsdx, dsdp, dsdphi = (_split(out[k], n) for k in range(2, 8))
            for D, dx, dp, dphi in ((Dy, dydx, dydp, dydphi), (Ds, dsdx, dsdp, dsdphi)):
                D[rows] += np.einsum("ri,rij->rj", dx, G[rows])  # type: ignore[index]
                for cid in set(self._row_cond[r] for r in rows):
                    sel = np.array([self._row_cond[r] == cid for r in rows])
                    D[rows[sel]] += dp[sel] @ self.simulator.P(pr.conditions[cid])  # type: ignore[index]
                if fn.n_phi:
                    for j, r in enumerate(rows):
                        m = pr.row_phi[r]
                        ok = m.index >= 0
                        np.add.at(D[r], m.index[ok], dphi[j, ok])  # type: ignore[index]
        return _Rows(y, sigma, Dy, Ds)

    def evaluate(self, theta: np.ndarray | None = None, *, gradient: bool = False,
                 jacobian: bool = False) -> Evaluation:
        """llh, chi2 and simulations at theta (linear scale; default nominal); with ``gradient`` also
        d llh/dz on the estimated parameters' scales, with ``jacobian`` dr/dz and dsigma/dz."""
        pr = self.problem
        theta = pr.nominal.copy() if theta is None else np.asarray(theta, dtype=float)
        t0 = time.perf_counter()
        sens = gradient or jacobian
        rows = self.rows(theta, sens)
        m, y, s = pr.measured, rows.y, rows.sigma
        g_m, g_y, dg_y = self._transform(m), self._transform(y), self._transform_derivative(y)
        r = (g_m - g_y) / s
        jac_m = np.zeros(len(m))
        log_rows = self.transformation == "log"
        log10_rows = self.transformation == "log10"
        with np.errstate(divide="ignore", invalid="ignore"):
            jac_m[log_rows] = np.log(m[log_rows])
            jac_m[log10_rows] = np.log(m[log10_rows] * LN10)
            nllh = np.where(self.laplace, np.log(2 * s) + np.abs(r), 0.5 * np.log(2 * np.pi * s**2) + 0.5 * r**2) + jac_m
        ev = Evaluation(llh=float(-np.sum(nllh)), chi2=float(np.sum(r**2)), n_measurements=len(m), simulation=y,
                        sigma=s, residuals=r)
        if sens:
            assert rows.Dy is not None and rows.Dsigma is not None
            dz = scale_derivative(theta, pr.scales)[pr.estimated]
            Dy = rows.Dy[:, pr.estimated] * dz
            Ds = rows.Dsigma[:, pr.estimated] * dz
            with np.errstate(divide="ignore", invalid="ignore"):
                Dr = -(dg_y / s)[:, None] * Dy - (r / s)[:, None] * Ds
            if gradient:
                # d nllh/dr = r (normal) or sign(r) (Laplace); d nllh/dsigma (explicit) = 1/sigma
                dn_dr = np.where(self.laplace, np.sign(r), r)
                ev.gradient = -(dn_dr @ Dr + (1.0 / s) @ Ds)
            if jacobian:
                ev.residual_jacobian = Dr
                ev.sigma_jacobian = Ds
        ev.timings = {"gradient" if sens else "simulate": time.perf_counter() - t0}
        return ev

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
        """The measurement table with a ``simulation`` column (PEtab simulation table)."""
        df = self.problem.measurements.copy()
        df = df.drop(columns=["measurement"])
        df.insert(min(4, len(df.columns)), "simulation", ev.simulation)
        return df


def _split(v: np.ndarray, n: int) -> np.ndarray:
    """A mapped Jacobian row (1, n*m), the rows' blocks side by side -> (n, m)."""
    if v.size == 0:
        return np.zeros((n, 0))
    return v.reshape(n, -1)
