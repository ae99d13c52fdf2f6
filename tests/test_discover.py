"""Structure discovery on a tiny template (1 satellite x 2 metabolites) with a sparse truth."""

from __future__ import annotations

import json
import random
import time

import pytest

from symode.discover import (
    CHECKPOINT,
    FULL_ITER,
    FULL_KEEP,
    FULL_STARTS,
    RIVAL_STAGE,
    STALL,
    Candidate,
    Search,
    candidate_spec,
    cold_starts,
    discover,
    effective_edges,
    full_starts,
    prunable_edges,
    rename_labels,
    satellite_relabelling,
    split_moves,
    swap_sets,
    synthetic_case,
    transplant_start,
)
from symode.graph.template import template_dict, template_spec
from symode.report.discover import write_discovery
from symode.solve.model import build_model
from symode.solve.simulation import simulate
from symode.spec import load_spec, spec_from_dict

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
    write_discovery(res, out)
    return res, out, time.perf_counter() - t0


@pytest.mark.slow
def test_recovers_edge_set(run, case):
    res, _out, _t = run
    assert sorted(res.kept_edges) == sorted(TRUE)
    spec = case[0]
    assert len(res.kept_edges) + len(res.pruned_edges) == sum(e.prunable for e in spec.interactions)


@pytest.mark.slow
def test_discovery_json_keys(run):
    _res, out, _t = run
    d = json.loads((out / "discovery.json").read_text())
    for key in ("kept_edges", "pruned_edges", "parameters", "path"):
        assert key in d
    assert d["path"] and set(d["path"][0]) == {"edges", "objective", "aicc", "bic"}
    assert len(d["path"][0]["edges"]) == 10   # the full 1x2 template first
    assert (out / "report.md").exists() and (out / "graph_after.png").exists()


@pytest.mark.slow
def test_pruned_yaml_loads_and_simulates(run, case):
    _res, out, _t = run
    spec = load_spec(out / "pruned.yaml")
    assert sorted(e.id for e in spec.interactions if e.prunable) == sorted(TRUE)
    model = build_model(spec)
    traj = simulate(model, case[1].times[:50], data=None, inputs={"D": 0.25})
    assert traj["X"].shape == (50,)


@pytest.mark.slow
def test_resume_from_checkpoint(run, case, tmp_path):
    res, out, _t = run
    spec, data, _ = case
    ck = json.loads((out / CHECKPOINT).read_text())
    # Interrupted after the first accepted step: keep only what had been evaluated up to then.
    first = [c for c in ck["evaluated"] if c["edges"] in ck["path"][:2]]
    for c in first:          # written before knockouts existed: the resumed search recomputes them
        c.pop("knockout", None)
    (tmp_path / CHECKPOINT).write_text(json.dumps({**ck, "evaluated": first, "path": ck["path"][:2]}))
    res2 = discover(spec, data, outdir=tmp_path, progress=False, workers=1, final_analysis=False)
    assert sorted(res2.kept_edges) == sorted(res.kept_edges)
    assert [c.edges for c in res2.path[:2]] == ck["path"][:2]
    # A complete checkpoint: nothing is refitted.
    res3 = discover(spec, data, outdir=out, progress=False, workers=1, final_analysis=False)
    assert len(res3.evaluated) == len(res.evaluated)
    assert sorted(res3.kept_edges) == sorted(res.kept_edges)


@pytest.mark.slow
def test_outcome_does_not_depend_on_the_clock(run, case, tmp_path, monkeypatch):
    """Every budget a decision rests on is an iteration count: on a clock where each CPU second lasts 1000
    and wall time runs 5x faster (a much slower or busier machine), the search takes the same path to the
    same model, and no fit reaches the wall-clock safety cap."""
    res, _out, _t = run
    spec, data, _ = case
    cpu, wall, mono = time.process_time, time.perf_counter, time.monotonic
    monkeypatch.setattr(time, "process_time", lambda: 1000.0 * cpu())
    monkeypatch.setattr(time, "perf_counter", lambda: 5.0 * wall())
    monkeypatch.setattr(time, "monotonic", lambda: 5.0 * mono())
    slow = discover(spec, data, outdir=tmp_path, progress=False, workers=1, final_analysis=False)
    assert [sorted(c.edges) for c in slow.path] == [sorted(c.edges) for c in res.path]
    assert slow.selected.objective == pytest.approx(res.selected.objective, rel=1e-9)
    assert [c.objective for c in slow.evaluated] == pytest.approx([c.objective for c in res.evaluated], rel=1e-9)
    assert not any("safety cap" in n for n in slow.notes) and not any(c.stop == "time limit" for c in slow.evaluated)
    assert [c.iterations for c in slow.evaluated] == [c.iterations for c in res.evaluated]


def test_absent_satellite_drops_its_edges():
    spec = template_spec(2, 1)
    edges = ["prod:X->M1", "uptake:M1->Y1", "prod:Y2->M1", "inhib:M1-|Y2"]
    assert effective_edges(spec, edges) == ["prod:X->M1", "uptake:M1->Y1"]
    sub = candidate_spec(spec, edges)
    assert "Y2" not in sub.states and "u_Y2_M1" not in sub.parameters
    assert Candidate(edges=[], parameters={}, x0={}, objective=1.0, k=1, n_obs=10, aicc=1.0, bic=2.0).ic("bic") == 2


def test_satellite_relabelling_orders_by_lowest_substrate():
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
    spec = template_spec(2, 2)
    edges = ["uptake:M2->Y1", "uptake:M1->Y2", "prod:Y2->M2"]
    mapping = satellite_relabelling(spec, edges)
    assert mapping == {"Y2": "Y1", "Y1": "Y2"}
    # Renaming the selected model gives the model of the renamed edge set.
    renamed = spec_from_dict(rename_labels(candidate_spec(spec, edges).to_dict(), mapping))
    direct = candidate_spec(spec, rename_labels(edges, mapping))
    assert sorted(e.id for e in renamed.interactions) == sorted(e.id for e in direct.interactions)
    assert set(renamed.parameters) == set(direct.parameters)
    # A template whose satellites differ (Y2 starts higher) is not symmetric: labels stay.
    d = template_dict(2, 2)
    d["states"]["Y2"]["x0"] = 2.0
    assert satellite_relabelling(spec_from_dict(d), edges) == {}


def test_effective_edges_matches_candidate_spec():
    rng = random.Random(0)
    for n, m in ((2, 2), (3, 2)):
        spec = template_spec(n, m)
        edges = prunable_edges(spec)
        for _ in range(10):
            sel = [e for e in edges if rng.random() < 0.3]
            have = {e.id for e in candidate_spec(spec, sel).interactions}
            assert effective_edges(spec, sel) == [e for e in edges if e in have]


def test_search_cache_shares_fits_of_relabelled_models(case):
    spec = template_spec(3, 2)
    search = Search(spec, [case[1]], outdir=None, workers=1, progress=False, max_iter=1, max_time=1.0,
                    resume=False)
    assert search.exchangeable
    fitted = Candidate(edges=["uptake:M2->Y1", "prod:Y1->M1"], parameters={"a_M2_Y1": 2.0, "u_Y1_M1": 0.1},
                       x0={"Y1": 0.4}, objective=1.0, k=2, n_obs=10, aicc=1.0, bic=2.0)
    search._store([fitted])
    # The same model with Y3 in the role of Y1: no refit, the cached fit comes back renamed.
    got = search.lookup(["uptake:M2->Y3", "prod:Y3->M1"])
    assert got is not None and sorted(got.edges) == ["prod:Y3->M1", "uptake:M2->Y3"]
    assert got.parameters == {"a_M2_Y3": 2.0, "u_Y3_M1": 0.1} and got.x0 == {"Y3": 0.4}
    assert search.lookup(["uptake:M1->Y3"]) is None
    # Swaps exchange a kept edge for a pruned one of the same kind sharing its organism or metabolite.
    swaps = swap_sets(spec, fitted, prunable_edges(spec))
    assert ["prod:Y1->M1", "uptake:M1->Y1"] in [sorted(s) for s in swaps]
    assert ["prod:Y1->M1", "uptake:M2->Y2"] in [sorted(s) for s in swaps]
    assert all(len(s) == 2 for s in swaps)


def test_full_starts_break_the_satellite_symmetry():
    starts = full_starts(template_spec(2, 3), n_starts=4)
    assert len(starts) == 4
    for params, x0 in starts:
        # the two satellites never start alike (a symmetric start stays symmetric under the fit)
        y1 = [params[f"{p}_M{k}_Y1"] for p in ("a", "mu", "g", "kinh") for k in (1, 2, 3)]
        y2 = [params[f"{p}_M{k}_Y2"] for p in ("a", "mu", "g", "kinh") for k in (1, 2, 3)]
        assert y1 != y2 and x0["Y1"] != x0["Y2"]
    # strong starts: satellite j prefers metabolite (j + shift) mod m
    assert starts[1][0]["a_M1_Y1"] > starts[1][0]["a_M2_Y1"] and starts[2][0]["a_M2_Y1"] > starts[2][0]["a_M1_Y1"]


def test_cold_starts_reinitialise_satellites_only():
    spec = candidate_spec(template_spec(2, 3), ["prod:X->M1", "inhib:M1-|X", "uptake:M1->Y1", "uptake:M2->Y1",
                                                  "uptake:M3->Y2", "prod:Y1->M2"])
    fitted = {n: 7.0 * p.value + 0.01 for n, p in spec.parameters.items()}
    x0 = {n: 0.123 for n in spec.states}
    starts = cold_starts(spec, fitted, x0, n_starts=3)
    assert len(starts) == 3
    for params, xs in starts:
        # X's parameters and the metabolites' initial states stay at the fitted values
        assert params["v_X_M1"] == fitted["v_X_M1"] and params["kinh_M1_X"] == fitted["kinh_M1_X"]
        assert xs["M1"] == 0.123
        # satellite parameters and initial states restart near the template's defaults
        for n in ("mu_M1_Y1", "g_M3_Y2", "u_Y1_M2"):
            assert 0.5 < params[n] / spec.parameters[n].value < 2.0
        assert 0.5 < xs["Y1"] / spec.states["Y1"].x0 < 2.0
    # Y1 (two substrates) prefers a different one of its own substrates in consecutive starts
    assert (starts[0][0]["a_M1_Y1"] > starts[0][0]["a_M2_Y1"]) != (starts[1][0]["a_M1_Y1"] > starts[1][0]["a_M2_Y1"])


def test_split_sets_hand_a_substrate_to_an_absent_satellite():
    spec = template_spec(3, 3)
    merged = Candidate(edges=["uptake:M1->Y2", "uptake:M2->Y2", "prod:Y2->M3", "uptake:M3->Y3"], parameters={},
                       x0={}, objective=1.0, k=1, n_obs=10, aicc=1.0, bic=2.0)
    splits = [sorted(s) for s, _donor, _new in split_moves(spec, merged)]
    assert sorted(splits) == sorted([["prod:Y2->M3", "uptake:M1->Y1", "uptake:M2->Y2", "uptake:M3->Y3"],
                                     ["prod:Y2->M3", "uptake:M1->Y2", "uptake:M2->Y1", "uptake:M3->Y3"]])
    # every satellite present, or none grows on two substrates: nothing to split
    full = Candidate(edges=[*merged.edges, "uptake:M3->Y1"], parameters={}, x0={}, objective=1.0, k=1, n_obs=10,
                     aicc=1.0, bic=2.0)
    assert split_moves(spec, full) == []


def test_split_sets_compound_form_takes_the_substrate_from_its_other_eater():
    """Two satellites each on two substrates with a shared one, the third absent (the 3x3 bench failure):
    neither handing the shared substrate to the absent satellite nor dropping it alone improves; the
    compound set does both and is the one-substrate-each structure."""
    spec = template_spec(3, 3)
    spread = Candidate(edges=["uptake:M1->Y1", "uptake:M2->Y1", "uptake:M2->Y3", "uptake:M3->Y3"], parameters={},
                       x0={}, objective=1.0, k=1, n_obs=10, aicc=1.0, bic=2.0)
    splits = [sorted(s) for s, _donor, _new in split_moves(spec, spread)]
    assert ["uptake:M1->Y1", "uptake:M2->Y2", "uptake:M2->Y3", "uptake:M3->Y3"] in splits      # plain split
    assert ["uptake:M1->Y1", "uptake:M2->Y2", "uptake:M3->Y3"] in splits                       # compound
    # a satellite's only substrate is never taken away
    assert all(any(e.endswith("->Y3") for e in s) and any(e.endswith("->Y1") for e in s) for s in splits)


def test_transplant_start_gives_the_new_edge_the_donor_values():
    spec = template_spec(3, 3)
    spread = Candidate(edges=["uptake:M1->Y1", "uptake:M2->Y1", "uptake:M2->Y3", "uptake:M3->Y3"],
                       parameters={"a_M2_Y1": 7.0, "mu_M2_Y1": 0.55, "g_M2_Y1": 1.9, "a_M2_Y2": 0.0},
                       x0={"Y1": 0.3, "Y2": 0.0}, objective=1.0, k=1, n_obs=10, aicc=1.0, bic=2.0)
    moves = {(d, n) for _edges, d, n in split_moves(spec, spread)}
    assert ("uptake:M2->Y1", "uptake:M2->Y2") in moves
    params, x0 = transplant_start(spec, spread, "uptake:M2->Y1", "uptake:M2->Y2")
    assert (params["a_M2_Y2"], params["mu_M2_Y2"], params["g_M2_Y2"]) == (7.0, 0.55, 1.9)
    assert params["a_M2_Y1"] == 7.0 and x0["Y2"] == 0.3 and spread.x0["Y2"] == 0.0   # current is not modified


def test_removal_fitted_from_a_worse_model_is_refitted_from_the_new_one(case):
    """The 3x3 bench failure: the true structure was first fitted (badly) as a removal from an earlier
    model; reached again as a one-edge removal of a new model, it is refitted warm from that model, once;
    a cached removal that already beats the new model under the criterion is reused."""
    spec = template_spec(2, 2)
    search = Search(spec, [case[1]], outdir=None, workers=1, progress=False, max_iter=1, max_time=1.0,
                    resume=False)
    search.criterion = "bic"
    kw = {"x0": {}, "k": 1, "n_obs": 10, "aicc": 1.0}
    cur = Candidate(edges=["uptake:M1->Y1", "uptake:M2->Y1", "uptake:M2->Y2"], parameters={"a_M2_Y1": 0.1},
                    objective=100.0, bic=200.0, **kw)
    drop = ["uptake:M1->Y1", "uptake:M2->Y2"]
    good = ["uptake:M2->Y1", "uptake:M2->Y2"]
    search._store([Candidate(edges=drop, parameters={}, objective=5000.0, bic=10000.0, **kw),
                   Candidate(edges=good, parameters={}, objective=98.0, bic=195.0, **kw)])
    jobs = []

    def fake_map(js):
        jobs.extend(js)
        return [Candidate(edges=j["edges"], parameters=dict(j["parameters"]), objective=101.5, bic=199.0,
                          **kw).to_dict() for j in js]

    search.fit_jobs = fake_map
    got = search.evaluate([drop, good], cur)
    assert [sorted(j["edges"]) for j in jobs] == [sorted(drop)]            # only the stale one is refitted
    assert jobs[0]["parameters"]["a_M2_Y1"] == 0.1                         # warm, from the new model
    assert sorted(c.objective for c in got) == [98.0, 101.5]
    search.evaluate([drop, good], cur)
    assert len(jobs) == 1                                                  # once per (set, start)
    assert not search.improvable(drop, cur)


def test_rival_removals_stop_when_outpaced(case):
    """Rival removals run in stages of RIVAL_STAGE iterations; after a stage, a fit still running stops
    when even at its recent rate of descent for the rest of its budget it would not beat the best finished
    rival; one that could goes on from its last point, its iterations counted on."""
    spec = template_spec(2, 2)
    search = Search(spec, [case[1]], outdir=None, workers=2, progress=False, max_iter=300, max_time=30.0,
                    resume=False)
    search.criterion = "bic"
    kw = {"x0": {}, "k": 1, "n_obs": 10, "aicc": 1.0}
    cur = Candidate(edges=["uptake:M1->Y1", "uptake:M2->Y1", "uptake:M2->Y2"], parameters={"a_M2_Y1": 0.1},
                    objective=120.0, bic=240.0, **kw)
    a, b, c = ([e for e in cur.edges if e != x] for x in cur.edges)
    # a converges at once; b creeps (rate 0.01: 200 more iterations reach bic 216 > 199); c descends fast
    stage1 = {"a": (101.0, 199.0, 20, "converged", 0.0), "b": (110.0, 220.0, RIVAL_STAGE, "iterations", 0.01),
              "c": (112.0, 224.0, RIVAL_STAGE, "iterations", 1.0)}
    name = {tuple(sorted(s)): n for n, s in zip("abc", (a, b, c), strict=True)}
    batches = []

    def fake_fit_jobs(jobs):
        batches.append(jobs)
        out = []
        for j in jobs:
            n = name[tuple(sorted(j["edges"]))]
            obj, bic, it, stop, rate = stage1[n] if len(batches) == 1 else (99.0, 197.0, 7, "converged", 0.0)
            out.append(Candidate(edges=j["edges"], parameters={"a_M2_Y1": float(len(batches))}, objective=obj,
                                 bic=bic, iterations=it, stop=stop, rate=rate, **kw).to_dict())
        return out

    search.fit_jobs = fake_fit_jobs
    got = {name[tuple(sorted(x.edges))]: x for x in search.evaluate_rivals([a, b, c], cur)}
    assert [len(x) for x in batches] == [3, 1]
    assert {j["max_iter"] for j in batches[0]} == {RIVAL_STAGE} and {j.get("it0", 0) for j in batches[0]} == {0}
    (cont,) = batches[1]
    assert name[tuple(sorted(cont["edges"]))] == "c" and cont["it0"] == RIVAL_STAGE
    assert cont["parameters"]["a_M2_Y1"] == 1.0                         # from its last point
    assert got["b"].stop == "outpaced" and got["b"].iterations == RIVAL_STAGE
    assert got["c"].iterations == RIVAL_STAGE + 7 and got["c"].bic == 197.0
    assert got["a"].iterations == 20


def test_full_fit_budgets_are_iteration_counts(case):
    """The full-template fit screens FULL_STARTS starts for FULL_ITER[0] iterations and continues the
    FULL_KEEP lowest for FULL_ITER[1]; no job carries a time budget other than the wall-clock safety cap,
    and a fit stopped by that cap is counted (the result then reports it)."""
    spec = template_spec(1, 2)
    search = Search(spec, [case[1]], outdir=None, workers=3, progress=False, max_iter=50, max_time=30.0,
                    resume=False)
    batches = []

    def fake_fit_jobs(jobs):
        batches.append(jobs)
        out = []
        for i, j in enumerate(jobs):
            obj = 100.0 + 10 * ((i * 7) % len(jobs)) if len(batches) == 1 else 50.0 + i
            out.append(Candidate(edges=j["edges"], parameters=dict(j["parameters"]), x0=dict(j["x0"]),
                                 objective=obj, k=1, n_obs=10, aicc=1.0, bic=obj, iterations=j["max_iter"],
                                 stop="time limit" if len(batches) == 2 and i == 1 else "iterations").to_dict())
        return out

    search._run = fake_fit_jobs          # the executor's part: fit_jobs around it counts the capped fits
    best = search.evaluate_full(prunable_edges(spec))
    screen, cont = batches
    assert len(screen) == FULL_STARTS and len(cont) == FULL_KEEP       # not tied to the 3 workers
    assert {j["max_iter"] for j in screen} == {FULL_ITER[0]} and {j["max_iter"] for j in cont} == {FULL_ITER[1]}
    objs = [100.0 + 10 * ((i * 7) % FULL_STARTS) for i in range(FULL_STARTS)]
    kept = sorted(range(FULL_STARTS), key=lambda i: objs[i])[:FULL_KEEP]
    assert [j["parameters"] for j in cont] == [screen[i]["parameters"] for i in kept]
    assert best.objective == 50.0 and search.time_capped == 1
    for j in screen + cont:
        assert not {"max_cpu", "cpu"} & set(j) and j["max_time"] <= 30.0
    # plain LM steps for the continued starts only (the far-off screening starts need geodesic acceleration)
    assert all(j.get("geodesic", True) for j in screen) and not any(j.get("geodesic", True) for j in cont)


def test_candidate_fits_use_the_stall_rule(case, monkeypatch):
    """Every candidate job carries STALL, and the worker hands it (and ``geodesic``) to Levenberg-Marquardt."""
    import symode.discover.worker as worker

    spec = template_spec(1, 2)
    search = Search(spec, [case[1]], outdir=None, workers=1, progress=False, max_iter=3, max_time=30.0,
                    resume=False)
    seen = []
    real = worker.levenberg_marquardt

    def spy(*a, **k):
        seen.append(k)
        return real(*a, **k)

    monkeypatch.setattr(worker, "levenberg_marquardt", spy)
    job = search._job(prunable_edges(spec), None)
    assert job["stall"] == STALL
    worker.fit_candidate(job)
    worker.fit_candidate({**job, "geodesic": False})
    assert [(k["stall_window"], k["stall_tol"], k["geodesic"]) for k in seen] == [(*STALL, True), (*STALL, False)]


def test_full_starts_do_not_depend_on_the_process(tmp_path):
    """The same seeds give the same starts in every process (string hashing, hence a set's iteration
    order, differs between processes: two runs of the same command once started from different points)."""
    import os
    import subprocess
    import sys

    code = ("import json; from symode.graph.template import template_spec; from symode.discover import full_starts;"
            "print(json.dumps(full_starts(template_spec(2, 3), n_starts=4), sort_keys=True))")
    outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2", "3")]
    assert outs[0] and outs[0] == outs[1] == outs[2]
