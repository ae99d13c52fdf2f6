"""Discovery on gLV templates (no satellites): distinct starts, per-file initial states, the time budget,
failed candidate fits (retried, then reported) and the thresholding fallback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import symode.discover.search as search_mod
from symode.cli.main import main
from symode.discover import Search, ThresholdRefit, discover, full_starts, prunable_edges
from symode.discover.worker import fit_candidate
from symode.graph.glv import glv_template_dict
from symode.report.discover import render_report
from symode.solve.model import build_model
from symode.solve.simulation import simulate
from symode.spec import spec_from_dict
from symode.spec.data import Dataset


def _dataset(model: Any, x0: dict[str, float]) -> Dataset:
    times = np.linspace(0.0, 6.0, 9)
    u = (times >= 3.0).astype(float)
    traj = simulate(model, times, data=Dataset(times=times, columns={"u": u}, time_column="time"), x0=x0)
    cols = {"u": u, "A": np.array(traj["A"]), "B": np.array(traj["B"])}
    return Dataset(times=times, columns=cols, time_column="time")


@pytest.fixture(scope="module")
def glv2() -> tuple:
    d = glv_template_dict(["A", "B"], ["u"], interaction_sd=0.5, sigma=0.05)
    truth = spec_from_dict({**d, "parameters": {**d["parameters"],
                                                "a_A_B": {**d["parameters"]["a_A_B"], "value": -1.0}}})
    model = build_model(truth)
    data = [_dataset(model, {"A": 0.05, "B": 0.2}), _dataset(model, {"A": 0.3, "B": 0.02})]
    return spec_from_dict(d), data


def test_starts_are_distinct_without_satellites(glv2: tuple) -> None:
    spec, _data = glv2
    starts = full_starts(spec, n_starts=4)
    vecs = [tuple(round(p[n], 12) for n in sorted(spec.parameters)) for p, _x in starts]
    assert len(set(vecs)) == 4
    for p, _x in starts:
        for n, v in p.items():
            par = spec.parameters[n]
            assert par.lower is None or v >= par.lower
            assert par.upper is None or v <= par.upper
    # interactions start at zero in the template: the spread starts move them off it
    assert any(p["a_A_B"] != 0.0 for p, _x in starts[1:])


def test_every_file_keeps_its_initial_states(glv2: tuple) -> None:
    spec, data = glv2
    res = discover(spec, data, strategy=ThresholdRefit(threshold=2.0), progress=False, workers=1, max_iter=15,
                   x0="first-sample", final_analysis=False, budget=120.0)
    for c in res.path:
        assert len(c.x0s) == 2
        for x, d in zip(c.x0s, data, strict=True):
            assert x["A"] == pytest.approx(d.columns["A"][0]) and x["B"] == pytest.approx(d.columns["B"][0])
    # the next stage's jobs start every file from the previous stage's states
    with Search(spec, data, outdir=None, workers=1, progress=False, max_iter=5, max_time=10.0, resume=False,
                x0s=[{"A": 1.0, "B": 1.0}] * 2) as s:
        job = s._job(list(res.selected.edges), res.selected)
    assert job["x0s"] == res.selected.x0s
    # signed interaction strengths get a Wald statistic (a negative a_ij is not "zero")
    full = res.path[0]
    assert full.wald["glv:B->A"] > 0.0


def test_time_budget_stops_the_search(glv2: tuple, tmp_path: Path) -> None:
    spec, data = glv2
    res = discover(spec, data, progress=False, workers=1, max_iter=30, x0="first-sample", budget=0.05,
                   outdir=tmp_path)
    assert res.budget_exhausted
    assert len(res.path) == 1 and res.final_fit is None
    assert "cut the search short" in render_report(res)
    assert any("skipped" in n for n in res.notes)


def _failing(predicate: Any, calls: list[dict[str, Any]]) -> Any:
    def fake(job: dict[str, Any]) -> dict[str, Any]:
        calls.append(job)
        r = fit_candidate({**job, "max_iter": 3})
        if predicate(job):
            r.update(objective=1e300, aicc=1e300, bic=1e300, failed="the objective is not finite (test)")
        return r
    return fake


def test_failed_refit_is_retried_and_reported(glv2: tuple, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    spec, data = glv2
    n_full = len(prunable_edges(spec))
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(search_mod, "fit_candidate", _failing(lambda j: len(j["edges"]) < n_full, calls))
    res = discover(spec, data, strategy=ThresholdRefit(threshold=1e9), progress=False, workers=1,
                   x0="first-sample", final_analysis=False)
    # every refit failed: tried without 4, then 2, then 1 edge(s), each retried with multiple shooting
    assert [f["n_edges"] for f in res.failed] == [0, 2, 3]
    assert sum(j.get("shooting") == "multiple" for j in calls) == 3
    assert sorted(res.kept_edges) == sorted(prunable_edges(spec)) and not res.selected.failed
    assert any("trying the 2 weakest" in n for n in res.notes)
    assert any("stopped at the model with 4 edges" in n for n in res.notes)
    err = capsys.readouterr().err
    assert err.count("WARNING") == 3
    assert "3 candidate fit(s) failed" in render_report(res)
    assert res.to_json()["failed"][0]["reason"].startswith("the objective is not finite")


def test_threshold_falls_back_to_smaller_steps(glv2: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, data = glv2
    calls: list[dict[str, Any]] = []
    # a refit without more than two edges fails (both attempts); smaller steps work
    monkeypatch.setattr(search_mod, "fit_candidate", _failing(lambda j: len(j["edges"]) < 2, calls))
    res = discover(spec, data, strategy=ThresholdRefit(threshold=1e9), progress=False, workers=1,
                   x0="first-sample", final_analysis=False)
    assert [len(c.edges) for c in res.path[:2]] == [4, 2]
    assert all(not c.failed for c in res.path)
    assert res.notes and "trying the 2 weakest" in res.notes[0]


def test_cli_budget_and_bad_options(glv2: tuple, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec, data = glv2
    (tmp_path / "glv.yaml").write_text(spec.to_yaml())
    files = []
    for k, d in enumerate(data):
        f = tmp_path / f"m{k}.csv"
        rows = ["time,u,A,B"] + [f"{t},{u},{a},{b}" for t, u, a, b in
                                 zip(d.times, d.columns["u"], d.columns["A"], d.columns["B"], strict=True)]
        f.write_text("\n".join(rows) + "\n")
        files += ["--data", str(f)]
    out = tmp_path / "out"
    base = ["discover", str(tmp_path / "glv.yaml"), *files, "-o", str(out), "--workers", "1", "-q"]
    assert main([*base, "--max-time", "0"]) == 2
    assert "--max-time" in capsys.readouterr().err
    assert main([*base, "--max-time", "0.05", "--x0", "first-sample", "--max-iter", "20"]) == 0
    doc = json.loads((out / "discovery.json").read_text())
    assert doc["budget_exhausted"] is True and doc["failed"] == [] and len(doc["x0_per_file"]) == 2
    assert "cut the search short" in capsys.readouterr().err


def test_screen_sizes_and_effect_sizes(glv2: tuple) -> None:
    from symode.discover import effect_sizes, screen_sizes

    assert screen_sizes(182) == [91, 45, 22, 11, 5, 2, 1, 0]
    assert screen_sizes(4, smallest=1) == [2, 1]
    spec, data = glv2
    eff = effect_sizes(spec, data, {"a_A_B": -0.3, "a_B_A": 0.0, "g_A_u": 0.1, "g_B_u": -2.0})
    xbar_b = float(np.exp(np.mean(np.log(np.concatenate([d.columns["B"] for d in data])))))
    assert eff["glv:B->A"] == pytest.approx(0.3 * xbar_b)
    assert eff["glv:A->B"] == 0.0
    assert eff["growth:u->B"] == pytest.approx(2.0)       # |gamma| x max |u| (= 1)


def test_screen_strategy_keeps_the_strong_edges(glv2: tuple) -> None:
    from symode.discover import ScreenRefit

    spec, data = glv2
    res = discover(spec, data, strategy=ScreenRefit(), progress=False, workers=1, max_iter=40,
                   x0="first-sample", final_analysis=False, budget=300.0)
    assert not res.failed
    # nested sets of the strongest edges (2, 1, 0 of 4); BIC selects the true one
    assert res.kept_edges == ["glv:B->A"]          # the only true interaction
    assert res.selected.bic <= res.path[0].bic
