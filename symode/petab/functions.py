"""CasADi functions of a PEtab problem beyond the compiled model: x0(p), the breakpoints of time-dependent
piecewise terms, and each observable's y, sigma with their derivatives.

The sympy expressions come from the SBML import and the PEtab formulas (both parsed by whitelists), are
translated to CasADi SX by :func:`symode.codegen.casadi.to_casadi`, and differentiated there by CasADi's
symbolic AD (dy/dx, dy/dp, dy/dphi, dsigma/dx, dsigma/dp, dsigma/dphi). Observables are evaluated for all
measurement rows of an observable in one call (``Function.map``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import casadi as ca
import numpy as np
import sympy as sp

from symode.codegen.translate import to_casadi
from symode.petab.problem import Observable, PetabProblem


def _symbols(problem: PetabProblem) -> tuple[Any, Any, Any, dict[sp.Symbol, Any]]:
    sbml = problem.sbml
    t = ca.SX.sym("t")
    x = ca.SX.sym("x", len(sbml.states))
    p = ca.SX.sym("p", len(sbml.parameters))
    mapping: dict[sp.Symbol, Any] = {sbml.t: t}
    mapping.update({sbml.symbols[s]: x[i] for i, s in enumerate(sbml.states)})
    mapping.update({sbml.symbols[q]: p[i] for i, q in enumerate(sbml.parameters)})
    return t, x, p, mapping


def _dense(values: list[Any]) -> Any:
    return ca.vertcat(*values) if values else ca.SX(0, 1)


class InitialStates:
    """x0(p) and dx0/dp of the model's states."""

    def __init__(self, problem: PetabProblem) -> None:
        _, _, p, mapping = _symbols(problem)
        x0 = _dense(to_casadi([problem.sbml.initial[s] for s in problem.sbml.states], mapping))
        self.fn = ca.Function("x0", [p], [x0, ca.densify(ca.jacobian(x0, p))])

    def __call__(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x0, J = self.fn(p)
        return np.array(x0, dtype=float).reshape(-1), np.array(J, dtype=float)


class Breakpoints:
    """Times where a piecewise condition of the right-hand side in t switches (t* with c(t*) = 0 for a
    condition c linear in t, as a function of p): the integration grid includes them, so that the
    integrator restarts at each discontinuity."""

    def __init__(self, problem: PetabProblem) -> None:
        sbml = problem.sbml
        t = sbml.t
        found: list[sp.Expr] = []
        states = set(sbml.symbols[s] for s in sbml.states)
        for expr in sbml.rhs.values():
            for rel in expr.atoms(sp.core.relational.Relational):
                d = sp.expand(rel.lhs - rel.rhs)
                if t not in d.free_symbols or d.free_symbols & states:
                    continue
                poly = sp.Poly(d, t) if d.is_polynomial(t) else None
                if poly is None or poly.degree() != 1:
                    continue
                a, b = poly.all_coeffs()
                root = -b / a
                if root not in found:
                    found.append(root)
        self.n = len(found)
        _, _, p, mapping = _symbols(problem)
        self.fn = ca.Function("breakpoints", [p], [_dense(to_casadi(found, mapping))]) if found else None

    def __call__(self, p: np.ndarray) -> np.ndarray:
        if self.fn is None:
            return np.zeros(0)
        return np.array(self.fn(p), dtype=float).reshape(-1)


@dataclass
class ObservableFunction:
    """One observable's functions, mapped over its measurement rows."""

    observable: Observable
    rows: np.ndarray              # measurement rows of this observable
    values: Any                   # (t, x, p, phi) -> (y, sigma), mapped
    derivatives: Any              # (t, x, p, phi) -> (y, sigma, dy/dx, dy/dp, dy/dphi, ds/dx, ds/dp, ds/dphi), mapped

    @property
    def n_phi(self) -> int:
        return len(self.observable.phi)


def observable_functions(problem: PetabProblem) -> list[ObservableFunction]:
    out = []
    for k, obs in enumerate(problem.observables.values()):
        rows = np.nonzero(problem.row_observable == k)[0]
        if len(rows) == 0:
            continue
        t, x, p, mapping = _symbols(problem)
        phi = ca.SX.sym("phi", len(obs.phi))
        mapping.update({s: phi[i] for i, s in enumerate(obs.phi)})
        y, sigma = to_casadi([obs.y, obs.sigma], mapping)
        y, sigma = ca.SX(y), ca.SX(sigma)
        args = [t, x, p, phi]
        values = ca.Function(f"obs_{k}", args, [y, sigma])
        jac = [ca.densify(ca.jacobian(v, a)) for v in (y, sigma) for a in (x, p, phi)]
        derivs = ca.Function(f"dobs_{k}", args, [y, sigma, *jac])
        n = len(rows)
        out.append(ObservableFunction(obs, rows, values.map(n), derivs.map(n)))
    return out
