"""gLV leave-one-subject-out prediction with `symode crossval` (the product's API), several arms in one
process: the starting point (``--init``), the interaction penalty's strength chosen by inner
cross-validation, sparse edge sets. Every arm's result is cached in OUT/<arm>/crossval.json (re-runs skip
arms already there; ``--fresh`` redoes them); the table and the fit-time ratios against the first arm
are printed at the end.

    python3 bench/glv_crossval.py [--data DIR] [--arms spec,gm] [--files 1,2,3,4] [--max-iter 60]
        [--max-time 300] [--workers 1] [--out DIR]

DIR holds the wide table ``diet.csv`` and ``diet-events.csv`` (default: the MDSINE diet experiment in
../shared/realdata/bucci2016-diet). ``--files`` keeps those subjects (template and folds from them only).
``--table FILE [--t-end T] [--drop TAXA]``: another wide table instead (no inputs), e.g. the MDSINE
C. difficile experiment vendored in tests/data/bucci2016-cdiff (``--t-end 28 --drop Clostridium_difficile``:
the 5 mice before the C. difficile challenge).

Arms: ``spec`` (the template's values), ``gm`` (``init="gradient-matching"``), ``grid-fit`` (penalty scale
multipliers 0.3,1,3 chosen by inner leave-one-out on the training files, gradient-matching starts),
``grid-gm`` (the same, but the inner loop scores ridge gradient matching's simulated predictions),
``grid10-gm`` (as ``grid-gm`` with the multipliers 1, 3, 10),
``stable[:MARGIN[:WEIGHT]]`` (the ``spec`` arm with a stability penalty on the interaction matrix
scaled by the typical abundances; default margin 0.01/day, weight 1e6), ``stable-gm[:MARGIN[:WEIGHT]]``
(the same from gradient matching),
``edges=FILE`` (only the prunable edges listed in FILE, a discovery.json, kept; the template's values),
``edges=FILE@ARM`` (the same with the settings of another arm, e.g. ``edges=disc/discovery.json@grid-gm``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from symode.fit.crossval import crossval
from symode.graph.glv import glv_template_dict, typical_abundances
from symode.spec import read_csv, spec_from_dict
from symode.spec.wide import wide_to_long, write_long

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = next((d / "shared" / "realdata" / "bucci2016-diet" for d in (ROOT.parent, ROOT.parent.parent)
                     if (d / "shared" / "realdata").is_dir()), ROOT.parent / "shared" / "realdata" / "bucci2016-diet")


def load(data_dir: Path, out: Path, keep: list[int] | None, table: Path | None = None, t_end: float | None = None,
         drop: tuple[str, ...] = ()) -> tuple[list, list[str], list[str]]:
    """(datasets, species, inputs): the diet table of ``data_dir`` or another wide ``table`` (no events),
    its samples up to ``t_end`` and without the taxa ``drop``."""
    if table is None:
        tables = wide_to_long(data_dir / "diet.csv", data_dir / "diet-events.csv",
                              inputs={"Low fiber diet": "diet"}, t_end=t_end, drop=drop)
    else:
        tables = wide_to_long(table, t_end=t_end, drop=drop)
    paths = write_long(tables, out / "data")
    if keep:
        paths = [p for p in paths if int(p.stem.removeprefix("subject")) in keep]
    data = [read_csv(p) for p in paths]
    inputs = ["diet"] if table is None else []
    species = [c for c in data[0].columns if c not in inputs]
    return data, species, inputs


def arm_kwargs(arm: str) -> dict:
    if arm == "spec" or arm.split(":")[0] == "stable":
        return {}
    if arm.split(":")[0] == "stable-gm":
        return {"init": "gradient-matching"}
    if arm == "gm":
        return {"init": "gradient-matching"}
    if arm == "grid-fit":
        return {"init": "gradient-matching", "penalty_grid": [0.3, 1.0, 3.0]}
    if arm == "grid-gm":
        return {"init": "gradient-matching", "penalty_grid": [0.3, 1.0, 3.0], "inner": "gradient-matching"}
    if arm == "grid10-gm":
        return {"init": "gradient-matching", "penalty_grid": [1.0, 3.0, 10.0], "inner": "gradient-matching"}
    raise SystemExit(f"unknown arm {arm!r}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--arms", default="spec,gm")
    ap.add_argument("--files", default="")
    ap.add_argument("--max-iter", type=int, default=60)
    ap.add_argument("--max-time", type=float, default=300.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("bench-glv-crossval"))
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--table", type=Path, help="another wide table (no events) instead of the diet experiment")
    ap.add_argument("--t-end", type=float, help="only the samples up to this time")
    ap.add_argument("--drop", default="", help="taxa left out (comma-separated names as converted)")
    a = ap.parse_args(argv)
    keep = [int(k) for k in a.files.split(",") if k] or None
    data, species, inputs = load(a.data, a.out, keep, a.table, a.t_end, tuple(x for x in a.drop.split(",") if x))
    base = glv_template_dict(species, inputs, scales=typical_abundances(species, data))
    results = {}
    for arm in a.arms.split(","):
        path = a.out / arm.replace("=", "-").replace("/", "_").replace("@", "-").replace(":", "_") / "crossval.json"
        if path.exists() and not a.fresh:
            results[arm] = json.loads(path.read_text())
            continue
        d = json.loads(json.dumps(base))
        if arm.startswith("stable"):
            given = [float(v) for v in arm.split(":")[1:]]
            margin, weight = [*given, *(0.01, 1e6)[len(given):]][:2]
            d = glv_template_dict(species, inputs, scales=typical_abundances(species, data),
                                  stability_margin=margin, stability_weight=weight)
        kw = {}
        if arm.startswith("edges="):
            file, _, how = arm[6:].partition("@")
            kept = set(json.loads(Path(file).read_text())["kept_edges"])
            d["interactions"] = [e for e in d["interactions"] if not e.get("prunable") or
                                 edge_id(e) in kept]
            kw = arm_kwargs(how) if how else {}
        else:
            kw = arm_kwargs(arm)
        t0, c0 = time.perf_counter(), cpu_seconds()
        load_before = os.getloadavg()[0]
        res = crossval(spec_from_dict(d), data, path.parent, max_iter=a.max_iter, max_time=a.max_time,
                       workers=a.workers, progress=False, **kw)
        res["bench"] = {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(cpu_seconds() - c0, 1),
                        "load_before": load_before,
                        "load_after": os.getloadavg()[0]}
        path.write_text(json.dumps(res, indent=1))
        results[arm] = res
    first = next(iter(results.values()))
    stems = [f["stem"] for f in first["folds"]]
    print("arm | " + " | ".join(stems) + " | mean | blow-ups | mean fit s | fit-time ratio | iterations | load | "
          "CPU s (ratio)")
    cpu_ref = first.get("bench", {}).get("cpu_s")
    t_ref = np.mean([f.get("fit_time_s", np.nan) for f in first["folds"]])
    for arm, res in results.items():
        fold = {f["stem"]: f for f in res["folds"]}
        cells = [f"{fold[s]['rmse']:.3f}" if fold.get(s, {}).get("rmse") is not None else "-" for s in stems]
        t_fit = np.mean([f.get("fit_time_s", np.nan) for f in res["folds"]])
        its = "/".join(str(f.get("iterations", "-")) for f in res["folds"])
        b = res.get("bench", {})
        mean = "-" if res["mean_rmse"] is None else f"{res['mean_rmse']:.3f}"
        print(f"{arm} | " + " | ".join(cells) + f" | {mean} | {len(res['failures'])} | {t_fit:.0f} | "
              f"{t_fit / t_ref:.2f} | {its} | {b.get('load_before', 0):.1f}-{b.get('load_after', 0):.1f} | "
              + (f"{b['cpu_s']:.0f} ({b['cpu_s'] / cpu_ref:.2f})" if b.get("cpu_s") and cpu_ref else "-"))
        if res.get("mean_combined_rmse") is not None:
            print(f"{arm} averaged with the training mean | " + " | ".join(
                f"{fold[s]['combined_rmse']:.3f}" if fold.get(s, {}).get("combined_rmse") is not None else "-"
                for s in stems) + f" | {res['mean_combined_rmse']:.3f}")
        for f in res["folds"]:
            if f.get("penalty_choice"):
                print(f"    {f['stem']}: penalty multiplier {f['penalty_choice']} (inner {f.get('inner_scores')})")
    print("training-mean trajectory | " + " | ".join(f"{f['training_mean_rmse']:.3f}" for f in first["folds"])
          + f" | {first['mean_training_mean_rmse']:.3f}")
    return 0


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (user + system)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def edge_id(e: dict) -> str:
    """The id of a gLV template edge as `symode discover` names it (glv:A->B, growth:[U->]B)."""
    if e["type"] == "glv":
        return f"glv:{e['from']}->{e['to']}"
    return f"growth:{e['input']}->{e['to']}" if e.get("input") else f"growth:{e['to']}"


if __name__ == "__main__":
    sys.exit(main())
