"""The gLV template (growth law, log10 observables, penalties) and its use in fits."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from symode.cli.main import main
from symode.errors import SpecError
from symode.fit.problem import FitProblem
from symode.graph.glv import glv_template_dict, glv_template_spec
from symode.solve.model import build_model
from symode.solve.simulation import simulate
from symode.spec import loads_spec, spec_from_dict
from symode.spec.data import Dataset
from symode.symbolic.rhs import build_symbolic


def test_template_structure_scales_and_round_trip() -> None:
    spec = glv_template_spec(["A", "B", "C"], ["diet"], scales={"A": 0.5, "B": 2.0, "C": 1.0}, self_limit=2.0,
                             interaction_sd=0.1)
    assert len(spec.states) == 3 and list(spec.inputs) == ["diet"]
    assert len([e for e in spec.interactions if e.prunable]) == 6 + 3
    assert spec.parameters["a_A_A"].upper == pytest.approx(-4.0)        # a_AA xbar_A <= -2
    assert spec.parameters["a_B_B"].value == pytest.approx(-1.0)
    (pen,) = spec.penalties
    assert pen.kind == "ridge" and len(pen.scales) == 6
    assert pen.scales["a_A_B"] == pytest.approx(0.05) and pen.scales["a_B_A"] == pytest.approx(0.2)
    assert all(o.transform == "log10" and o.offset == 1e-5 for o in spec.observables.values())
    assert loads_spec(spec.to_yaml()) == spec


def test_growth_law_equations() -> None:
    sym = build_symbolic(glv_template_spec(["A", "B"], ["u"], interaction_sd=None))
    A, B, u = sp.symbols("A B u", real=True)
    p = {n: sp.Symbol(n, real=True) for n in ("r_A", "a_A_A", "a_A_B", "g_A_u")}
    expected = A * (p["r_A"] + p["a_A_A"] * A + p["a_A_B"] * B + p["g_A_u"] * u)
    assert sp.expand(sym.f[0] - expected) == 0


@pytest.mark.parametrize(("species", "message"), [(["A", "A"], "duplicate"), (["1x"], "not a valid name"),
                                                  (["t"], "not a valid name")])
def test_template_rejects_bad_names(species: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        glv_template_dict(species)


def test_spec_rejects_bad_growth_and_penalty() -> None:
    base = glv_template_dict(["A", "B"], ["u"])
    bad = dict(base, interactions=[*base["interactions"], {"type": "growth", "to": "A", "input": "v", "r": "r_A"}])
    with pytest.raises(SpecError, match="undefined input"):
        spec_from_dict(bad)
    bad = dict(base, penalties=[{"type": "ridge", "parameters": ["zz_*"], "scale": 1.0}])
    with pytest.raises(SpecError, match="matches no parameter"):
        spec_from_dict(bad)
    bad = dict(base, penalties=[{"type": "ridge", "parameters": ["@prunable"], "scale": -1.0}])
    with pytest.raises(SpecError, match="positive"):
        spec_from_dict(bad)
    ok = spec_from_dict(dict(base, penalties=[{"type": "l1", "parameters": ["@prunable"], "scale": 0.5}]))
    assert set(ok.penalties[0].scales) == {"a_A_B", "a_B_A", "g_A_u", "g_B_u"}


@pytest.fixture(scope="module")
def two_species() -> tuple:
    d = glv_template_dict(["A", "B"], ["u"], interaction_sd=0.5, sigma=0.2)
    d["parameters"]["a_A_B"]["value"] = -0.3
    spec = spec_from_dict(d)
    model = build_model(spec)
    times = np.linspace(0.0, 6.0, 13)
    u = (times >= 3.0).astype(float)
    traj = simulate(model, times, data=Dataset(times=times, columns={"u": u}, time_column="time"),
                    x0={"A": 0.05, "B": 0.2})
    cols = {"u": u, "A": np.array(traj["A"]), "B": np.array(traj["B"])}
    return spec, model, Dataset(times=times, columns=cols, time_column="time")


def test_log10_observable_residuals(two_species: tuple) -> None:
    _spec, model, data = two_species
    x0 = {"A": 0.05, "B": 0.2}
    fp = FitProblem(model, [data], x0=[x0])
    assert np.max(np.abs(fp.data_residuals(fp.z_from_values()))) < 1e-5
    cols = dict(data.columns)
    cols["A"] = cols["A"] * 10.0                       # one decade off: residual 1 / sigma
    cols["B"] = np.where(np.arange(len(cols["B"])) == 4, 0.0, cols["B"])   # a zero counts as the offset
    fp2 = FitProblem(model, [Dataset(times=data.times, columns=cols, time_column="time")], x0=[x0])
    r = fp2.data_residuals(fp2.z_from_values()).reshape(len(data.times), 2)
    a = data.columns["A"]
    assert np.allclose(r[:, 0], (np.log10(a + 1e-5) - np.log10(10 * a + 1e-5)) / 0.2, atol=1e-5)
    assert np.all(r[:, 0] < -4.99)                   # about one decade / sigma
    expected = (math.log10(data.columns["B"][4] + 1e-5) - math.log10(1e-5)) / 0.2
    assert r[4, 1] == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("kind", ["ridge", "l1"])
def test_penalty_in_objective_and_jacobian(two_species: tuple, kind: str) -> None:
    spec, _, data = two_species
    d = spec.to_dict()
    d["penalties"] = [{"name": "p", "type": kind, "parameters": {"a_A_B": 0.5, "r_*": 2.0}, "center": 0.1}]
    spec2 = spec_from_dict(d)
    model = build_model(spec2)
    fp = FitProblem(model, [data], x0=[{"A": 0.05, "B": 0.2}])
    z = fp.z_from_values({"a_A_B": -0.7, "r_A": 1.3, "r_B": 0.6})
    q = np.array([(-0.7 - 0.1) / 0.5, (1.3 - 0.1) / 2.0, (0.6 - 0.1) / 2.0])
    expected = 0.5 * q @ q if kind == "ridge" else np.sum(np.sqrt(q * q + 1e-4) - 1e-2)
    assert fp.penalty_loss(z) == pytest.approx(expected, rel=1e-9)
    assert fp.loss(z) == pytest.approx(fp.data_loss(z) + expected, rel=1e-9)
    r, J = fp.jacobian(z)
    assert len(r) == fp.n_obs + 3
    h = 1e-6
    for k in (fp.names.index("a_A_B"), fp.names.index("r_A")):
        e = np.zeros(len(z))
        e[k] = h
        fd = (fp.residuals(z + e) - fp.residuals(z - e)) / (2 * h)
        assert np.allclose(J[:, k], fd, rtol=1e-4, atol=1e-5)


def test_cli_template_glv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "d.csv"
    data.write_text("time,diet,A,B\n0,0,0.1,0\n1,1,0.4,0.02\n")
    out = tmp_path / "glv.yaml"
    assert main(["template", "--glv", "--species", "A,B", "--perturbations", "diet", "--data", str(data),
                 "-o", str(out)]) == 0
    spec = loads_spec(out.read_text())
    assert spec.parameters["a_A_A"].upper == pytest.approx(-1.0 / 0.2)     # xbar_A = sqrt(0.1 * 0.4)
    assert spec.parameters["a_B_B"].upper == pytest.approx(-1.0 / 0.02)
    assert main(["validate", str(out)]) == 0
    assert not any(pen.kind == "stability" for pen in spec.penalties)
    stable = tmp_path / "stable.yaml"
    assert main(["template", "--glv", "--species", "A,B", "--data", str(data), "--stability", "0.05",
                 "-o", str(stable)]) == 0
    pens = [pen for pen in loads_spec(stable.read_text()).penalties if pen.kind == "stability"]
    assert len(pens) == 1 and pens[0].margin == pytest.approx(0.05)
    assert set(pens[0].parameters) == {"a_A_A", "a_A_B", "a_B_A", "a_B_B"}
    assert pens[0].abundances["A"] == pytest.approx(0.2) and pens[0].abundances["B"] == pytest.approx(0.02)
    assert main(["validate", str(stable)]) == 0
    assert main(["template", "--glv", "--species", "A,A"]) == 2
    assert main(["template", "--glv"]) == 2
    assert "duplicate" in capsys.readouterr().err


def test_first_sample_initial_states() -> None:
    from symode.fit.experiments import experiment_x0, first_sample_x0

    spec = glv_template_spec(["A", "B"], ["u"])
    d1 = Dataset(times=np.array([0.0, 1.0]), columns={"u": np.zeros(2), "A": np.array([0.3, 0.4]),
                                                      "B": np.array([0.0, 0.1])}, time_column="time")
    d2 = Dataset(times=np.array([0.0, 1.0]), columns={"u": np.zeros(2), "A": np.array([np.nan, 0.4]),
                                                      "B": np.array([0.2, 0.1])}, time_column="time")
    assert first_sample_x0(spec, d1) == {"A": 0.3, "B": pytest.approx(1e-6)}
    assert first_sample_x0(spec, d2) == {"B": 0.2}                 # missing: the spec's value stays
    fixed, x0 = experiment_x0(spec, [d1, d2], "first-sample")
    assert not any(s.estimate for s in fixed.states.values()) and x0[1] == {"B": 0.2}
    est, _ = experiment_x0(spec, [d1, d2], "estimate")
    assert all(s.estimate for s in est.states.values())
    assert experiment_x0(spec, [d1], "spec") == (spec, None)


def test_cli_fit_first_sample_penalty_options(two_species: tuple, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    import json

    spec, _, data = two_species
    spec_file = tmp_path / "glv.yaml"
    spec_file.write_text(spec.to_yaml())
    files = []
    for k, scale in enumerate((1.0, 0.5)):
        path = tmp_path / f"d{k}.csv"
        a, b = data.columns["A"] * scale, data.columns["B"]
        path.write_text("time,u,A,B\n" + "".join(f"{t},{u},{x},{y}\n" for t, u, x, y in
                                                  zip(data.times, data.columns["u"], a, b, strict=True)))
        files += ["--data", str(path)]
    out = tmp_path / "fit"
    assert main(["fit", str(spec_file), *files, "-o", str(out), "--x0", "first-sample", "--max-iter", "3",
                 "--analysis", "none", "--penalty", "l1:g_*=0.5", "--no-report", "--quiet"]) == 0
    res = json.loads((out / "fit.json").read_text())
    assert res["x0_experiments"][1]["A"] == pytest.approx(data.columns["A"][0] * 0.5)
    assert res["iterations"] <= 3 and not any(n.startswith("x0.") for n in res["estimated"])
    assert res["penalty"] > 0 and res["objective"] == pytest.approx(res["data_objective"] + res["penalty"])
    assert main(["fit", str(spec_file), *files, "-o", str(out), "--penalty", "ridge:nothing*=1"]) == 2
    assert "matches no parameter" in capsys.readouterr().err
    assert main(["fit", str(spec_file), *files, "-o", str(out), "--penalty", "lasso:a_*=1"]) == 2


def test_report_curves_on_a_fine_grid() -> None:
    from symode.report.fit import fine_inputs
    from symode.viz.fit import time_axis

    spec = glv_template_spec(["A"], ["u"])
    data = Dataset(times=np.array([0.0, 2.0, 5.0]), columns={"u": np.array([0.0, 1.0, 0.0]),
                                                             "A": np.ones(3)}, time_column="time")
    u = fine_inputs(spec, data, np.array([0.0, 1.9, 2.0, 4.99, 5.0]))["u"]
    assert list(u) == [0.0, 0.0, 1.0, 1.0, 0.0]                       # piecewise constant from each sample
    assert time_axis(np.array([0.0, 65.0]), "time") == (1.0, "time (data units)")
    assert time_axis(np.array([0.0, 200.0]), "time_h") == (24.0, "time [d]")
    assert time_axis(np.array([0.0, 20.0]), "time_h") == (1.0, "time [h]")


def test_penalties_survive_graph_edits() -> None:
    from symode.graph.community import build_graph, graph_to_spec, prune_unused_parameters, remove_interactions

    spec = glv_template_spec(["A", "B", "C"])
    assert graph_to_spec(build_graph(spec)).penalties == spec.penalties
    pruned = prune_unused_parameters(graph_to_spec(remove_interactions(build_graph(spec), ["glv:B->A"])))
    assert "a_A_B" not in pruned.parameters and "a_A_B" not in pruned.penalties[0].scales
    assert len(pruned.penalties[0].scales) == 5
    assert loads_spec(pruned.to_yaml()) == pruned
