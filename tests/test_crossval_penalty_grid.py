"""The penalty strength of crossval chosen per fold by inner leave-one-file-out (penalty_grid)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from symode.cli.main import main
from symode.errors import SymodeError
from symode.fit.crossval import crossval
from symode.fit.penalty import scaled_penalties
from symode.graph.glv import glv_template_dict
from symode.solve.model import build_model
from symode.solve.simulation import simulate
from symode.spec import spec_from_dict
from symode.spec.data import Dataset

TRUE = {"r_A": 1.0, "r_B": 0.6, "a_A_A": -2.0, "a_B_B": -1.5, "a_A_B": -1.0, "a_B_A": 0.8, "g_A_u": -0.8,
        "g_B_u": 0.4}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list[Path]]:
    d = glv_template_dict(["A", "B"], ["u"], interaction_sd=1.0)
    model = build_model(spec_from_dict(d))
    out = tmp_path_factory.mktemp("grid")
    paths = []
    for k, (xa, xb, switch) in enumerate([(0.05, 0.3, 4.0), (0.4, 0.02, 6.0), (0.1, 0.1, 3.0), (0.2, 0.5, 5.0)]):
        times = np.round(np.arange(0.0, 10.01, 0.1), 10)
        u = ((times >= switch) & (times < switch + 3)).astype(float)
        traj = simulate(model, times, data=Dataset(times=times, columns={"u": u}, time_column="time"),
                        params=TRUE, x0={"A": xa, "B": xb})
        cols = {"u": u, "A": np.array(traj["A"]), "B": np.array(traj["B"])}
        lines = ["time," + ",".join(cols)] + [f"{t}," + ",".join(f"{cols[c][i]:.10g}" for c in cols)
                                               for i, t in enumerate(times)]
        path = out / f"m{k + 1}.csv"
        path.write_text("\n".join(lines) + "\n")
        paths.append(path)
    return d, paths


def test_scaled_penalties() -> None:
    spec = spec_from_dict(glv_template_dict(["A", "B"], interaction_sd=0.5))
    scaled = scaled_penalties(spec, 4.0)
    assert scaled.penalties[0].scales == {"a_A_B": 2.0, "a_B_A": 2.0}
    assert spec.penalties[0].scales == {"a_A_B": 0.5, "a_B_A": 0.5}           # the original is unchanged


@pytest.mark.parametrize("inner", ["gradient-matching", "fit"])
def test_the_grid_picks_the_strength_that_predicts(files: tuple, tmp_path: Path, inner: str) -> None:
    d, paths = files
    # noise-free data of strong interactions: a strong penalty (scale 1e-3) forces them to ~0 and predicts
    # worse than a weak one (scale 100)
    res = crossval(spec_from_dict(d), paths[:3], tmp_path, init="gradient-matching", max_iter=15, workers=1,
                   progress=False, penalty_grid=[1e-3, 100.0], inner=inner, inner_max_iter=8)
    assert res["settings"]["penalty_grid"] == [1e-3, 100.0] and res["settings"]["inner"] == inner
    for f in res["folds"]:
        assert f["penalty_multiplier"] == 100.0, f
        assert f["inner_scores"]["0.001"] > f["inner_scores"]["100"] + 0.02
    assert res["mean_rmse"] < 0.1
    assert json.loads((tmp_path / "crossval.json").read_text())["folds"][0]["penalty_multiplier"] == 100.0


def test_grid_errors(files: tuple, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d, paths = files
    with pytest.raises(SymodeError, match="needs penalties"):
        crossval(spec_from_dict(glv_template_dict(["A", "B"], ["u"], interaction_sd=None)), paths, tmp_path,
                 penalty_grid=[1.0], progress=False)
    with pytest.raises(SymodeError, match="at least 3"):
        crossval(spec_from_dict(d), paths[:2], tmp_path, penalty_grid=[1.0], progress=False)
    with pytest.raises(SymodeError, match="positive"):
        crossval(spec_from_dict(d), paths, tmp_path, penalty_grid=[0.0], progress=False)
    spec_file = tmp_path / "glv.yaml"
    spec_file.write_text(spec_from_dict(d).to_yaml())
    argv = ["crossval", str(spec_file), "-o", str(tmp_path / "o")] + [a for p in paths for a in ("--data", str(p))]
    assert main([*argv, "--penalty-grid", "1,x"]) == 2 and "--penalty-grid" in capsys.readouterr().err
    assert main([*argv, "--penalty-grid", "1", "--inner-max-iter", "0"]) == 2
