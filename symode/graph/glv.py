"""The generalized Lotka-Volterra (gLV) template for community time series:

    dx_i/dt = x_i (r_i + a_ii x_i + sum_{j != i} a_ij x_j + sum_u gamma_iu u(t))

- ``growth:<i>``        intrinsic growth r_i x_i                   (growth law, r = ``r_<i>``)
- ``glv:<i>-><i>``      self-limitation a_ii x_i^2                (a = ``a_<i>_<i>`` < 0)
- ``glv:<j>-><i>``      interaction a_ij x_i x_j, prunable         (a = ``a_<i>_<j>``)
- ``growth:<u>-><i>``   perturbation gamma_iu u(t) x_i, prunable  (growth law with input u, r = ``g_<i>_<u>``)

Abundances are observed on a log scale (``transform: log10``, ``offset``: log10(x + offset) against
log10(data + offset), noise ``sigma`` in log10 units), the scale on which community data are compared.
Initial states are per data file (``symode fit --x0 first-sample``), not estimated by default.

Scales: with typical abundances xbar_i (the geometric mean of a species' positive values in the data
files given, else 1) every taxon limits itself at least at rate ``self_limit`` at its typical abundance
(a_ii xbar_i <= -self_limit), and the interactions get a ridge penalty a_ij xbar_j ~ N(0, interaction_sd^2)
(the change of i's per-capita growth rate caused by j at its typical abundance). These two choices
made leave-one-subject-out predictions of real data stable (docs/communities.md). ``stability_margin``
adds a ``stability`` penalty on the interaction matrix scaled by the same xbar (lambda_max of the
symmetric part of A diag(xbar) <= -margin, per time unit; off by default).

>>> spec = glv_template_spec(["A", "B"], ["diet"])
>>> sorted(e.id for e in spec.interactions)
['glv:A->A', 'glv:A->B', 'glv:B->A', 'glv:B->B', 'growth:A', 'growth:B', 'growth:diet->A', 'growth:diet->B']
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from symode.spec import Spec, spec_from_dict
from symode.spec.vocabulary import NAME_RE, RESERVED

GROWTH_BOUNDS = (-10.0, 20.0)        # r_i, per time unit
PERTURBATION_BOUNDS = (-20.0, 20.0)  # gamma_iu, per time unit and unit of u
SELF_MAX_RATE = 1e3                  # a_ii xbar_i >= -SELF_MAX_RATE
INTERACTION_MAX_RATE = 1e2           # |a_ij xbar_j| <= INTERACTION_MAX_RATE


def check_names(names: Sequence[str], what: str) -> list[str]:
    """Species or input names: valid, not reserved, unique; ValueError with a one-line message."""
    out = [n.strip() for n in names]
    for n in out:
        if not NAME_RE.match(n) or n in RESERVED:
            raise ValueError(f"{what} name {n!r} is not a valid name (letters, digits, _; starting with a letter)")
    dup = sorted({n for n in out if out.count(n) > 1})
    if dup:
        raise ValueError(f"duplicate {what} name(s): {', '.join(dup)}")
    return out


def typical_abundances(species: Sequence[str], datasets: Sequence[Any]) -> dict[str, float]:
    """Geometric mean of each species' positive values over the data sets' columns of that name (1 when
    a species has none)."""
    out = {}
    for s in species:
        vals = [np.asarray(d.columns[s], dtype=float) for d in datasets if s in d.columns]
        v = np.concatenate(vals) if vals else np.zeros(0)
        v = v[np.isfinite(v) & (v > 0)]
        out[s] = float(np.exp(np.mean(np.log(v)))) if len(v) else 1.0
    return out


def glv_template_dict(species: Sequence[str], perturbations: Sequence[str] = (), *,
                      scales: Mapping[str, float] | None = None, self_limit: float = 1.0,
                      interaction_sd: float | None = 0.1, sigma: float = 0.3, offset: float = 1e-5,
                      name: str | None = None, stability_margin: float | None = None,
                      stability_weight: float = 1e6) -> dict[str, Any]:
    """The gLV template as plain spec data (see the module docstring). ``scales``: typical abundance of
    each species (default 1); ``interaction_sd`` None: no penalty; ``stability_margin``: a stability
    term (weight ``stability_weight``) on the xbar-scaled interaction matrix."""
    species = check_names(species, "species")
    perturbations = check_names(perturbations, "perturbation")
    if not species:
        raise ValueError("give at least one species")
    clash = set(species) & set(perturbations)
    if clash:
        raise ValueError(f"name(s) used both as species and perturbation: {', '.join(sorted(clash))}")
    for label, v in (("self_limit", self_limit), ("sigma", sigma)):
        if not (v > 0 and math.isfinite(v)):
            raise ValueError(f"{label} must be a positive number, got {v}")
    if not (offset >= 0 and math.isfinite(offset)):
        raise ValueError(f"offset must be a non-negative number, got {offset}")
    if interaction_sd is not None and not (interaction_sd > 0 and math.isfinite(interaction_sd)):
        raise ValueError(f"interaction_sd must be a positive number, got {interaction_sd}")
    xbar = {s: float((scales or {}).get(s, 1.0)) for s in species}
    for s, v in xbar.items():
        if not (v > 0 and math.isfinite(v)):
            raise ValueError(f"typical abundance of {s} must be positive, got {v}")

    def num(v: float) -> float:
        return float(f"{v:.6g}")

    states = {s: {"role": "other", "x0": num(xbar[s]), "bounds": [0.0, None],
                  "description": f"abundance of {s}"} for s in species}
    params: dict[str, Any] = {}
    inter: list[dict[str, Any]] = []
    for i in species:
        params[f"r_{i}"] = {"value": 1.0, "bounds": list(GROWTH_BOUNDS), "scale": "lin",
                            "description": f"intrinsic growth rate of {i}"}
        inter.append({"type": "growth", "to": i, "r": f"r_{i}"})
    for i in species:
        params[f"a_{i}_{i}"] = {"value": num(-self_limit / xbar[i]),
                                "bounds": [num(-SELF_MAX_RATE / xbar[i]), num(-self_limit / xbar[i])],
                                "scale": "lin", "description": f"self-limitation of {i}"}
        inter.append({"type": "glv", "from": i, "to": i, "a": f"a_{i}_{i}"})
    for i in species:
        for j in species:
            if i != j:
                hi = num(INTERACTION_MAX_RATE / xbar[j])
                params[f"a_{i}_{j}"] = {"value": 0.0, "bounds": [-hi, hi], "scale": "lin",
                                        "description": f"effect of {j} on the growth rate of {i}"}
                inter.append({"type": "glv", "from": j, "to": i, "a": f"a_{i}_{j}", "prunable": True})
    for u in perturbations:
        for i in species:
            params[f"g_{i}_{u}"] = {"value": 0.0, "bounds": list(PERTURBATION_BOUNDS), "scale": "lin",
                                    "description": f"effect of {u} on the growth rate of {i}"}
            inter.append({"type": "growth", "to": i, "input": u, "r": f"g_{i}_{u}", "prunable": True})
    spec: dict[str, Any] = {
        "symode": 1,
        "name": name or f"glv-{len(species)}",
        "description": (f"Generalized Lotka-Volterra model of {len(species)} species"
                        + (f" with perturbation(s) {', '.join(perturbations)}" if perturbations else "")
                        + "; interactions and perturbation effects are prunable edges."),
        "reactor": {"mode": "batch"},
        "states": states,
        "parameters": params,
        "interactions": inter,
        "observables": {s: {"transform": "log10", "offset": offset, "noise": {"absolute": sigma},
                            "description": f"log10({s} + {offset:g})"} for s in species},
    }
    if perturbations:
        spec["inputs"] = {u: {"interpolation": "constant", "default": 0.0,
                              "description": f"perturbation {u} (piecewise constant between samples)"}
                          for u in perturbations}
    if interaction_sd is not None and len(species) > 1:
        spec["penalties"] = [{"name": "interactions", "type": "ridge",
                              "parameters": {f"a_{i}_{j}": num(interaction_sd / xbar[j]) for i in species
                                             for j in species if i != j}}]
    if stability_margin is not None:
        spec.setdefault("penalties", []).append(
            {"name": "stability", "type": "stability", "margin": stability_margin, "weight": stability_weight,
             "abundances": {s: num(xbar[s]) for s in species}})
    return spec


def glv_template_spec(species: Sequence[str], perturbations: Sequence[str] = (), **kw: Any) -> Spec:
    """The validated gLV template spec."""
    return spec_from_dict(glv_template_dict(species, perturbations, **kw), file="<glv template>")


def glv_template_header(command: str) -> str:
    return ("# Generalized Lotka-Volterra template: dx_i/dt = x_i (r_i + sum_j a_ij x_j + sum_u g_i_u u(t)).\n"
            "# Interactions a_ij and perturbation effects g_i_u are prunable edges; a_ii <= -self_limit/xbar_i;\n"
            "# ridge penalty on a_ij (scale interaction_sd/xbar_j). docs/communities.md shows the workflow.\n"
            f"# Generated by: {command}\n")
