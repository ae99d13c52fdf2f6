"""Multistart fit of a PEtab problem: how many random starts reach the best known optimum, and how fast.

Run: python3 bench/petab_fit.py [--problem YAML] [--target LLH] [--starts N] [--seed S] [--workers W]
                                [--escape-bounds K ...] [--method M] [--json OUT.json]

Default: Boehm_JProteomeRes2014 from ../shared/petab/benchmark, target llh -138.23 (the published optimum
is -138.2220), 20 Latin-hypercube starts in the parameter table's box (on the parameter scales, seed 0),
``symode.petab.fit.fit_petab`` with its default method, once per ``--escape-bounds`` value (the number of
bound-flip refits a start may make; 0 = plain local fits). Prints a markdown table: starts reaching the
target, the best llh, wall time of the whole multistart, and the median / max time per start.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
SHARED = next((d for d in (ROOT.parent / "shared", ROOT.parent.parent / "shared") if d.is_dir()),
              ROOT.parent / "shared")
DEFAULT = SHARED / "petab" / "benchmark" / "Boehm_JProteomeRes2014" / "Boehm_JProteomeRes2014.yaml"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problem", default=str(DEFAULT))
    ap.add_argument("--target", type=float, default=-138.23)
    ap.add_argument("--starts", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--method", default=None)
    ap.add_argument("--escape-bounds", type=int, nargs="+", default=[8, 0])
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args()

    import numpy as np

    from symode.petab.fit import fit_petab
    from symode.petab.objective import PetabObjective

    obj = PetabObjective.from_yaml(args.problem, validate=False)
    rows, dump = [], {}
    load0 = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M")
    for k in args.escape_bounds:
        res = fit_petab(obj, n_starts=args.starts, seed=args.seed, method=args.method, workers=args.workers,
                        escape_bounds=k, progress=False)
        llhs = [s.llh for s in res.starts]
        times = [s.time_s for s in res.starts]
        cpu = [s.cpu_s for s in res.starts]
        hit = sum(1 for v in llhs if math.isfinite(v) and v >= args.target)
        rows.append((k, res.method, hit, len(llhs), res.llh, res.wall_time_s, float(np.median(times)), max(times),
                     float(np.median(cpu)), sum(cpu)))
        dump[str(k)] = {"method": res.method, "llh": llhs, "time_s": times, "cpu_s": cpu,
                        "messages": [s.message for s in res.starts], "wall_s": res.wall_time_s}
        print(f"escape_bounds={k}: {hit}/{len(llhs)} reach {args.target}; best {res.llh:.6f}; "
              f"{res.wall_time_s:.0f} s", file=sys.stderr, flush=True)
    load1 = os.getloadavg()[0]
    print(f"\n{Path(args.problem).stem}, {started} UTC, {args.starts} starts (seed {args.seed}), {args.workers} "
          f"workers, load average {load0:.1f} at the start, {load1:.1f} at the end\n")
    print(f"| bound-flip refits per start | method | starts reaching llh >= {args.target} | best llh | wall time "
          "| wall time per start (median / max) | CPU time per start (median) | CPU time, all starts |")
    print("|---|---|---|---|---|---|---|---|")
    for k, method, hit, n, best, wall, med, mx, cmed, ctot in rows:
        print(f"| {k} | {method} | {hit} / {n} | {best:.6f} | {wall:.0f} s | {med:.0f} s / {mx:.0f} s | {cmed:.1f} s "
              f"| {ctot:.0f} s |")
    if args.json:
        Path(args.json).write_text(json.dumps(dump, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
