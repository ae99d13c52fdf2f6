"""The community as a graph (networkx): states are nodes, interactions are edges keyed by their id.

>>> G = build_graph(load_spec("specs/chemostat.yaml"))      # doctest: +SKIP
>>> G2 = remove_interactions(G, ["inhib:A-|X"])              # doctest: +SKIP
>>> spec2 = prune_unused_parameters(graph_to_spec(G2))      # doctest: +SKIP
>>> draw_graph(spec2, "community.png")                      # doctest: +SKIP

Edges: uptake / production / inhibition / glv run source -> target; mass action runs from each reactant
to each product (a self-loop on each reactant when there are no products); custom rates run from each
state with a negative stoichiometric coefficient to each one with a positive coefficient (self-loops
when one side is empty). One interaction may therefore own several edges; all carry the same key.
``G.graph`` keeps the rest of the spec so that :func:`graph_to_spec` rebuilds it losslessly."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import networkx as nx

from symode.spec import Interaction, Penalty, Spec, State, spec_from_dict
from symode.spec.expr import parse_expression

GRAPH_KEYS = ("name", "description", "reactor", "parameters", "inputs", "observables")


def interaction_edges(e: Interaction) -> list[tuple[str, str]]:
    """The (source, target) node pairs an interaction is drawn as."""
    if e.kind in ("uptake", "production", "inhibition", "glv") and e.source and e.target:
        return [(e.source, e.target)]
    if e.kind == "mass_action":
        if e.products:
            return [(r, q) for r in e.reactants for q in e.products]
        return [(r, r) for r in e.reactants]
    if e.kind == "custom":
        neg = [n for n, c in e.stoichiometry.items() if c < 0]
        pos = [n for n, c in e.stoichiometry.items() if c > 0]
        if neg and pos:
            return [(a, b) for a in neg for b in pos]
        return [(n, n) for n in (neg or pos or list(e.stoichiometry))]
    nodes = e.nodes()
    return [(nodes[0], nodes[-1])] if nodes else []


def build_graph(spec: Spec) -> nx.MultiDiGraph:
    """A MultiDiGraph with a node per state and an edge (keyed by interaction id) per interaction."""
    G = nx.MultiDiGraph()
    for s in spec.states.values():
        st = copy.deepcopy(s)
        G.add_node(st.name, role=st.role, x0=st.x0, state=st)
    for e in spec.interactions:
        inter = copy.deepcopy(e)
        for u, v in interaction_edges(inter):
            G.add_edge(u, v, key=inter.id, kind=inter.kind, law=inter.law, params=dict(inter.params),
                       interaction=inter)
    for key in GRAPH_KEYS:
        G.graph[key] = copy.deepcopy(getattr(spec, key))
    G.graph["interaction_order"] = [e.id for e in spec.interactions]
    G.graph["penalties"] = copy.deepcopy(spec.penalties)
    return G


def graph_interactions(G: nx.MultiDiGraph) -> list[Interaction]:
    """The graph's interactions (one per edge key), in the original spec order, then any new ones."""
    found: dict[str, Interaction] = {}
    for _u, _v, key, data in G.edges(keys=True, data=True):
        if key not in found:
            inter = data.get("interaction")
            if inter is None:
                raise ValueError(f"edge {key!r} has no 'interaction' attribute")
            found[key] = inter
    order = [i for i in G.graph.get("interaction_order", []) if i in found]
    order += [i for i in found if i not in order]
    return [found[i] for i in order]


def graph_to_spec(G: nx.MultiDiGraph, *, prune: bool = False) -> Spec:
    """Rebuild (and validate) the spec of a graph made by :func:`build_graph` (maybe edited).

    Node attributes ``role`` and ``x0`` override the stored State's. With ``prune=True``, parameters no
    longer used anywhere are dropped (:func:`prune_unused_parameters`).
    """
    states: dict[str, State] = {}
    for name, data in G.nodes(data=True):
        st = copy.deepcopy(data.get("state")) or State(name=str(name))
        st.role = data.get("role", st.role)
        st.x0 = float(data.get("x0", st.x0))
        states[st.name] = st
    missing = [k for k in GRAPH_KEYS if k not in G.graph]
    if missing:
        raise ValueError(f"graph lacks spec data {', '.join(missing)} (build it with build_graph)")
    spec = Spec(name=G.graph["name"], description=G.graph["description"],
                reactor=copy.deepcopy(G.graph["reactor"]), states=states,
                parameters=copy.deepcopy(G.graph["parameters"]), inputs=copy.deepcopy(G.graph["inputs"]),
                interactions=copy.deepcopy(graph_interactions(G)),
                observables=copy.deepcopy(G.graph["observables"]))
    with_penalties(spec, G.graph.get("penalties", []))
    if prune:
        spec = prune_unused_parameters(spec)
    return spec_from_dict(spec.to_dict(), file=f"<graph {spec.name}>")


def remove_interactions(G: nx.MultiDiGraph, ids: Iterable[str]) -> nx.MultiDiGraph:
    """A copy of G without the edges of the given interactions (KeyError for an unknown id)."""
    ids = list(ids)
    H = G.copy()
    present = {k for _u, _v, k in H.edges(keys=True)}
    unknown = [i for i in ids if i not in present]
    if unknown:
        raise KeyError(f"no interaction(s) {', '.join(map(repr, unknown))} in the graph")
    drop = set(ids)
    H.remove_edges_from([(u, v, k) for u, v, k in list(H.edges(keys=True)) if k in drop])
    H.graph["interaction_order"] = [i for i in G.graph.get("interaction_order", []) if i not in drop]
    return H


def used_parameters(spec: Spec) -> set[str]:
    """Parameters referenced by interactions, custom rates, the reactor or the observables."""
    names = set(spec.parameters)
    used: set[str] = set()

    def refs(text: str) -> set[str]:
        symbols = [*spec.states, *spec.inputs, *spec.parameters, "t"]
        return {s.name for s in parse_expression(text, symbols).free_symbols} & names

    for e in spec.interactions:
        used |= {v for v in e.params.values() if isinstance(v, str)}
        if e.rate is not None:
            used |= refs(e.rate)
    used |= {v for v in spec.reactor.feed.values() if isinstance(v, str)}
    if spec.reactor.dilution in names:
        used.add(spec.reactor.dilution)
    for o in spec.observables.values():
        used |= refs(o.expr)
    return used & names


def prune_unused_parameters(spec: Spec) -> Spec:
    """A copy of the spec without parameters that nothing references any more."""
    used = used_parameters(spec)
    new = spec.copy()
    new.parameters = {n: p for n, p in new.parameters.items() if n in used}
    return with_penalties(new, new.penalties)


def with_penalties(spec: Spec, penalties: Iterable[Penalty]) -> Spec:
    """``spec`` with the penalty terms restricted to its parameters (terms left empty are dropped)."""
    glv = {e.strength for e in spec.interactions if e.kind == "glv"}     # a stability term's matrix entries
    spec.penalties = [q for pen in penalties if (q := pen.restricted(
        [n for n in spec.parameters if pen.kind != "stability" or n in glv])) is not None]
    return spec


NODE_STYLE: dict[str, dict[str, Any]] = {
    "substrate": {"shape": "hexagon", "face": "#d9c8a9", "edge": "#7a5c2e", "size": 0.30, "label": "substrate"},
    "main": {"shape": "circle", "face": "#5fa85f", "edge": "#2d5f2d", "size": 0.34, "label": "main culture"},
    "satellite": {"shape": "circle", "face": "#8fb8e0", "edge": "#2f5f8f", "size": 0.26, "label": "satellite"},
    "metabolite": {"shape": "square", "face": "#f3c77a", "edge": "#9a6a12", "size": 0.22, "label": "metabolite"},
    "other": {"shape": "ellipse", "face": "#d6d6d6", "edge": "#555555", "size": 0.24, "label": "other state"},
}


EDGE_STYLE: dict[str, dict[str, Any]] = {
    "uptake": {"color": "#1f4e99", "linestyle": "-", "arrow": "-|>", "label": "uptake (growth on)"},
    "production": {"color": "#2e7d32", "linestyle": "--", "arrow": "-|>", "label": "production"},
    "inhibition": {"color": "#c62828", "linestyle": "-", "arrow": "bar", "label": "inhibition"},
    "glv": {"color": "#6a1b9a", "linestyle": ":", "arrow": "-|>", "label": "gLV interaction"},
    "other": {"color": "#555555", "linestyle": ":", "arrow": "-|>", "label": "mass action / custom"},
}
