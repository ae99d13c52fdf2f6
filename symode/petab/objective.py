"""The PEtab objective: log-likelihood, chi2 and their gradient with respect to the estimated parameters.

For measurement m_i with simulation y_i, noise parameter sigma_i and transformation g (lin: v, log: ln v,
log10: log10 v), r_i = (g(m_i) - g(y_i)) / sigma_i and

    normal:   -log p_i = 1/2 log(2 pi sigma_i^2) + r_i^2 / 2 + J_i
    Laplace:  -log p_i = log(2 sigma_i) + |r_i| + J_i

with the Jacobian of the transformation J_i = 0 (lin), log m_i (log), log(m_i ln 10) (log10), as PEtab
defines them. llh = sum_i log p_i, chi2 = sum_i r_i^2. With a_i = d(-log p_i)/dy_i and
b_i = d(-log p_i)/dsigma_i, the gradient of -llh with respect to theta is

    sum_i a_i dy_i/dtheta + b_i dsigma_i/dtheta,   dy_i/dtheta = dy/dx_i G(t_i) + (dy/dtheta)_direct

(the same for sigma), with G = dx/dtheta. The rows' -log p_i, a_i, b_i and the reverse product below are
one CasADi function of (X, theta) over all rows (:mod:`symode.petab.likelihood`, on the observation model
of :mod:`symode.petab.observation`):

- adjoint (default): the weights w_i = a_i dy/dx_i + b_i dsigma/dx_i are taken back through the recorded
  solves in reverse mode (:meth:`symode.petab.simulate.Simulator.gradient`), never forming G;
- forward: G from the compiled discrete forward sensitivities (also gives the residual Jacobian).

On a parameter's scale the gradient is multiplied by dtheta/dz = 1, theta or theta ln 10 (lin, log, log10).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from symode.petab.likelihood import LogLikelihood
from symode.petab.observation import ObservationModel
from symode.petab.periods import Experiment, shared_simulations
from symode.petab.problem import PetabProblem, load_petab
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
    #: with prior distributions (PEtab v2, :mod:`symode.petab.priors`): log pi_k per estimated parameter,
    #: and with ``gradient`` d sum_k log pi_k / d z
    log_prior_terms: dict[str, float] | None = None
    log_prior_gradient: np.ndarray | None = None

    @property
    def log_prior(self) -> float | None:
        """Sum of the log-priors (None without priors)."""
        return None if self.log_prior_terms is None else float(sum(self.log_prior_terms.values()))

    @property
    def unnorm_log_posterior(self) -> float | None:
        """llh + log-prior (None without priors)."""
        lp = self.log_prior
        return None if lp is None else self.llh + lp


class PetabObjective:
    """A PEtab problem built for evaluation: the compiled model, the observation model and a simulator.

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
        self.experiments = shared_simulations(problem.experiments)
        n_rows = len(problem.measured)
        row_cond = [""] * n_rows
        for exp in problem.experiments:
            for r, cid in zip(exp.rows, exp.row_conditions(), strict=True):   # the period's condition
                row_cond[r] = cid
        self.row_condition = row_cond
        self.times = problem.measurements["time"].to_numpy(dtype=float)
        self.observation = ObservationModel(problem, row_cond, self.times)
        self.timings = {"compile": t1 - t0, "functions": time.perf_counter() - t1}
        observables = list(problem.observables.values())
        self.transformation = np.array([observables[k].transformation for k in problem.row_observable], dtype=object)
        self.laplace = np.array([observables[k].distribution == "laplace" for k in problem.row_observable], dtype=bool)
        self.likelihood = LogLikelihood(self.observation, problem.measured, self.transformation, self.laplace)
        # d theta_i / d z_i of the estimated parameters (z: theta on its scale) = lin + theta_i * per
        est_scales = np.array(problem.scales, dtype=object)[problem.estimated]
        self._dz_lin = (est_scales == "lin").astype(float)
        self._dz_per = np.where(est_scales == "log", 1.0, np.where(est_scales == "log10", LN10, 0.0))

    @property
    def experiments(self) -> list[Experiment]:
        """The simulations run per evaluation: the problem's experiments, those that pose the same initial
        value problem merged (:func:`symode.petab.periods.shared_simulations`)."""
        return self._experiments

    @experiments.setter
    def experiments(self, value: list[Experiment]) -> None:
        self._experiments = value
        # per experiment: its rows with finite times, their time indices, its rows at t = inf
        self._rows = [(e.rows[e.time_index >= 0], e.time_index[e.time_index >= 0], e.rows[e.time_index < 0])
                      for e in value]
        self._time_sums = [TimeSum(rows_f, index_f, len(e.times))
                           for e, (rows_f, index_f, _) in zip(value, self._rows, strict=True)]

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
        for exp, (rows_f, index_f, rows_i) in zip(self.experiments, self._rows, strict=True):
            res = self.simulator.run(exp, theta, mode, cache)
            results.append(res)
            X[rows_f] = res.x[index_f]
            if len(rows_i):
                X[rows_i] = res.x_inf
            if G is not None:
                G[rows_f] = res.G[index_f]  # type: ignore[index]
                if len(rows_i):
                    G[rows_i] = res.G_inf  # type: ignore[index]
        return results, X, G

    # -- the objective -------------------------------------------------------------------------------------
    def evaluate(self, theta: np.ndarray | None = None, *, gradient: bool = False, jacobian: bool = False,
                 method: str = "adjoint") -> Evaluation:
        """llh, chi2 and simulations at theta (linear scale; default nominal). ``gradient``: d llh/dz on the
        estimated parameters' scales, by ``method`` "adjoint" (compiled discrete adjoint through the
        recorded solves, steady states included) or "forward" (forward sensitivities); ``jacobian``: dr/dz
        and dsigma/dz (forward sensitivities)."""
        if method not in ("adjoint", "forward"):
            raise ValueError(f"unknown gradient method {method!r}")
        pr = self.problem
        theta = pr.nominal.copy() if theta is None else np.asarray(theta, dtype=float)
        t0 = time.perf_counter()
        mode = "forward" if jacobian or (gradient and method == "forward") else ("adjoint" if gradient else "none")
        results, X, G = self.simulate(theta, mode)
        if mode == "adjoint":
            y, s, r, nllh, a, b, dr_dy, Wx, g_direct = self.likelihood.reverse(X, theta)
        else:
            y, s, r, nllh, a, b, dr_dy = self.likelihood.rows(X, theta)
        ev = Evaluation(llh=float(-nllh.sum()), chi2=float(r @ r), n_measurements=len(y), simulation=y,
                        sigma=s, residuals=r)
        if mode != "none":
            dz = self._dz_lin + theta[pr.estimated] * self._dz_per
            if mode == "forward":
                assert G is not None
                dydx, dsdx, dydth, dsdth = self.observation.jacobian(X, theta)
                Dy = (np.einsum("ri,rij->rj", dydx, G) + dydth)[:, pr.estimated] * dz
                Ds = (np.einsum("ri,rij->rj", dsdx, G) + dsdth)[:, pr.estimated] * dz
                if gradient:
                    ev.gradient = -(a @ Dy + b @ Ds)
                if jacobian:
                    with np.errstate(divide="ignore", invalid="ignore"):
                        ev.residual_jacobian = dr_dy[:, None] * Dy - (r / s)[:, None] * Ds
                    ev.sigma_jacobian = Ds
            else:
                ev.gradient = -self._adjoint_gradient(theta, results, Wx, g_direct)[pr.estimated] * dz
        if pr.priors:
            ev.log_prior_terms = pr.priors.terms(theta)
            if gradient:   # mode != "none": dz is the gradient's
                ev.log_prior_gradient = pr.priors.gradient(theta)[pr.estimated] * dz
        ev.timings = {"gradient" if mode != "none" else "simulate": time.perf_counter() - t0}
        return ev

    def _adjoint_gradient(self, theta: np.ndarray, results: list[ExperimentResult], Wx: np.ndarray,
                          grad: np.ndarray) -> np.ndarray:
        """d nllh/dtheta = sum_i a_i dy_i/dtheta + b_i dsigma_i/dtheta: the direct terms ``grad`` and the weights
        w_i = a_i dy_i/dx + b_i dsigma_i/dx on the states (``Wx``, :meth:`LogLikelihood.reverse`), taken back
        through the solves by :meth:`Simulator.gradient`."""
        nx = self.simulator.nx
        W = [time_sum(Wx) for time_sum in self._time_sums]
        W_inf = [Wx[rows_i].sum(axis=0) if len(rows_i) else np.zeros(nx) for _, _, rows_i in self._rows]
        return grad + self.simulator.gradient(self.experiments, results, theta, W, W_inf)

    # -- outputs -----------------------------------------------------------------------------------------
    def simulation_table(self, ev: Evaluation) -> Any:
        """The measurement table with its ``measurement`` column replaced by ``simulation`` (a PEtab
        simulation table)."""
        df = self.problem.measurements.copy()
        df["measurement"] = ev.simulation
        return df.rename(columns={"measurement": "simulation"})


class TimeSum:
    """The weights of an experiment's measurement rows summed per measurement time:
    w[t] = sum of W[r] over its rows r at time index t. ``np.add.at``'s sums (up to the order of the
    additions) by one ``np.add.reduceat`` over the rows sorted by time, a tenth of its cost; a plain
    assignment when no two rows share a time."""

    def __init__(self, rows: np.ndarray, time_index: np.ndarray, n_times: int) -> None:
        order = np.argsort(time_index, kind="stable")
        self.rows, index = rows[order], time_index[order]
        self.starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]]) if len(index) else np.zeros(0, int)
        self.times = index[self.starts]
        self.distinct = len(self.starts) == len(index)
        self.n_times = n_times

    def __call__(self, W: np.ndarray) -> np.ndarray:
        """(n_times, W.shape[1]) from the row weights ``W`` (all rows of the problem)."""
        w = np.zeros((self.n_times, W.shape[1]))
        if len(self.rows):
            v = W[self.rows]
            w[self.times] = v if self.distinct else np.add.reduceat(v, self.starts, axis=0)
        return w


def adjoint_spec(spec: Any) -> Any:
    """The spec with every state as an observable (h = x): the compiled model's own loss and gradients
    (:mod:`symode.solve.sensitivity`) then work on the states (the PEtab observables are evaluated by
    :mod:`symode.petab.observation`)."""
    from symode.spec import spec_from_dict

    d = spec.to_dict()
    d["observables"] = {name: {"expr": name, "noise": {"absolute": 1.0}} for name in spec.states}
    return spec_from_dict(d, file=f"<{spec.name}>")
