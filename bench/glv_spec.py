"""A gLV spec for symode as the spec format expresses it today (no gLV template yet):

    dx_i/dt = x_i (r_i + a_ii x_i + sum_{j != i} a_ij x_j + sum_u gamma_iu u(t))

- growth r_i x_i: a ``custom`` edge (``id: growth:<i>``, rate ``r_<i> * <i>``);
- self-interaction a_ii x_i^2: a ``glv`` edge i -> i, a_ii bounded above by 0 (stability of the isolated
  taxon);
- interactions a_ij x_i x_j: ``glv`` edges j -> i, prunable;
- perturbations gamma_iu u(t) x_i: ``custom`` edges (``id: pert:<u>-><i>``).

Observables on a log scale: ``L_<i> = log10(x_i + eps) + offset`` with an absolute noise sigma (log10
units), so the weighted least squares are least squares on log10(x + eps), the scale of the
leave-one-out score. The offset keeps the observable non-negative (symode's data check rejects values
far below zero).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from symode.spec.data import Dataset

OFFSET = 6.0
LOG10E = 1.0 / math.log(10.0)


def obs_name(taxon: str) -> str:
    return f"L_{taxon}"


def glv_spec_dict(taxa: list[str], inputs: list[str], *, eps: float = 1e-5, sigma: float = 0.3, noise: str = "log",
                  r_bounds: tuple[float, float] = (-10.0, 20.0), self_bounds: tuple[float, float] = (-1e5, 0.0),
                  a_bounds: tuple[float, float] = (-1e5, 1e5), g_bounds: tuple[float, float] = (-20.0, 20.0)
                  ) -> dict[str, Any]:
    """Spec data of the gLV model (all parameters on a linear scale). noise="log": observables
    L_i = log10(x_i + eps) + OFFSET with absolute noise sigma; noise="linear": the states themselves
    with relative noise sigma and absolute noise eps (symode's sigma^2 = eps^2 + (sigma d)^2)."""
    states = {t: {"role": "other", "x0": 1e-3, "estimate": False, "bounds": [0.0, None],
                  "description": f"abundance of {t}"} for t in taxa}
    params: dict[str, Any] = {}
    inter: list[dict[str, Any]] = []
    for i in taxa:
        params[f"r_{i}"] = {"value": 1.0, "bounds": list(r_bounds), "scale": "lin", "unit": "1/day"}
        inter.append({"id": f"growth:{i}", "type": "custom", "rate": f"r_{i} * {i}", "stoichiometry": {i: 1}})
    for i in taxa:
        params[f"a_{i}_{i}"] = {"value": -1.0, "bounds": list(self_bounds), "scale": "lin"}
        inter.append({"type": "glv", "from": i, "to": i, "a": f"a_{i}_{i}"})
    for i in taxa:
        for j in taxa:
            if i != j:
                params[f"a_{i}_{j}"] = {"value": 0.0, "bounds": list(a_bounds), "scale": "lin"}
                inter.append({"type": "glv", "from": j, "to": i, "a": f"a_{i}_{j}", "prunable": True})
    for u in inputs:
        for i in taxa:
            params[f"g_{i}_{u}"] = {"value": 0.0, "bounds": list(g_bounds), "scale": "lin", "unit": "1/day"}
            inter.append({"id": f"pert:{u}->{i}", "type": "custom", "rate": f"g_{i}_{u} * {u} * {i}",
                          "stoichiometry": {i: 1}})
    if noise == "log":
        obs = {obs_name(t): {"expr": f"{LOG10E!r} * log({t} + {eps!r}) + {OFFSET!r}", "noise": {"absolute": sigma}}
               for t in taxa}
    else:
        obs = {t: {"noise": {"absolute": eps, "relative": sigma}} for t in taxa}
    return {"symode": 1, "name": f"glv-{len(taxa)}", "reactor": {"mode": "batch"}, "states": states,
            "inputs": {u: {"interpolation": "constant"} for u in inputs},
            "parameters": params, "interactions": inter, "observables": obs}


def to_dataset(times: np.ndarray, x: np.ndarray, u: np.ndarray, taxa: list[str], inputs: list[str], *,
               eps: float = 1e-5, zeros: str = "missing", noise: str = "log", name: str = "<memory>") -> Dataset:
    """A symode Dataset with the log observables; zeros (below detection) are missing values
    (``zeros="missing"``) or log10(eps) (``zeros="eps"``)."""
    cols: dict[str, np.ndarray] = {}
    for k, t in enumerate(taxa):
        v = np.array(x[:, k], dtype=float)
        if zeros == "missing":
            v[v <= 0] = np.nan
        if noise == "log":
            with np.errstate(divide="ignore", invalid="ignore"):
                cols[obs_name(t)] = np.log10(v + eps) + OFFSET
        else:
            cols[t] = v
    for k, n in enumerate(inputs):
        cols[n] = np.array(u[:, k], dtype=float)
    return Dataset(times=np.asarray(times, float), columns=cols, time_column="time", file=name)


def unpack(params: dict[str, float], taxa: list[str], inputs: list[str]) -> tuple[np.ndarray, np.ndarray,
                                                                                   np.ndarray]:
    """(r, A, G) from a name -> value mapping."""
    m = len(taxa)
    r = np.array([params[f"r_{i}"] for i in taxa])
    A = np.array([[params[f"a_{i}_{j}"] for j in taxa] for i in taxa]).reshape(m, m)
    G = np.array([[params[f"g_{i}_{u}"] for u in inputs] for i in taxa]).reshape(m, len(inputs))
    return r, A, G


def pack(r: np.ndarray, A: np.ndarray, G: np.ndarray, taxa: list[str], inputs: list[str]) -> dict[str, float]:
    out = {f"r_{i}": float(r[a]) for a, i in enumerate(taxa)}
    out.update({f"a_{i}_{j}": float(A[a, b]) for a, i in enumerate(taxa) for b, j in enumerate(taxa)})
    out.update({f"g_{i}_{u}": float(G[a, b]) for a, i in enumerate(taxa) for b, u in enumerate(inputs)})
    return out
