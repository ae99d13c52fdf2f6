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


class BufferedFunction:
    """A CasADi Function called through fixed numpy buffers (``Function.buffer``): no per-call conversion of
    arguments and results (about 1 us per call instead of 50-100 us through ``Function.__call__``).

    Every input and output must be dense. Arguments are given flattened column-major (an (m, n) input is
    the C-order ravel of its (n, m) transpose); results are views (size1, size2) of buffers that the next
    call overwrites. Not re-entrant: one call at a time (symode's parallel runs use processes)."""

    def __init__(self, fn: Any) -> None:
        for i in range(fn.n_in()):
            if not fn.sparsity_in(i).is_dense():
                raise ValueError(f"{fn.name()}: input {i} is not dense")
        for i in range(fn.n_out()):
            if not fn.sparsity_out(i).is_dense():
                raise ValueError(f"{fn.name()}: output {i} is not dense")
        self.fn = fn
        self._setup()

    def _setup(self) -> None:
        fn = self.fn
        self.args = [np.zeros(fn.nnz_in(i)) for i in range(fn.n_in())]
        self._res = [np.zeros((fn.size2_out(i), fn.size1_out(i))) for i in range(fn.n_out())]
        self.results = [r.T for r in self._res]
        self._buf, self._eval = fn.buffer()
        for i, a in enumerate(self.args):
            self._buf.set_arg(i, memoryview(a))
        for i, r in enumerate(self._res):
            self._buf.set_res(i, memoryview(r))

    def __call__(self, *args: Any) -> list[np.ndarray]:
        for buf, a in zip(self.args, args, strict=True):
            buf[:] = a.ravel() if isinstance(a, np.ndarray) else np.ravel(a)
        self._eval()
        return self.results

    def __getstate__(self) -> dict[str, Any]:
        return {"fn": self.fn}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.fn = state["fn"]
        self._setup()


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
        self.fn = BufferedFunction(ca.Function("x0", [p], [ca.densify(x0), ca.densify(ca.jacobian(x0, p))]))

    def __call__(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x0, J = self.fn(p)
        return x0[:, 0].copy(), J.copy()


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
        self.fn = (BufferedFunction(ca.Function("breakpoints", [p], [ca.densify(_dense(to_casadi(found, mapping)))]))
                   if found else None)

    def __call__(self, p: np.ndarray) -> np.ndarray:
        if self.fn is None:
            return np.zeros(0)
        return self.fn(p)[0][:, 0].copy()
