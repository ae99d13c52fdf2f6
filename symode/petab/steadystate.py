"""Newton polish of a steady state reached by integration, and its derivatives.

An integration towards a steady state stops when dx/dt is small, which leaves x at a distance of about
|f| / |lambda_slow| from the steady state; two runs stopped by different tests (states only, or states
and their sensitivities) end at slightly different points. Newton's method on f(x, p) = 0 from the
integrated state x_T removes that error, whatever test stopped the integration.

Conservation laws (conserved moieties) make J = df/dx singular: c^T f(x, p) = 0 for every x, so c^T J = 0
and c^T x is constant along the trajectory. The steady state reached from x_T is the one with the same
conserved totals, x* = x_T + d with d in range(J) (the orthogonal complement of J's left null space C,
which holds the conservation laws). With the singular value decomposition J = U S V^T, U_r the left
singular vectors of the nonzero singular values and the restricted inverse A = U_r (U_r^T J U_r)^-1 U_r^T
(it maps range(J) to itself), each Newton step is d = -A f(x): it solves J d = -f within range(J), so it
never changes a conserved total. Without conservation laws A = J^-1.

Derivatives: from f(x*, p) = 0 and x* - x_T in range(J) (implicit function theorem),

    dx* = (I - A J) dx_T - A f_p dp,

so forward sensitivities become G* = (I - A J) G_T - A f_p P and reverse-mode weights v become
v' = (I - A J)^T v on x_T plus the direct term -f_p^T A^T v on p (without conservation laws I - A J = 0:
the derivative no longer depends on the integration at all).

The polish is refused (the caller keeps integrating) when a step does not reduce the weighted norm of f,
the iteration does not converge within ``max_steps``, the weighted rms of f at the end is not below
``RESIDUAL_TOLERANCE`` (100 times tighter than the integration's test), the restricted Jacobian U_r^T J U_r is singular
(a zero eigenvalue that is not a conservation law), or the result is not finite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: singular values below this fraction of the largest count as zero (conservation laws: rounding level)
NULL_TOLERANCE = 1e-11
#: the weighted rms of f (steady-state weights) that a polished state must reach
RESIDUAL_TOLERANCE = 1e-2
#: the restricted Jacobian's condition number above which the polish is refused
MAX_CONDITION = 1e14


@dataclass
class NewtonSteadyState:
    """The polished steady state x (f(x, p) ~ 0) and the maps of its derivatives."""

    x: np.ndarray
    J: np.ndarray        # df/dx at x
    A: np.ndarray        # restricted inverse of J (maps range(J) to itself)
    fp: np.ndarray       # df/dp at x
    steps: int
    n_conserved: int     # dimension of J's left null space

    def sensitivities(self, G: np.ndarray, P: np.ndarray) -> np.ndarray:
        """G* = (I - A J) G - A f_p P: dx*/dtheta from G = dx_T/dtheta and P = dp/dtheta."""
        return G - self.A @ (self.J @ G + self.fp @ P)

    def adjoint(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(v', g_p) with v . dx* = v' . dx_T + g_p . dp: v' = (I - A J)^T v, g_p = -f_p^T A^T v."""
        a = self.A.T @ v
        return v - self.J.T @ a, -(self.fp.T @ a)


def restricted_inverse(J: np.ndarray) -> tuple[np.ndarray, int] | None:
    """(A, k): A = U_r (U_r^T J U_r)^-1 U_r^T and k = dim of J's left null space; None when the restricted
    Jacobian is singular or ill-conditioned."""
    n = len(J)
    if n == 0:
        return np.zeros((0, 0)), 0
    if not np.all(np.isfinite(J)):
        return None
    U, s, _ = np.linalg.svd(J)
    if s[0] == 0.0:  # f does not depend on x: every direction is conserved
        return np.zeros((n, n)), n
    r = int(np.sum(s > NULL_TOLERANCE * s[0]))
    Ur = U[:, :r]
    M = Ur.T @ J @ Ur
    if r and np.linalg.cond(M) > MAX_CONDITION:
        return None
    return Ur @ np.linalg.solve(M, Ur.T), n - r


def newton_polish(backend: Any, t: float, x: np.ndarray, p: np.ndarray, U: np.ndarray, weights: Any,
                  step_weights: Any, max_steps: int = 10) -> NewtonSteadyState | None:
    """Newton steps d = -A f(x) from the integrated state ``x`` until the step's weighted rms
    (``step_weights(x)``, the integrator's tolerances) is < 1; each step must reduce the weighted rms of f
    (``weights(x)``, the steady-state tolerances) unless it is already below the step test. None when
    the polish fails (see the module docstring)."""

    def wrms(v: np.ndarray, w: np.ndarray) -> float:
        return float(np.sqrt(np.mean((v / w) ** 2))) if len(v) else 0.0

    f = backend.rhs(t, x, p, U)
    norm = wrms(f, weights(x))
    for step in range(1, max_steps + 1):
        J = backend.jac_x(t, x, p, U)
        inv = restricted_inverse(J)
        if inv is None:
            return None
        A, k = inv
        d = -A @ f
        x_new = x + d
        if not np.all(np.isfinite(x_new)):
            return None
        small = wrms(d, step_weights(x_new)) < 1.0
        f_new = backend.rhs(t, x_new, p, U)
        norm_new = wrms(f_new, weights(x_new))
        if not np.isfinite(norm_new) or (norm_new > norm and not small):
            return None
        x, f, norm = x_new, f_new, norm_new
        if small:
            if norm >= RESIDUAL_TOLERANCE:  # converged within range(J) but f is not ~0: a slow mode was
                return None                 # taken for a conservation law
            J = backend.jac_x(t, x, p, U)
            inv = restricted_inverse(J)
            if inv is None or inv[1] != k:
                return None
            return NewtonSteadyState(x, J, inv[0], backend.jac_p(t, x, p, U), step, k)
    return None
