"""The generalized n x m community template (docs/model.md, "The generalized n x m template").

A main culture X grows on the substrate S; N satellites Y1..YN and the main culture interact through M
metabolites M1..MM. Every possible interaction is an edge with one strength parameter (strength 0 = the
edge is absent), so a fitted template can be simplified by pruning weak edges:

- ``prod:X->Mk``    production of Mk by X            (non_growth, v = ``v_X_Mk``)
- ``inhib:Mk-|X``   inhibition of X by Mk             (noncompetitive, kappa = ``kinh_Mk_X``; growth and uptake)
- ``uptake:Mk->Yj`` growth of Yj on Mk                (shared_monod, a = ``a_Mk_Yj``, mu = ``mu_Mk_Yj``,
                                                       yield = ``g_Mk_Yj``)
- ``prod:Yj->Mk``   production of Mk by Yj            (non_growth, v = ``u_Yj_Mk``)
- ``inhib:Mk-|Yj``  inhibition of Yj's growth by Mk   (noncompetitive, kappa = ``kinh_Mk_Yj``; growth only)

>>> spec = template_spec(2, 3)
>>> len(spec.interactions)            # 1 (S -> X) + 3 + 3 + 3 * (2 * 3)
25
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from symode.spec import Spec, spec_from_dict

#: Starting values and bounds of the template's parameters: prefix -> (value, lower, upper, scale).
DEFAULTS: dict[str, tuple[float, float, float, str]] = {
    "v": (1e-3, 0.0, 1.0, "lin"),
    "kinh": (0.1, 0.0, 100.0, "lin"),
    "a": (1.0, 0.0, 1000.0, "lin"),
    "mu": (0.5, 1e-3, 10.0, "log"),
    "g": (1.0, 1e-3, 100.0, "log"),
    "u": (1e-3, 0.0, 10.0, "lin"),
}
CONSTANTS: dict[str, tuple[float, str, str]] = {
    "S0": (100.0, "g/L", "feed substrate concentration"),
    "gamma": (1.0, "g/g", "substrate consumed per biomass X formed"),
    "mu0": (0.3, "1/h", "maximal growth rate of X"),
    "KS": (1.0, "g/L", "Monod constant of X on S"),
}
NOISE_MAIN = {"relative": 0.02, "absolute": 0.01}
NOISE_METABOLITE = {"relative": 0.05, "absolute": 0.002}


def _par(prefix: str, unit: str, description: str) -> dict[str, Any]:
    value, lo, hi, scale = DEFAULTS[prefix]
    return {"value": value, "bounds": [lo, hi], "scale": scale, "unit": unit, "description": description}


def template_names(satellites: int, metabolites: int) -> tuple[list[str], list[str]]:
    """(satellite names, metabolite names): Y1..YN, M1..MM."""
    _check(satellites, metabolites)
    return [f"Y{j}" for j in range(1, satellites + 1)], [f"M{k}" for k in range(1, metabolites + 1)]


def _check(satellites: int, metabolites: int) -> None:
    for name, n, least in (("satellites", satellites, 0), ("metabolites", metabolites, 1)):
        if isinstance(n, bool) or not isinstance(n, int) or n < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {n!r}")


def template_dict(satellites: int, metabolites: int) -> dict[str, Any]:
    """The template as plain spec data (see :func:`template_spec`)."""
    ys, ms = template_names(satellites, metabolites)
    states: dict[str, Any] = {
        "S": {"role": "substrate", "x0": 5.0, "estimate": True, "bounds": [0.0, None], "unit": "g/L",
              "description": "substrate"},
        "X": {"role": "main", "x0": 20.0, "estimate": True, "bounds": [0.0, None], "unit": "g/L",
              "description": "main culture"},
    }
    for y in ys:
        states[y] = {"role": "satellite", "x0": 0.5, "estimate": True, "bounds": [0.0, None], "unit": "g/L",
                     "description": f"satellite {y} (hidden)"}
    for m in ms:
        states[m] = {"role": "metabolite", "x0": 0.05, "estimate": True, "bounds": [0.0, None], "unit": "g/L",
                     "description": f"metabolite {m}"}

    parameters: dict[str, Any] = {name: {"value": v, "estimate": False, "unit": unit, "description": desc}
                                  for name, (v, unit, desc) in CONSTANTS.items()}
    interactions: list[dict[str, Any]] = [
        {"type": "uptake", "law": "monod", "from": "S", "to": "X", "mu": "mu0", "K": "KS", "yield": "gamma"}]
    for m in ms:
        parameters[f"v_X_{m}"] = _par("v", "g/g/h", f"production rate of {m} by X")
        parameters[f"kinh_{m}_X"] = _par("kinh", "L/g", f"inhibition of X by {m} (1/I)")
        interactions.append({"type": "production", "law": "non_growth", "from": "X", "to": m, "v": f"v_X_{m}",
                             "prunable": True})
        interactions.append({"type": "inhibition", "law": "noncompetitive", "from": m, "to": "X",
                             "kappa": f"kinh_{m}_X", "applies_to": "growth_and_uptake", "prunable": True})
    for y in ys:
        for m in ms:
            parameters[f"a_{m}_{y}"] = _par("a", "L/g", f"affinity of {y} for {m} (1/K)")
            parameters[f"mu_{m}_{y}"] = _par("mu", "1/h", f"max growth rate of {y} on {m}")
            parameters[f"g_{m}_{y}"] = _par("g", "g/g", f"yield: {m} used per {y} formed")
            parameters[f"u_{y}_{m}"] = _par("u", "g/g/h", f"production rate of {m} by {y}")
            parameters[f"kinh_{m}_{y}"] = _par("kinh", "L/g", f"inhibition of {y} by {m} (1/I)")
            interactions.append({"type": "uptake", "law": "shared_monod", "from": m, "to": y, "mu": f"mu_{m}_{y}",
                                 "a": f"a_{m}_{y}", "yield": f"g_{m}_{y}", "prunable": True})
            interactions.append({"type": "production", "law": "non_growth", "from": y, "to": m, "v": f"u_{y}_{m}",
                                 "prunable": True})
            interactions.append({"type": "inhibition", "law": "noncompetitive", "from": m, "to": y,
                                 "kappa": f"kinh_{m}_{y}", "applies_to": "growth", "prunable": True})

    observables: dict[str, Any] = {
        "X": {"noise": dict(NOISE_MAIN), "unit": "g/L", "description": "main culture (from optical density)"},
        "S": {"noise": dict(NOISE_MAIN), "unit": "g/L", "description": "substrate"},
    }
    for m in ms:
        observables[m] = {"noise": dict(NOISE_METABOLITE), "unit": "g/L", "description": f"metabolite {m}"}
    return {
        "symode": 1,
        "name": f"community-{satellites}x{metabolites}",
        "description": (f"Generalized community template: main culture X on substrate S, "
                        f"{satellites} satellite(s) and {metabolites} metabolite(s); every interaction is a "
                        f"prunable edge whose strength 0 removes it."),
        "reactor": {"mode": "chemostat", "dilution": "D", "feed": {"S": "S0"}},
        "states": states,
        "inputs": {"D": {"interpolation": "constant", "default": 0.25, "unit": "1/h",
                         "description": "dilution rate"}},
        "parameters": parameters,
        "interactions": interactions,
        "observables": observables,
    }


def template_spec(satellites: int, metabolites: int) -> Spec:
    """The validated n x m community template spec (satellites >= 0, metabolites >= 1)."""
    return spec_from_dict(template_dict(satellites, metabolites), file=f"<template {satellites}x{metabolites}>")


def community_truth_params(truth: Mapping[str, Any]) -> dict[str, Any]:
    """Turn a community data set's ``truth.json`` into a params file for the matching template.

    ``truth["edges"]`` maps edge ids to their parameter values by role (uptake: mu, K or a, g;
    inhibition: kappa or I; production: v or u). Edges not listed get strength 0 (uptake: a = 0, its mu
    and g keep the template's starting values).
    """
    n, m = int(truth["satellites"]), int(truth["metabolites"])
    spec = template_spec(n, m)
    params: dict[str, float] = {p.name: p.value for p in spec.parameters.values() if p.estimate}
    for e in spec.interactions:
        if e.prunable:
            params[str(e.strength)] = 0.0
    edges = {e.id: e for e in spec.interactions}
    for edge_id, values in dict(truth.get("edges") or {}).items():
        e = edges.get(edge_id)
        if e is None or not e.prunable:
            raise ValueError(f"truth edge {edge_id!r} is not an edge of the {n}x{m} template")
        values = dict(values)

        def take(*keys: str, _values: dict[str, Any] = values, _id: str = edge_id) -> float:
            for k in keys:
                if k in _values:
                    return float(_values.pop(k))
            raise ValueError(f"truth edge {_id!r} lacks {' or '.join(keys)}")

        if e.kind == "uptake":
            if "K" in values:
                K = take("K")
                if K <= 0:
                    raise ValueError(f"truth edge {edge_id!r}: K must be positive, got {K}")
                a = 1.0 / K
            else:
                a = take("a")
            params[str(e.params["a"])] = a
            params[str(e.params["mu"])] = take("mu")
            params[str(e.params["yield"])] = take("g", "yield")
        elif e.kind == "inhibition":
            if "I" in values:
                I = take("I")  # noqa: E741
                if I <= 0:
                    raise ValueError(f"truth edge {edge_id!r}: I must be positive, got {I}")
                kappa = 1.0 / I
            else:
                kappa = take("kappa")
            params[str(e.params["kappa"])] = kappa
        else:  # production
            params[str(e.params["v"])] = take("v", "u")
        if values:
            raise ValueError(f"truth edge {edge_id!r}: unexpected value(s) {', '.join(values)}")
    constants = {p.name: p.value for p in spec.parameters.values() if not p.estimate}
    constants.update({k: float(v) for k, v in dict(truth.get("constants") or {}).items()})
    x0 = {s.name: s.x0 for s in spec.states.values()}
    x0.update({k: float(v) for k, v in dict(truth.get("x0") or {}).items()})
    for name in [*constants, *params]:
        if name not in spec.parameters:
            raise ValueError(f"unknown template parameter {name!r}")
    for name in x0:
        if name not in spec.states:
            raise ValueError(f"unknown template state {name!r}")
    return {"parameters": params, "constants": constants, "x0": x0}


def template_header(satellites: int, metabolites: int) -> str:
    """The comment block that heads a template file: what it is and the command that made it."""
    return (f"# Generalized community template: {satellites} satellite(s) x {metabolites} metabolite(s); "
            f"every interaction is an edge\n# whose strength 0 removes it (the model: docs/model.md in symode).\n"
            f"# Generated by: symode template --satellites {satellites} --metabolites {metabolites}\n")


def template_yaml(satellites: int, metabolites: int) -> str:
    """The template spec as YAML text with a comment header."""
    return template_header(satellites, metabolites) + template_spec(satellites, metabolites).to_yaml()


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.stdout.write(template_yaml(int(sys.argv[1]), int(sys.argv[2])))
