"""SBML model -> symode: states, parameters and right-hand side as sympy, and a :class:`~symode.spec.Spec`.

What an SBML model becomes:

- **States**: every species that no assignment rule defines (constant and boundary species too, with
  dx/dt = 0 unless a rate rule drives them), and every parameter or compartment with a rate rule. A
  species is a *concentration* state (``hasOnlySubstanceUnits="false"``, the default) or an *amount* state;
  in math its id means the same quantity as its state.
- **Parameters**: constant parameters and compartments (their values), and the local parameters of
  kinetic laws (renamed ``<reaction>_<id>``).
- **Right-hand side**: each reaction with rate r (its kinetic law, amount per time) adds
  ``nu * r / V`` to a concentration species in compartment V (``nu * r`` to an amount species), for
  its reactants (-) and products (+) that are neither boundary nor constant species; rate rules set
  dx/dt directly; a concentration species in a compartment with a rate rule also gets ``- x dV/dt / V``.
- **Assignment rules** are substituted into everything that uses them (they stay available by id for
  observables); **initial assignments** give the initial values (parameters with an initial assignment
  become that expression of the other parameters unless ``keep`` names them); **function definitions**
  are expanded at every call; ``piecewise`` becomes a sympy Piecewise.

- **Events** (with ``events=True``): time-triggered events (:mod:`symode.petab.events`) are returned in
  :attr:`ImportedModel.events`; the parameters and compartments they assign become states with
  dx/dt = 0. The spec (:meth:`ImportedModel.to_spec`) holds the continuous dynamics only: the events are
  applied by the PEtab simulation (:mod:`symode.petab.timeline`).

Refused, with an error naming the construct and the SBML id: events (unless ``events=True``; then
state-triggered events and delays), algebraic rules, fast reactions,
delays, ``rateOf``, variable stoichiometry, conversion factors, reactions without a kinetic law, SBML
packages that a model requires (e.g. comp, fbc), assignment rules on the size of a compartment that holds
concentration species, and cyclic rules.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libsbml
import sympy as sp

from symode.petab.events import TimedEvent, event_targets, import_events
from symode.petab.math import RESERVED
from symode.petab.sbml_math import MathConverter, UnsupportedSBML
from symode.spec import Spec, spec_from_dict
from symode.spec.expr import FUNCTIONS, PIECEWISE, format_expression
from symode.spec.vocabulary import NAME_RE


@dataclass
class SbmlState:
    """One state of an imported model."""

    id: str                    # SBML id
    name: str                  # symode name (the SBML id unless that is not a valid symode name)
    kind: str                  # "species", "parameter", "compartment" or "placeholder" (a model without states)
    compartment: str | None = None
    amount: bool = False       # species: the state is an amount (hasOnlySubstanceUnits)
    description: str = ""


@dataclass
class Term:
    """One custom interaction of the spec: rate (per time, in state units) and stoichiometry by state id."""

    id: str
    rate: sp.Expr
    stoichiometry: dict[str, float]


@dataclass
class ImportedModel:
    """An SBML model as sympy expressions over state and parameter symbols (named by :attr:`names`)."""

    id: str
    t: sp.Symbol
    names: dict[str, str]                       # SBML id -> symode name (states, parameters)
    states: dict[str, SbmlState]                # by SBML id
    parameters: dict[str, float]                # SBML id (local parameters: "<reaction>.<id>") -> value
    symbols: dict[str, sp.Symbol]               # SBML id -> symbol of a state or parameter
    rhs: dict[str, sp.Expr]                     # state id -> dx/dt
    initial: dict[str, sp.Expr]                 # state id -> x(0) as an expression of the parameters
    assignments: dict[str, sp.Expr] = field(default_factory=dict)   # other ids -> expression
    terms: list[Term] = field(default_factory=list)
    descriptions: dict[str, str] = field(default_factory=dict)
    events: list[TimedEvent] = field(default_factory=list)   # time-triggered events, in firing order

    def expression(self, sbml_id: str) -> sp.Expr | None:
        """The value of an SBML id (state, parameter or assignment-rule variable), or None."""
        if sbml_id in self.symbols:
            return self.symbols[sbml_id]
        return self.assignments.get(sbml_id)

    def initial_values(self, values: dict[str, float] | None = None) -> dict[str, float]:
        """x(0) by state id at the nominal parameter values (overridden by ``values``, by SBML id)."""
        subs = {self.symbols[k]: sp.Float(v) for k, v in self.parameters.items()}
        for k, v in (values or {}).items():
            subs[self.symbols[k]] = sp.Float(v)
        out = {}
        for sid, expr in self.initial.items():
            value = expr.xreplace(subs).xreplace({self.t: sp.Integer(0)})
            try:
                out[sid] = float(value)
            except TypeError:
                raise UnsupportedSBML(f"initial value of {sid!r} does not evaluate to a number: {value}") from None
        return out

    def to_spec(self, parameters: dict[str, dict[str, Any]] | None = None, *, name: str | None = None) -> Spec:
        """The model as a symode spec (states of role ``other``, one ``custom`` interaction per reaction and
        compartment, per rate rule and per volume-change term). ``parameters`` adds spec fields (value,
        bounds, scale, estimate) by SBML id; others are fixed constants at their SBML values."""
        x0 = self.initial_values({k: v["value"] for k, v in (parameters or {}).items()
                                  if "value" in v and k in self.parameters})
        states = {}
        for sid, st in self.states.items():
            d: dict[str, Any] = {"role": "other", "x0": x0[sid]}
            if st.description:
                d["description"] = st.description
            states[st.name] = d
        params = {}
        for pid, value in self.parameters.items():
            d = {"value": float(value), "scale": "lin", "estimate": False}
            d.update((parameters or {}).get(pid, {}))
            if self.descriptions.get(pid):
                d["description"] = self.descriptions[pid]
            params[self.names[pid]] = d
        interactions = []
        for term in self.terms:
            interactions.append({"type": "custom", "id": term.id, "rate": format_expression(term.rate),
                                 "stoichiometry": {self.names[k]: v for k, v in term.stoichiometry.items()}})
        return spec_from_dict({"symode": 1, "name": name or self.id or "sbml_model",
                               "description": f"imported from SBML model {self.id!r}", "states": states,
                               "parameters": params, "interactions": interactions}, file=f"<SBML {self.id}>")


# ----------------------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------------------

def read_sbml(source: str | Path | Any) -> Any:
    """A libsbml Model from a file path or an already read libsbml Model/SBMLDocument; read errors
    raise :class:`UnsupportedSBML`."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise UnsupportedSBML(f"{path}: no such SBML file")
        doc = libsbml.readSBMLFromFile(str(path))
        errors = [doc.getError(i) for i in range(doc.getNumErrors())
                  if doc.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
        if errors:
            e = errors[0]
            raise UnsupportedSBML(f"{path}:{e.getLine()}: {e.getShortMessage() or e.getMessage().strip()}")
        model = doc.getModel()
        if model is None:
            raise UnsupportedSBML(f"{path}: no model in the SBML document")
        return model
    if isinstance(source, libsbml.SBMLDocument):
        return source.getModel()
    return source


def import_sbml(source: str | Path | Any, *, keep: set[str] | frozenset[str] = frozenset(),
                events: bool = False) -> ImportedModel:
    """Import an SBML model (path or libsbml Model). Parameters and compartments in ``keep`` stay free
    parameters even if an initial assignment defines them (a PEtab table sets them). ``events``: import
    time-triggered events into :attr:`ImportedModel.events` (the caller applies them; the spec alone does
    not), else every event is refused."""
    return _Importer(read_sbml(source), set(keep), events).run()


class _Importer:
    def __init__(self, model: Any, keep: set[str], events: bool = False) -> None:
        self.m = model
        self.keep = keep
        self.events = events
        self.t = sp.Symbol("t", real=True)
        self.used_names: set[str] = set()
        self.names: dict[str, str] = {}
        self.symbols: dict[str, sp.Symbol] = {}   # SBML id -> symbol (states, parameters, placeholders)
        self.pending: dict[sp.Symbol, Any] = {}   # placeholder symbol -> expression to substitute

    # -- names -----------------------------------------------------------------------------------------
    def name_for(self, sbml_id: str) -> str:
        """A valid, unused symode name for an SBML id (the id itself when possible)."""
        base = sbml_id if NAME_RE.match(sbml_id) else "s_" + re.sub(r"[^A-Za-z0-9_]", "_", sbml_id.lstrip("_"))
        if base in RESERVED or keyword.iskeyword(base) or base in FUNCTIONS or base == PIECEWISE:
            base = "s_" + base
        name, k = base, 1
        while name in self.used_names:
            k += 1
            name = f"{base}_{k}"
        self.used_names.add(name)
        self.names[sbml_id] = name
        return name

    def symbol(self, sbml_id: str) -> sp.Symbol:
        if sbml_id not in self.symbols:
            self.symbols[sbml_id] = sp.Symbol(self.name_for(sbml_id), real=True)
        return self.symbols[sbml_id]

    # -- checks ------------------------------------------------------------------------------------------
    def refuse_unsupported(self) -> None:
        m = self.m
        doc = m.getSBMLDocument()
        if doc is not None and doc.getLevel() >= 3:  # packages the document declares as required
            ns = doc.getNamespaces()
            for i in range(ns.getLength()):
                prefix = ns.getPrefix(i)
                if prefix and doc.isSetPackageRequired(prefix) and doc.getPackageRequired(prefix):
                    raise UnsupportedSBML(f"model {m.getId()!r}: the SBML package {prefix!r} is not supported")
        if m.getNumEvents() and not self.events:
            ev = m.getEvent(0)
            raise UnsupportedSBML(f"event {ev.getId() or ev.getName() or '(no id)'!r}: SBML events are not "
                                  f"supported ({m.getNumEvents()} in the model)")
        for r in m.getListOfRules():
            if r.isAlgebraic():
                raise UnsupportedSBML(f"algebraic rule {libsbml.formulaToL3String(r.getMath())!r}: algebraic "
                                      "rules are not supported")
        for r in m.getListOfReactions():
            if r.isSetFast() and r.getFast():
                raise UnsupportedSBML(f"reaction {r.getId()!r}: fast reactions are not supported")
            if not r.isSetKineticLaw() or r.getKineticLaw().getMath() is None:
                raise UnsupportedSBML(f"reaction {r.getId()!r}: a reaction without a kinetic law is not supported")
        if m.getLevel() >= 3 and m.isSetConversionFactor():
            raise UnsupportedSBML(f"model {m.getId()!r}: conversion factors are not supported")
        for s in m.getListOfSpecies():
            if m.getLevel() >= 3 and s.isSetConversionFactor():
                raise UnsupportedSBML(f"species {s.getId()!r}: conversion factors are not supported")
        if m.getNumConstraints():
            raise UnsupportedSBML(f"constraint {libsbml.formulaToL3String(m.getConstraint(0).getMath())!r}: SBML "
                                  "constraints are not supported")

    # -- the import --------------------------------------------------------------------------------------
    def run(self) -> ImportedModel:
        m = self.m
        self.refuse_unsupported()
        functions = {fd.getId(): fd.getMath() for fd in m.getListOfFunctionDefinitions()}
        for fid, lam in functions.items():
            if lam is None or not lam.isLambda():
                raise UnsupportedSBML(f"function definition {fid!r}: no lambda")
        rate_rules = {r.getVariable(): r for r in m.getListOfRules() if r.isRate()}
        assign_rules = {r.getVariable(): r for r in m.getListOfRules() if r.isAssignment()}
        init = {ia.getSymbol(): ia for ia in m.getListOfInitialAssignments()}
        event_set = event_targets(m) if self.events else set()
        species_refs = {sr.getId() for r in m.getListOfReactions()
                        for sr in [*r.getListOfReactants(), *r.getListOfProducts()] if sr.isSetId()}
        for target in [*rate_rules, *assign_rules, *init]:
            if target in species_refs:
                raise UnsupportedSBML(f"species reference {target!r}: variable stoichiometry is not supported")

        states: dict[str, SbmlState] = {}
        parameters: dict[str, float] = {}
        descriptions: dict[str, str] = {}
        derived: set[str] = set()   # ids substituted by expressions (assignment rules, initial assignments)

        def classify(sid: str, kind: str, value: float | None, constant: bool, name: str) -> None:
            if sid in assign_rules:
                derived.add(sid)
            elif sid in rate_rules or sid in event_set:   # changed by a rate rule or by events: a state
                states[sid] = SbmlState(sid, "", kind, description=name)
            elif sid in init and sid not in self.keep:
                derived.add(sid)
            else:
                parameters[sid] = 0.0 if value is None or value != value else float(value)
                descriptions[sid] = name

        for c in m.getListOfCompartments():
            classify(c.getId(), "compartment", c.getSize() if c.isSetSize() else 1.0, c.getConstant(), c.getName())
        for p in m.getListOfParameters():
            classify(p.getId(), "parameter", p.getValue() if p.isSetValue() else None, p.getConstant(), p.getName())
        for s in m.getListOfSpecies():
            if s.getId() in assign_rules:
                derived.add(s.getId())
                continue
            states[s.getId()] = SbmlState(s.getId(), "", "species", compartment=s.getCompartment(),
                                          amount=bool(s.getHasOnlySubstanceUnits()), description=s.getName())
        if not states:   # a model of constants only: one inert state (dx/dt = 0, x(0) = 0) for the pipeline
            placeholder = "symode_no_state"
            while m.getElementBySId(placeholder) is not None:
                placeholder += "_"
            states[placeholder] = SbmlState(placeholder, "", "placeholder",
                                            description="placeholder: the model has no states")
        # local parameters of kinetic laws
        local_maps: dict[str, dict[str, sp.Symbol]] = {}
        for r in m.getListOfReactions():
            kl = r.getKineticLaw()
            local: dict[str, sp.Symbol] = {}
            for lp in (kl.getListOfLocalParameters() if m.getLevel() >= 3 else kl.getListOfParameters()):
                key = f"{r.getId()}.{lp.getId()}"
                sym = sp.Symbol(self.name_for(f"{r.getId()}_{lp.getId()}"), real=True)
                self.names[key] = sym.name
                self.symbols[key] = sym
                parameters[key] = float(lp.getValue()) if lp.isSetValue() else 0.0
                local[lp.getId()] = sym
            local_maps[r.getId()] = local

        # symbols: states and parameters first (their names win), then placeholders for derived ids
        for sid in states:
            states[sid].name = self.symbol(sid).name
        for pid in parameters:
            if "." not in pid:
                self.symbol(pid)
        reaction_ids = {r.getId() for r in m.getListOfReactions()}
        for did in [*derived, *reaction_ids]:
            self.symbol(did)
        known = set(self.symbols)

        def resolve(name: str) -> sp.Symbol:
            if name in known:
                return self.symbols[name]
            raise UnsupportedSBML(f"unknown SBML id {name!r} in math")

        conv = MathConverter(resolve, functions, self.t)
        rates = {}
        for r in m.getListOfReactions():
            rates[r.getId()] = conv.convert(r.getKineticLaw().getMath(), f"reaction {r.getId()!r}",
                                            local_maps[r.getId()])
        assignments: dict[sp.Symbol, Any] = {}
        for var, rule in assign_rules.items():
            assignments[self.symbols[var]] = conv.convert(rule.getMath(), f"assignment rule for {var!r}")
        for rid, rate in rates.items():
            assignments[self.symbols[rid]] = rate
        # parameters and compartments given by initial assignments: constants, taken at t = 0
        ia_constants = {self.symbols[var]: conv.convert(ia.getMath(), f"initial assignment to {var!r}")
                        for var, ia in init.items() if var in derived and var not in assign_rules}

        # initial values (states, and the constants above, may refer to each other and to rules at t = 0)
        initial_raw: dict[sp.Symbol, Any] = {}
        for sid, st in states.items():
            sym = self.symbols[sid]
            if sid in init:
                initial_raw[sym] = conv.convert(init[sid].getMath(), f"initial assignment to {sid!r}")
            elif st.kind == "species":
                sbml_species = m.getSpecies(sid)
                volume = self.symbols.get(sbml_species.getCompartment(), sp.Integer(1))
                if sbml_species.isSetInitialConcentration():
                    c0 = sp.Float(sbml_species.getInitialConcentration())
                    initial_raw[sym] = c0 * volume if st.amount else c0
                elif sbml_species.isSetInitialAmount():
                    a0 = sp.Float(sbml_species.getInitialAmount())
                    initial_raw[sym] = a0 if st.amount else a0 / volume
                else:
                    initial_raw[sym] = sp.Integer(0)
            elif st.kind == "placeholder":
                initial_raw[sym] = sp.Integer(0)
            elif st.kind == "compartment":
                c = m.getCompartment(sid)
                initial_raw[sym] = sp.Float(c.getSize()) if c.isSetSize() else sp.Integer(1)
            else:
                p = m.getParameter(sid)
                initial_raw[sym] = sp.Float(p.getValue()) if p.isSetValue() else sp.Integer(0)
        zero = {self.t: sp.Integer(0)}
        at_zero = {k: v.xreplace(zero) for k, v in {**assignments, **ia_constants, **initial_raw}.items()}
        initial_resolved = _resolve_assignments(at_zero, what="initial values")
        initial = {sid: initial_resolved[self.symbols[sid]] for sid in states}
        resolved = _resolve_assignments({**assignments, **{k: initial_resolved[k] for k in ia_constants}})

        def sub(expr: Any) -> Any:
            return expr.xreplace(resolved) if resolved else expr

        events = import_events(m, conv, sub, states, self.symbols, self.t) if self.events else []

        # right-hand side
        rhs: dict[str, Any] = {sid: sp.Integer(0) for sid in states}
        terms: list[Term] = []
        for r in m.getListOfReactions():
            rid = r.getId()
            rate = sub(rates[rid])
            groups: dict[str, dict[str, float]] = {}
            for sign, refs in ((-1.0, r.getListOfReactants()), (1.0, r.getListOfProducts())):
                for sr in refs:
                    sid = sr.getSpecies()
                    sp_ = m.getSpecies(sid)
                    if sp_ is None:
                        raise UnsupportedSBML(f"reaction {rid!r}: unknown species {sid!r}")
                    if sp_.getBoundaryCondition() or sp_.getConstant() or sid not in states or sid in rate_rules:
                        continue
                    if m.getLevel() < 3 and sr.isSetStoichiometryMath():
                        raise UnsupportedSBML(f"reaction {rid!r}: stoichiometryMath of {sid!r} is not supported")
                    nu = sr.getStoichiometry()
                    nu = 1.0 if nu != nu else float(nu)
                    comp = "" if states[sid].amount else sp_.getCompartment()
                    groups.setdefault(comp, {})
                    groups[comp][sid] = groups[comp].get(sid, 0.0) + sign * nu
            for comp, stoich in groups.items():
                stoich = {k: v for k, v in stoich.items() if v != 0}
                if not stoich:
                    continue
                volume = self._volume(comp, states, resolved) if comp else sp.Integer(1)
                term_rate = rate / volume
                terms.append(Term(rid if len(groups) == 1 else f"{rid}@{comp}", term_rate, stoich))
                for sid, nu in stoich.items():
                    rhs[sid] += _coef(nu) * term_rate
        for var, rule in rate_rules.items():
            if var not in states:
                raise UnsupportedSBML(f"rate rule for {var!r}: not a species, parameter or compartment")
            expr = sub(conv.convert(rule.getMath(), f"rate rule for {var!r}"))
            terms.append(Term(f"rate:{var}", expr, {var: 1.0}))
            rhs[var] += expr
        for sid, st in states.items():  # volume change of concentration species in rate-rule compartments
            if st.kind == "species" and not st.amount and st.compartment in rate_rules and sid not in rate_rules:
                sp_ = m.getSpecies(sid)
                if sp_.getConstant():
                    continue
                dv = rhs[st.compartment]
                expr = -self.symbols[sid] * dv / self.symbols[st.compartment]
                terms.append(Term(f"dilution:{sid}", expr, {sid: 1.0}))
                rhs[sid] += expr
        for sid, st in states.items():
            if st.kind == "species" and not st.amount and st.compartment in assign_rules and rhs[sid] != 0:
                raise UnsupportedSBML(f"species {sid!r}: compartment {st.compartment!r} has an assignment rule "
                                      "(variable volume by assignment) - not supported")

        names = {k: v for k, v in self.names.items() if k in states or k in parameters}
        return ImportedModel(
            id=m.getId(), t=self.t, names=names, states=states, parameters=parameters,
            symbols={k: v for k, v in self.symbols.items() if k in states or k in parameters},
            rhs=rhs, initial=initial,
            assignments={sid: resolved[self.symbols[sid]] for sid in derived | reaction_ids},
            terms=terms, descriptions=descriptions, events=events)

    def _volume(self, comp: str, states: dict[str, SbmlState], resolved: dict[sp.Symbol, Any]) -> Any:
        sym = self.symbols.get(comp)
        if sym is None:
            raise UnsupportedSBML(f"unknown compartment {comp!r}")
        return resolved.get(sym, sym)


def _coef(c: float) -> Any:
    return sp.Integer(int(c)) if float(c).is_integer() else sp.Float(c)


def _resolve_assignments(assignments: dict[sp.Symbol, Any], what: str = "assignment rules") -> dict[sp.Symbol, Any]:
    """Substitute the assignments into each other until none refers to another (cycles are errors)."""
    out = dict(assignments)
    for _ in range(len(out) + 1):
        changed = False
        for k, v in out.items():
            if v.free_symbols & out.keys():
                new = v.xreplace(out)
                if new != v:
                    out[k] = new
                    changed = True
        if not changed:
            return out
    cyclic = sorted(k.name for k, v in out.items() if v.free_symbols & out.keys())
    raise UnsupportedSBML(f"cyclic {what} involving {', '.join(cyclic[:5])}")
