"""Candidate models of a template: the spec keeping a subset of its prunable edges, the edges that
survive in it, and :class:`Candidate` (one fitted candidate, JSON round trip for checkpoints)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from symode.graph.community import build_graph, graph_to_spec, prune_unused_parameters, remove_interactions
from symode.spec import Spec

__all__ = ["Candidate", "candidate_spec", "edge_parts", "edge_sizes", "effective_edges", "n_unknowns",
           "prunable_edges"]


def prunable_edges(spec: Spec) -> list[str]:
    """Ids of the spec's prunable edges with a strength parameter, in spec order."""
    return [e.id for e in spec.interactions if e.prunable and isinstance(e.strength, str)]


def candidate_spec(spec: Spec, edges: Sequence[str]) -> Spec:
    """The spec keeping only the given prunable edges (non-prunable ones always stay). Satellites left
    without an uptake edge are removed with all of their edges; unused parameters are dropped."""
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
    """One fitted candidate model: its edges, fitted values, objective, criteria and edge statistics."""

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
    x0s: list[dict[str, float]] = field(default_factory=list)  # initial states of every data file
    failed: str = ""                  # why the fit failed (objective not finite), "" when it did not
    iterations: int = 0               # Levenberg-Marquardt iterations of the fit that produced it
    stop: str = ""                    # why that fit stopped: converged, iterations (its budget), hopeless
                                      # (early abandon), outpaced (a rival finished better than it could
                                      # reach), stalled, failed, or "time limit" (the safety cap)
    cpu_s: float = 0.0                # CPU seconds of that fit (where it ran)
    rate: float = 0.0                 # objective decrease per iteration over that fit's last <= 30 iterations

    def to_dict(self) -> dict[str, Any]:
        return {"edges": list(self.edges), "parameters": self.parameters, "x0": self.x0,
                "objective": self.objective, "k": self.k, "n_obs": self.n_obs, "aicc": self.aicc,
                "bic": self.bic, "wald": self.wald, "converged": self.converged, "time_s": self.time_s,
                "knockout": self.knockout, "x0s": self.x0s, "failed": self.failed,
                "iterations": self.iterations, "stop": self.stop, "cpu_s": self.cpu_s,
                "rate": self.rate}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Candidate:
        return cls(**d)

    def ic(self, criterion: str) -> float:
        return self.bic if criterion == "bic" else self.aicc


def n_unknowns(spec: Spec, n_datasets: int = 1) -> int:
    """Estimated parameters plus estimated initial states (per data set) of a spec."""
    return (sum(p.estimate for p in spec.parameters.values())
            + sum(st.estimate for st in spec.states.values()) * n_datasets)


def edge_sizes(spec: Spec) -> dict[str, int]:
    """Estimated parameters per prunable edge (uptake: affinity, mu and yield)."""
    est = {n for n, p in spec.parameters.items() if p.estimate}
    return {e.id: max(1, sum(1 for v in e.params.values() if isinstance(v, str) and v in est))
            for e in spec.interactions if e.prunable and isinstance(e.strength, str)}


def edge_parts(spec: Spec) -> dict[str, tuple[str, str, str]]:
    """edge id -> (kind, organism, metabolite) of the template's prunable edges."""
    out = {}
    for e in spec.interactions:
        if e.prunable and isinstance(e.strength, str):
            src, dst = str(e.source), str(e.target)
            met = dst if e.kind == "production" else src
            org = src if e.kind == "production" else dst
            out[e.id] = (str(e.kind), org, met)
    return out
