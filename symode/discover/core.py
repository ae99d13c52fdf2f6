"""Structure discovery (MISSION.md section 3): fit a template whose edges are prunable, remove the edges
the data do not need, refit, and select the model by an information criterion.

>>> res = discover("specs/community-2x3.yaml", "data.csv", outdir="out")          # doctest: +SKIP
>>> res.kept_edges                                                                 # doctest: +SKIP

Strategies (pass one as ``strategy=``):

- :class:`BackwardElimination` (default): fit the full template from several symmetry-breaking starts
  (satellites are exchangeable: a start that treats them alike keeps them alike), then repeatedly rank
  the remaining edges by their knockout cost (objective increase when the edge's strength is set to 0
  without refitting, minus what the criterion saves by dropping its parameters; Wald statistics as a
  fallback) and refit candidate models without the least needed edge and without the group of edges
  whose knockout alone already pays (in parallel, warm started); accept the candidate with the lowest
  criterion (BIC by default) while it improves on the current model. A removal cached from an earlier
  model is refitted from the current one (once) unless it already beats it. Then a local search: re-add each
  pruned edge, or exchange a kept edge for a pruned one of the same kind sharing its organism or
  metabolite; after every improvement, eliminate again. When none of these warm-started moves improves,
  the model, its splits (a substrate of a satellite growing on several handed to an absent satellite)
  and each of its single removals are refitted from starts that re-initialise the satellites (X's
  parameters stay): hidden satellites can trade roles (one doing part of another's job, or two merged
  into one), a basin that traps every warm-started refit. The result is a model no single drop, add or
  swap (warm) and no refit, split or drop (cold) improves.
- :class:`ThresholdRefit`: sequential thresholding in the spirit of STLSQ: drop every edge whose Wald
  statistic is below ``threshold``, refit, repeat until nothing is dropped.

A satellite left without uptake edges cannot grow (it washes out): it is removed together with all of its
edges. Models that differ only by a permutation of exchangeable satellites share one fit, and the
selected model's satellites are renamed to a canonical order (:func:`satellite_relabelling`). Every
evaluated candidate is checkpointed in ``OUTDIR/discovery-checkpoint.json``; a rerun with
the same spec and data resumes from it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from symode.errors import SolverError, SymodeError
from symode.io import atomic_write_json, atomic_write_text
from symode.spec.data import Dataset
from symode.spec.schema import Spec, load_spec, spec_from_dict

CHECKPOINT = "discovery-checkpoint.json"


# ----------------------------------------------------------------------------------------------------
# Strategies
# ----------------------------------------------------------------------------------------------------

@dataclass
class BackwardElimination:
    """Backward elimination by an information criterion ("bic" or "aicc")."""

    criterion: str = "bic"
    weak: float = 2.0           # |strength / SE| below this: member of the "weak group" candidate
    max_rounds: int = 200
    add_back: bool = True       # then try re-adding each pruned edge (and eliminate again if one helps)
    swaps: bool = True          # then try exchanging a kept edge for a related pruned one
    cold_starts: int = 2        # then refit the model, its splits and single removals from this many
                                # satellite re-initialising starts (:func:`_cold_starts`); 0: off


@dataclass
class ThresholdRefit:
    """Sequential thresholding: drop all edges with |strength / SE| < threshold, refit, repeat."""

    threshold: float = 3.0
    criterion: str = "bic"
    max_rounds: int = 50


def _criteria(objective: float, k: int, n: int) -> tuple[float, float]:
    """(AICc, BIC) from the objective 1/2 sum r^2 (= -log L + const)."""
    m2ll = 2.0 * objective
    aicc = m2ll + 2 * k + (2 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else math.inf)
    bic = m2ll + k * math.log(n)
    return aicc, bic


# ----------------------------------------------------------------------------------------------------
# Candidate models
# ----------------------------------------------------------------------------------------------------

def prunable_edges(spec: Spec) -> list[str]:
    """Ids of the spec's prunable edges with a strength parameter, in spec order."""
    return [e.id for e in spec.interactions if e.prunable and isinstance(e.strength, str)]


def candidate_spec(spec: Spec, edges: Sequence[str]) -> Spec:
    """The spec keeping only the given prunable edges (non-prunable ones always stay). Satellites left
    without an uptake edge are removed with all of their edges; unused parameters are dropped."""
    from symode.graph.community import build_graph, graph_to_spec, prune_unused_parameters, remove_interactions

    keep = set(edges)
    drop = [e.id for e in spec.interactions if e.prunable and isinstance(e.strength, str) and e.id not in keep]
    G = remove_interactions(build_graph(spec), drop)
    dead = [s.name for s in spec.states.values() if s.role == "satellite"
            and not any(e.kind == "uptake" and e.target == s.name for e in spec.interactions
                        if e.id not in drop)]
    for y in dead:
        if y not in spec.observables:
            G.remove_node(y)
    if dead:
        G.graph["interaction_order"] = [k for k in G.graph["interaction_order"]
                                        if k in {kk for _u, _v, kk in G.edges(keys=True)}]
    return prune_unused_parameters(graph_to_spec(G))


def effective_edges(spec: Spec, edges: Sequence[str]) -> list[str]:
    """The prunable edges that survive in :func:`candidate_spec` (edges of removed satellites go), in
    template order."""
    keep = set(edges)
    dead = {s.name for s in spec.states.values() if s.role == "satellite" and s.name not in spec.observables
            and not any(e.kind == "uptake" and e.target == s.name and (e.id in keep or not e.prunable
                                                                        or not isinstance(e.strength, str))
                        for e in spec.interactions)}
    return [e.id for e in spec.interactions if e.prunable and isinstance(e.strength, str) and e.id in keep
            and e.source not in dead and e.target not in dead]


@dataclass
class Candidate:
    edges: list[str]
    parameters: dict[str, float]
    x0: dict[str, float]
    objective: float
    k: int
    n_obs: int
    aicc: float
    bic: float
    wald: dict[str, float] = field(default_factory=dict)   # edge -> |strength / SE|
    converged: bool = True
    time_s: float = 0.0
    knockout: dict[str, float] = field(default_factory=dict)  # edge -> objective increase at strength 0, no refit

    def to_dict(self) -> dict[str, Any]:
        return {"edges": list(self.edges), "parameters": self.parameters, "x0": self.x0,
                "objective": self.objective, "k": self.k, "n_obs": self.n_obs, "aicc": self.aicc,
                "bic": self.bic, "wald": self.wald, "converged": self.converged, "time_s": self.time_s,
                "knockout": self.knockout}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Candidate:
        return cls(**d)

    def ic(self, criterion: str) -> float:
        return self.bic if criterion == "bic" else self.aicc


def _full_starts(spec: Spec, n_starts: int = 4, seed: int = 12345) -> list[tuple[dict[str, float], dict[str, float]]]:
    """Starting points of the full-template fit. Satellites are exchangeable, and a start that treats
    them alike stays symmetric under the fit (equal parameters get equal updates): the satellites would
    act as one. So every start breaks the symmetry: in start s, satellite j prefers metabolite
    (j + s) mod m (uptake affinity ``hi`` on it, ``lo`` on the others), and all satellite parameters and
    initial states get a small seeded random spread. The first start is mild (affinities 3 / 0.3), the
    others strong (10 / 0.1) with shifts 0, 1, 2, ..."""
    base = {n: p.value for n, p in spec.parameters.items()}
    est = {n for n, p in spec.parameters.items() if p.estimate}
    sats = [s.name for s in spec.states.values() if s.role == "satellite"]
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
            for n in set(names):
                par[n] = _clip_param(spec, n, base[n] * 10 ** rng.uniform(-0.15, 0.15))
        for e in ups:
            j, k = sats.index(str(e.target)), mets.index(str(e.source))
            pref = hi if mets and k == (j + shift) % len(mets) else lo
            par[str(e.strength)] = _clip_param(spec, str(e.strength), base[str(e.strength)] * pref)
        x0 = {y: spec.states[y].x0 * 10 ** rng.uniform(-0.15, 0.15) for y in sats}
        starts.append((par, x0))
    return starts


def _satellite_params(spec: Spec) -> dict[str, list[str]]:
    """satellite -> the estimated parameters of the edges that touch it."""
    est = {n for n, p in spec.parameters.items() if p.estimate}
    own: dict[str, list[str]] = {s.name: [] for s in spec.states.values() if s.role == "satellite"}
    for e in spec.interactions:
        for y in (e.source, e.target):
            if y in own:
                own[y] += [str(v) for v in e.params.values() if isinstance(v, str) and v in est and v not in own[y]]
    return own


def _cold_starts(spec: Spec, params: dict[str, float], x0: dict[str, float], n_starts: int = 4,
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
    own = _satellite_params(spec)
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
                par[n] = _clip_param(spec, n, base[n] * 10 ** rng.uniform(-0.15, 0.15))
        for j, y in enumerate(sats):
            for i, e in enumerate(ups[y]):
                pref = 3.0 if i == (j + s) % len(ups[y]) else 0.3
                if len(ups[y]) == 1:
                    pref = 1.0
                name = str(e.strength)
                par[name] = _clip_param(spec, name, par[name] * pref * levels[s % len(levels)])
        xs = {n: float(v) for n, v in x0.items() if n in spec.states}
        for y in sats:
            xs[y] = spec.states[y].x0 * 10 ** rng.uniform(-0.15, 0.15)
        starts.append((par, xs))
    return starts


def _clip_param(spec: Spec, name: str, v: float) -> float:
    lo, hi = spec.parameters[name].lower, spec.parameters[name].upper
    return float(min(max(v, lo if lo is not None else v), hi if hi is not None else v))


class _Hopeless(Exception):
    """A candidate fit that cannot reach the objective it needs to be accepted."""


def _fit_candidate(job: dict[str, Any]) -> dict[str, Any]:
    """Worker: fit one candidate model (LM from a warm start, no uncertainty analysis)."""
    from symode.fit import FitProblem
    from symode.optim.lm import levenberg_marquardt
    from symode.solve.model import build_model

    t0 = time.perf_counter()
    spec = spec_from_dict(job["spec"], file="<candidate>")
    start = {n: v for n, v in job["parameters"].items() if n in spec.parameters}
    spec = spec.with_values(start, {n: v for n, v in job["x0"].items() if n in spec.states})
    model = build_model(spec)
    fp = FitProblem(model, job["datasets"])
    z = fp.z_from_values()
    if job.get("shooting", "single") == "multiple":
        from symode.fit import Tracker, local_fit

        stages: list[dict[str, Any]] = []
        z, conv, _msg = local_fit(fp, z, method="lm", shooting="multiple", segments=12,
                                   max_iter=job["max_iter"], max_time=job["max_time"],
                                   tracker=Tracker(fp, None, None, t0), stages=stages)
    else:
        # A candidate can only be accepted if its objective ends below ``target``; a fit still far above it
        # after many iterations is abandoned (bad candidates otherwise crawl to the iteration limit).
        # ``max_cpu`` bounds the fit's CPU time (load-independent, unlike ``max_time``).
        # ``patience`` stretches those iteration counts (cold starts begin far from their optimum).
        target = job.get("target")
        last = {"z": z}
        cpu0, max_cpu = time.process_time(), job.get("max_cpu")
        n1, n2 = (round(n * job.get("patience", 1.0)) for n in (30, 80))

        def watch(it: int, zz: np.ndarray, loss: float) -> None:
            last["z"] = zz
            if target is not None and ((it >= n1 and loss > 1.25 * target + 50) or
                                       (it >= n2 and loss > 1.05 * target + 10)):
                raise _Hopeless
            if max_cpu is not None and time.process_time() - cpu0 > max_cpu:
                raise _Hopeless

        try:
            res = levenberg_marquardt(fp.residuals, fp.jacobian, z, fp.lb, fp.ub, max_iter=job["max_iter"],
                                      max_time=job["max_time"], callback=watch)
            z, conv = res.z, res.converged
        except (_Hopeless, SolverError, ValueError, np.linalg.LinAlgError):
            z, conv = last["z"], False          # abandoned, or the sensitivities failed: keep the best point
    loss = fp.loss(z)
    if not np.isfinite(loss):
        loss = 1e300
    p, x0s = fp.vectors(z)
    params = {n: float(v) for n, v in zip(model.parameters, p, strict=True)}
    x0 = {n: float(v) for n, v in zip(model.states, x0s[0], strict=True)}
    # Wald statistics of the edge strengths from the Gauss-Newton covariance at the optimum.
    wald: dict[str, float] = {}
    try:
        _, J = fp.jacobian(z, gauge=False)
        d = fp.dtheta_dz(z)
        Jn = J / d                                       # d r / d theta
        F = Jn.T @ Jn
        cov = np.linalg.pinv(F, rcond=1e-12)
        for e in spec.interactions:
            if e.prunable and isinstance(e.strength, str) and e.strength in fp.names:
                i = fp.names.index(e.strength)
                v = float(fp.natural(z)[i])
                se = math.sqrt(max(cov[i, i], 0.0))
                wald[e.id] = 0.0 if v <= 0 else (abs(v) / se if se > 0 else math.inf)
    except Exception:   # ranking is a heuristic: fall back to raw strengths
        wald = {}
    # Knockouts: the objective increase when one edge's strength is set to 0 without refitting (an upper
    # bound of the increase after refitting; cheap, one simulation per edge, and meaningful in sloppy
    # models where the Wald statistics are not).
    knock: dict[str, float] = {}
    for e in spec.interactions:
        if e.prunable and isinstance(e.strength, str) and e.strength in fp.names:
            i = fp.names.index(e.strength)
            if fp.scales[i] != "lin":
                continue
            zk = z.copy()
            zk[i] = max(0.0, fp.lb[i])
            lk = fp.loss(zk)
            knock[e.id] = float(lk - loss) if np.isfinite(lk) else 1e300
    k = len(fp.names)
    aicc, bic = _criteria(float(loss), k, fp.n_obs)
    return Candidate(edges=list(job["edges"]), parameters=params, x0=x0, objective=float(loss), k=k,
                     n_obs=fp.n_obs, aicc=aicc, bic=bic, wald={k2: (v if math.isfinite(v) else 1e300)
                                                               for k2, v in wald.items()},
                     converged=bool(conv), time_s=time.perf_counter() - t0, knockout=knock).to_dict()


# ----------------------------------------------------------------------------------------------------
# Satellite labels
# ----------------------------------------------------------------------------------------------------

def _rename(obj: Any, mapping: dict[str, str]) -> Any:
    """``obj`` (nested dicts/lists/strings) with every whole-word occurrence of a key of ``mapping`` replaced
    simultaneously ("Y1" matches in ``a_M2_Y1`` and ``uptake:M2->Y1``, not in ``Y10``)."""
    if not mapping:
        return obj
    rx = re.compile(r"(?<![A-Za-z0-9])(" + "|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True))
                    + r")(?![A-Za-z0-9])")

    def sub(v: Any) -> Any:
        if isinstance(v, str):
            return rx.sub(lambda m: mapping[m.group(1)], v)
        if isinstance(v, dict):
            return {sub(k): sub(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [sub(x) for x in v]
        return v

    return sub(obj)


def _canonical(d: dict[str, Any]) -> str:
    d = dict(d)
    d["interactions"] = sorted(json.dumps(i, sort_keys=True, default=str) for i in d.get("interactions", []))
    d.pop("description", None)
    for sec in ("states", "parameters", "observables"):
        d[sec] = {k: {kk: vv for kk, vv in v.items() if kk != "description"} if isinstance(v, dict) else v
                  for k, v in (d.get(sec) or {}).items()}
    return json.dumps(d, sort_keys=True, default=str)


def _order_mapping(spec: Spec, edges: Sequence[str]) -> dict[str, str]:
    """{old: new} (changed names only) that puts the satellites of ``edges`` in canonical order (see
    :func:`satellite_relabelling`), without checking that the permutation is a symmetry of ``spec``."""
    sats = [s.name for s in spec.states.values() if s.role == "satellite"]
    if len(sats) < 2:
        return {}
    order = {name: i for i, name in enumerate(spec.states)}
    kept = set(edges)
    sig: dict[str, dict[str, list[int]]] = {y: {"uptake": [], "production": [], "inhibition": []} for y in sats}
    for e in spec.interactions:
        if e.id not in kept:
            continue
        if e.kind == "uptake" and e.target in sig:
            sig[e.target]["uptake"].append(order[e.source])
        elif e.kind == "production" and e.source in sig:
            sig[e.source]["production"].append(order[e.target])
        elif e.kind == "inhibition" and e.target in sig:
            sig[e.target]["inhibition"].append(order[e.source])

    def key(y: str) -> tuple[Any, ...]:
        up = sorted(sig[y]["uptake"])
        return (0 if up else 1, up if up else [sats.index(y)], sorted(sig[y]["production"]),
                sorted(sig[y]["inhibition"]), sats.index(y))

    ordered = sorted(sats, key=key)
    return {old: new for old, new in zip(ordered, sats, strict=True) if old != new}


def _is_symmetry(spec: Spec, mapping: dict[str, str]) -> bool:
    d = spec.to_dict()
    return _canonical(_rename(d, mapping)) == _canonical(d)


def satellites_exchangeable(spec: Spec) -> bool:
    """True when every permutation of the satellite labels maps ``spec`` onto itself (adjacent
    transpositions generate all permutations)."""
    sats = [s.name for s in spec.states.values() if s.role == "satellite"]
    return len(sats) >= 2 and all(_is_symmetry(spec, {a: b, b: a}) for a, b in itertools.pairwise(sats))


def satellite_relabelling(spec: Spec, edges: Sequence[str]) -> dict[str, str]:
    """Canonical names for the satellites of a selected model: the data see only X, S and the metabolites,
    so satellites of a template are exchangeable and discovery finds a model only up to a permutation of
    their labels. Convention: satellites that remain (have an uptake edge) are numbered in order of the
    metabolites they take up (the lowest-numbered substrate first; ties by the next substrate, then by
    the metabolites they produce and are inhibited by), absent satellites take the remaining labels in
    their original order. Returns {old name: new name} (only changed names), or {} when the permutation is
    not a symmetry of ``spec`` (then labels are kept as they are)."""
    mapping = _order_mapping(spec, edges)
    if not mapping or not _is_symmetry(spec, mapping):
        return {}
    return mapping


def _relabel_candidate(c: Candidate, mapping: dict[str, str]) -> Candidate:
    if not mapping:
        return c
    return Candidate.from_dict(_rename(c.to_dict(), mapping))


# ----------------------------------------------------------------------------------------------------
# The search
# ----------------------------------------------------------------------------------------------------

@dataclass
class DiscoveryResult:
    spec: Spec                       # the input template
    kept_edges: list[str]
    pruned_edges: list[str]
    selected: Candidate
    path: list[Candidate]            # accepted models, full template first
    evaluated: list[Candidate]
    pruned_spec: Spec                # the selected model with its fitted values
    final_fit: Any = None            # FitResult of the selected model (uncertainty analysis)
    criterion: str = "bic"
    wall_time_s: float = 0.0
    relabelling: dict[str, str] = field(default_factory=dict)   # search label -> reported label

    def to_json(self) -> dict[str, Any]:
        params = dict(self.final_fit.parameters) if self.final_fit is not None else dict(self.selected.parameters)
        out: dict[str, Any] = {
            "kept_edges": list(self.kept_edges),
            "pruned_edges": list(self.pruned_edges),
            "parameters": {n: float(v) for n, v in params.items()},
            "path": [{"edges": list(c.edges), "objective": c.objective, "aicc": c.aicc, "bic": c.bic}
                     for c in self.path],
            "criterion": self.criterion,
            "x0": dict(self.final_fit.x0[0]) if self.final_fit is not None else dict(self.selected.x0),
            "wall_time_s": self.wall_time_s,
            "n_candidates_evaluated": len(self.evaluated),
            "satellite_relabelling": dict(self.relabelling),
        }
        if self.final_fit is not None:
            out["identifiable"] = {n: bool(v) for n, v in self.final_fit.identifiable.items()}
        return out


FULL_TIME_UNKNOWNS = 45     # the full-template fit budget (``_Search.full_time``) is per this many unknowns
COLD_PATIENCE = 3.0         # cold refits are abandoned as hopeless only after 3x the iterations of warm ones
REFIT_CPU_SHARE = 0.5       # CPU limit of one warm candidate refit, as a share of the full-template budget


def _n_unknowns(spec: Spec, n_datasets: int = 1) -> int:
    """Estimated parameters plus estimated initial states (per data set) of a spec."""
    return (sum(p.estimate for p in spec.parameters.values())
            + sum(st.estimate for st in spec.states.values()) * n_datasets)


def _fingerprint(spec: Spec, datasets: Sequence[Dataset]) -> str:
    h = hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True, default=str).encode())
    for d in datasets:
        h.update(np.asarray(d.times, float).tobytes())
        for k in sorted(d.columns):
            h.update(k.encode())
            h.update(np.asarray(d.columns[k], float).tobytes())
    return h.hexdigest()


class _Search:
    def __init__(self, spec: Spec, datasets: list[Dataset], *, outdir: Path | None, workers: int,
                 progress: bool, max_iter: int, max_time: float, resume: bool) -> None:
        self.spec, self.datasets, self.outdir = spec, datasets, outdir
        self.workers, self.progress = workers, progress
        self.max_iter, self.max_time = max_iter, max_time
        self.full_time = 240.0
        self.criterion: str | None = None     # set by discover(): early abandon of hopeless candidates
        self.full_starts: list[float] = []
        self.cache: dict[frozenset[str], Candidate] = {}
        self.cold_done: set[frozenset[str]] = set()     # edge sets refitted from cold starts
        self.warm_from: set[tuple[frozenset[str], frozenset[str]]] = set()   # (edge set, start) warm fits
        self.order: list[Candidate] = []
        self.path: list[Candidate] = []
        self.fp = _fingerprint(spec, datasets)
        self.satellites = [s.name for s in spec.states.values() if s.role == "satellite"]
        self.exchangeable = satellites_exchangeable(spec)
        self.pool: Any = None
        self.bar: Any = None
        if resume and outdir is not None and (outdir / CHECKPOINT).exists():
            try:
                ck = json.loads((outdir / CHECKPOINT).read_text())
            except (OSError, ValueError):
                ck = {}
            if ck.get("fingerprint") == self.fp:
                for d in ck.get("evaluated", []):
                    c = Candidate.from_dict(d)
                    self.cache[self._canon(c.edges)[0]] = c
                    self.order.append(c)
                path = [self.lookup(e) for e in ck.get("path", [])]
                self.path = [c for c in path if c is not None]
                self.cold_done = {self._canon(e)[0] for e in ck.get("cold_done", [])}
                self.warm_from = {(self._canon(a)[0], self._canon(b)[0]) for a, b in ck.get("warm_from", [])}
                self.full_starts = [float(v) for v in ck.get("full_starts", [])]
                if self.order and self.progress:
                    print(f"discover: resuming from {outdir / CHECKPOINT} ({len(self.order)} fitted candidates)")

    def __enter__(self) -> _Search:
        if self.progress:
            try:
                from tqdm import tqdm

                self.bar = tqdm(desc="discover", unit="fit", leave=False, dynamic_ncols=True)
            except Exception:  # pragma: no cover
                self.bar = None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.bar is not None:
            self.bar.close()

    def _canon(self, edges: Sequence[str]) -> tuple[frozenset[str], dict[str, str]]:
        """(cache key, {label: canonical label}): edge sets that differ only by a permutation of
        exchangeable satellites are the same model and share one fit."""
        m = _order_mapping(self.spec, edges) if self.exchangeable else {}
        return (frozenset(_rename(list(edges), m)) if m else frozenset(edges)), m

    def lookup(self, edges: Sequence[str]) -> Candidate | None:
        """The cached fit of ``edges`` (relabelled to the requested satellite names), or None."""
        key, m = self._canon(edges)
        c = self.cache.get(key)
        if c is None or set(c.edges) == set(edges):
            return c
        _, mc = self._canon(c.edges)
        inv = {v: k for k, v in m.items()}
        mapping = {}
        for y in self.satellites:
            target = inv.get(mc.get(y, y), mc.get(y, y))
            if target != y:
                mapping[y] = target
        return _relabel_candidate(c, mapping)

    def save(self) -> None:
        if self.outdir is None:
            return
        atomic_write_json(self.outdir / CHECKPOINT, {
            "fingerprint": self.fp, "evaluated": [c.to_dict() for c in self.order],
            "path": [c.edges for c in self.path], "full_starts": self.full_starts,
            "cold_done": [sorted(k) for k in self.cold_done],
            "warm_from": [[sorted(a), sorted(b)] for a, b in self.warm_from]})

    def _job(self, edges: list[str], start: Candidate | None) -> dict[str, Any]:
        sub = candidate_spec(self.spec, edges)
        params = dict(start.parameters) if start is not None else {}
        x0 = dict(start.x0) if start is not None else {}
        # A warm refit of a sub-model needs far less than the cold multi-start fit of the full template: at
        # most REFIT_CPU_SHARE of that budget in CPU time (under load, a refit that neither converges nor
        # turns hopeless would otherwise run to ``max_time`` and hold up its whole batch).
        job = {"spec": sub.to_dict(), "edges": edges, "parameters": params, "x0": x0,
               "datasets": self.datasets, "max_iter": self.max_iter, "max_time": self.max_time,
               "max_cpu": self.refit_cpu}
        if start is not None and self.criterion is not None:
            # The objective below which this candidate beats ``start`` under the criterion.
            aicc, bic = _criteria(0.0, _n_unknowns(sub, len(self.datasets)), start.n_obs)
            job["target"] = 0.5 * (start.ic(self.criterion) - (bic if self.criterion == "bic" else aicc))
        return job

    @cached_property
    def refit_cpu(self) -> float:
        """CPU limit of one warm candidate refit: :data:`REFIT_CPU_SHARE` of the full template's budget."""
        return REFIT_CPU_SHARE * self.full_budget(prunable_edges(self.spec))

    def full_budget(self, edges: Sequence[str]) -> float:
        """CPU seconds of the multi-start fit of the model with ``edges``: ``full_time`` per
        :data:`FULL_TIME_UNKNOWNS` unknowns (at least ``full_time``)."""
        k = _n_unknowns(candidate_spec(self.spec, list(edges)), len(self.datasets))
        return self.full_time * max(1.0, k / FULL_TIME_UNKNOWNS)

    def evaluate_full(self, edges: list[str]) -> Candidate:
        """The full model from several symmetry-breaking starting points (:func:`_full_starts`): all of
        them are fitted in parallel for a quarter of ``full_time``, then the ``workers`` best continue for
        the rest (the full template has many local minima and its fits are slow); the best one wins."""
        cached = self.lookup(effective_edges(self.spec, edges))
        if cached is not None:
            return cached
        # The budget scales with the number of unknowns (per-iteration cost and iterations both grow) and
        # is CPU time (so a moderately busy machine does not stop the fit further from its optimum), with a
        # wall-clock cap of 1.25 times that (so a very busy one does not make discovery take forever).
        budget = self.full_budget(edges)
        jobs = []
        for params, x0 in _full_starts(self.spec, n_starts=max(4, self.workers)):
            job = self._job(edges, None)
            job["parameters"], job["x0"] = params, x0
            job["max_cpu"] = 0.25 * budget
            job["max_time"] = 1.25 * 0.25 * budget
            jobs.append(job)
        screened = self._map(jobs)
        self.full_starts = [float(r["objective"]) for r in screened]
        best = sorted(screened, key=lambda r: r["objective"])[: max(1, self.workers)]
        jobs = []
        for r in best:
            job = self._job(edges, None)
            job["parameters"], job["x0"] = r["parameters"], r["x0"]
            job["max_cpu"] = 0.75 * budget
            job["max_time"] = 1.25 * 0.75 * budget
            jobs.append(job)
        results = self._map(jobs)
        c = Candidate.from_dict(min(results + screened, key=lambda r: r["objective"]))
        self.full_starts += [float(r["objective"]) for r in results]
        self._store([c])
        return c

    def _map(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.workers > 1 and len(jobs) > 1:
            if self.pool is None:
                import multiprocessing as mp
                from concurrent.futures import ProcessPoolExecutor

                self.pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"))
            return list(self.pool.map(_fit_candidate, jobs))
        return [_fit_candidate(j) for j in jobs]

    def _store(self, cands: list[Candidate]) -> None:
        for c in cands:
            self.cache[self._canon(c.edges)[0]] = c
            self.order.append(c)
            if self.bar is not None:
                self.bar.update(1)
                self.bar.set_postfix_str(f"{len(c.edges)} edges, objective {c.objective:.6g}")
        self.save()

    def _pending(self, sets: Sequence[list[str]], done: Any) -> tuple[list[list[str]], list[list[str]]]:
        """(the effective edge sets of ``sets``, those whose canonical key is not in ``done``, each once)."""
        sets = [effective_edges(self.spec, s) for s in sets]
        todo, seen = [], set()
        for s in sets:
            key = self._canon(s)[0]
            if key not in done and key not in seen:
                todo.append(s)
                seen.add(key)
        return sets, todo

    def improvable(self, edges: Sequence[str], start: Candidate | None) -> bool:
        """Whether to refit the cached fit of ``edges`` warm from ``start`` although it is cached: ``edges``
        is ``start`` without one edge, it was never fitted from ``start``, and its cached fit does not beat
        ``start`` under the criterion. A removal first fitted from an earlier, worse model can sit in a
        far-off local minimum although it is a small step from ``start`` (3x3 bench: the true structure,
        fitted as a removal from a model with two satellites merged, ended at objective 5085; from the
        model one split later it refits to 3410)."""
        if start is None or self.criterion is None:
            return False
        if len(set(start.edges) - set(edges)) != 1 or not set(edges) <= set(start.edges):
            return False
        if (self._canon(edges)[0], self._canon(start.edges)[0]) in self.warm_from:
            return False
        c = self.lookup(edges)
        return c is not None and c.ic(self.criterion) >= start.ic(self.criterion)

    def evaluate(self, sets: Sequence[list[str]], start: Candidate | None) -> list[Candidate]:
        """Fit the candidate edge sets (in parallel, warm started from ``start``), cached; a cached fit is
        reused unless :meth:`improvable` asks for a refit from ``start`` (then the better fit is kept)."""
        sets, todo = self._pending(sets, self.cache)
        keys = {self._canon(s)[0] for s in todo}
        for s in sets:
            key = self._canon(s)[0]
            if key not in keys and self.improvable(s, start):
                todo.append(s)
                keys.add(key)
        if todo:
            results = [Candidate.from_dict(r) for r in self._map([self._job(s, start) for s in todo])]
            if start is not None:
                start_key = self._canon(start.edges)[0]
                self.warm_from |= {(k, start_key) for k in keys}
            self._keep_better(results)
        out = [self.lookup(s) for s in sets]
        return [c for c in out if c is not None]

    def _keep_better(self, cands: Sequence[Candidate], rtol: float = 0.0) -> None:
        """Cache (and checkpoint) the fits that are new or lower than the cached fit of their edge set by
        more than ``rtol`` relative; checkpoint anyway (the caller's bookkeeping changed)."""
        better = [c for c in cands if (old := self.cache.get(self._canon(c.edges)[0])) is None
                  or c.objective < old.objective - rtol * abs(old.objective)]
        if better:
            self._store(better)
        else:
            self.save()

    def evaluate_cold(self, sets: Sequence[list[str]], current: Candidate, n_starts: int,
                      extra: dict[frozenset[str], list[tuple[dict[str, float], dict[str, float]]]] | None = None
                      ) -> list[Candidate]:
        """Refit the candidate edge sets from ``n_starts`` starts each that re-initialise the satellites
        (:func:`_cold_starts`; X's parameters and the metabolite initial states from ``current``), plus
        the starts ``extra`` gives for a set (by its edge set), in parallel. A cold fit replaces the cached
        fit of its set when it is better; every set is cold-fitted at most once. Returns the (best) fit of
        each set."""
        extra = extra or {}
        sets, todo = self._pending(sets, self.cold_done)
        jobs, owners = [], []
        for s in todo:
            starts = (_cold_starts(candidate_spec(self.spec, s), current.parameters, current.x0, n_starts)
                      + extra.get(frozenset(s), []))
            for params, x0 in starts:
                job = self._job(s, current)
                job["parameters"], job["x0"] = params, x0
                job["patience"] = COLD_PATIENCE
                jobs.append(job)
                owners.append(self._canon(s)[0])
        best: dict[frozenset[str], dict[str, Any]] = {}
        for key, r in zip(owners, self._map(jobs) if jobs else [], strict=True):
            if key not in best or r["objective"] < best[key]["objective"]:
                best[key] = r
        if best:
            self.cold_done |= set(best)
            self._keep_better([Candidate.from_dict(r) for r in best.values()], rtol=1e-6)
        out = [self.lookup(s) for s in sets]
        return [c for c in out if c is not None]

    def rescore(self, c: Candidate) -> Candidate:
        """``c`` with its knockout statistics (checkpoints written before they existed lack them): a
        zero-iteration refit from its own values, replacing the cached entry."""
        if c.knockout or not c.edges:
            return c
        job = self._job(list(c.edges), c)
        job["max_iter"] = 0
        new = Candidate.from_dict(self._map([job])[0])
        if new.objective > c.objective + 1e-6 * abs(c.objective) + 1e-9:
            return c
        self.cache[self._canon(new.edges)[0]] = new
        self.order = [new if x is c else x for x in self.order]
        self.path = [new if x is c else x for x in self.path]
        self.save()
        return new

    def accept(self, c: Candidate) -> None:
        if not self.path or self.path[-1] is not c:
            self.path.append(c)
            self.save()


def _penalty(crit: str, n_obs: int) -> float:
    """Objective units (1/2 chi2) one parameter costs under the criterion."""
    return 0.5 * math.log(max(n_obs, 2)) if crit == "bic" else 1.0


def _edge_size(spec: Spec) -> dict[str, int]:
    """Estimated parameters per prunable edge (uptake: affinity, mu and yield)."""
    est = {n for n, p in spec.parameters.items() if p.estimate}
    return {e.id: max(1, sum(1 for v in e.params.values() if isinstance(v, str) and v in est))
            for e in spec.interactions if e.prunable and isinstance(e.strength, str)}


def _ranked(c: Candidate, sizes: dict[str, int] | None = None, crit: str = "bic") -> list[str]:
    """Edges of a fitted candidate, least needed first: by knockout objective increase minus the
    criterion's saving of the edge's parameters when knockouts are known, else by Wald statistic."""
    if c.knockout and all(e in c.knockout for e in c.edges):
        pen = _penalty(crit, c.n_obs)
        return sorted(c.edges, key=lambda e: c.knockout[e] - pen * (sizes or {}).get(e, 1))
    return sorted(c.edges, key=lambda e: c.wald.get(e, math.inf))


def _weak_groups(c: Candidate, ranked: list[str], strat: BackwardElimination, sizes: dict[str, int]) -> list[list[str]]:
    """Groups of edges to try removing at once: those whose knockout alone (no refit) costs less than
    the criterion saves (and the weaker half of them), else those with Wald statistic below ``weak``."""
    if c.knockout and all(e in c.knockout for e in c.edges):
        pen = _penalty(strat.criterion, c.n_obs)
        weak = [e for e in ranked if c.knockout[e] < pen * sizes.get(e, 1)]
    else:
        weak = [e for e in ranked if c.wald.get(e, math.inf) < strat.weak]
    groups = [weak] if len(weak) > 1 else []
    if len(weak) >= 4:
        groups.append(weak[: len(weak) // 2])
    return groups


def _run_backward(search: _Search, strat: BackwardElimination, current: Candidate) -> Candidate:
    crit = strat.criterion
    sizes = _edge_size(search.spec)
    for _ in range(strat.max_rounds):
        if not current.edges:
            break
        current = search.rescore(current)
        ranked = _ranked(current, sizes, crit)
        # Group removals first (alone: a large single-removal refit would hold up the batch), else the
        # ``workers`` least needed single edges.
        sets: list[list[str]] = [[e for e in current.edges if e not in g]
                                 for g in _weak_groups(current, ranked, strat, sizes)]
        n_groups = len(sets)
        if not sets:
            sets = [[x for x in current.edges if x != e] for e in ranked[: max(1, search.workers)]]
        cands = search.evaluate(sets, current)
        best = min(cands, key=lambda c: c.ic(crit))
        if best.ic(crit) < current.ic(crit):
            current = best
            search.accept(current)
            continue
        # The first candidates were not better: try the remaining edges (rank order, ``workers`` at a
        # time) until a removal improves the criterion; Wald ranks are unreliable in sloppy models.
        improved = False
        rest = ranked if n_groups else ranked[len(sets):]
        for i in range(0, len(rest), max(1, search.workers)):
            batch = rest[i:i + max(1, search.workers)]
            cands = search.evaluate([[x for x in current.edges if x != e] for e in batch], current)
            best = min(cands, key=lambda c: c.ic(crit))
            if best.ic(crit) < current.ic(crit):
                current, improved = best, True
                search.accept(current)
                break
        if not improved:
            break
    return current


def _edge_parts(spec: Spec) -> dict[str, tuple[str, str, str]]:
    """edge id -> (kind, organism, metabolite) of the template's prunable edges."""
    out = {}
    for e in spec.interactions:
        if e.prunable and isinstance(e.strength, str):
            src, dst = str(e.source), str(e.target)
            met = dst if e.kind == "production" else src
            org = src if e.kind == "production" else dst
            out[e.id] = (str(e.kind), org, met)
    return out


def _swap_sets(spec: Spec, current: Candidate, full_edges: Sequence[str]) -> list[list[str]]:
    """Edge sets that exchange one kept edge for a pruned edge of the same kind that shares its organism
    or its metabolite (e.g. a satellite growing on M2 instead of M1; M3 inhibiting X instead of M2)."""
    parts = _edge_parts(spec)
    have = set(current.edges)
    out = []
    for e in current.edges:
        ke, oe, me = parts[e]
        for f in full_edges:
            kf, of, mf = parts[f]
            if f in have or kf != ke or (of != oe and mf != me):
                continue
            out.append([x for x in current.edges if x != e] + [f])
    return out


def _best_of_batches(search: _Search, sets: list[list[str]], current: Candidate, crit: str,
                     batch: int, evaluate: Callable[[list[list[str]]], list[Candidate]] | None = None
                     ) -> Candidate | None:
    """The first batch (of ``batch`` sets) containing a candidate better than ``current``: its best one."""
    for i in range(0, len(sets), max(1, batch)):
        chunk = sets[i:i + batch]
        cands = evaluate(chunk) if evaluate is not None else search.evaluate(chunk, current)
        best = min(cands, key=lambda c: c.ic(crit), default=None)
        if best is not None and best.ic(crit) < current.ic(crit):
            return best
    return None


def _run_moves(search: _Search, strat: BackwardElimination, current: Candidate,
               full_edges: Sequence[str]) -> Candidate:
    """Local search around the eliminated model: add back one pruned edge, or exchange a kept edge for a
    related pruned one; after every improvement, eliminate again. Stops at a model none of these moves
    improves (the backward path alone can lose a true edge after a local minimum of the full fit)."""
    crit = strat.criterion
    for _ in range(strat.max_rounds):
        current = _run_backward(search, strat, current)
        have = set(current.edges)
        adds = []
        for f in full_edges:
            if f not in have:
                s = effective_edges(search.spec, [*current.edges, f])
                if set(s) != have:
                    adds.append(s)
        # All additions at once (cheap warm-started refits): the best one, if it improves.
        best = _best_of_batches(search, adds, current, crit, len(adds)) if strat.add_back else None
        if best is None and strat.swaps:
            best = _best_of_batches(search, _swap_sets(search.spec, current, full_edges), current, crit,
                                    max(2, 2 * search.workers))
        if best is None and strat.cold_starts > 0:
            best = _run_cold(search, strat, current)
        if best is None:
            break
        current = best
        search.accept(current)
    return current


def _split_moves(spec: Spec, current: Candidate) -> list[tuple[list[str], str, str]]:
    """Edge sets that hand one substrate of a satellite growing on several to a satellite absent from
    ``current`` (the inverse of two satellites merged into one, a local minimum of the full fit), each
    also in a compound form where every other satellite that eats that substrate stops eating it (when
    the role was spread over two satellites, neither the split nor that removal alone improves). Each
    with the donor's uptake edge and the absent satellite's new one: (edges, donor edge, new edge)."""
    parts = _edge_parts(spec)
    sats = [s.name for s in spec.states.values() if s.role == "satellite"]
    ups: dict[str, list[str]] = {}
    for e in current.edges:
        kind, org, _met = parts[e]
        if kind == "uptake":
            ups.setdefault(org, []).append(e)
    absent = [y for y in sats if y not in ups]
    if not absent:
        return []
    out = []
    for edges in ups.values():
        if len(edges) < 2:
            continue
        for e in edges:
            met = parts[e][2]
            f = next((f for f, (k, o, m) in parts.items() if k == "uptake" and o == absent[0] and m == met), None)
            if f is None:
                continue
            split = [x for x in current.edges if x != e] + [f]
            out.append((split, e, f))
            others = [x for x in split if x != f and parts[x][0] == "uptake" and parts[x][2] == met
                      and len(ups[parts[x][1]]) > 1]          # not a satellite's only substrate
            if others:
                out.append(([x for x in split if x not in others], e, f))
    return out


def _transplant_start(spec: Spec, current: Candidate, donor: str, new: str) -> tuple[dict[str, float],
                                                                                     dict[str, float]]:
    """A start for a split: ``current``'s values, the new uptake edge with the donor edge's parameters
    (strength, maximal rate, yield), and the absent satellite inoculated like the donor."""
    params, x0 = dict(current.parameters), dict(current.x0)
    d, n = spec.interaction(donor), spec.interaction(new)
    for role, name in d.params.items():
        target = n.params.get(role)
        if isinstance(name, str) and isinstance(target, str) and name in params and target in spec.parameters:
            params[target] = _clip_param(spec, target, params[name])
    if d.target in x0 and n.target in spec.states:
        x0[str(n.target)] = x0[str(d.target)]
    return params, x0


def _run_cold(search: _Search, strat: BackwardElimination, current: Candidate) -> Candidate | None:
    """Escape a local minimum of the warm-started search: refit the current model, its splits
    (:func:`_split_moves`; each also from a :func:`_transplant_start`) and each of its single removals
    (least needed edge first; ``workers`` sets at a time) from starts that re-initialise the satellites
    (:func:`_cold_starts`). A removal that asks
    another satellite to take over a role needs the parameters to re-balance, which refits warm started
    from the current model do not do (they land in worse local minima). Returns the first batch's best
    candidate that improves the criterion, or None."""
    crit = strat.criterion
    current = search.rescore(current)
    ranked = _ranked(current, _edge_size(search.spec), crit)
    splits = _split_moves(search.spec, current)
    extra: dict[frozenset[str], list[tuple[dict[str, float], dict[str, float]]]] = {}
    for edges, donor, new in splits:
        key = frozenset(effective_edges(search.spec, edges))
        extra.setdefault(key, []).append(_transplant_start(search.spec, current, donor, new))
    sets = ([list(current.edges)] + [edges for edges, _d, _n in splits]
            + [[x for x in current.edges if x != e] for e in ranked])
    return _best_of_batches(search, sets, current, crit, max(1, search.workers),
                            evaluate=lambda ss: search.evaluate_cold(ss, current, strat.cold_starts, extra))


def _run_threshold(search: _Search, strat: ThresholdRefit, current: Candidate) -> Candidate:
    for _ in range(strat.max_rounds):
        weak = [e for e in current.edges if current.wald.get(e, math.inf) < strat.threshold]
        if not weak:
            break
        (current,) = search.evaluate([[e for e in current.edges if e not in weak]], current)
        search.accept(current)
    return current


def discover(spec: Spec | str | Path, datasets: Dataset | str | Path | Sequence[Any], *,
             strategy: BackwardElimination | ThresholdRefit | None = None, outdir: str | Path | None = None,
             workers: int | None = None, progress: bool = True, resume: bool = True, max_iter: int = 300,
             max_time: float = 600.0, final_analysis: bool = True) -> DiscoveryResult:
    """Discover the edge set of a template: see the module docstring. Writes OUTDIR/discovery.json,
    OUTDIR/pruned.yaml and OUTDIR/report.md when ``outdir`` is given."""
    from symode.fit import as_datasets, fit

    t0 = time.perf_counter()
    strategy = strategy or BackwardElimination()
    if strategy.criterion not in ("bic", "aicc"):
        raise SymodeError(f"unknown criterion {strategy.criterion!r} (bic, aicc)", field="criterion")
    spec = spec if isinstance(spec, Spec) else load_spec(spec)
    data = as_datasets(datasets)
    if not prunable_edges(spec):
        raise SymodeError("the spec has no prunable edges (mark interactions with prunable: true)")
    out = Path(outdir) if outdir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    workers = workers or os.cpu_count() or 1
    with _Search(spec, data, outdir=out, workers=workers, progress=progress, max_iter=max_iter,
                 max_time=max_time, resume=resume) as search:
        search.criterion = strategy.criterion
        full_edges = prunable_edges(spec)
        if search.path:
            current = search.path[-1]
        else:
            current = search.evaluate_full(full_edges)
            search.accept(current)
        if isinstance(strategy, ThresholdRefit):
            current = _run_threshold(search, strategy, current)
        elif strategy.add_back or strategy.swaps or strategy.cold_starts > 0:
            current = _run_moves(search, strategy, current, full_edges)
        else:
            current = _run_backward(search, strategy, current)
        best = min(search.path, key=lambda c: c.ic(strategy.criterion))
        path, evaluated = list(search.path), list(search.order)
    relabel = satellite_relabelling(spec, best.edges)
    if relabel and progress:
        print("discover: satellites renamed to the canonical order (by lowest-numbered substrate): "
              + ", ".join(f"{a} -> {b}" for a, b in relabel.items()))
    best = _relabel_candidate(best, relabel)
    path = [_relabel_candidate(c, relabel) for c in path]
    evaluated = [_relabel_candidate(c, relabel) for c in evaluated]
    kept = list(best.edges)
    pruned = [e for e in full_edges if e not in kept]
    sub = candidate_spec(spec, kept)
    sub = sub.with_values({n: v for n, v in best.parameters.items() if n in sub.parameters},
                          {n: v for n, v in best.x0.items() if n in sub.states})
    final = None
    if final_analysis:
        final = fit(sub, data, progress=progress, shooting="single", max_iter=max_iter, max_time=max_time)
        sub = final.fitted_spec()
    res = DiscoveryResult(spec=spec, kept_edges=kept, pruned_edges=pruned, selected=best, path=path,
                          evaluated=evaluated, pruned_spec=sub, final_fit=final, criterion=strategy.criterion,
                          wall_time_s=time.perf_counter() - t0, relabelling=relabel)
    if out is not None:
        write_discovery(res, out)
    return res


# ----------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------

def _strengths(spec: Spec, params: dict[str, float]) -> dict[str, float]:
    return {e.id: float(params.get(e.strength, spec.parameters[e.strength].value))
            for e in spec.interactions if isinstance(e.strength, str) and e.strength in spec.parameters}


def write_discovery(res: DiscoveryResult, out: Path) -> dict[str, Path]:
    from symode.viz.graph import draw_graph

    out.mkdir(parents=True, exist_ok=True)
    files = {"json": out / "discovery.json", "spec": out / "pruned.yaml", "report": out / "report.md",
             "path_plot": out / "selection_path.png", "graph_before": out / "graph_before.png",
             "graph_after": out / "graph_after.png"}
    atomic_write_json(files["json"], res.to_json())
    atomic_write_text(files["spec"], f"# Selected model of `symode discover` on {res.spec.name} "
                                     f"({len(res.kept_edges)} of {len(res.kept_edges) + len(res.pruned_edges)} "
                                     f"edges kept; fitted values).\n" + res.pruned_spec.to_yaml())
    _plot_path(res, files["path_plot"])
    full = res.path[0]
    draw_graph(res.spec, files["graph_before"], strengths=_strengths(res.spec, full.parameters),
               title=f"{res.spec.name}: full template fit")
    params = res.final_fit.parameters if res.final_fit is not None else res.selected.parameters
    draw_graph(res.pruned_spec, files["graph_after"], strengths=_strengths(res.pruned_spec, params),
               title=f"{res.spec.name}: selected model")
    atomic_write_text(files["report"], _render(res))
    return files


def _plot_path(res: DiscoveryResult, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from symode.io import atomic_write_bytes

    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    n = [len(c.edges) for c in res.path]
    bic0 = min(c.bic for c in res.path)
    aicc0 = min(c.aicc for c in res.path)
    ax.plot(n, [c.bic - bic0 for c in res.path], "o-", label="BIC - min")
    ax.plot(n, [c.aicc - aicc0 for c in res.path], "s--", label="AICc - min")
    ax.axvline(len(res.kept_edges), color="k", lw=0.8, ls=":", label="selected")
    ax.set_xlabel("number of edges")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("criterion (relative)")
    ax.set_yscale("symlog", linthresh=10.0)
    ax.invert_xaxis()
    ax.legend()
    ax.set_title("selection path")
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def _render(res: DiscoveryResult) -> str:
    lines = [f"# Structure discovery: {res.spec.name}", "",
             f"Strategy selected by {res.criterion.upper()}: kept {len(res.kept_edges)} edges, pruned "
             f"{len(res.pruned_edges)}; {len(res.evaluated)} candidate fits, {res.wall_time_s:.0f} s.", "",
             "Kept: " + ", ".join(f"`{e}`" for e in res.kept_edges), "",
             "Pruned: " + ", ".join(f"`{e}`" for e in res.pruned_edges), ""]
    if res.relabelling:
        lines += ["Satellites are exchangeable in the template (only X, S and metabolites are observed), so they were "
                  "renamed to the canonical order (numbered by the lowest-numbered metabolite they take up): "
                  + ", ".join(f"{a} -> {b}" for a, b in res.relabelling.items()) + ".", ""]
    lines += ["## Selection path", "", "![selection path](selection_path.png)", "",
              "| step | edges | objective | AICc | BIC |", "|---:|---:|---:|---:|---:|"]
    for i, c in enumerate(res.path):
        lines.append(f"| {i} | {len(c.edges)} | {c.objective:.6g} | {c.aicc:.6g} | {c.bic:.6g} |")
    lines += ["", "## Graph before pruning (full template fit)", "", "![before](graph_before.png)", "",
              "## Graph after pruning (selected model)", "", "![after](graph_after.png)", ""]
    if res.final_fit is not None:
        ident = res.final_fit.identifiable
        lines += ["## Parameters of the selected model", "", "| parameter | value | identifiable |",
                  "|---|---:|:---:|"]
        for n in res.final_fit.estimated_parameters:
            lines.append(f"| {n} | {res.final_fit.parameters[n]:.6g} | {'yes' if ident.get(n) else 'no'} |")
        lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# Synthetic cases (tests, bench, demo)
# ----------------------------------------------------------------------------------------------------

def synthetic_case(satellites: int, metabolites: int, edges: dict[str, dict[str, float]], *, days: float = 30.0,
                   seed: int = 0, metabolite_every: int = 8, dilution_sd: float = 0.013
                   ) -> tuple[Spec, Dataset, dict[str, Any]]:
    """(template spec, noisy data set, truth params) for a template with the given true edges (truth.json
    ``edges`` format), simulated with symode.synth like the community-dev data set: ``days`` days, X and S
    every 15 min (2% + 0.01 noise), metabolites every ``metabolite_every`` samples (5% + 0.002), D(t) =
    0.25 + slow fluctuations of standard deviation ``dilution_sd``, the template's initial states."""
    from symode.graph.template import community_truth_params, template_spec
    from symode.solve.model import build_model
    from symode.solve.simulation import simulate
    from symode.solve.synth import make_dataset, noisy_observations, smooth_dilution

    spec = template_spec(satellites, metabolites)
    truth = community_truth_params({"satellites": satellites, "metabolites": metabolites, "edges": edges})
    model = build_model(spec)
    times = np.arange(0, round(days * 24 * 4) + 1) * 0.25
    D = smooth_dilution(times, seed=seed, amplitude=dilution_sd)
    traj = simulate(model, times, inputs={"D": D}, params=truth["parameters"], x0=truth["x0"])
    every = {m: metabolite_every for m in spec.observables if spec.states[m].role == "metabolite"}
    obs = noisy_observations(model, traj, seed=seed, every=every)
    return spec, make_dataset(times, {"D": D}, obs), truth
