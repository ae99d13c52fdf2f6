"""Gradient matching as the starting point of gLV-type fits (symode.fit.gradient_matching, --init)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from symode.cli.main import main
from symode.errors import SymodeError
from symode.fit.crossval import crossval
from symode.fit.gradient_matching import gradient_matching, initial_spec, matching_design, solve_design, with_values
from symode.graph.glv import glv_template_dict
from symode.solve.model import build_model
from symode.solve.simulation import simulate
from symode.spec import load_spec, spec_from_dict
from symode.spec.data import Dataset

TRUE = {"r_A": 1.0, "r_B": 0.6, "a_A_A": -2.0, "a_B_B": -1.5, "a_A_B": -0.5, "a_B_A": 0.3, "g_A_u": -0.8,
        "g_B_u": 0.4}
ROOT = Path(__file__).resolve().parents[1]


def _data(spec_dict: dict, step: float, zeros: bool = False) -> list[Dataset]:
    model = build_model(spec_from_dict(spec_dict))
    out = []
    for k, (xa, xb, switch) in enumerate([(0.05, 0.3, 4.0), (0.4, 0.02, 6.0), (0.1, 0.1, 3.0)]):
        times = np.round(np.arange(0.0, 10.0 + step / 2, step), 10)
        u = ((times >= switch) & (times < switch + 3)).astype(float)
        traj = simulate(model, times, data=Dataset(times=times, columns={"u": u}, time_column="time"),
                        params=TRUE, x0={"A": xa, "B": xb})
        a, b = np.array(traj["A"]), np.array(traj["B"])
        if zeros:
            a[3], b[5] = 0.0, np.nan              # below detection, missing
        out.append(Dataset(times=times, columns={"u": u, "A": a, "B": b}, time_column="time", file=f"m{k + 1}.csv"))
    return out


def test_recovers_the_parameters_of_dense_noise_free_data() -> None:
    d = glv_template_dict(["A", "B"], ["u"], interaction_sd=None)
    res = gradient_matching(spec_from_dict(d), _data(d, 0.01))
    assert res.matched == ["A", "B"] and not res.unmatched and res.rows == 3 * 2 * 1000
    for name, value in TRUE.items():               # forward differences: error O(step)
        assert res.values[name] == pytest.approx(value, abs=0.03), name


def test_missing_and_zero_samples_are_skipped_not_fatal() -> None:
    d = glv_template_dict(["A", "B"], ["u"], interaction_sd=None)
    res = gradient_matching(spec_from_dict(d), _data(d, 0.01, zeros=True))
    assert res.rows == 3 * 2 * 1000 - 3 - 3     # a zero or a missing sample joins its neighbours into one pair
    assert all(np.isfinite(v) for v in res.values.values())
    assert res.values["a_A_B"] == pytest.approx(TRUE["a_A_B"], abs=0.05)


def test_penalty_and_bounds_are_respected() -> None:
    d = glv_template_dict(["A", "B"], ["u"], interaction_sd=None)
    data = _data(d, 0.5)
    free = gradient_matching(spec_from_dict(d), data).values
    d["penalties"] = [{"name": "p", "type": "ridge", "parameters": {"a_A_B": 1e-4, "a_B_A": 1e-4}}]
    shrunk = gradient_matching(spec_from_dict(d), data).values
    assert abs(shrunk["a_A_B"]) < 1e-3 < abs(free["a_A_B"]) and abs(shrunk["a_B_A"]) < 1e-3 < abs(free["a_B_A"])
    d["penalties"] = []
    d["parameters"]["a_A_A"].update(bounds=[-10.0, -3.0], value=-5.0)     # the truth (-2) is outside
    bounded = gradient_matching(spec_from_dict(d), data).values
    assert bounded["a_A_A"] == pytest.approx(-3.0)
    d["parameters"]["r_B"] = {"value": 0.25, "estimate": False}
    assert "r_B" not in gradient_matching(spec_from_dict(d), data).values
    start = with_values(spec_from_dict(d), {"a_A_A": -50.0})
    assert start.parameters["a_A_A"].value == -10.0              # clipped into the bounds


def test_subsets_zeroed_parameters_and_penalty_factors_of_one_design() -> None:
    d = glv_template_dict(["A", "B"], ["u"], interaction_sd=0.3)
    data = _data(d, 0.25)
    spec = spec_from_dict(d)
    design = matching_design(spec, data)
    sub = solve_design(design, [0, 2])
    direct = gradient_matching(spec, [data[0], data[2]])
    assert sub.rows == direct.rows and sub.rms == pytest.approx(direct.rms, rel=1e-6)
    for n, v in direct.values.items():
        assert sub.values[n] == pytest.approx(v, rel=1e-6, abs=1e-9)
    zeroed = solve_design(design, zero={"a_A_B", "g_B_u"})
    d2 = json.loads(json.dumps(d))
    d2["parameters"]["a_A_B"] = {"value": 0.0, "estimate": False}
    d2["parameters"]["g_B_u"] = {"value": 0.0, "estimate": False}
    held = gradient_matching(spec_from_dict(d2), data)
    assert zeroed.values["a_A_B"] == 0.0 and zeroed.values["g_B_u"] == 0.0
    for n, v in held.values.items():
        assert zeroed.values[n] == pytest.approx(v, rel=1e-6, abs=1e-9)
    d2 = json.loads(json.dumps(d))
    d2["penalties"][0]["parameters"] = {k: 10 * v for k, v in d2["penalties"][0]["parameters"].items()}
    weaker = gradient_matching(spec_from_dict(d2), data)
    for n, v in solve_design(design, penalty_factor=10.0).values.items():
        assert weaker.values[n] == pytest.approx(v, rel=1e-6, abs=1e-9)


def test_not_glv_type_is_a_clear_error() -> None:
    spec = load_spec(ROOT / "specs" / "chemostat.yaml")
    data = [Dataset(times=np.array([0.0, 1.0]), columns={}, time_column="time")]
    with pytest.raises(SymodeError, match="gradient matching needs"):
        gradient_matching(spec, data)
    with pytest.raises(SymodeError, match="unknown init"):
        initial_spec(spec, data, "magic")
    assert initial_spec(spec, data, "spec") is spec


def _write(path: Path, data: Dataset) -> Path:
    cols = data.columns
    lines = ["time," + ",".join(cols)]
    lines += [f"{t:g}," + ",".join("" if not np.isfinite(cols[c][k]) else f"{cols[c][k]:.10g}" for c in cols)
              for k, t in enumerate(data.times)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fit_and_crossval_start_from_gradient_matching(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = glv_template_dict(["A", "B"], ["u"], interaction_sd=1.0)
    paths = [_write(tmp_path / f"m{k + 1}.csv", ds) for k, ds in enumerate(_data(d, 0.5))]
    spec_file = tmp_path / "glv.yaml"
    spec_file.write_text(spec_from_dict(d).to_yaml())
    res = crossval(spec_from_dict(d), paths, tmp_path / "cv", init="gradient-matching", max_iter=1, workers=1,
                   progress=False)
    plain = crossval(spec_from_dict(d), paths, tmp_path / "cv0", max_iter=1, workers=1, progress=False)
    assert res["settings"]["init"] == "gradient-matching" and all(f["status"] == "ok" for f in res["folds"])
    assert res["mean_rmse"] < plain["mean_rmse"]               # after one iteration the start shows
    args = ["fit", str(spec_file), "-o", str(tmp_path / "fit"), "--x0", "first-sample", "--max-iter", "1",
            "--analysis", "none", "--no-report", "--quiet", "--init", "gradient-matching"]
    assert main(args + [a for p in paths for a in ("--data", str(p))]) == 0
    fitted = json.loads((tmp_path / "fit" / "fit.json").read_text())["parameters"]
    assert fitted["a_A_B"] == pytest.approx(TRUE["a_A_B"], abs=0.2)
    capsys.readouterr()
    d["observables"] = {f"total_{s}": dict(d["observables"][s], expr=s) for s in ("A", "B")}  # not named like x
    spec_file.write_text(spec_from_dict(d).to_yaml())
    renamed = tmp_path / "renamed.csv"
    renamed.write_text(paths[0].read_text().replace(",A,B", ",total_A,total_B"))
    bad = ["fit", str(spec_file), "--data", str(renamed), "-o", str(tmp_path / "o"), "--init", "gradient-matching"]
    assert main(bad) == 2 and "gradient matching needs" in capsys.readouterr().err
