"""Starting points of candidate fits.

Satellites of a template are exchangeable and a start that treats them alike stays symmetric under
the fit, so every full-template start breaks the symmetry (:func:`full_starts`); cold starts re-initialise
the satellites of a fitted model so that hidden satellites can trade roles (:func:`cold_starts`); a
split hands a substrate to an absent satellite with the donor's values (:func:`transplant_start`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from symode.discover.candidates import Candidate
from symode.spec import Spec

__all__ = ["clip_param", "cold_starts", "full_starts", "satellite_params", "spread_starts", "transplant_start"]


def full_starts(spec: Spec, n_starts: int = 4, seed: int = 12345) -> list[tuple[dict[str, float], dict[str, float]]]:
    """Starting points of the full-template fit. Satellites are exchangeable, and a start that treats
    them alike stays symmetric under the fit (equal parameters get equal updates): the satellites would
    act as one. So every start breaks the symmetry: in start s, satellite j prefers metabolite
    (j + s) mod m (uptake affinity ``hi`` on it, ``lo`` on the others), and all satellite parameters and
    initial states get a small seeded random spread. The first start is mild (affinities 3 / 0.3), the
    others strong (10 / 0.1) with shifts 0, 1, 2, ...

    Without satellites (e.g. a gLV template) there is no symmetry to break and these starts would be
    identical copies, so the starts are spread instead (:func:`spread_starts`)."""
    base = {n: p.value for n, p in spec.parameters.items()}
    est = {n for n, p in spec.parameters.items() if p.estimate}
    sats = [s.name for s in spec.states.values() if s.role == "satellite"]
    if not sats:
        return spread_starts(spec, n_starts, seed)
    mets = [s.name for s in spec.states.values() if s.role == "metabolite"]
    rng = np.random.default_rng(seed)
    ups = [e for e in spec.interactions if e.prunable and e.kind == "uptake" and isinstance(e.strength, str)]
    own: dict[str, list[str]] = {y: [] for y in sats}      # satellite -> its parameters
    for e in spec.interactions:
        for y in (e.source, e.target):
            if y in own:
                own[y] += [str(v) for v in e.params.values() if isinstance(v, str) and v in est]
    starts = []
    for i in range(n_starts):
        hi, lo = (3.0, 0.3) if i == 0 else (10.0, 0.1)
        shift = max(0, i - 1)
        par = dict(base)
        for names in own.values():
            for n in dict.fromkeys(names):     # first-occurrence order (a set's order changes per process)
                par[n] = clip_param(spec, n, base[n] * 10 ** rng.uniform(-0.15, 0.15))
        for e in ups:
            j, k = sats.index(str(e.target)), mets.index(str(e.source))
            pref = hi if mets and k == (j + shift) % len(mets) else lo
            par[str(e.strength)] = clip_param(spec, str(e.strength), base[str(e.strength)] * pref)
        x0 = {y: spec.states[y].x0 * 10 ** rng.uniform(-0.15, 0.15) for y in sats}
        starts.append((par, x0))
    return starts


def spread_starts(spec: Spec, n_starts: int = 4, seed: int = 12345
                  ) -> list[tuple[dict[str, float], dict[str, float]]]:
    """Distinct starting points of a template without satellites: the first is the spec's values; in the
    others every estimated parameter of a prunable edge is drawn around its value (a nonzero value times
    10^U(-0.3, 0.3); a zero value: N(0, sd), its magnitude when the parameter cannot be negative, with sd a thousandth
    of its smaller bound's magnitude, or 0.1 without bounds; kept within its bounds), and every other
    estimated parameter is multiplied by 10^U(-0.15, 0.15) (growth rates, self-limitation)."""
    base = {n: p.value for n, p in spec.parameters.items()}
    est = [n for n, p in spec.parameters.items() if p.estimate]
    edge_params = {str(v) for e in spec.interactions if e.prunable for v in e.params.values() if isinstance(v, str)}
    rng = np.random.default_rng(seed)
    starts: list[tuple[dict[str, float], dict[str, float]]] = [(dict(base), {})]
    for _ in range(1, n_starts):
        par = dict(base)
        for n in est:
            v, p = base[n], spec.parameters[n]
            if n in edge_params and v == 0.0:
                mags = [abs(b) for b in (p.lower, p.upper) if b is not None and b != 0]
                if p.lower is not None and p.lower >= 0:
                    par[n] = clip_param(spec, n, abs(rng.normal(0.0, 1e-3 * min(mags) if mags else 0.1)))
                else:
                    par[n] = clip_param(spec, n, rng.normal(0.0, 1e-3 * min(mags) if mags else 0.1))
            elif v != 0.0:
                spread = 0.3 if n in edge_params else 0.15
                par[n] = clip_param(spec, n, v * 10 ** rng.uniform(-spread, spread))
        starts.append((par, {}))
    return starts


def satellite_params(spec: Spec) -> dict[str, list[str]]:
    """satellite -> the estimated parameters of the edges that touch it."""
    est = {n for n, p in spec.parameters.items() if p.estimate}
    own: dict[str, list[str]] = {s.name: [] for s in spec.states.values() if s.role == "satellite"}
    for e in spec.interactions:
        for y in (e.source, e.target):
            if y in own:
                own[y] += [str(v) for v in e.params.values() if isinstance(v, str) and v in est and v not in own[y]]
    return own


def cold_starts(spec: Spec, params: dict[str, float], x0: dict[str, float], n_starts: int = 4,
                 seed: int = 54321) -> list[tuple[dict[str, float], dict[str, float]]]:
    """Starting points that re-initialise the satellites of a candidate model (``spec``, a sub-model of the
    template with its default values) while X's parameters and the metabolite initial states stay at a
    fitted model's values (``params``, ``x0``). Hidden satellites can swap roles (one satellite doing part
    of another's job) and such a basin traps every warm-started refit; fresh satellite values let the fit
    reassign the roles. In start s, satellite j prefers the ((j + s) mod n_j)-th of its own n_j substrates
    (affinity x3, the others x0.3), all its uptake affinities are scaled by a level cycling through 1, 0.1,
    10, 0.3, 3, and its parameters and initial state get a seeded random spread of +-0.15 decades."""
    base = {n: p.value for n, p in spec.parameters.items()}
    sats = [s.name for s in spec.states.values() if s.role == "satellite"]
    own = satellite_params(spec)
    ups: dict[str, list[Any]] = {y: [] for y in sats}
    for e in spec.interactions:
        if e.kind == "uptake" and e.target in ups and isinstance(e.strength, str) and e.strength in base:
            ups[str(e.target)].append(e)
    rng = np.random.default_rng(seed)
    levels = (1.0, 0.1, 10.0, 0.3, 3.0)
    starts = []
    for s in range(n_starts):
        par = {n: float(params.get(n, v)) for n, v in base.items()}
        for names in own.values():
            for n in names:
                par[n] = clip_param(spec, n, base[n] * 10 ** rng.uniform(-0.15, 0.15))
        for j, y in enumerate(sats):
            for i, e in enumerate(ups[y]):
                pref = 3.0 if i == (j + s) % len(ups[y]) else 0.3
                if len(ups[y]) == 1:
                    pref = 1.0
                name = str(e.strength)
                par[name] = clip_param(spec, name, par[name] * pref * levels[s % len(levels)])
        xs = {n: float(v) for n, v in x0.items() if n in spec.states}
        for y in sats:
            xs[y] = spec.states[y].x0 * 10 ** rng.uniform(-0.15, 0.15)
        starts.append((par, xs))
    return starts


def clip_param(spec: Spec, name: str, v: float) -> float:
    lo, hi = spec.parameters[name].lower, spec.parameters[name].upper
    return float(min(max(v, lo if lo is not None else v), hi if hi is not None else v))


def transplant_start(spec: Spec, current: Candidate, donor: str, new: str) -> tuple[dict[str, float],
                                                                                     dict[str, float]]:
    """A start for a split: ``current``'s values, the new uptake edge with the donor edge's parameters
    (strength, maximal rate, yield), and the absent satellite inoculated like the donor."""
    params, x0 = dict(current.parameters), dict(current.x0)
    d, n = spec.interaction(donor), spec.interaction(new)
    for role, name in d.params.items():
        target = n.params.get(role)
        if isinstance(name, str) and isinstance(target, str) and name in params and target in spec.parameters:
            params[target] = clip_param(spec, target, params[name])
    if d.target in x0 and n.target in spec.states:
        x0[str(n.target)] = x0[str(d.target)]
    return params, x0
