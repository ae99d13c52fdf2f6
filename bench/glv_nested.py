"""Nested leave-one-subject-out check of sparse gLV selection: the edge set is chosen inside every outer
fold from its training subjects only, so the held-out subject never influences which edges are kept.

For every outer fold of a finished ``glv_crossval.py`` arm of the full template (its
``OUT/<stem>/parameters.json``: the full model fitted to the fold's training subjects):

1. rank the prunable edges by effect size (|a_ij| xbar_j; |gamma_i| max u) of that fold's fit
   (``symode.discover.screen.effect_sizes``);
2. score the nested sets (all, n/2, n/4, ..., 0 strongest) by leave-one-subject-out prediction with
   gradient matching on the training subjects, at every penalty multiplier of ``--grid``
   (``prediction_error_table``), and choose one by ``--rule`` (``choose_by_prediction``: ``one-se`` or
   ``no-worse``), as ``symode discover --strategy screen --select one-se --penalty-grid ...`` does;
3. fit the chosen set (its multiplier, gradient-matching start, ``--max-iter``) to the training subjects,
   predict the held-out subject from its first sample and score it (``symode.fit.crossval.fold_task``,
   the same fold as ``symode crossval``).

    python3 bench/glv_nested.py --full OUT/grid-gm [--rule one-se] [--grid 0.3,1,3] [--max-iter 60]
        [--workers 2] [--out OUT/nested-one-se]

The data are read from ``OUT/data`` (written by ``glv_crossval.py``), the template rebuilt as there.
Writes OUT/crossval.json in the format of ``symode crossval`` plus the kept edges and the inner scores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from glv_crossval import edge_id

from symode.discover.screen import choose_by_prediction, effect_sizes, prediction_error_table, screen_sizes
from symode.fit.crossval import fold_task
from symode.fit.penalty import scaled_penalties
from symode.graph.glv import glv_template_dict, typical_abundances
from symode.parallel import TaskFailure, run_tasks
from symode.spec import read_csv, spec_from_dict


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", type=Path, required=True, help="a glv_crossval.py arm directory of the full template")
    ap.add_argument("--rule", default="one-se", choices=("one-se", "no-worse"))
    ap.add_argument("--keep", type=int, help="instead of a rule: keep this many strongest edges of each fold's "
                                             "own fit (at the first multiplier of --grid); a check, not a rule")
    ap.add_argument("--grid", default="0.3,1,3")
    ap.add_argument("--max-iter", type=int, default=60)
    ap.add_argument("--max-time", type=float, default=300.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    grid = [float(v) for v in a.grid.split(",")]
    out = a.out or a.full.parent / (f"nested-keep{a.keep}" if a.keep is not None else f"nested-{a.rule}")
    paths = sorted((a.full.parent / "data").glob("*.csv"))
    data = [read_csv(p) for p in paths]
    inputs = [c for c in ("diet",) if c in data[0].columns]
    species = [c for c in data[0].columns if c not in inputs]
    base = glv_template_dict(species, inputs, scales=typical_abundances(species, data))
    spec = spec_from_dict(base)
    jobs, chosen = [], []
    t0 = time.perf_counter()
    for k, test in enumerate(data):
        train = data[:k] + data[k + 1:]
        params = json.loads((a.full / Path(test.file).stem / "parameters.json").read_text())["parameters"]
        eff = effect_sizes(spec, train, params)
        ranked = sorted(eff, key=lambda e: -eff[e])
        if a.keep is not None:
            sets, pick, table = [ranked[:a.keep]], (0, 0), np.full((1, len(grid), len(train)), np.nan)
        else:
            sets = [ranked] + [ranked[:n] for n in screen_sizes(len(ranked))]
            table = prediction_error_table(spec, train, sets, grid)
            pick = choose_by_prediction(table, [len(s) for s in sets], a.rule)
        k_set, k_m = pick if pick is not None else (0, int(table[0].mean(axis=1).argmin()))
        keep = set(sets[k_set])
        d = json.loads(json.dumps(base))
        d["interactions"] = [e for e in d["interactions"] if not e.get("prunable") or edge_id(e) in keep]
        fold_spec = scaled_penalties(spec_from_dict(d), grid[k_m])
        chosen.append({"kept_edges": sorted(keep), "penalty_multiplier": grid[k_m],
                       "inner_means": {len(s): [round(float(v), 4) for v in table[i].mean(axis=1)]
                                       for i, s in enumerate(sets)}})
        print(f"{Path(test.file).stem}: kept {len(keep)} of {len(ranked)} edges, penalty x{grid[k_m]:g}", flush=True)
        jobs.append({"spec": fold_spec.to_dict(), "train": train, "test": test, "x0": "first-sample",
                     "init": "gradient-matching", "max_iter": a.max_iter, "max_time": a.max_time,
                     "shooting": "single", "method": "lm", "offset": 1e-5})
    t_select = time.perf_counter() - t0
    results = run_tasks(fold_task, jobs, workers=a.workers)
    folds = []
    for test, r, c in zip(data, results, chosen, strict=True):
        f = {"stem": Path(test.file).stem, **c}
        if isinstance(r, TaskFailure) or not isinstance(r, dict):
            f.update({"status": "failed", "rmse": None, "message": str(r)})
        else:
            f.update({k: r[k] for k in ("status", "rmse", "training_mean_rmse", "combined_rmse", "iterations",
                                        "fit_time_s")})
        folds.append(f)
    ok = [f for f in folds if f["rmse"] is not None]
    res = {"folds": folds, "mean_rmse": float(np.mean([f["rmse"] for f in ok])) if ok else None,
           "mean_training_mean_rmse": float(np.mean([f["training_mean_rmse"] for f in ok])) if ok else None,
           "mean_combined_rmse": float(np.mean([f["combined_rmse"] for f in ok])) if ok else None,
           "failures": [f for f in folds if f["status"] != "ok"], "rule": a.rule, "grid": grid,
           "selection_s": round(t_select, 1), "wall_s": round(time.perf_counter() - t0, 1)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "crossval.json").write_text(json.dumps(res, indent=1))
    print("held-out | kept edges | penalty | RMSE | training mean | averaged")
    for f in folds:
        rm = "-" if f["rmse"] is None else f"{f['rmse']:.3f}"
        print(f"{f['stem']} | {len(f['kept_edges'])} | x{f['penalty_multiplier']:g} | {rm} | "
              f"{f.get('training_mean_rmse', float('nan')):.3f} | {f.get('combined_rmse', float('nan')):.3f}")
    print(f"mean RMSE {res['mean_rmse']:.3f} (training mean {res['mean_training_mean_rmse']:.3f}, averaged "
          f"{res['mean_combined_rmse']:.3f}); {len(res['failures'])} failures; selection {t_select:.0f} s, "
          f"total {res['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
