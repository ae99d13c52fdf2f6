"""The PEtab log-likelihood of every measurement row as CasADi functions of the states and theta.

For row i with simulation y_i, noise parameter sigma_i, measurement m_i and transformation g (lin: v,
log: ln v, log10: log10 v), r_i = (g(m_i) - g(y_i)) / sigma_i and

    normal:   -log p_i = 1/2 log(2 pi sigma_i^2) + r_i^2 / 2 + J_i
    Laplace:  -log p_i = log(2 sigma_i) + |r_i| + J_i

with J_i = 0 (lin), log m_i (log), log(m_i ln 10) (log10). y and sigma come from the observation model
(:class:`symode.petab.observation.ObservationModel`, one SX expression of (X, theta) for all rows), so
one call of

- :meth:`LogLikelihood.rows` gives y, sigma, r, -log p, a_i = d(-log p_i)/dy_i, b_i = d(-log p_i)/dsigma_i
  (the weights of forward sensitivities) and dr_i/dy_i = -g'(y_i)/sigma_i (the residual Jacobian's);
- :meth:`LogLikelihood.reverse` gives the same and, by CasADi's reverse mode, W = d(-llh)/dX (one row per
  measurement: the weights the adjoint takes back through the solves) and d(-llh)/dtheta (the direct
  part through observable and noise parameters).

Logarithms of non-positive values give -inf or nan, as numpy's do; the caller decides what to make of them.
"""

from __future__ import annotations

import math
from typing import Any

import casadi as ca
import numpy as np

from symode.petab.functions import BufferedFunction
from symode.petab.observation import ObservationModel

LN10 = math.log(10.0)


class LogLikelihood:
    """-log p of every row (module docstring) for fixed measurements, transformations and distributions."""

    def __init__(self, observation: ObservationModel, measured: np.ndarray, transformation: np.ndarray,
                 laplace: np.ndarray) -> None:
        n = len(measured)
        Y, S = ca.SX.sym("y", n), ca.SX.sym("sigma", n)

        def g(v: Any, kind: str) -> Any:
            return ca.log(v) if kind == "log" else (ca.log(v) / LN10 if kind == "log10" else v)

        rows_r, rows_n = [], []
        with np.errstate(divide="ignore", invalid="ignore"):
            for i in range(n):
                kind, m = transformation[i], float(measured[i])
                gm = math.log(m) if kind == "log" and m > 0 else (math.log10(m) if kind == "log10" and m > 0
                                                                else (m if kind == "lin" else math.nan))
                jac = 0.0 if kind == "lin" else (np.log(m) if kind == "log" else np.log(m * LN10))
                r = (gm - g(Y[i], kind)) / S[i]
                nl = (ca.log(2.0 * S[i]) + ca.fabs(r)) if laplace[i] else \
                    (0.5 * ca.log(2.0 * math.pi * S[i] ** 2) + 0.5 * r**2)
                rows_r.append(r)
                rows_n.append(nl + float(jac))
        r = ca.vertcat(*rows_r) if n else ca.SX(0, 1)
        nllh = ca.vertcat(*rows_n) if n else ca.SX(0, 1)
        total = ca.sum1(nllh)
        per_row = ca.Function("petab_nllh_rows", [Y, S], [r, nllh, ca.gradient(total, Y), ca.gradient(total, S),
                                                          ca.gradient(ca.sum1(r), Y)])
        obs = observation
        y, s = obs.y, obs.sigma
        r_x, n_x, a_x, b_x, c_x = per_row(y, s)
        outputs = [ca.densify(v) for v in (y, s, r_x, n_x, a_x, b_x, c_x)]
        self._rows = BufferedFunction(ca.Function("petab_rows", [obs.X, obs.theta], outputs))
        total_x = ca.sum1(n_x)
        nx, n_rows = obs.X.shape
        W = ca.reshape(ca.jacobian(total_x, ca.vec(obs.X)), nx, n_rows)
        self._reverse = BufferedFunction(ca.Function(
            "petab_rows_reverse", [obs.X, obs.theta],
            [*outputs, ca.densify(W), ca.densify(ca.gradient(total_x, obs.theta))]))

    def rows(self, X: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, ...]:
        """(y, sigma, r, -log p, a, b, dr/dy) per row; ``X`` (rows, nx)."""
        return tuple(v[:, 0].copy() for v in self._rows(X, theta))

    def reverse(self, X: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, ...]:
        """(y, sigma, r, -log p, a, b, dr/dy, W (rows, nx), d(-llh)/dtheta)."""
        out = self._reverse(X, theta)
        return (*(v[:, 0].copy() for v in out[:7]), out[7].T.copy(), out[8][:, 0].copy())
