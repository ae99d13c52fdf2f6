"""The community graph (symode.graph): spec <-> graph round trips, edge removal, drawing."""

from __future__ import annotations

from pathlib import Path

import pytest
import sympy as sp

from symode.graph.community import (
    build_graph,
    graph_to_spec,
    prune_unused_parameters,
    remove_interactions,
    used_parameters,
)
from symode.graph.template import template_spec
from symode.solve.model import build_model
from symode.spec import Spec, load_spec, loads_spec, spec_from_dict
from symode.symbolic.rhs import build_symbolic
from symode.viz.graph import draw_graph

ROOT = Path(__file__).resolve().parents[1]
CHEMOSTAT = ROOT / "specs" / "chemostat.yaml"

MIXED = """
name: mixed
states:
  A: {role: metabolite, x0: 1.0}
  B: {role: metabolite, x0: 0.5}
  C: {x0: 0.0}
  N: {role: satellite, x0: 0.1}
parameters:
  k1: 0.3
  k2: 0.1
  kc: 2.0
  r: 0.4
  scale: {value: 2.0, estimate: false}
  unused: 1.0
interactions:
  - {type: mass_action, reactants: {A: 1, B: 2}, products: {C: 1}, k: k1}
  - {type: mass_action, reactants: {C: 1}, k: k2}
  - {id: conv, type: custom, rate: kc * A / (1 + A), stoichiometry: {A: -1, N: 0.5}}
  - {id: src, type: custom, rate: "0.01", stoichiometry: {B: 1}}
  - {type: glv, from: N, to: N, a: r}
observables:
  total: {expr: scale * (A + B), noise: {absolute: 0.01}}
"""


def specs() -> list[Spec]:
    return [load_spec(CHEMOSTAT), template_spec(2, 3), template_spec(4, 4), template_spec(0, 2),
            loads_spec(MIXED)]


@pytest.mark.parametrize("spec", specs(), ids=lambda s: s.name)
def test_round_trip(spec: Spec) -> None:
    G = build_graph(spec)
    assert list(G.nodes) == spec.state_names
    assert {k for _u, _v, k in G.edges(keys=True)} == {e.id for e in spec.interactions}
    for n, data in G.nodes(data=True):
        assert data["role"] == spec.states[n].role and data["x0"] == spec.states[n].x0
        assert data["state"] == spec.states[n]
    back = graph_to_spec(G)
    assert back == spec
    assert spec_from_dict(back.to_dict()) == spec


def test_edges_of_each_kind() -> None:
    G = build_graph(loads_spec(MIXED))
    edges = {(u, v, k) for u, v, k in G.edges(keys=True)}
    assert ("A", "C", "mass_action:A+B->C") in edges and ("B", "C", "mass_action:A+B->C") in edges
    assert ("C", "C", "mass_action:C->") in edges
    assert ("A", "N", "conv") in edges and ("B", "B", "src") in edges
    assert ("N", "N", "glv:N->N") in edges
    data = G.edges["A", "N", "conv"]
    assert data["kind"] == "custom" and data["law"] == "custom" and data["interaction"].rate
    G2 = build_graph(load_spec(CHEMOSTAT))
    d = G2.edges["A", "Y", "uptake:A->Y"]
    assert d["kind"] == "uptake" and d["law"] == "shared_monod" and d["params"]["K"] == "KA"


def test_node_edits_reach_the_spec() -> None:
    G = build_graph(load_spec(CHEMOSTAT))
    G.nodes["Y"]["x0"] = 0.25
    assert graph_to_spec(G).states["Y"].x0 == 0.25


def test_remove_interactions_and_prune() -> None:
    spec = load_spec(CHEMOSTAT)
    G = build_graph(spec)
    H = remove_interactions(G, ["uptake:B->Y", "inhib:B-|X"])
    assert G.number_of_edges() == len(spec.interactions)  # the original is untouched
    assert H.number_of_edges() == len(spec.interactions) - 2
    reduced = graph_to_spec(H)
    assert [e.id for e in reduced.interactions] == [e.id for e in spec.interactions
                                                    if e.id not in ("uptake:B->Y", "inhib:B-|X")]
    assert reduced.parameters == spec.parameters
    pruned = graph_to_spec(H, prune=True)
    assert set(spec.parameters) - set(pruned.parameters) == {"muB", "KB", "gB", "IB"}
    assert prune_unused_parameters(reduced) == pruned
    for s in (reduced, pruned):
        assert spec_from_dict(s.to_dict()) == s
    build_model(pruned)  # builds (and compiles) without the removed parameters
    with pytest.raises(KeyError):
        remove_interactions(G, ["uptake:Q->Y"])


def test_prune_keeps_referenced_parameters() -> None:
    spec = loads_spec(MIXED)
    assert used_parameters(spec) == {"k1", "k2", "kc", "r", "scale"}
    pruned = graph_to_spec(remove_interactions(build_graph(spec), ["conv", "glv:N->N"]), prune=True)
    assert set(pruned.parameters) == {"k1", "k2", "scale"}  # scale: used by an observable
    chem = load_spec(CHEMOSTAT)
    G = remove_interactions(build_graph(chem), [e.id for e in chem.interactions])
    assert set(graph_to_spec(G, prune=True).parameters) == {"S0"}  # the reactor feed


def test_template_remove_then_build() -> None:
    spec = template_spec(2, 3)
    G = remove_interactions(build_graph(spec), [e.id for e in spec.interactions
                                                if e.prunable and {"Y2", "M3"} & set(e.nodes())])
    reduced = graph_to_spec(G, prune=True)
    assert not any(n.endswith("_Y2") or "M3" in n for n in reduced.parameters)
    sym = build_symbolic(reduced)
    assert sym.f.shape == (7, 1)
    assert sym.equations()["M3"] == -sp.Symbol("D", real=True) * sp.Symbol("M3", real=True)


@pytest.mark.parametrize(("edge", "strength"), [
    ("uptake:M1->Y1", "a_M1_Y1"), ("inhib:M2-|X", "kinh_M2_X"), ("inhib:M1-|Y1", "kinh_M1_Y1"),
    ("prod:X->M1", "v_X_M1"), ("prod:Y1->M2", "u_Y1_M2")])
def test_zero_strength_equals_removed_edge(edge: str, strength: str) -> None:
    spec = template_spec(1, 2)
    assert spec.interaction(edge).strength == strength
    full = build_symbolic(spec)
    f_zero = full.f.subs(sp.Symbol(strength, real=True), 0)
    removed = build_symbolic(graph_to_spec(remove_interactions(build_graph(spec), [edge])))
    diff = (f_zero - removed.f).applyfunc(sp.cancel)
    assert diff == sp.zeros(*diff.shape)
    assert (full.f - removed.f).applyfunc(sp.cancel) != sp.zeros(*diff.shape)


@pytest.mark.parametrize("ext", ["png", "svg"])
def test_draw_graph(tmp_path: Path, ext: str) -> None:
    spec = template_spec(2, 3)
    strengths = {e.id: (0.0 if i % 3 else 0.5 * i) for i, e in enumerate(spec.interactions) if e.prunable}
    out = tmp_path / f"community.{ext}"
    draw_graph(spec, out, strengths=strengths, title="template 2x3")
    data = out.read_bytes()
    assert len(data) > 1000
    assert data.startswith(b"\x89PNG") if ext == "png" else b"<svg" in data[:2000]
    mixed = tmp_path / f"mixed.{ext}"
    draw_graph(build_graph(loads_spec(MIXED)), mixed)
    assert mixed.stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, mixed.name])  # no temp files left


def test_draw_graph_rejects_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        draw_graph(load_spec(CHEMOSTAT), tmp_path / "g.pdf")


def test_labels_of_edges_crossing_at_their_midpoints_do_not_overlap():
    from symode.viz.graph import LABEL_BOX, label_point

    placed: list[tuple[float, float]] = []
    for p1, p2 in [((0.0, 1.0), (4.0, -1.0)), ((0.0, -1.0), (4.0, 1.0)), ((0.0, 0.0), (4.0, 0.0))]:
        placed.append(label_point(p1, p2, 0.0, placed))
    assert placed[0] == (2.0, 0.0)                                   # first label: the midpoint
    for i, a in enumerate(placed):
        for b in placed[i + 1:]:
            assert abs(a[0] - b[0]) >= LABEL_BOX[0] or abs(a[1] - b[1]) >= LABEL_BOX[1]
    # a curved edge's label sits on its arc (matplotlib arc3: control point midpoint + rad * (dy, -dx))
    x, y = label_point((0.0, 0.0), (2.0, 0.0), 0.4, [])
    assert (x, y) == pytest.approx((1.0, -0.4))
