"""The n x m community template (symode.graph.template) and its agreement with the reference data set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from symode.graph.template import community_truth_params, template_spec, template_yaml
from symode.spec import load_spec, loads_spec
from symode.spec.params import apply_params

from .conftest import REPO, require


@pytest.mark.parametrize(("n", "m"), [(0, 1), (1, 1), (1, 2), (2, 3), (4, 4)])
def test_template_structure(n: int, m: int) -> None:
    spec = template_spec(n, m)
    ys, ms = [f"Y{j}" for j in range(1, n + 1)], [f"M{k}" for k in range(1, m + 1)]
    assert spec.state_names == ["S", "X", *ys, *ms]
    assert [spec.states[s].role for s in spec.state_names] == (
        ["substrate", "main"] + ["satellite"] * n + ["metabolite"] * m)
    prunable = [e for e in spec.interactions if e.prunable]
    assert len(prunable) == 2 * m + 3 * n * m
    assert len(spec.interactions) == 1 + len(prunable)
    assert spec.interaction("uptake:S->X").params == {"mu": "mu0", "K": "KS", "yield": "gamma"}
    expected = ["S0", "gamma", "mu0", "KS"]
    for k in ms:
        expected += [f"v_X_{k}", f"kinh_{k}_X"]
    for j in ys:
        for k in ms:
            expected += [f"a_{k}_{j}", f"mu_{k}_{j}", f"g_{k}_{j}", f"u_{j}_{k}", f"kinh_{k}_{j}"]
    assert spec.parameter_names == expected
    assert spec.estimated_parameters == expected[4:]
    for p in spec.parameters.values():
        assert p.unit and p.description
    for e in prunable:
        par = spec.parameters[str(e.strength)]
        assert par.lower == 0 and par.scale == "lin", e.id  # strength 0 (edge absent) is allowed
    ids = {e.id for e in spec.interactions}
    for k in ms:
        assert {f"prod:X->{k}", f"inhib:{k}-|X"} <= ids
        assert spec.interaction(f"inhib:{k}-|X").applies_to == "growth_and_uptake"
        for j in ys:
            assert {f"uptake:{k}->{j}", f"prod:{j}->{k}", f"inhib:{k}-|{j}"} <= ids
            assert spec.interaction(f"inhib:{k}-|{j}").applies_to == "growth"
            assert spec.interaction(f"uptake:{k}->{j}").law == "shared_monod"
    assert list(spec.observables) == ["X", "S", *ms]
    assert spec.reactor.dilution == "D" and spec.reactor.feed == {"S": "S0"}
    assert spec.inputs["D"].default == 0.25
    assert loads_spec(spec.to_yaml()) == spec


@pytest.mark.parametrize(("n", "m"), [(-1, 2), (1, 0), (1.5, 2), (True, 1)])
def test_template_rejects_bad_sizes(n: object, m: object) -> None:
    with pytest.raises(ValueError):
        template_spec(n, m)  # type: ignore[arg-type]


def test_committed_community_spec_matches_template() -> None:
    path = REPO / "specs" / "community-2x3.yaml"
    assert load_spec(path) == template_spec(2, 3)
    text = path.read_text()
    body = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))
    assert text.startswith("#") and body == template_spec(2, 3).to_yaml()
    assert template_yaml(2, 3).endswith(body)


TRUTH = {"satellites": 1, "metabolites": 2,
         "edges": {"uptake:M1->Y1": {"mu": 0.8, "K": 0.1, "g": 1.5}, "inhib:M2-|X": {"kappa": 0.5},
                   "prod:X->M1": {"v": 0.002}, "prod:Y1->M2": {"u": 0.1}, "inhib:M1-|Y1": {"I": 4.0}},
         "constants": {"S0": 90.0}, "x0": {"X": 10.0}}


def test_community_truth_params() -> None:
    out = community_truth_params(TRUTH)
    spec = template_spec(1, 2)
    assert set(out["parameters"]) == set(spec.estimated_parameters)
    p = out["parameters"]
    assert p["a_M1_Y1"] == pytest.approx(10.0) and p["mu_M1_Y1"] == 0.8 and p["g_M1_Y1"] == 1.5
    assert p["a_M2_Y1"] == 0 and p["mu_M2_Y1"] == spec.parameters["mu_M2_Y1"].value
    assert p["kinh_M2_X"] == 0.5 and p["kinh_M1_X"] == 0
    assert p["kinh_M1_Y1"] == pytest.approx(0.25) and p["kinh_M2_Y1"] == 0
    assert p["v_X_M1"] == 0.002 and p["v_X_M2"] == 0 and p["u_Y1_M2"] == 0.1 and p["u_Y1_M1"] == 0
    assert out["constants"]["S0"] == 90.0 and out["constants"]["KS"] == 1.0
    assert out["x0"]["X"] == 10.0 and out["x0"]["M1"] == 0.05
    with pytest.raises(ValueError, match="not an edge"):
        community_truth_params({**TRUTH, "edges": {"uptake:M3->Y1": {"mu": 1, "K": 1, "g": 1}}})
    with pytest.raises(ValueError, match="lacks"):
        community_truth_params({**TRUTH, "edges": {"uptake:M1->Y1": {"mu": 1, "K": 1}}})


def test_template_reproduces_community_dev_truth(tmp_path: Path, shared_data: Path) -> None:
    """The template with the true edges, simulated on the data set's D(t), matches the exact states
    of the independent reference code."""
    from symode.solve.model import build_model
    from symode.solve.simulation import simulate
    from symode.spec.data import read_csv

    folder = shared_data / "community-dev"
    require((folder / "truth.json").exists(), f"reference data set community-dev not found at {folder}")
    truth = json.loads((folder / "truth.json").read_text())
    params = tmp_path / "truth-params.json"
    params.write_text(json.dumps(community_truth_params(truth)))
    spec = apply_params(template_spec(truth["satellites"], truth["metabolites"]), params)
    model = build_model(spec)
    data = read_csv(folder / "data.csv")
    traj = simulate(model, data=data)
    ref = read_csv(folder / "truth_states.csv")
    np.testing.assert_allclose(traj.times, ref.times)
    for name in spec.states:
        want, got = ref.columns[name], traj[name]
        rel = np.max(np.abs(got - want) / np.abs(want))
        assert rel <= 1e-5, f"{name}: max relative error {rel:.3g}"


def test_absent_satellite_stays_absent_with_every_integrator() -> None:
    """{Y_j = 0} is invariant: an organism that is not inoculated must stay at exactly 0, also where it
    could invade (here Y2 eats M2, which X makes, and Y1 eats M1). Rodas4's LU once swapped Y's
    (diagonal-only) row with a metabolite row, and the roundoff it left grew into an invasion (auto) or
    into |Y| ~ 1e174 returned with status 0 (stiff)."""
    from symode.solve.model import build_model

    truth = {"satellites": 2, "metabolites": 2, "edges": {
        "prod:X->M1": {"v": 0.003}, "prod:X->M2": {"v": 0.002},
        "uptake:M1->Y1": {"mu": 0.8, "K": 0.1, "g": 1.5}, "uptake:M2->Y2": {"mu": 0.9, "K": 0.05, "g": 2.0},
        "prod:Y2->M1": {"u": 0.1}}}
    tp = community_truth_params(truth)
    model = build_model(template_spec(2, 2).with_values({**tp["parameters"], **tp["constants"]}, tp["x0"]))
    p = model.parameter_vector()
    times, D = np.array([0.0, 800.0]), np.array([0.15])
    for absent in ("Y1", "Y2"):
        i = model.states.index(absent)
        x0 = model.x0_vector({absent: 0.0})
        ref = model.backend.integrate(times, x0, p, D, rtol=1e-8, atol=1e-10, method="explicit")
        assert ref.status == 0 and ref.x[-1, i] == 0.0
        assert np.max(ref.x[-1]) > 0.1      # the others reach a nontrivial steady state
        for method in ("stiff", "auto"):
            r = model.backend.integrate(times, x0, p, D, rtol=1e-6, atol=1e-9, method=method)
            assert r.status == 0, (absent, method)
            assert r.x[-1, i] == 0.0, (absent, method, r.x[-1, i])
            np.testing.assert_allclose(r.x[-1], ref.x[-1], rtol=1e-3, atol=1e-5, err_msg=f"{absent} {method}")
