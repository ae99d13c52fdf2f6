"""Leave-one-file-out cross-validation (symode.fit.crossval, symode crossval)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from symode.cli.main import main
from symode.fit.crossval import combined, crossval, log_rmse, predict, training_mean
from symode.graph.glv import glv_template_dict
from symode.solve.model import build_model
from symode.solve.simulation import simulate
from symode.spec import read_csv, spec_from_dict
from symode.spec.data import Dataset

TRUE = {"r_A": 1.0, "r_B": 0.6, "a_A_A": -2.0, "a_B_B": -1.5, "a_A_B": -0.5, "a_B_A": 0.3, "g_A_u": -0.8,
        "g_B_u": 0.4}


def _write(path: Path, times: np.ndarray, cols: dict[str, np.ndarray]) -> None:
    lines = ["time," + ",".join(cols)]
    lines += [f"{t}," + ",".join(f"{cols[c][k]:.10g}" for c in cols) for k, t in enumerate(times)]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list[Path]]:
    d = glv_template_dict(["A", "B"], ["u"], interaction_sd=1.0)
    spec = spec_from_dict(d)
    model = build_model(spec)
    out = tmp_path_factory.mktemp("cv")
    paths = []
    for k, (xa, xb, switch) in enumerate([(0.05, 0.3, 4.0), (0.4, 0.02, 6.0), (0.1, 0.1, 3.0)]):
        times = np.arange(0.0, 10.01, 0.5)
        u = ((times >= switch) & (times < switch + 3)).astype(float)
        traj = simulate(model, times, data=Dataset(times=times, columns={"u": u}, time_column="time"),
                        params=TRUE, x0={"A": xa, "B": xb})
        path = out / f"m{k + 1}.csv"
        _write(path, times, {"u": u, "A": np.array(traj["A"]), "B": np.array(traj["B"])})
        paths.append(path)
    return d, paths


def test_crossval_recovers_held_out_files(files: tuple, tmp_path: Path) -> None:
    d, paths = files
    res = crossval(spec_from_dict(d), paths, tmp_path, max_iter=40, workers=1, progress=False)
    assert [f["status"] for f in res["folds"]] == ["ok"] * 3 and not res["failures"]
    assert res["mean_rmse"] < 0.05 < res["mean_training_mean_rmse"]      # exact model, noise-free data
    pred = np.genfromtxt(tmp_path / "m2" / "prediction.csv", delimiter=",", names=True)
    assert list(pred.dtype.names) == ["time", "A", "B"] and len(pred) == 21
    assert pred["A"][0] == pytest.approx(0.4)                           # starts at the first sample
    saved = json.loads((tmp_path / "crossval.json").read_text())
    assert saved["mean_rmse"] == pytest.approx(res["mean_rmse"])
    assert set(json.loads((tmp_path / "m1" / "parameters.json").read_text())["parameters"]) >= set(TRUE)
    # the combined score: the written prediction and the training mean of m1, m3, averaged on the log10 scale
    data = [read_csv(p) for p in paths]
    mean = training_mean([data[0], data[2]], ["A", "B"], data[1].times)
    obs = np.column_stack([data[1].columns["A"], data[1].columns["B"]])
    both = 0.5 * (np.log10(np.column_stack([pred["A"], pred["B"]]) + 1e-5) + np.log10(mean + 1e-5))
    fold = res["folds"][1]
    assert fold["combined_rmse"] == pytest.approx(np.sqrt(np.mean((both[1:] - np.log10(obs[1:] + 1e-5)) ** 2)),
                                                  rel=1e-6)
    assert res["mean_combined_rmse"] == pytest.approx(np.mean([f["combined_rmse"] for f in res["folds"]]))


def test_failures_are_reported_not_raised(files: tuple, tmp_path: Path) -> None:
    d, paths = files
    d = json.loads(json.dumps(d))
    for name, value in (("a_A_A", 3.0), ("r_A", 1.0), ("a_A_B", 0.0), ("g_A_u", 0.0)):
        d["parameters"][name] = {"value": value, "estimate": False}     # A grows without limit
    spec = spec_from_dict(d)
    res = crossval(spec, paths, tmp_path, max_iter=2, workers=1, progress=False)
    assert [f["status"] for f in res["folds"]] == ["failed"] * 3 and len(res["failures"]) == 3
    assert res["mean_rmse"] is None and json.loads((tmp_path / "crossval.json").read_text())["failures"]
    data = read_csv(paths[0])
    model = build_model(spec)
    x, t_blow, msg = predict(model, {}, {"A": 0.05, "B": 0.3}, data, np.array([1e3, 1e3]))
    assert t_blow is not None and 0 < t_blow <= 10 and "blow-up at time" in msg
    k = list(data.times).index(t_blow)
    assert np.all(np.isnan(x[k:])) and np.all(np.isfinite(x[:k])) and np.all(x[:k] <= 1e3)


def test_scores() -> None:
    obs = np.array([[1.0, 0.0], [0.1, 1e-5], [1.0, np.nan]])
    pred = np.array([[5.0, 5.0], [1.0, 0.0], [1.0, 3.0]])
    expected = np.sqrt(np.mean([(np.log10(1.00001) - np.log10(0.10001)) ** 2, (np.log10(1e-5) - np.log10(2e-5)) ** 2,
                                0.0]))
    assert log_rmse(pred, obs) == pytest.approx(expected)
    a = Dataset(times=np.array([0.0, 2.0]), columns={"A": np.array([1.0, 100.0])})
    b = Dataset(times=np.array([0.0, 1.0]), columns={"A": np.array([100.0, 10.0])})
    m = training_mean([a, b], ["A"], np.array([0.0, 1.0, 2.0]), offset=1e-9)
    assert m[:, 0] == pytest.approx([10.0, 10.0, 100.0], rel=1e-6)
    c = combined(np.array([[1.0, np.nan], [100.0, 4.0]]), np.array([[100.0, 7.0], [1.0, np.nan]]), offset=1e-12)
    assert c == pytest.approx(np.array([[10.0, 7.0], [10.0, 4.0]]), rel=1e-9)


def test_cli_crossval_errors(files: tuple, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d, paths = files
    spec_file = tmp_path / "glv.yaml"
    spec_file.write_text(spec_from_dict(d).to_yaml())
    assert main(["crossval", str(spec_file), "--data", str(paths[0]), "-o", str(tmp_path / "o")]) == 2
    assert "at least 2" in capsys.readouterr().err
    other = tmp_path / "x"
    other.mkdir()
    (other / "m1.csv").write_text(paths[1].read_text())
    assert main(["crossval", str(spec_file), "--data", str(paths[0]), "--data", str(other / "m1.csv"),
                 "-o", str(tmp_path / "o")]) == 2
    assert "same name stem" in capsys.readouterr().err
    assert main(["crossval", str(spec_file), "--data", str(paths[0]), "--data", str(paths[1]), "-o",
                 str(tmp_path / "o"), "--max-iter", "0"]) == 2


def test_convert_wide_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wide = tmp_path / "wide.csv"
    wide.write_text("id,1,1,2,1\ntime,2,0,0,5\nB. fragilis,0.1,0.2,0,NA\nStrain4,1,2,3,4\n")
    events = tmp_path / "events.csv"
    events.write_text("ID,eventID,startDay,endDay\n1,Low fiber diet,1,5\n")
    assert main(["convert", str(wide), "--events", str(events), "-o", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.strip() == "B_fragilis,Strain4"
    d1 = read_csv(tmp_path / "out" / "subject1.csv")
    assert list(d1.times) == [0.0, 1.0, 2.0, 5.0]                      # event start inserted at day 1
    assert list(d1.columns["Low_fiber_diet"]) == [0.0, 1.0, 1.0, 0.0]
    assert np.isnan(d1.columns["Strain4"][1]) and d1.columns["B_fragilis"][0] == 0.2
    d2 = read_csv(tmp_path / "out" / "subject2.csv")
    assert list(d2.columns["Low_fiber_diet"]) == [0.0] and d2.columns["B_fragilis"][0] == 0.0
    # a window and a dropped taxon: the samples up to day 2 (the event's start inserted), without Strain4
    assert main(["convert", str(wide), "--events", str(events), "--t-end", "2", "--drop", "Strain4",
                 "-o", str(tmp_path / "cut")]) == 0
    assert capsys.readouterr().out.strip() == "B_fragilis"
    c1 = read_csv(tmp_path / "cut" / "subject1.csv")
    assert list(c1.times) == [0.0, 1.0, 2.0] and list(c1.columns) == ["Low_fiber_diet", "B_fragilis"]
    assert list(c1.columns["Low_fiber_diet"]) == [0.0, 1.0, 1.0] and c1.columns["B_fragilis"][2] == 0.1
    assert main(["convert", str(wide), "--drop", "Nope", "-o", str(tmp_path / "o3")]) == 2
    assert "Nope" in capsys.readouterr().err
    assert main(["convert", str(wide), "--t-end", "-1", "-o", str(tmp_path / "o3")]) == 2
    assert "no sample at or before" in capsys.readouterr().err
    wide.write_text("id,1,1\ntime,0,1\nA,1,-2\n")
    assert main(["convert", str(wide), "-o", str(tmp_path / "o2")]) == 2
    assert "negative value" in capsys.readouterr().err
    wide.write_text("id,1,1\ntime,0,0\nA,1,2\n")
    assert main(["convert", str(wide), "-o", str(tmp_path / "o2")]) == 2
    assert "two samples at time 0" in capsys.readouterr().err


def test_cli_crossval_prints_the_averaged_score(files: tuple, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    d, paths = files
    spec_file = tmp_path / "glv.yaml"
    spec_file.write_text(spec_from_dict(d).to_yaml())
    argv = ["crossval", str(spec_file), "-o", str(tmp_path / "o"), "--max-iter", "3", "--workers", "1", "--quiet"]
    assert main(argv + [a for p in paths for a in ("--data", str(p))]) == 0
    saved = json.loads((tmp_path / "o" / "crossval.json").read_text())
    err = capsys.readouterr().err           # the command's table goes to stderr (echo)
    assert f"the model and the training mean averaged: {saved['mean_combined_rmse']:.3f}" in err
