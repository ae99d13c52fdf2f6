"""Smoke tests of the neural-ODE examples: examples/mnode.py and examples/spirals.py in their
--quick modes. Both quick modes stop after a fixed number of optimiser iterations (not a time limit), so
their results do not depend on the machine's load.

Thresholds come from measured quick runs (docs/neural-examples.md):
- mnode --quick (4 satellites x 4 metabolites, 100 communities): neural ODE mean Spearman per metabolite
  0.966 on the test communities, ridge baselines 0.712 (raw) / 0.530 (log), plain MLP 0.971. The test
  asks for > 0.85 and at least 0.1 above the better ridge baseline.
- spirals --quick (16 training spirals, 100 L-BFGS iterations, 8 test spirals, 50 observations): extrapolation
  RMSE mean 0.61, median 0.33 (the untrained initial field: 4.0; predicting the mean of the observed points: 1.82 on
  these 8 spirals). The test asks for mean < 0.9, median < 0.5 and half the trivial predictor's RMSE.
"""

from __future__ import annotations

import importlib.util
import math
import sys

import numpy as np
import pytest

from .conftest import REPO


def _load(name: str):
    path = REPO / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mnode():
    return _load("mnode")


@pytest.fixture(scope="module")
def spirals():
    return _load("spirals")


def test_spearman_scores_definition(mnode):
    rng = np.random.default_rng(0)
    meas = rng.uniform(size=(20, 3))
    perfect = mnode.spearman_scores(meas * 2 + 1, meas)          # monotone transform: rho = 1 everywhere
    assert perfect["mean_rho_per_metabolite"] == pytest.approx(1.0)
    assert perfect["mean_rho_per_sample"] == pytest.approx(1.0)
    reversed_ = mnode.spearman_scores(-meas, meas)
    assert reversed_["mean_rho_per_metabolite"] == pytest.approx(-1.0)
    assert reversed_["n_rho_gt_0.5"] == 0


@pytest.mark.slow
def test_mnode_quick_beats_ridge(mnode, tmp_path):
    out = mnode.main(["--quick", "-o", str(tmp_path / "mnode.json")])
    rows = out["rows"]
    neural = rows[out["neural_label"]]["measured"]["mean_rho_per_metabolite"]
    ridge = max(rows[k]["measured"]["mean_rho_per_metabolite"] for k in rows if k.startswith("ridge"))
    assert neural > 0.85, out
    assert neural > ridge + 0.1, out
    assert (tmp_path / "mnode.json").exists()


@pytest.mark.slow
def test_spirals_quick_extrapolates(spirals, tmp_path):
    out = spirals.main(["--quick", "-o", str(tmp_path / "spirals.json")])
    res = out["results"][50]
    assert res["failed"] == 0
    assert res["mean"] < 0.9 and res["median"] < 0.5, res
    # trivial predictor: the mean of the observed points, on the same test spirals
    rng = np.random.default_rng(2050)
    samples = [spirals.sample(rng, 50) for _ in range(out["args"]["test"])]
    trivial = [math.sqrt(np.mean((s["truth"][100:] - s["obs"].mean(0)) ** 2)) for s in samples]
    assert res["mean"] * 2 < np.mean(trivial), (res, np.mean(trivial))
