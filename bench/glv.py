"""gLV on real data: leave-one-subject-out prediction, symode's ODE fit vs ridge gradient matching and
the training-mean trajectory (findings: bench/glv-notes.md).

    python3 bench/glv.py [--data DIR] [--variants NAME,...] [--folds 1,2,...] [--workers N] [--out DIR]

DIR holds a wide lab table ``diet.csv`` and ``diet-events.csv`` (default: the MDSINE diet experiment in
../shared/realdata/bucci2016-diet). Every (variant, fold) result is cached in ``OUT/results.json``
(re-runs skip what is there; ``--fresh`` ignores the cache); the table is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from glv_baselines import (
    LAMBDAS,
    gm_choose_lambda,
    gm_ridge,
    load_subjects,
    log_rmse,
    predict,
    training_mean,
)
from glv_fit import Variant, fit_glv, predict_scipy, predict_symode

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = next((d / "shared" / "realdata" / "bucci2016-diet" for d in (ROOT.parent, ROOT.parent.parent)
                     if (d / "shared" / "realdata").is_dir()), ROOT.parent / "shared" / "realdata" / "bucci2016-diet")
INPUTS = {"Low fiber diet": "diet"}

#: The variants of the study (bench/glv-notes.md explains each).
VARIANTS: dict[str, Variant] = {v.name: v for v in [
    Variant("plain"),                                              # no prior, GM start, x0 fixed, zeros missing
    Variant("off1", s_off=1.0),
    Variant("off0.3", s_off=0.3),
    Variant("off0.1", s_off=0.1),
    Variant("off0.03", s_off=0.03),
    Variant("gmprior", prior_mean="gm", s_off=0.1, s_self=0.1, s_r=0.3, s_g=0.3),
    Variant("early10", max_iter=10),
    Variant("self0.1-off0.3", self_max=0.1, s_off=0.3),
    Variant("seg5x10-off0.3", segments=(5, 10), s_off=0.3),
    Variant("self0.5-off0.1", self_max=0.5, s_off=0.1),
    Variant("self1-off0.1", self_max=1.0, s_off=0.1),
    Variant("self0.5-off0.1-seg", self_max=0.5, s_off=0.1, segments=(5, 10)),
    Variant("logistic0.3", self_max=0.3, s_off=0.001),
    Variant("self1-off0.1-neutral", self_max=1.0, s_off=0.1, init="neutral"),
    Variant("self1-off0.1-x0est", self_max=1.0, s_off=0.1, x0="estimate", x0_prior=0.3),
    Variant("self1-off0.1-zeroseps", self_max=1.0, s_off=0.1, zeros="eps"),
    Variant("self1-off0.1-linear", self_max=1.0, s_off=0.1, noise="linear", sigma=0.7),
    Variant("self1-off0.1-sparse40", self_max=1.0, s_off=0.1, edges=40),
    Variant("self1-off0.1-sparse20", self_max=1.0, s_off=0.1, edges=20),
    Variant("self1-sparse0", self_max=1.0, s_off=0.1, edges=0),
    Variant("self1-off0.1-huber1", self_max=1.0, s_off=0.1, huber=1.0),
    Variant("self1-off0.1-floor1e-5", self_max=1.0, s_off=0.1, floor=1e-5),
    Variant("self1-off0.1-long", self_max=1.0, s_off=0.1, max_iter=150, max_time=600.0),
]}


def _atomic_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1)
    os.replace(tmp, path)


def baseline_job(job: dict) -> dict:
    subs, i = job["subjects"], job["fold"]
    s, train = subs[i], subs[:i] + subs[i + 1:]
    t0 = time.perf_counter()
    lam, _ = gm_choose_lambda(train, job["lambdas"])
    pred, blew = predict(gm_ridge(train, lam), s)
    gm = {"score": log_rmse(pred, s.x), "blowup": blew, "lambda": lam, "time_s": time.perf_counter() - t0}
    mean = {"score": log_rmse(training_mean(train, s.times), s.x), "blowup": False, "time_s": 0.0}
    return {"gm_ridge": gm, "train_mean": mean}


def variant_job(job: dict) -> dict:
    subs, i, v = job["subjects"], job["fold"], job["variant"]
    taxa, inputs = job["taxa"], job["inputs"]
    s, train = subs[i], subs[:i] + subs[i + 1:]
    out = fit_glv(train, taxa, inputs, v)
    pred, blew = predict_symode(taxa, inputs, v.sigma, out.params, s, v.floor)
    pred2, blew2 = predict_scipy(taxa, inputs, out.params, s, v.floor)
    return {"score": log_rmse(pred, s.x), "blowup": blew, "score_scipy": log_rmse(pred2, s.x),
            "blowup_scipy": blew2, "train_loss": out.loss, "train_data_loss": out.data_loss,
            "start_loss": out.start_loss, "iterations": out.iterations, "converged": out.converged,
            "message": out.message, "time_s": out.time_s, "params": out.params}


def run(data: Path, variants: list[str], folds: list[int] | None, workers: int, out: Path, fresh: bool,
        baselines: bool) -> dict:
    subs, taxa = load_subjects(str(data / "diet.csv"), str(data / "diet-events.csv"), INPUTS)
    inputs = list(INPUTS.values())
    names = [s.name for s in subs]
    idx = [names.index(str(f)) for f in folds] if folds else list(range(len(subs)))
    path = out / "results.json"
    cache: dict = {} if fresh or not path.exists() else json.loads(path.read_text())
    jobs, keys = [], []
    if baselines:
        for i in idx:
            if names[i] not in cache.get("gm_ridge", {}):
                jobs.append(("base", {"subjects": subs, "fold": i, "lambdas": (0.0, *LAMBDAS)}))
                keys.append(("base", names[i]))
    for vn in variants:
        v = VARIANTS[vn]
        for i in idx:
            if names[i] not in cache.get(vn, {}):
                jobs.append(("fit", {"subjects": subs, "fold": i, "variant": v, "taxa": taxa, "inputs": inputs}))
                keys.append((vn, names[i]))
    from symode.parallel import get_executor

    with get_executor(workers) as ex:
        for k, res in ex.imap(_dispatch, jobs):
            vn, fold = keys[k]
            if not isinstance(res, dict):
                print(f"{vn} fold {fold}: FAILED {res}", flush=True)
                continue
            if vn == "base":
                for b, r in res.items():
                    cache.setdefault(b, {})[fold] = r
                    print(f"{b} fold {fold}: {r['score']:.3f}", flush=True)
            else:
                cache.setdefault(vn, {})[fold] = res | {"variant": asdict(VARIANTS[vn])}
                print(f"{vn} fold {fold}: {res['score']:.3f}{' BLOW-UP' if res['blowup'] else ''} "
                      f"(train loss {res['start_loss']:.0f} -> {res['train_loss']:.0f}, {res['iterations']} it, "
                      f"{res['time_s']:.0f} s)", flush=True)
            _atomic_json(path, cache)
    return cache


def _dispatch(item: tuple[str, dict]) -> dict:
    kind, job = item
    return baseline_job(job) if kind == "base" else variant_job(job)


def table(cache: dict, columns: list[str]) -> str:
    cols = [c for c in ["gm_ridge", "train_mean", *columns] if c in cache]
    folds = sorted({f for c in cols for f in cache[c]}, key=lambda f: (len(f), f))
    lines = ["| held-out | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for f in folds:
        cells = []
        for c in cols:
            r = cache[c].get(f)
            cells.append("" if r is None else f"{r['score']:.3f}" + (" (blow-up)" if r.get("blowup") else ""))
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    means, blows, times = [], [], []
    for c in cols:
        rs = list(cache[c].values())
        means.append(f"{np.mean([r['score'] for r in rs]):.3f}" + (f" ({len(rs)} folds)" if len(rs) < len(folds)
                                                                   else ""))
        blows.append(str(sum(bool(r.get("blowup")) for r in rs)))
        times.append(f"{np.mean([r.get('time_s', 0.0) for r in rs]):.0f}")
    lines += ["| **mean** | " + " | ".join(means) + " |", "| blow-ups | " + " | ".join(blows) + " |",
              "| s per fold | " + " | ".join(times) + " |"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--variants", default="", help=f"comma-separated, from: {', '.join(VARIANTS)}; 'all'")
    ap.add_argument("--folds", default="", help="held-out subjects (default: all)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("glv-out"))
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--max-iter", type=int, default=None, help="override every variant's iteration cap")
    args = ap.parse_args(argv)
    names = list(VARIANTS) if args.variants == "all" else [v for v in args.variants.split(",") if v]
    for n in names:
        if n not in VARIANTS:
            ap.error(f"unknown variant {n!r}")
    if args.max_iter is not None:
        for n in names:
            VARIANTS[n] = replace(VARIANTS[n], max_iter=args.max_iter)
    folds = [int(f) for f in args.folds.split(",") if f]
    t0 = time.perf_counter()
    cache = run(args.data, names, folds, args.workers, args.out, args.fresh, not args.no_baselines)
    print(f"\n{table(cache, names)}\n\nwall time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
