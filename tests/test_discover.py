"""Structure discovery on a tiny template (1 satellite x 2 metabolites) with a sparse truth."""

from __future__ import annotations

import json
import time

import pytest

from symode.discover import CHECKPOINT, Candidate, candidate_spec, discover, effective_edges, synthetic_case
from symode.model import build_model
from symode.solve import simulate
from symode.spec import load_spec

TRUE = {"prod:X->M1": {"v": 0.002}, "inhib:M1-|X": {"kappa": 0.5},
        "uptake:M1->Y1": {"mu": 0.8, "K": 0.1, "g": 1.5}, "prod:Y1->M2": {"u": 0.1}}


@pytest.fixture(scope="module")
def case():
    return synthetic_case(1, 2, TRUE, days=5, seed=3, metabolite_every=4)


@pytest.fixture(scope="module")
def run(case, tmp_path_factory):
    spec, data, _truth = case
    out = tmp_path_factory.mktemp("discover")
    t0 = time.perf_counter()
    res = discover(spec, data, outdir=out, progress=False, workers=1)
    return res, out, time.perf_counter() - t0


def test_recovers_edge_set(run, case):
    res, _out, _t = run
    assert sorted(res.kept_edges) == sorted(TRUE)
    spec = case[0]
    assert len(res.kept_edges) + len(res.pruned_edges) == sum(e.prunable for e in spec.interactions)


def test_discovery_json_keys(run):
    _res, out, _t = run
    d = json.loads((out / "discovery.json").read_text())
    for key in ("kept_edges", "pruned_edges", "parameters", "path"):
        assert key in d
    assert d["path"] and set(d["path"][0]) == {"edges", "objective", "aicc", "bic"}
    assert len(d["path"][0]["edges"]) == 10   # the full 1x2 template first
    assert (out / "report.md").exists() and (out / "graph_after.png").exists()


def test_pruned_yaml_loads_and_simulates(run, case):
    _res, out, _t = run
    spec = load_spec(out / "pruned.yaml")
    assert sorted(e.id for e in spec.interactions if e.prunable) == sorted(TRUE)
    model = build_model(spec)
    traj = simulate(model, case[1].times[:50], data=None, inputs={"D": 0.25})
    assert traj["X"].shape == (50,)


def test_resume_from_checkpoint(run, case, tmp_path):
    res, out, _t = run
    spec, data, _ = case
    ck = json.loads((out / CHECKPOINT).read_text())
    # Interrupted after the first accepted step: keep only what had been evaluated up to then.
    first = [c for c in ck["evaluated"] if c["edges"] in ck["path"][:2]]
    (tmp_path / CHECKPOINT).write_text(json.dumps({**ck, "evaluated": first, "path": ck["path"][:2]}))
    res2 = discover(spec, data, outdir=tmp_path, progress=False, workers=1, final_analysis=False)
    assert sorted(res2.kept_edges) == sorted(res.kept_edges)
    assert [c.edges for c in res2.path[:2]] == ck["path"][:2]
    # A complete checkpoint: nothing is refitted.
    res3 = discover(spec, data, outdir=out, progress=False, workers=1, final_analysis=False)
    assert len(res3.evaluated) == len(res.evaluated)
    assert sorted(res3.kept_edges) == sorted(res.kept_edges)


def test_absent_satellite_drops_its_edges():
    from symode.template import template_spec

    spec = template_spec(2, 1)
    edges = ["prod:X->M1", "uptake:M1->Y1", "prod:Y2->M1", "inhib:M1-|Y2"]
    assert effective_edges(spec, edges) == ["prod:X->M1", "uptake:M1->Y1"]
    sub = candidate_spec(spec, edges)
    assert "Y2" not in sub.states and "u_Y2_M1" not in sub.parameters
    assert Candidate(edges=[], parameters={}, x0={}, objective=1.0, k=1, n_obs=10, aicc=1.0, bic=2.0).ic("bic") == 2


def test_satellite_relabelling_orders_by_lowest_substrate():
    from symode.discover import satellite_relabelling
    from symode.template import template_spec

    spec = template_spec(3, 3)
    # Y1 eats M3, Y2 is absent, Y3 eats M1 and produces M2: canonical Y3 -> Y1, Y1 -> Y2, Y2 (absent) -> Y3.
    edges = ["uptake:M3->Y1", "uptake:M1->Y3", "prod:Y3->M2", "prod:X->M1"]
    mapping = satellite_relabelling(spec, edges)
    assert mapping == {"Y3": "Y1", "Y1": "Y2", "Y2": "Y3"}
    # Already canonical: nothing to rename.
    assert satellite_relabelling(spec, ["uptake:M1->Y1", "uptake:M2->Y2"]) == {}
    # Ties on the first substrate are broken by the next one.
    assert satellite_relabelling(spec, ["uptake:M1->Y1", "uptake:M3->Y1", "uptake:M1->Y2", "uptake:M2->Y2"]) \
        == {"Y2": "Y1", "Y1": "Y2"}


def test_relabelling_is_a_symmetry_of_the_template_only():
    from symode.discover import _rename, candidate_spec, satellite_relabelling
    from symode.spec import spec_from_dict
    from symode.template import template_dict, template_spec

    spec = template_spec(2, 2)
    edges = ["uptake:M2->Y1", "uptake:M1->Y2", "prod:Y2->M2"]
    mapping = satellite_relabelling(spec, edges)
    assert mapping == {"Y2": "Y1", "Y1": "Y2"}
    # Renaming the selected model gives the model of the renamed edge set.
    renamed = spec_from_dict(_rename(candidate_spec(spec, edges).to_dict(), mapping))
    direct = candidate_spec(spec, _rename(edges, mapping))
    assert sorted(e.id for e in renamed.interactions) == sorted(e.id for e in direct.interactions)
    assert set(renamed.parameters) == set(direct.parameters)
    # A template whose satellites differ (Y2 starts higher) is not symmetric: labels stay.
    d = template_dict(2, 2)
    d["states"]["Y2"]["x0"] = 2.0
    assert satellite_relabelling(spec_from_dict(d), edges) == {}
