"""Validation of what makes up f besides the states: the ``reactor`` (dilution, feed) and the
``interactions`` (kinetic laws with their parameter roles, custom rates, neural rate references)."""

from __future__ import annotations

from typing import Any

from symode.errors import ExpressionError
from symode.spec.checks import FieldChecker, FieldPath, describe
from symode.spec.expr import parse_expression
from symode.spec.schema import Input, Interaction, NeuralTerm, Parameter, Reactor, State, rewrite_neural_refs
from symode.spec.vocabulary import APPLIES_TO, DEFAULT_LAW, ID_PREFIX, LAWS, NEURAL_REF_RE, SPECIES_ROLES


def validate_reactor(chk: FieldChecker, d: dict[str, Any], states: dict[str, State], inputs: dict[str, Input],
                     parameters: dict[str, Parameter]) -> Reactor:
    """The ``reactor`` mapping: mode, the dilution (an input or parameter) and feed concentrations."""
    path = ("reactor",)
    chk.keys(d, path, {"mode", "dilution", "feed"})
    mode = chk.string(d.get("mode", "batch" if not d else "chemostat"), (*path, "mode"),
                      choices=("chemostat", "batch"))
    dilution = d.get("dilution")
    if mode == "chemostat":
        if dilution is None:
            raise chk.err(path, "a chemostat needs 'dilution: <input or parameter name>'")
        if not isinstance(dilution, str) or (dilution not in inputs and dilution not in parameters):
            raise chk.err((*path, "dilution"), f"dilution {dilution!r} is not a declared input or parameter")
        if dilution in inputs:
            inp = inputs[dilution]
            if inp.lower is None and inp.upper is None and inp.default is not None and inp.default < 0:
                raise chk.err(("inputs", dilution, "default"), f"negative dilution rate {inp.default} (give the "
                                                                "input bounds to allow negative values)")
        else:
            par = parameters[dilution]
            if par.lower is None and par.value < 0:
                raise chk.err(("parameters", dilution, "value"), f"negative dilution rate {par.value} (give "
                                                                 "the parameter bounds to allow negative values)")
    elif dilution is not None:
        raise chk.err((*path, "dilution"), "a batch reactor has no dilution")
    feed: dict[str, str | float] = {}
    for k, v in chk.mapping(d.get("feed"), (*path, "feed")).items():
        if k not in states:
            raise chk.err((*path, "feed", k), f"unknown state {k!r}")
        feed[k] = chk.ref(v, (*path, "feed", k), parameters)
    if feed and mode != "chemostat":
        raise chk.err((*path, "feed"), "feed concentrations need mode: chemostat")
    return Reactor(mode=mode, dilution=dilution, feed=feed)


def validate_interactions(chk: FieldChecker, raw: Any, states: dict[str, State], inputs: dict[str, Input],
                          parameters: dict[str, Parameter], neural: list[NeuralTerm]) -> list[Interaction]:
    """The ``interactions`` list: unique ids; a competitive inhibition's ``uptake`` names an uptake edge
    of the same target."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise chk.err(("interactions",), f"expected a list of interactions, got {describe(raw)}")
    out: list[Interaction] = []
    ids: set[str] = set()
    for i, val in enumerate(raw):
        e = validate_interaction(chk, chk.mapping(val, ("interactions", i)), ("interactions", i), states,
                                 inputs, parameters, neural)
        if e.id in ids:
            raise chk.err(("interactions", i, "id"), f"duplicate interaction id {e.id!r}")
        ids.add(e.id)
        out.append(e)
    for i, e in enumerate(out):
        if e.uptake is not None:
            target = next((u for u in out if u.id == e.uptake), None)
            if target is None or target.kind != "uptake" or target.target != e.target:
                raise chk.err(("interactions", i, "uptake"),
                              f"{e.uptake!r} is not an uptake edge of {e.target!r}")
    return out


def validate_interaction(chk: FieldChecker, d: dict[str, Any], path: FieldPath, states: dict[str, State],
                         inputs: dict[str, Input], parameters: dict[str, Parameter],
                         neural: list[NeuralTerm]) -> Interaction:
    """One edge: its law's parameter roles, the roles of the states it connects, a custom rate (parsed by
    the safe expression language) and the edge id (given, or derived from kind, source and target)."""
    kind = chk.string(d.get("type"), (*path, "type"), choices=tuple(DEFAULT_LAW))
    law = chk.string(d.get("law", DEFAULT_LAW[kind]), (*path, "law"),
                     choices=tuple(lw for (k, lw) in LAWS if k == kind))
    rule = LAWS[(kind, law)]
    roles = set(rule["required"]) | {r for group in rule["one_of"] for r in group}
    structural = {"id", "type", "law", "description", "prunable"}
    if kind in ("uptake", "production", "inhibition", "glv"):
        structural |= {"from", "to"}
    if kind == "growth":
        structural |= {"to", "input"}
    if kind == "inhibition":
        structural |= {"applies_to"} | ({"uptake"} if law == "competitive" else set())
    if kind == "mass_action":
        structural |= {"reactants", "products"}
    if kind == "custom":
        structural |= {"rate", "stoichiometry"}
    if law == "neural":
        structural |= {"rate"}
    chk.keys(d, path, structural | roles)

    def state_ref(key: str, roles_ok: tuple[str, ...] | None) -> str:
        if key not in d:
            raise chk.err(path, f"missing field {key!r}")
        v = d[key]
        if not isinstance(v, str) or v not in states:
            raise chk.err((*path, key), f"undefined state {v!r}")
        if roles_ok is not None and states[v].role not in roles_ok:
            raise chk.err((*path, key), f"{v!r} has role {states[v].role!r}; {kind} needs "
                                        f"{' or '.join(roles_ok)}")
        return v

    source = target = None
    if kind == "uptake":
        source = state_ref("from", None)
        target = state_ref("to", SPECIES_ROLES)
    elif kind == "production":
        source = state_ref("from", SPECIES_ROLES)
        target = state_ref("to", None)
    elif kind == "inhibition":
        source = state_ref("from", None)
        target = state_ref("to", SPECIES_ROLES)
    elif kind == "glv":
        source = state_ref("from", None)
        target = state_ref("to", None)
    elif kind == "growth":
        target = state_ref("to", None)

    params: dict[str, str | float] = {}
    for role in rule["required"]:
        if role not in d:
            raise chk.err(path, f"{kind} law {law!r} needs parameter role {role!r}")
    for group in rule["one_of"]:
        present = [r for r in group if r in d]
        if len(present) != 1:
            raise chk.err(path, f"{kind} law {law!r} needs exactly one of {', '.join(group)}")
    for role in sorted(roles & set(d), key=list(d).index):
        params[role] = chk.ref(d[role], (*path, role), parameters)

    e = Interaction(id="", kind=kind, law=law, source=source, target=target, params=params,
                    prunable=chk.boolean(d.get("prunable", False), (*path, "prunable")),
                    description=str(d.get("description", "")))
    if kind == "inhibition":
        e.applies_to = chk.string(d.get("applies_to", "growth_and_uptake"), (*path, "applies_to"),
                                  choices=APPLIES_TO)
        if "uptake" in d:
            e.uptake = chk.string(d["uptake"], (*path, "uptake"))
    if kind == "growth" and "input" in d:
        if not isinstance(d["input"], str) or d["input"] not in inputs:
            raise chk.err((*path, "input"), f"undefined input {d['input']!r}")
        e.input = d["input"]
    if law == "neural":
        e.rate = validate_neural_ref(chk, d.get("rate"), (*path, "rate"), path, neural)
    if kind == "mass_action":
        e.reactants = chk.stoich(d.get("reactants"), (*path, "reactants"), states, positive=True)
        e.products = chk.stoich(d.get("products"), (*path, "products"), states, positive=True,
                                allow_empty=True)
        if not e.reactants:
            raise chk.err((*path, "reactants"), "mass action needs at least one reactant")
    if kind == "custom":
        if "rate" not in d:
            raise chk.err(path, "custom interaction needs 'rate: <expression>'")
        e.rate = chk.string(d["rate"], (*path, "rate")) if not isinstance(d["rate"], (int, float)) \
            else repr(float(d["rate"]))
        symbols = [*states, *inputs, *parameters, "t"]
        symbols += [f"{n.id}__{o}" for n in neural for o in n.outputs]
        try:
            parse_expression(rewrite_neural_refs(e.rate, neural), symbols)
        except ExpressionError as exc:
            raise chk.err((*path, "rate"), exc.message) from None
        e.stoichiometry = chk.stoich(d.get("stoichiometry"), (*path, "stoichiometry"), states,
                                     positive=False)
        if not e.stoichiometry:
            raise chk.err((*path, "stoichiometry"), "custom interaction needs a stoichiometry "
                                                    "{state: coefficient}")
    if "id" in d:
        e.id = chk.string(d["id"], (*path, "id"))
    elif kind == "growth":
        e.id = f"growth:{e.input}->{target}" if e.input else f"growth:{target}"
    elif kind in ID_PREFIX:
        arrow = "-|" if kind == "inhibition" else "->"
        e.id = f"{ID_PREFIX[kind]}:{source}{arrow}{target}"
    elif kind == "mass_action":
        e.id = f"mass_action:{'+'.join(e.reactants)}->{'+'.join(e.products)}"
    else:
        raise chk.err(path, "custom interactions need an 'id'")
    return e


def validate_neural_ref(chk: FieldChecker, value: Any, path: FieldPath, parent: FieldPath,
                        neural: list[NeuralTerm]) -> str:
    """A neural output reference ``<id>.<output>``."""
    if value is None:
        raise chk.err(parent, "a neural law needs 'rate: <neural id>.<output>'")
    if not isinstance(value, str) or not NEURAL_REF_RE.match(value):
        raise chk.err(path, f"expected a neural output '<id>.<output>', got {describe(value)}")
    term_id, out = value.split(".")
    term = next((n for n in neural if n.id == term_id), None)
    if term is None:
        raise chk.err(path, f"unknown neural term {term_id!r}")
    if out not in term.outputs:
        raise chk.err(path, f"neural term {term_id!r} has no output {out!r} (outputs: "
                            f"{', '.join(term.outputs)})")
    return value
