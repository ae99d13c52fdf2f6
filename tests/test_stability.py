"""The stability penalty on the gLV interaction matrix: r = sqrt(w) max(0, lambda_max((A + A^T)/2) + margin)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from symode.cli.main import main
from symode.errors import SpecError, SymodeError
from symode.fit.penalty import PenaltyTerms, parse_penalty_option
from symode.graph.community import build_graph, graph_to_spec, prune_unused_parameters, remove_interactions
from symode.graph.glv import glv_template_dict
from symode.spec import loads_spec, spec_from_dict

SPECIES = ["A", "B", "C"]


def stable_spec(margin: float = 0.01, weight: float = 100.0, **kw: object) -> object:
    d = glv_template_dict(SPECIES, interaction_sd=None)
    d["penalties"] = [{"name": "stable", "type": "stability", "margin": margin, "weight": weight, **kw}]
    return spec_from_dict(d, file="glv.yaml")


def matrix_theta(spec: object, names: list[str], A: np.ndarray) -> np.ndarray:
    """theta with a_i_j = A[i, j] (rows/columns in SPECIES order), other parameters at their values."""
    th = np.array([spec.parameters[n].value for n in names], dtype=float)
    for i, si in enumerate(SPECIES):
        for j, sj in enumerate(SPECIES):
            th[names.index(f"a_{si}_{sj}")] = A[i, j]
    return th


def test_declaration_maps_every_glv_entry_from_the_edges() -> None:
    spec = stable_spec()
    pen = spec.penalties[0]
    assert pen.kind == "stability" and pen.states == SPECIES
    for i, si in enumerate(SPECIES):
        for j, sj in enumerate(SPECIES):
            assert pen.positions[f"a_{si}_{sj}"] == [(i, j)]       # glv edge sj -> si: row si, column sj
    assert loads_spec(spec.to_yaml()) == spec


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, (3, 3), elements=st.floats(-2.0, 2.0)), st.floats(0.0, 0.5), st.floats(0.1, 1e3),
       arrays(np.float64, 15, elements=st.floats(0.2, 3.0)),
       st.none() | arrays(np.float64, 3, elements=st.floats(0.01, 10.0)))
def test_residual_and_jacobian_match_finite_differences(A: np.ndarray, margin: float, weight: float,
                                                        dtheta_dz: np.ndarray, c: np.ndarray | None) -> None:
    kw = {} if c is None else {"abundances": dict(zip(SPECIES, c.tolist(), strict=True))}
    spec = stable_spec(margin=margin, weight=weight, **kw)
    names = list(spec.parameters)
    terms = PenaltyTerms(spec.penalties, names)
    B = A if c is None else A * c[None, :]               # columns scaled by the typical abundances
    lam = np.linalg.eigvalsh(0.5 * (B + B.T))
    assume(lam[-1] - lam[-2] > 1e-3 and lam[-1] + margin > 1e-3)     # simple, and the max is active
    th = matrix_theta(spec, names, A)
    r, J = terms.rows(th, dtheta_dz)
    assert r.shape == (1,) and J.shape == (1, len(names))
    assert r[0] == pytest.approx(np.sqrt(weight) * (lam[-1] + margin), rel=1e-10)
    h = 1e-6
    for k in range(len(names)):                        # z-derivative: theta moves by dtheta_dz[k] per unit z
        e = np.zeros(len(names))
        e[k] = h * dtheta_dz[k]
        fd = (terms.rows(th + e, dtheta_dz)[0][0] - terms.rows(th - e, dtheta_dz)[0][0]) / (2 * h)
        assert J[0, k] == pytest.approx(fd, rel=1e-5, abs=1e-6 * np.sqrt(weight))


def test_zero_when_already_negative_definite() -> None:
    spec = stable_spec(margin=0.1, weight=1e4)
    names = list(spec.parameters)
    terms = PenaltyTerms(spec.penalties, names)
    A = np.array([[-2.0, 1.0, 0.5], [-0.8, -1.5, 0.3], [0.2, -0.6, -1.0]])
    assert np.linalg.eigvalsh(0.5 * (A + A.T))[-1] < -0.1
    r, J = terms.rows(matrix_theta(spec, names, A), np.ones(len(names)))
    assert r[0] == 0.0 and not J.any()
    assert terms.value(matrix_theta(spec, names, A)) == 0.0


def test_fixed_entries_enter_with_their_value() -> None:
    spec = stable_spec(margin=0.0, weight=1.0)
    names = [n for n in spec.parameters if n != "a_A_B"]
    A = -np.eye(3)
    terms = PenaltyTerms(spec.penalties, names, fixed={"a_A_B": 4.0})
    th = np.array([spec.parameters[n].value for n in names])
    for i, si in enumerate(SPECIES):
        th[names.index(f"a_{si}_{si}")] = A[i, i]
    assert terms.rows(th, np.ones(len(names)))[0][0] == pytest.approx(-1.0 + 2.0)   # S = -I + 2 (e_A e_B^T + ..)


@pytest.mark.parametrize(("penalty", "message"), [
    ({"parameters": ["r_A"]}, r"penalties\.0\.parameters.*r_A.*not the strength of a glv edge"),
    ({"parameters": ["a_A_B", "a_B_A"]}, "no self-interaction"),
    ({"parameters": ["zz*"]}, "matches no parameter"),
    ({"margin": -1.0}, r"penalties\.0\.margin.*non-negative"),
    ({"weight": 0.0}, r"penalties\.0\.weight.*positive"),
    ({"scale": 1.0}, "scale"),
    ({"abundances": {"A": -1.0}}, r"penalties\.0\.abundances.*positive"),
    ({"abundances": {"Z": 1.0}}, r"penalties\.0\.abundances.*'Z' is not a state"),
])
def test_bad_declarations_refused(penalty: dict, message: str) -> None:
    d = glv_template_dict(SPECIES, interaction_sd=None)
    d["penalties"] = [{"type": "stability", **penalty}]
    with pytest.raises(SpecError, match=message) as exc:
        spec_from_dict(d, file="glv.yaml")
    assert "glv.yaml" in str(exc.value) and "\n" not in str(exc.value)


def test_refused_without_an_interaction_matrix() -> None:
    d = glv_template_dict(["A"], interaction_sd=None)
    d["interactions"] = [e for e in d["interactions"] if e["type"] != "glv"]
    d["parameters"] = {k: v for k, v in d["parameters"].items() if not k.startswith("a_")}
    d["penalties"] = [{"type": "stability"}]
    with pytest.raises(SpecError, match="needs an interaction matrix"):
        spec_from_dict(d, file="glv.yaml")
    with pytest.raises(SymodeError, match="needs an interaction matrix"):
        parse_penalty_option("stability", spec_from_dict({**d, "penalties": []}))


def test_command_line_option() -> None:
    spec = stable_spec()
    pen = parse_penalty_option("stability:margin=0.2,weight=50", spec)
    assert (pen.margin, pen.weight, pen.positions) == (0.2, 50.0, spec.penalties[0].positions)
    pen = parse_penalty_option("stability:a_A_*,a_B_B,a_C_C", spec)
    assert set(pen.positions) == {"a_A_A", "a_A_B", "a_A_C", "a_B_B", "a_C_C"}
    pen = parse_penalty_option("stability:abundances=x0", spec)
    assert pen.abundances == {s: spec.states[s].x0 for s in SPECIES}
    for bad, message in (("stability:r_*", "not the strength"), ("stability:foo=1", "unknown item"),
                         ("stability:abundances=data", "abundances=x0"),
                         ("stability:margin=x", "not a number")):
        with pytest.raises(SymodeError, match=message):
            parse_penalty_option(bad, spec)


def test_template_option_scales_by_typical_abundances() -> None:
    from symode.graph.glv import glv_template_spec

    spec = glv_template_spec(SPECIES, scales={"A": 2.0, "B": 0.5, "C": 1.0}, stability_margin=0.05)
    pen = spec.penalties[-1]
    assert (pen.kind, pen.margin, pen.abundances) == ("stability", 0.05, {"A": 2.0, "B": 0.5, "C": 1.0})
    names = list(spec.parameters)
    th = np.array([spec.parameters[n].value for n in names])     # a_ii = -1/xbar_i, a_ij = 0: B = -I
    assert PenaltyTerms(spec.penalties, names).lambda_max(th) == pytest.approx([-1.0])
    assert loads_spec(spec.to_yaml()) == spec


def test_pruned_edges_leave_the_matrix() -> None:
    spec = stable_spec()
    pruned = prune_unused_parameters(graph_to_spec(remove_interactions(build_graph(spec), ["glv:B->A"])))
    assert "a_A_B" not in pruned.penalties[0].positions and len(pruned.penalties[0].positions) == 8
    assert loads_spec(pruned.to_yaml()) == pruned


@pytest.fixture(scope="module")
def unstable_truth(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """Data of a 3-species gLV whose matrix is stable (triangular) but S = (A + A^T)/2 is not
    negative definite (lambda_max(S) = 0.5)."""
    from symode.solve.model import build_model
    from symode.solve.simulation import simulate
    from symode.spec.data import Dataset

    d = glv_template_dict(SPECIES, interaction_sd=None, sigma=0.05)
    A = np.array([[-1.5, 4.0, 0.0], [0.0, -1.5, 0.0], [0.0, 0.0, -1.5]])
    for i, si in enumerate(SPECIES):
        for j, sj in enumerate(SPECIES):
            d["parameters"][f"a_{si}_{sj}"]["value"] = float(A[i, j])
    truth = spec_from_dict(d)
    times = np.linspace(0.0, 8.0, 17)
    files = []
    for k, x0 in enumerate(({"A": 0.1, "B": 0.1, "C": 0.2}, {"A": 0.5, "B": 0.05, "C": 1.0})):
        traj = simulate(build_model(truth), times, x0=x0)
        data = Dataset(times=times, columns={s: np.array(traj[s]) for s in SPECIES}, time_column="time")
        path = tmp_path_factory.mktemp("data") / f"d{k}.csv"
        path.write_text("time,A,B,C\n" + "".join(f"{t},{a},{b},{c}\n" for t, a, b, c in
                                                  zip(times, *(data.columns[s] for s in SPECIES), strict=True)))
        files.append(path)
    return d, A, files


def fitted_lambda(res: dict) -> float:
    A = np.array([[res["parameters"][f"a_{si}_{sj}"] for sj in SPECIES] for si in SPECIES])
    return float(np.linalg.eigvalsh(0.5 * (A + A.T))[-1])


def test_constrained_fit_ends_stable(unstable_truth: tuple, tmp_path: object) -> None:
    import json

    d, A, files = unstable_truth
    assert np.linalg.eigvalsh(0.5 * (A + A.T))[-1] == pytest.approx(0.5)
    start = {k: dict(v) for k, v in d["parameters"].items()}
    for k in start:
        if k.startswith("a_") and k[2] != k[4]:
            start[k]["value"] = 0.0
    spec_file = tmp_path / "glv.yaml"
    spec_file.write_text(spec_from_dict({**d, "parameters": start}).to_yaml())
    data = [a for f in files for a in ("--data", str(f))]
    common = ["--x0", "first-sample", "--max-iter", "60", "--analysis", "none", "--no-report", "--quiet"]
    assert main(["fit", str(spec_file), *data, "-o", str(tmp_path / "free"), *common]) == 0
    free = json.loads((tmp_path / "free" / "fit.json").read_text())
    assert fitted_lambda(free) > 0.3                  # the unconstrained optimum (near the truth, 0.5)
    margin = 0.05
    assert main(["fit", str(spec_file), *data, "-o", str(tmp_path / "stable"), *common,
                 "--penalty", f"stability:margin={margin},weight=1e6"]) == 0
    stable = json.loads((tmp_path / "stable" / "fit.json").read_text())
    assert fitted_lambda(stable) <= -margin + 1e-3
    assert stable["penalty"] >= 0 and stable["objective"] == pytest.approx(stable["data_objective"]
                                                                           + stable["penalty"])
    assert stable["data_objective"] > free["data_objective"]    # the constraint costs fit quality
    # fit.json reports lambda_max of the term (computed here independently from the fitted parameters)
    (term,) = stable["stability"]
    assert term["lambda_max"] == pytest.approx(fitted_lambda(stable), abs=1e-9)
    assert term["margin"] == margin and term["satisfied"] == (term["lambda_max"] <= -margin)
    assert "stability" not in free
