"""SBML events whose trigger depends on time only, as state resets at computable times.

An event with trigger ``time >= tau`` (``time > tau``; also written ``tau <= time``, ``geq(time, tau)``,
``a*time + b >= 0`` with a > 0), tau a number or an expression of constant parameters, fires once, when
the simulation time reaches tau. Its event assignments become a reset of the states,

    x+ = g(x-, p, t),

with every assigned entity a state (a parameter or compartment that an event assigns becomes a state
with dx/dt = 0, :mod:`symode.petab.sbml`). SBML semantics kept:

- a concentration species whose compartment the event resizes keeps its amount, x+ = x- V- / V+,
  unless the event assigns the species itself (then the assigned value is its new concentration);
- ``time >= tau`` is true at tau: the event fires at tau, before measurements at that time are taken;
  ``time > tau`` becomes true just after tau: measurements at tau see the state before it;
- the trigger's ``initialValue``: an event whose trigger is already true at the start of the simulation
  fires at the start when ``initialValue`` is false, never when it is true;
- simultaneous events run one after another, higher ``priority`` first (numbers only), then in document
  order, each seeing the previous one's assignments (``useValuesFromTriggerTime`` makes no difference
  for time triggers except between simultaneous events).

Refused with a message naming the event: triggers that depend on states (state-triggered events need
root finding), triggers that are not one relation of that form, delays other than 0, priorities that are
not numbers, and assignments to entities that are neither species, compartments nor parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sympy as sp

from symode.petab.sbml_math import MathConverter, UnsupportedSBML

_RELATIONS = (sp.GreaterThan, sp.StrictGreaterThan, sp.LessThan, sp.StrictLessThan)


@dataclass
class TimedEvent:
    """An SBML event that fires when t reaches ``time`` (an expression of the model's parameters)."""

    id: str
    time: sp.Expr                        # tau(p)
    strict: bool                         # trigger time > tau: fires after the measurements at tau
    initial_value: bool                  # the trigger's value before the simulation starts
    priority: float                      # higher first among simultaneous events
    assignments: dict[str, sp.Expr]      # state id -> its value just after the event, in (x-, p, t)


def event_targets(model: Any) -> set[str]:
    """The ids that the model's events assign."""
    return {ea.getVariable() for ev in model.getListOfEvents() for ea in ev.getListOfEventAssignments()}


def _name(ev: Any) -> str:
    return ev.getId() or ev.getName() or "(no id)"


def trigger_time(expr: Any, t: sp.Symbol, states: dict[sp.Symbol, str], where: str) -> tuple[sp.Expr, bool]:
    """(tau, strict) of a trigger ``time >= tau`` / ``time > tau``; UnsupportedSBML otherwise."""
    if not isinstance(expr, _RELATIONS):
        raise UnsupportedSBML(f"{where}: trigger {expr} is not of the form time >= c or time > c "
                              "(only time-triggered events are supported)")
    greater = isinstance(expr, (sp.GreaterThan, sp.StrictGreaterThan))
    d = sp.expand(expr.lhs - expr.rhs if greater else expr.rhs - expr.lhs)   # fires when d >= 0 (d > 0)
    depends = sorted(states[s] for s in d.free_symbols if s in states)
    if depends:
        raise UnsupportedSBML(f"{where}: the trigger depends on {', '.join(map(repr, depends))}: state-triggered "
                              "events are not supported (only triggers of the form time >= c)")
    if t not in d.free_symbols or not d.is_polynomial(t) or sp.Poly(d, t).degree() != 1:
        raise UnsupportedSBML(f"{where}: trigger {expr} is not of the form time >= c or time > c")
    a, b = sp.Poly(d, t).all_coeffs()
    if not (a.is_number and bool(a > 0)):
        raise UnsupportedSBML(f"{where}: trigger {expr} becomes false as time grows: not supported")
    return sp.simplify(-b / a), isinstance(expr, (sp.StrictGreaterThan, sp.StrictLessThan))


def import_events(model: Any, conv: MathConverter, sub: Callable[[Any], Any], states: dict[str, Any],
                  symbols: dict[str, sp.Symbol], t: sp.Symbol) -> list[TimedEvent]:
    """The model's events as :class:`TimedEvent` (``sub`` substitutes the assignment rules; ``states``:
    the imported states by SBML id, :class:`symode.petab.sbml.SbmlState`)."""
    state_symbols = {symbols[s]: s for s in states}
    out = []
    for order, ev in enumerate(model.getListOfEvents()):
        where = f"event {_name(ev)!r}"
        trig = ev.getTrigger()
        if trig is None or trig.getMath() is None:
            raise UnsupportedSBML(f"{where}: no trigger")
        tau, strict = trigger_time(sub(conv.convert(trig.getMath(), where)), t, state_symbols, where)
        if ev.isSetDelay() and ev.getDelay().getMath() is not None:
            delay = sub(conv.convert(ev.getDelay().getMath(), where))
            if not (delay.is_number and float(delay) == 0.0):
                raise UnsupportedSBML(f"{where}: event delays are not supported")
        priority = 0.0
        if ev.isSetPriority() and ev.getPriority().getMath() is not None:
            value = sub(conv.convert(ev.getPriority().getMath(), where))
            if not value.is_number:
                raise UnsupportedSBML(f"{where}: a priority that is not a number is not supported")
            priority = float(value)
        initial = bool(trig.getInitialValue()) if model.getLevel() >= 3 and trig.isSetInitialValue() else True
        assignments: dict[str, sp.Expr] = {}
        for ea in ev.getListOfEventAssignments():
            var = ea.getVariable()
            if var not in states:
                raise UnsupportedSBML(f"{where}: assignment to {var!r}, which is not a species, compartment or "
                                      "parameter that can change (set by a rule, or a species reference)")
            assignments[var] = sub(conv.convert(ea.getMath(), f"{where}, assignment to {var!r}"))
        for var in list(assignments):   # a resized compartment keeps the amounts of its concentration species
            if states[var].kind != "compartment":
                continue
            volume = symbols[var]
            for sid, st in states.items():
                if (st.kind == "species" and st.compartment == var and not st.amount and sid not in assignments
                        and not model.getSpecies(sid).getConstant()):
                    assignments[sid] = symbols[sid] * volume / assignments[var]
        out.append((-priority, order, TimedEvent(_name(ev), tau, strict, initial, priority, assignments)))
    return [e for _, _, e in sorted(out, key=lambda item: (item[0], item[1]))]
