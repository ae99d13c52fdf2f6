"""discover --strategy screen --select prediction: the number of kept edges chosen by held-out prediction
(gradient matching, leave one file out) instead of BIC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from symode.cli.main import main
from symode.discover import ScreenRefit, discover, prunable_edges
from symode.discover.screen import choose_by_prediction, prediction_error_table, prediction_errors
from symode.graph.glv import glv_template_dict
from symode.solve.model import build_model
from symode.solve.simulation import simulate
from symode.spec import spec_from_dict
from symode.spec.data import Dataset

STRONG = {"a_A_B": -1.5, "a_C_A": 1.2, "g_B_u": -1.0}       # the only nonzero edges of the truth


def _dataset(model, x0: dict[str, float], switch: float, k: int) -> Dataset:
    times = np.round(np.arange(0.0, 8.0 + 1e-9, 0.05), 10)
    u = ((times >= switch) & (times < switch + 2.0)).astype(float)
    traj = simulate(model, times, data=Dataset(times=times, columns={"u": u}, time_column="time"), x0=x0)
    cols = {"u": u} | {s: np.array(traj[s]) for s in "ABC"}
    return Dataset(times=times, columns=cols, time_column="time", file=f"m{k}.csv")


@pytest.fixture(scope="module")
def glv3() -> tuple:
    d = glv_template_dict(["A", "B", "C"], ["u"], interaction_sd=10.0, sigma=0.05)
    params = {**d["parameters"]}
    for n, v in STRONG.items():
        params[n] = {**params[n], "value": v}
    for n, v in (("r_A", 1.0), ("r_B", 0.8), ("r_C", 0.5), ("a_A_A", -1.5), ("a_B_B", -2.0), ("a_C_C", -1.0)):
        params[n] = {**params[n], "value": v}
    model = build_model(spec_from_dict({**d, "parameters": params}))
    starts = [({"A": 0.05, "B": 0.3, "C": 0.1}, 2.0), ({"A": 0.4, "B": 0.02, "C": 0.2}, 4.0),
              ({"A": 0.1, "B": 0.1, "C": 0.02}, 3.0), ({"A": 0.2, "B": 0.5, "C": 0.3}, 5.0)]
    data = [_dataset(model, x0, sw, k) for k, (x0, sw) in enumerate(starts)]
    return spec_from_dict(d), data


def _edges_of(spec, names: set[str]) -> list[str]:
    return [e.id for e in spec.interactions if e.prunable and str(e.strength) in names]


def test_prediction_errors_need_the_true_edges(glv3: tuple) -> None:
    spec, data = glv3
    full = prunable_edges(spec)
    true = _edges_of(spec, set(STRONG))
    without = [e for e in true if e != "glv:B->A"]
    err_full, err_true, err_without, err_none = prediction_errors(spec, data, [full, true, without, []])
    assert err_true < 0.02 and err_full < 0.02              # dense noise-free data: gradient matching is close
    assert err_without > 2 * err_true and err_none > 2 * err_true


def test_screen_selects_by_prediction(glv3: tuple) -> None:
    spec, data = glv3
    res = discover(spec, data, strategy=ScreenRefit(select="prediction"), progress=False, workers=1, max_iter=20,
                   x0="first-sample", final_analysis=False, budget=300.0)
    assert set(_edges_of(spec, set(STRONG))) <= set(res.kept_edges)
    assert len(res.kept_edges) < len(prunable_edges(spec))
    assert any("held-out prediction error" in n for n in res.notes)
    assert res.selected is res.path[-1]
    err_kept, err_full = prediction_errors(spec, data, [res.kept_edges, prunable_edges(spec)])
    assert err_kept <= err_full


def test_select_prediction_needs_the_screen(glv3: tuple, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec, _data = glv3
    f = tmp_path / "glv.yaml"
    f.write_text(spec.to_yaml())
    csv = tmp_path / "m.csv"
    csv.write_text("time,u,A,B,C\n0,0,1,1,1\n1,0,1,1,1\n")
    assert main(["discover", str(f), "--data", str(csv), "--select", "prediction", "-o", str(tmp_path / "o")]) == 2
    assert "needs --strategy screen" in capsys.readouterr().err


def test_one_se_rule_picks_the_sparsest_set_within_one_standard_error() -> None:
    # 3 files; sets of 8, 4, 2, 0 edges; one multiplier, then a second one that favours the sparse sets
    table = np.array([[[0.40, 0.50, 0.60]],      # mean 0.50, the best; sd 0.1 -> SE 0.1 / sqrt(3) = 0.0577
                      [[0.45, 0.55, 0.60]],      # mean 0.533 <= 0.5577: within one SE
                      [[0.50, 0.55, 0.65]],      # mean 0.567: not within
                      [[0.90, 0.90, 0.90]]])
    assert choose_by_prediction(table, [8, 4, 2, 0], "one-se") == (1, 0)
    assert choose_by_prediction(table, [8, 4, 2, 0], "no-worse") is None      # nothing as good as the full set
    two = np.concatenate([table, table - np.array([0.0, 0.05, 0.1, 0.0])[:, None, None]], axis=1)
    # with the second multiplier the 2-edge set's mean is 0.467 < the full set's 0.50: both rules take it
    assert choose_by_prediction(two, [8, 4, 2, 0], "no-worse") == (2, 1)
    assert choose_by_prediction(two, [8, 4, 2, 0], "one-se") == (2, 1)
    assert choose_by_prediction(np.full((2, 1, 3), np.inf), [8, 0], "one-se") is None
    with pytest.raises(ValueError):
        choose_by_prediction(table, [8, 4, 2, 0], "bogus")


def test_prediction_error_table_matches_the_means(glv3: tuple) -> None:
    spec, data = glv3
    sets = [prunable_edges(spec), _edges_of(spec, set(STRONG)), []]
    table = prediction_error_table(spec, data, sets, (1.0, 3.0))
    assert table.shape == (3, 2, len(data))
    np.testing.assert_allclose(table[:, 0].mean(axis=1), prediction_errors(spec, data, sets))


def test_screen_one_se_rule_keeps_the_true_edges(glv3: tuple) -> None:
    spec, data = glv3
    res = discover(spec, data, strategy=ScreenRefit(select="prediction", rule="one-se", penalty_grid=(1.0, 3.0)),
                   progress=False, workers=1, max_iter=20, x0="first-sample", final_analysis=False, budget=300.0)
    assert set(_edges_of(spec, set(STRONG))) <= set(res.kept_edges)
    assert len(res.kept_edges) < len(prunable_edges(spec))
    assert any("one-standard-error rule" in n for n in res.notes)


def test_screen_rule_and_grid_are_checked(glv3: tuple, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from symode.errors import SymodeError

    with pytest.raises(SymodeError):
        ScreenRefit(select="prediction", rule="bogus")
    with pytest.raises(SymodeError):
        ScreenRefit(select="prediction", penalty_grid=(0.0,))
    spec, _data = glv3
    f = tmp_path / "glv.yaml"
    f.write_text(spec.to_yaml())
    csv = tmp_path / "m.csv"
    csv.write_text("time,u,A,B,C\n0,0,1,1,1\n1,0,1,1,1\n")
    for extra in (["--select", "one-se"], ["--strategy", "screen", "--penalty-grid", "1,3"],
                  ["--strategy", "screen", "--select", "one-se", "--penalty-grid", "1,x"],
                  ["--strategy", "screen", "--select", "one-se", "--penalty-grid", "0"]):
        assert main(["discover", str(f), "--data", str(csv), *extra, "-o", str(tmp_path / "o")]) == 2
        assert capsys.readouterr().err.strip().count("\n") == 0          # one line, no traceback
