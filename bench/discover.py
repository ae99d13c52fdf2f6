"""Structure-discovery benchmark (issue 5): time and edge recovery of ``symode.discover.discover`` with the
default strategy (backward elimination by BIC) on synthetic data from sparse true communities of growing
template size. Each case simulates ``--days`` days (X and S every 15 min, metabolites every 2 h) with
symode.synth and a known edge set; the 3x2 case has a satellite (Y3) absent from the true community.

Prints a markdown table: template, true / kept edges, precision, recall, candidate fits, wall time.

    python bench/discover.py [--sizes 1x2,3x2,2x3,4x4] [--days 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import time

from symode.discover import discover, synthetic_case

# True communities: satellite j grows on metabolite k; X makes some metabolites and is inhibited by some.
CASES: dict[str, dict[str, dict[str, float]]] = {
    "1x2": {"prod:X->M1": {"v": 0.002}, "inhib:M1-|X": {"kappa": 0.5},
            "uptake:M1->Y1": {"mu": 0.8, "K": 0.1, "g": 1.5}, "prod:Y1->M2": {"u": 0.1}},
    "3x2": {"prod:X->M1": {"v": 0.002}, "prod:X->M2": {"v": 0.001}, "inhib:M1-|X": {"kappa": 0.5},
            "uptake:M1->Y1": {"mu": 0.8, "K": 0.1, "g": 1.5}, "uptake:M2->Y2": {"mu": 0.6, "K": 0.05, "g": 2.0},
            "prod:Y1->M2": {"u": 0.05}},          # Y3 absent: none of its 6 edges
    "2x3": {"prod:X->M1": {"v": 0.0005}, "prod:X->M2": {"v": 0.002}, "inhib:M1-|X": {"kappa": 1.0},
            "inhib:M2-|X": {"kappa": 0.5}, "uptake:M1->Y1": {"mu": 0.8, "K": 0.1, "g": 1.5},
            "uptake:M2->Y2": {"mu": 0.6, "K": 0.05, "g": 2.0}, "prod:Y1->M3": {"u": 0.1}},
    "4x4": {"prod:X->M1": {"v": 0.002}, "prod:X->M2": {"v": 0.001}, "inhib:M1-|X": {"kappa": 0.5},
            "uptake:M1->Y1": {"mu": 0.8, "K": 0.1, "g": 1.5}, "uptake:M2->Y2": {"mu": 0.6, "K": 0.05, "g": 2.0},
            "prod:Y1->M3": {"u": 0.1}, "uptake:M3->Y3": {"mu": 0.7, "K": 0.1, "g": 1.0},
            "prod:Y3->M4": {"u": 0.05}, "inhib:M4-|X": {"kappa": 0.5}},   # Y4 absent
}


def run_case(name: str, days: float, workers: int, seed: int = 1) -> dict[str, object]:
    n, m = (int(v) for v in name.split("x"))
    spec, data, _truth = synthetic_case(n, m, CASES[name], days=days, seed=seed)
    t0 = time.perf_counter()
    res = discover(spec, data, progress=False, workers=workers, final_analysis=False)
    t = time.perf_counter() - t0
    true, kept = set(CASES[name]), set(res.kept_edges)
    tp = len(true & kept)
    return {"case": name, "edges": len(res.kept_edges) + len(res.pruned_edges), "true": len(true),
            "kept": len(kept), "precision": tp / len(kept) if kept else 1.0, "recall": tp / len(true),
            "fits": len(res.evaluated), "time_s": t, "missed": sorted(true - kept), "extra": sorted(kept - true)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1x2,3x2,2x3,4x4")
    ap.add_argument("--days", type=float, default=20.0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores); {args.days:g} days of data")
    print("| template | edges | true | kept | precision | recall | candidate fits | time | missed / extra |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name in args.sizes.split(","):
        r = run_case(name, args.days, args.workers)
        diff = ", ".join([f"-{e}" for e in r["missed"]] + [f"+{e}" for e in r["extra"]]) or "exact"
        print(f"| {name} | {r['edges']} | {r['true']} | {r['kept']} | {r['precision']:.2f} | {r['recall']:.2f} | "
              f"{r['fits']} | {r['time_s']:.0f} s | {diff} |", flush=True)


if __name__ == "__main__":
    main()
