"""The symbolic model: f(t, x, p, u), df/dx, df/dp and the observables h(t, x, p, u), built with sympy
from a :class:`~symode.spec.Spec` by the laws of :mod:`symode.kinetics`.

p holds every spec parameter (estimated and fixed) in spec order, so changing a value never requires
regenerating code; u holds the inputs in spec order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import sympy as sp

from symode.spec.expr import parse_expression
from symode.spec.schema import Interaction, Spec, rewrite_neural_refs
from symode.symbolic import kinetics


@dataclass
class SymbolicModel:
    """Right-hand side and observables of a spec as sympy matrices."""

    spec: Spec
    t: sp.Symbol
    x: list[sp.Symbol]
    p: list[sp.Symbol]
    u: list[sp.Symbol]
    f: sp.Matrix
    h: sp.Matrix
    growth: dict[str, sp.Expr] = field(default_factory=dict)
    #: Neural outputs ``<id>.<output>`` -> placeholder symbols in f (substituted by the MLP in codegen;
    #: the sympy Jacobians treat them as constants, so use codegen's CasADi Jacobians for such models).
    neural: dict[str, sp.Symbol] = field(default_factory=dict)

    @property
    def state_names(self) -> list[str]:
        return [s.name for s in self.x]

    @property
    def parameter_names(self) -> list[str]:
        return [s.name for s in self.p]

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.u]

    @property
    def observable_names(self) -> list[str]:
        return list(self.spec.observables)

    @cached_property
    def jac_x(self) -> sp.Matrix:
        """df/dx (nx x nx)."""
        return self.f.jacobian(self.x)

    @cached_property
    def jac_p(self) -> sp.Matrix:
        """df/dp (nx x np)."""
        return self.f.jacobian(self.p)

    @cached_property
    def h_jac_x(self) -> sp.Matrix:
        return self.h.jacobian(self.x)

    @cached_property
    def h_jac_p(self) -> sp.Matrix:
        return self.h.jacobian(self.p)

    def equations(self) -> dict[str, sp.Expr]:
        """dx/dt by state name."""
        return {s.name: e for s, e in zip(self.x, self.f, strict=True)}


def build_symbolic(spec: Spec) -> SymbolicModel:
    """Assemble f from the spec's reactor, interactions and kinetic laws."""
    t = sp.Symbol("t", real=True)
    x = {n: sp.Symbol(n, real=True) for n in spec.states}
    p = {n: sp.Symbol(n, real=True) for n in spec.parameters}
    u = {n: sp.Symbol(n, real=True) for n in spec.inputs}
    symbols = {**x, **p, **u, "t": t}
    neural = {n.ref(o): sp.Symbol(n.ref(o), real=True) for n in spec.neural for o in n.outputs}
    neural_alias = {f"{n.id}__{o}": neural[n.ref(o)] for n in spec.neural for o in n.outputs}

    def val(ref: str | float) -> sp.Expr:
        return p[ref] if isinstance(ref, str) else sp.Float(ref)

    def role(e: Interaction, name: str) -> sp.Expr | None:
        return val(e.params[name]) if name in e.params else None

    dx: dict[str, sp.Expr] = {n: sp.Integer(0) for n in spec.states}
    species = [s.name for s in spec.states.values() if s.role in ("main", "satellite")]
    by_target: dict[str, list[Interaction]] = {}
    for e in spec.interactions:
        if e.target:
            by_target.setdefault(e.target, []).append(e)

    growth: dict[str, sp.Expr] = {}
    for s in species:
        edges = by_target.get(s, [])
        uptakes = [e for e in edges if e.kind == "uptake"]
        inhibitions = [e for e in edges if e.kind == "inhibition" and e.law == "noncompetitive"]
        competitive = [e for e in edges if e.kind == "inhibition" and e.law == "competitive"]

        def comp_factor(up: Interaction, _competitive: list[Interaction] = competitive) -> sp.Expr:
            factor = sp.Integer(1)
            for c in _competitive:
                if c.uptake is None or c.uptake == up.id:
                    factor *= kinetics.competitive_factor(x[c.source], val(c.params["Ki"]))  # type: ignore[index]
            return factor

        # Shared saturation denominator over this species' shared_monod edges.
        shared_terms: dict[str, sp.Expr] = {}
        for up in uptakes:
            if up.law == "shared_monod":
                a, K = role(up, "a"), role(up, "K")
                cf = comp_factor(up)
                term = a * x[up.source] / cf if a is not None else x[up.source] / (K * cf)  # type: ignore[index]
                shared_terms[up.id] = term
        den = 1 + sp.Add(*shared_terms.values()) if shared_terms else sp.Integer(1)

        rates: dict[str, sp.Expr] = {}
        for up in uptakes:
            M = x[up.source]  # type: ignore[index]
            mu = role(up, "mu")
            cf = comp_factor(up)
            if up.law == "shared_monod":
                r = mu * shared_terms[up.id] / den
            elif up.law == "neural":
                r = neural[up.rate]  # type: ignore[index]
            elif up.law == "monod":
                a, K = role(up, "a"), role(up, "K")
                r = kinetics.monod(M, mu, a=a / cf) if a is not None else kinetics.monod(M, mu, K=K * cf)
            else:  # haldane
                r = kinetics.haldane(M, mu, role(up, "K") * cf, role(up, "Ki"))
            rates[up.id] = r

        inh_growth = sp.Integer(1)
        inh_uptake = sp.Integer(1)
        for ih in inhibitions:
            factor = kinetics.noncompetitive(x[ih.source], I=role(ih, "I"), kappa=role(ih, "kappa"))  # type: ignore[index]
            inh_growth *= factor
            if ih.applies_to == "growth_and_uptake":
                inh_uptake *= factor
        mu_s = sp.Add(*rates.values()) * inh_growth if rates else sp.Integer(0)
        growth[s] = mu_s
        dx[s] += mu_s * x[s]
        for up in uptakes:
            dx[up.source] -= role(up, "yield") * rates[up.id] * inh_uptake * x[s]  # type: ignore[index]

    for e in spec.interactions:
        if e.kind == "production":
            src, dst = x[e.source], e.target  # type: ignore[index]
            if e.law == "non_growth":
                dx[dst] += role(e, "v") * src  # type: ignore[index]
            elif e.law == "neural":
                dx[dst] += neural[e.rate] * src  # type: ignore[index]
            elif e.law == "growth_associated":
                dx[dst] += role(e, "alpha") * growth[e.source] * src  # type: ignore[index]
            else:
                dx[dst] += (role(e, "alpha") * growth[e.source] + role(e, "v")) * src  # type: ignore[index]
        elif e.kind == "glv":
            dx[e.target] += role(e, "a") * x[e.target] * x[e.source]  # type: ignore[index]
        elif e.kind == "growth":
            factor = u[e.input] if e.input else sp.Integer(1)  # type: ignore[index]
            dx[e.target] += role(e, "r") * factor * x[e.target]  # type: ignore[index]
        elif e.kind == "mass_action":
            rate = role(e, "k")
            for r, c in e.reactants.items():
                rate *= x[r] ** _num(c)
            for r, c in e.reactants.items():
                dx[r] -= _num(c) * rate
            for q, c in e.products.items():
                dx[q] += _num(c) * rate
        elif e.kind == "custom":
            rate = parse_expression(rewrite_neural_refs(e.rate or "0", spec.neural), {**symbols, **neural_alias})
            for q, c in e.stoichiometry.items():
                dx[q] += _num(c) * rate

    if spec.reactor.mode == "chemostat":
        D = symbols[spec.reactor.dilution]  # type: ignore[index]
        for n in spec.states:
            dx[n] -= D * x[n]
        for n, ref in spec.reactor.feed.items():
            dx[n] += D * val(ref)

    h = [_observe(parse_expression(o.expr, {**x, **p, **u}), o.transform, o.offset)
         for o in spec.observables.values()]
    return SymbolicModel(spec=spec, t=t, x=list(x.values()), p=list(p.values()), u=list(u.values()),
                         f=sp.Matrix([dx[n] for n in spec.states]), h=sp.Matrix(h) if h else sp.zeros(0, 1),
                         growth=growth, neural=neural)


def _observe(y: sp.Expr, transform: str, offset: float) -> sp.Expr:
    """An observable's model value on its comparison scale (``transform: log10``: log10(y + offset))."""
    if transform == "log10":
        return sp.log(y + _num(offset)) / sp.log(10)
    return y


def _num(c: float) -> sp.Expr:
    """Stoichiometric coefficients: integers stay exact (x**2, not x**2.0)."""
    return sp.Integer(int(c)) if float(c).is_integer() else sp.Float(c)
