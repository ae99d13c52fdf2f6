"""The observation model of a PEtab problem: y and sigma of every measurement row as one CasADi function.

Row i measures observable k_i at time t_i in simulation condition c_i:

    y_i = h_k(t_i, x_i, p_c(theta), phi_i(theta)),    sigma_i = s_k(t_i, x_i, p_c(theta), phi_i(theta))

with x_i the states at that row (the columns of X, nx x rows), p_c(theta) the condition's model parameters
and phi_i(theta) the row's observable and noise parameters (entries of theta or constants,
:class:`symode.petab.problem.Mapping`). All rows are one SX expression of (X, theta), built once, so that
one call evaluates every row: the log-likelihood (:mod:`symode.petab.likelihood`) is built on ``y`` and
``sigma``, and CasADi's AD gives ``jacobian``: dy_i/dx_i and dsigma_i/dx_i (rows x nx), dy/dtheta and
dsigma/dtheta (rows x n_theta) (forward sensitivities and the residual Jacobian).
"""

from __future__ import annotations

from typing import Any

import casadi as ca
import numpy as np

from symode.codegen.translate import to_casadi
from symode.petab.functions import BufferedFunction, model_symbols
from symode.petab.problem import Mapping, PetabProblem


def mapping_sx(m: Mapping, theta: Any) -> Any:
    """The vector of a :class:`Mapping` as SX: theta entries or constants."""
    values = [theta[int(i)] if i >= 0 else ca.SX(float(v)) for i, v in zip(m.index, m.value, strict=True)]
    for row, terms in m.linear.items():
        for i, c in terms:
            values[row] = values[row] + c * theta[i]
    return ca.vertcat(*values) if values else ca.SX(0, 1)


class ObservationModel:
    """y, sigma and their derivatives at every measurement row (see the module docstring).

    ``row_condition``: the simulation condition id of each row; ``times``: each row's time (t = inf
    is evaluated at t = 0, as the steady state does not depend on t)."""

    def __init__(self, problem: PetabProblem, row_condition: list[str], times: np.ndarray) -> None:
        n_rows, nx = len(problem.measured), len(problem.sbml.states)
        self.n_rows, self.nx, self.n_theta = n_rows, nx, problem.n_theta
        self.X = ca.SX.sym("X", nx, n_rows)
        self.theta = ca.SX.sym("theta", problem.n_theta)
        p_cond = {cid: mapping_sx(c.p, self.theta) for cid, c in problem.conditions.items()}
        t_row = np.where(np.isfinite(times), times, 0.0)
        y: list[Any] = [ca.SX(0.0)] * n_rows
        s: list[Any] = [ca.SX(1.0)] * n_rows
        for k, obs in enumerate(problem.observables.values()):
            rows = np.nonzero(problem.row_observable == k)[0]
            if len(rows) == 0:
                continue
            t, x, p, mapping = model_symbols(problem)
            phi = ca.SX.sym("phi", len(obs.phi))
            mapping.update({sym: phi[i] for i, sym in enumerate(obs.phi)})
            fn = ca.Function(f"obs_{k}", [t, x, p, phi], to_casadi([obs.y, obs.sigma], mapping))
            for r in rows:
                y[r], s[r] = fn(float(t_row[r]), self.X[:, int(r)], p_cond[row_condition[r]],
                                mapping_sx(problem.row_phi[r], self.theta))
        self.y, self.sigma = ca.vertcat(*y) if n_rows else ca.SX(0, 1), ca.vertcat(*s) if n_rows else ca.SX(0, 1)
        self._jacobian: Any = None

    def jacobian(self, X: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(dy/dx, dsigma/dx) per row (rows, nx) and (dy/dtheta, dsigma/dtheta) (rows, n_theta)."""
        if self._jacobian is None:
            blocks = ca.repmat(ca.DM.eye(self.nx), self.n_rows, 1)   # sums each row's own block of columns
            out = []
            for v in (self.y, self.sigma):
                out.append(ca.densify(ca.mtimes(ca.jacobian(v, ca.vec(self.X)), blocks)))
            for v in (self.y, self.sigma):
                out.append(ca.densify(ca.jacobian(v, self.theta)))
            self._jacobian = BufferedFunction(ca.Function("petab_y_jac", [self.X, self.theta], out))
        return tuple(v.copy() for v in self._jacobian(X, theta))  # type: ignore[return-value]
