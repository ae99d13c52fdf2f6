"""Validation of the ``observables`` section: what each data column measures and its noise model
sigma^2 = absolute^2 + (relative * y)^2."""

from __future__ import annotations

from typing import Any

from symode.errors import ExpressionError
from symode.spec.checks import FieldChecker
from symode.spec.expr import parse_expression
from symode.spec.schema import Input, Noise, Observable, Parameter, State
from symode.spec.vocabulary import NAME_RE, OBSERVABLE_TRANSFORMS


def validate_observables(chk: FieldChecker, raw: dict[str, Any], states: dict[str, State],
                         inputs: dict[str, Input], parameters: dict[str, Parameter]) -> dict[str, Observable]:
    """The ``observables`` mapping: an expression over states, inputs and parameters (a state's name
    measures that state), a noise level with at least one positive part and an optional transform
    (``log10`` with an ``offset`` >= 0)."""
    out: dict[str, Observable] = {}
    symbols = [*states, *inputs, *parameters]
    for key, val in raw.items():
        path = ("observables", key)
        if not isinstance(key, str) or not NAME_RE.match(key):
            raise chk.err(path, f"{key!r} is not a valid observable name")
        if key in parameters or key in inputs:
            raise chk.err(path, f"observable {key!r} clashes with a parameter or input name")
        d = chk.mapping(val, path)
        chk.keys(d, path, {"expr", "noise", "unit", "description", "transform", "offset"})
        expr = d.get("expr", key)
        if isinstance(expr, (int, float)) and not isinstance(expr, bool):
            expr = repr(float(expr))
        expr = chk.string(expr, (*path, "expr"))
        if key in states and expr != key:
            raise chk.err((*path, "expr"), f"observable {key!r} has a state's name but another formula")
        try:
            parsed = parse_expression(expr, symbols)
        except ExpressionError as exc:
            raise chk.err((*path, "expr"), exc.message) from None
        if not {s.name for s in parsed.free_symbols} & set(states):
            raise chk.err((*path, "expr"), "an observable must depend on at least one state")
        nd = chk.mapping(d.get("noise"), (*path, "noise"))
        chk.keys(nd, (*path, "noise"), {"absolute", "relative"})
        noise = Noise(absolute=chk.number(nd.get("absolute", 0.0), (*path, "noise", "absolute")) or 0.0,
                      relative=chk.number(nd.get("relative", 0.0), (*path, "noise", "relative")) or 0.0)
        if noise.absolute < 0 or noise.relative < 0:
            raise chk.err((*path, "noise"), "noise levels must be non-negative")
        if noise.absolute == 0 and noise.relative == 0:
            raise chk.err((*path, "noise"), "give an absolute and/or relative noise level (> 0)")
        transform = chk.string(d.get("transform", "none"), (*path, "transform"), choices=OBSERVABLE_TRANSFORMS)
        offset = chk.number(d.get("offset", 0.0), (*path, "offset")) or 0.0
        if offset < 0:
            raise chk.err((*path, "offset"), "the offset must be non-negative")
        if offset and transform == "none":
            raise chk.err((*path, "offset"), "an offset needs 'transform: log10'")
        out[key] = Observable(name=key, expr=expr, noise=noise, unit=str(d.get("unit", "")),
                              description=str(d.get("description", "")), transform=transform, offset=offset)
    return out

