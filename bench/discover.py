"""Structure-discovery benchmark: time and edge recovery of ``symode.discover.discover`` with the
default strategy (backward elimination by BIC, then add-back and swap moves, then refits of the model and
its single removals from satellite re-initialising starts) on synthetic data from sparse true communities of
growing template size. Each case is simulated like the community-dev data set
(:func:`symode.discover.synthetic_case`: 30 days, X and S every 15 min, metabolites every 2 h, D(t) around
0.25, the template's initial states) with parameters in the ranges of community-dev's truth; the 2x2, 3x2,
3x2b and 4x4 cases have a satellite absent from the true community. Satellites are exchangeable (hidden), so the
kept edge set is compared with the truth after the canonical relabelling discover applies.

Prints a markdown table: template, prunable / true / kept edges, precision, recall, candidate fits, wall
time, CPU time (all processes), the load average while the case ran, and the BIC of the selected model next
to that of the true structure refitted from the true values (selected <= truth: the data prefer the selected
model, so a missed edge is a data limit; selected > truth: a search failure). With ``--out`` every case keeps its
checkpoint there, and a rerun resumes an interrupted case.

    python bench/discover.py [--sizes 2x2,3x2,3x2b,2x3,3x3,4x4] [--days 30] [--workers 2] [--seed 1] [--out DIR]
                             [--phases]
    python bench/discover.py --timings OUT/discovery.json     # where a `symode discover` run's time went
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import time
from collections import Counter
from pathlib import Path

from symode.discover import CHECKPOINT, discover, satellite_relabelling, synthetic_case
from symode.report.discover import write_discovery

# True communities (truth.json "edges" format); satellite j grows on metabolite k, X makes some metabolites
# and is inhibited by some. Satellites are numbered canonically (by lowest-numbered substrate).
CASES: dict[str, dict[str, dict[str, float]]] = {
    "2x2": {"prod:X->M1": {"v": 0.0015}, "inhib:M1-|X": {"kappa": 0.8}, "inhib:M2-|X": {"kappa": 0.6},
            "uptake:M1->Y1": {"mu": 0.7, "K": 0.08, "g": 1.8}, "prod:Y1->M2": {"u": 0.08}},   # Y2 absent
    "3x2": {"prod:X->M1": {"v": 0.002}, "prod:X->M2": {"v": 0.001}, "inhib:M1-|X": {"kappa": 0.5},
            "uptake:M1->Y1": {"mu": 0.8, "K": 0.1, "g": 1.5}, "uptake:M2->Y2": {"mu": 0.6, "K": 0.05, "g": 2.0},
            "prod:Y1->M2": {"u": 0.1}},           # Y3 absent: none of its 6 edges
    # a second 3x2 community (added before it was first run): a chain X -> M1 -> Y1 -> M2 -> Y2 in which
    # Y1 is M2's only producer; Y3 absent
    "3x2b": {"prod:X->M1": {"v": 0.0015}, "inhib:M1-|X": {"kappa": 0.5}, "inhib:M2-|X": {"kappa": 0.7},
             "uptake:M1->Y1": {"mu": 0.7, "K": 0.08, "g": 1.6}, "prod:Y1->M2": {"u": 0.12},
             "uptake:M2->Y2": {"mu": 0.6, "K": 0.05, "g": 1.8}},
    "2x3": {"prod:X->M1": {"v": 0.001}, "prod:X->M3": {"v": 0.0015}, "inhib:M3-|X": {"kappa": 0.7},
            "uptake:M1->Y1": {"mu": 0.65, "K": 0.07, "g": 1.7}, "uptake:M3->Y2": {"mu": 0.75, "K": 0.06, "g": 1.6},
            "prod:Y1->M2": {"u": 0.07}, "inhib:M2-|Y2": {"kappa": 0.8}},
    "3x3": {"prod:X->M1": {"v": 0.002}, "prod:X->M2": {"v": 0.0008}, "inhib:M1-|X": {"kappa": 0.6},
            "inhib:M3-|X": {"kappa": 0.9}, "uptake:M1->Y1": {"mu": 0.8, "K": 0.1, "g": 1.5},
            "uptake:M2->Y2": {"mu": 0.6, "K": 0.05, "g": 2.0}, "prod:Y1->M3": {"u": 0.08},
            "uptake:M3->Y3": {"mu": 0.7, "K": 0.08, "g": 1.6}},
    "4x4": {"prod:X->M1": {"v": 0.002}, "prod:X->M2": {"v": 0.001}, "inhib:M1-|X": {"kappa": 0.5},
            "uptake:M1->Y1": {"mu": 0.8, "K": 0.1, "g": 1.5}, "uptake:M2->Y2": {"mu": 0.6, "K": 0.05, "g": 2.0},
            "prod:Y1->M3": {"u": 0.1}, "uptake:M3->Y3": {"mu": 0.7, "K": 0.1, "g": 1.0},
            "prod:Y3->M4": {"u": 0.05}, "inhib:M4-|X": {"kappa": 0.5}},   # Y4 absent
}


def _cpu() -> float:
    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))


def run_case(name: str, days: float, workers: int, seed: int = 1, out: str | None = None) -> dict[str, object]:
    """Discover the edges of one case; precision and recall of the kept edge set against the truth."""
    n, m = (int(v) for v in re.match(r"(\d+)x(\d+)", name).groups())  # type: ignore[union-attr]  # "3x2b": 3, 2
    spec, data, truth = synthetic_case(n, m, CASES[name], days=days, seed=seed)
    true = _rename_edges(spec, set(CASES[name]))
    t0, c0, l0 = time.perf_counter(), _cpu(), os.getloadavg()[0]
    outdir = None if out is None else os.path.join(out, f"{name}-seed{seed}")
    res = discover(spec, data, progress=False, workers=workers, final_analysis=False, outdir=outdir)
    t, cpu = time.perf_counter() - t0, _cpu() - c0
    if outdir is not None:
        write_discovery(res, outdir)
    kept = set(res.kept_edges)
    tp = len(true & kept)
    return {"case": name, "seed": seed, "edges": len(res.kept_edges) + len(res.pruned_edges), "true": len(true),
            "kept": len(kept), "precision": tp / len(kept) if kept else 1.0, "recall": tp / len(true),
            "fits": len(res.evaluated), "time_s": t, "cpu_s": cpu, "load": (l0 + os.getloadavg()[0]) / 2,
            "missed": sorted(true - kept), "extra": sorted(kept - true), "bic": res.selected.bic,
            "bic_truth": truth_bic(spec, data, sorted(CASES[name]), truth), "timings": res.timings}


def phase_table(timings: dict[str, object]) -> list[str]:
    """Markdown rows (phase, wall s, CPU s, fits) of a discovery's ``result.timings``: the CPU of a
    "candidate fits" row is the workers' CPU, of a phase row the main process's."""
    from symode.timing import Timings

    t = Timings()
    t.merge(timings)  # type: ignore[arg-type]
    return [f"| {k} | {w:.1f} | {'-' if c is None else f'{c:.1f}'} | {n} |" for k, w, c, n in t.table()
            if not k.startswith("final analysis/")]


def truth_bic(spec: object, data: object, edges: list[str], truth: dict[str, dict[str, float]]) -> float:
    """BIC of the true edge set refitted from the true values: a selected model with a lower BIC than this
    is what the criterion prefers on these data (a data limit); a higher one is a search failure."""
    from symode.discover import candidate_spec, fit_candidate

    job = {"spec": candidate_spec(spec, edges).to_dict(), "edges": edges,  # type: ignore[arg-type]
           "parameters": truth["parameters"], "x0": truth["x0"], "datasets": [data], "max_iter": 300,
           "max_time": 600.0}
    return float(fit_candidate(job)["bic"])


def _rename_edges(spec: object, edges: set[str]) -> set[str]:
    from symode.discover import rename_labels

    return set(rename_labels(sorted(edges), satellite_relabelling(spec, sorted(edges))))  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2x2,3x2,3x2b,2x3,3x3,4x4", help="cases (keys of CASES)")
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="also append one JSON line per case to this file")
    ap.add_argument("--out", help="write each case's discovery outputs and checkpoint under this directory")
    ap.add_argument("--phases", action="store_true", help="also print where each case's time went")
    ap.add_argument("--timings", metavar="JSON", help="only print where the time of a finished run went (its "
                    "discovery.json, e.g. from `symode discover ... -o OUT`) and exit")
    args = ap.parse_args()
    if args.timings:
        with open(args.timings) as fh:
            doc = json.load(fh)
        print(f"{len(doc['kept_edges'])} edges kept, {doc['n_candidates_evaluated']} candidate fits, "
              f"{doc['wall_time_s']:.1f} s in discover\n\n| phase | wall s | CPU s | fits |\n|---|---:|---:|---:|")
        print("\n".join(phase_table(doc.get("timings", {}))))
        ck = Path(args.timings).with_name(CHECKPOINT)     # the stored fits, when the checkpoint is beside it
        if ck.exists():
            fits = json.loads(ck.read_text()).get("evaluated", [])
            stops = Counter(str(c.get("stop", "")) or "?" for c in fits)
            how = ", ".join(f"{k} {v}" for k, v in sorted(stops.items()))
            print(f"\nLM iterations of the {len(fits)} stored fits: {sum(int(c.get('iterations', 0)) for c in fits)} "
                  f"(stopped: {how})")
        return
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores); {args.days:g} days of data; "
          f"{args.workers} workers")
    print("| template | edges | true | kept | precision | recall | candidate fits | wall time | CPU time | load | "
          "BIC selected / truth | missed / extra |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for name in args.sizes.split(","):
        r = run_case(name, args.days, args.workers, seed=args.seed, out=args.out)
        diff = ", ".join([f"-{e}" for e in r["missed"]] + [f"+{e}" for e in r["extra"]]) or "exact"
        print(f"| {name} | {r['edges']} | {r['true']} | {r['kept']} | {r['precision']:.2f} | {r['recall']:.2f} | "
              f"{r['fits']} | {r['time_s'] / 60:.1f} min | {r['cpu_s'] / 60:.1f} min | {r['load']:.1f} | "
              f"{r['bic']:.1f} / {r['bic_truth']:.1f} | {diff} |",
              flush=True)
        if args.phases:
            print(f"\n{name}: phase | wall s | CPU s | fits\n|---|---:|---:|---:|")
            print("\n".join(phase_table(r["timings"])) + "\n", flush=True)  # type: ignore[arg-type]
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
