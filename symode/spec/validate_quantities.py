"""Validation of the named quantities: ``states``, ``inputs`` and ``parameters`` (one namespace)."""

from __future__ import annotations

from typing import Any

from symode.spec.checks import FieldChecker
from symode.spec.schema import Input, Parameter, State
from symode.spec.vocabulary import STATE_ROLES


def check_unique_names(chk: FieldChecker, *groups: dict[str, Any]) -> None:
    """States, inputs and parameters share one namespace."""
    seen: dict[str, str] = {}
    sections = ("states", "inputs", "parameters")
    for section, group in zip(sections, groups, strict=True):
        for n in group:
            if n in seen:
                raise chk.err((section, n), f"name {n!r} is already used in {seen[n]}")
            seen[n] = section


def validate_states(chk: FieldChecker, raw: dict[str, Any]) -> dict[str, State]:
    """The ``states`` mapping (``name: x0`` is short for ``name: {x0: x0}``); x0 inside the bounds."""
    if not raw:
        raise chk.err(("states",), "at least one state is required")
    out: dict[str, State] = {}
    for key, val in raw.items():
        path = ("states", key)
        name = chk.name(key, path)
        if isinstance(val, (int, float, str)) and not isinstance(val, bool):
            val = {"x0": val}
        d = chk.mapping(val, path)
        chk.keys(d, path, {"role", "x0", "estimate", "bounds", "unit", "description"})
        lo, hi = chk.bounds(d.get("bounds"), (*path, "bounds"))
        x0 = chk.number(d.get("x0", 0.0), (*path, "x0"))
        assert x0 is not None
        if (lo is not None and x0 < lo) or (hi is not None and x0 > hi):
            raise chk.err((*path, "x0"), f"initial value {x0} is outside bounds [{lo}, {hi}]")
        out[name] = State(name=name, role=chk.string(d.get("role", "other"), (*path, "role"),
                                                     choices=STATE_ROLES),
                          x0=x0, estimate=chk.boolean(d.get("estimate", False), (*path, "estimate")),
                          lower=lo, upper=hi, unit=str(d.get("unit", "")),
                          description=str(d.get("description", "")))
    return out


def validate_inputs(chk: FieldChecker, raw: dict[str, Any]) -> dict[str, Input]:
    """The ``inputs`` mapping: interpolation, optional bounds and an optional default inside them."""
    out: dict[str, Input] = {}
    for key, val in raw.items():
        path = ("inputs", key)
        name = chk.name(key, path)
        d = chk.mapping(val, path)
        chk.keys(d, path, {"interpolation", "default", "bounds", "unit", "description"})
        lo, hi = chk.bounds(d.get("bounds"), (*path, "bounds"))
        default = chk.number(d.get("default"), (*path, "default"), allow_none=True)
        if default is not None and ((lo is not None and default < lo) or (hi is not None and default > hi)):
            raise chk.err((*path, "default"), f"default {default} is outside bounds [{lo}, {hi}]")
        out[name] = Input(name=name,
                          interpolation=chk.string(d.get("interpolation", "constant"),
                                                   (*path, "interpolation"), choices=("constant", "linear")),
                          default=default, unit=str(d.get("unit", "")), description=str(d.get("description", "")),
                          lower=lo, upper=hi)
    return out


def validate_parameters(chk: FieldChecker, raw: dict[str, Any]) -> dict[str, Parameter]:
    """The ``parameters`` mapping (``name: v`` is short for ``name: {value: v}``): value inside the bounds;
    log scale (the default for a positive value and lower bound) needs both positive."""
    out: dict[str, Parameter] = {}
    for key, val in raw.items():
        path = ("parameters", key)
        name = chk.name(key, path)
        if isinstance(val, (int, float, str)) and not isinstance(val, bool):
            val = {"value": val}
        d = chk.mapping(val, path)
        chk.keys(d, path, {"value", "bounds", "scale", "estimate", "unit", "description"})
        if "value" not in d:
            raise chk.err(path, "missing field 'value'")
        value = chk.number(d["value"], (*path, "value"))
        assert value is not None
        lo, hi = chk.bounds(d.get("bounds"), (*path, "bounds"))
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise chk.err((*path, "value"), f"value {value} is outside bounds [{lo}, {hi}]")
        default_scale = "log" if value > 0 and (lo is None or lo > 0) else "lin"
        scale = chk.string(d.get("scale", default_scale), (*path, "scale"), choices=("lin", "log"))
        if scale == "log" and (value <= 0 or (lo is not None and lo <= 0)):
            raise chk.err((*path, "scale"), "log scale needs a positive value and a positive lower bound")
        out[name] = Parameter(name=name, value=value, lower=lo, upper=hi, scale=scale,
                              estimate=chk.boolean(d.get("estimate", True), (*path, "estimate")),
                              unit=str(d.get("unit", "")), description=str(d.get("description", "")))
    return out

