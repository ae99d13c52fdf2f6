"""CasADi functions of a PEtab problem beyond the compiled model: x0(p) and the breakpoints of
time-dependent piecewise terms (the observables are in :mod:`symode.petab.observation`).

The sympy expressions come from the SBML import (parsed by a whitelist) and are translated to CasADi SX by
:func:`symode.codegen.translate.to_casadi`.
"""

from __future__ import annotations

from typing import Any

import casadi as ca
import numpy as np
import sympy as sp

from symode.codegen.translate import to_casadi
from symode.petab.problem import PetabProblem


def model_symbols(problem: PetabProblem) -> tuple[Any, Any, Any, dict[sp.Symbol, Any]]:
    """SX symbols t, x (states), p (model parameters) and the map from the SBML's sympy symbols to them."""
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
        _, _, p, mapping = model_symbols(problem)
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
        _, _, p, mapping = model_symbols(problem)
        self.fn = ca.Function("breakpoints", [p], [_dense(to_casadi(found, mapping))]) if found else None

    def __call__(self, p: np.ndarray) -> np.ndarray:
        if self.fn is None:
            return np.zeros(0)
        return np.array(self.fn(p), dtype=float).reshape(-1)
