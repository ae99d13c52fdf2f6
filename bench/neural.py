"""Neural-term gradient benchmark (issue 8). Run: python3 bench/neural.py [--sizes 1000 10000] [--window 12]

specs/chemostat-neural.yaml with the MLP widened to two hidden layers of width h so that it has about
1k / 10k weights, on a window of the chemostat-dev-hplc data (X, S every 15 min, A, B every 2 h).
Time per loss gradient (all estimated parameters and initial states) by forward sensitivities (cost grows
with the number of parameters), the interpolating continuous adjoint and the discrete adjoint (cost
nearly independent of it), with each gradient's relative error against the discrete adjoint at a tight
tolerance. Also the code-generation + compile time of each model. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from symode import build_model, load_spec, read_csv  # noqa: E402
from symode.gradient import Problem, loss_and_gradient, time_call  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
RTOL, ATOL = 1e-8, 1e-10


def width_for(n_weights: int) -> int:
    """Hidden width h of a 2 -> h -> h -> 2 MLP with about n_weights weights: h^2 + 6h + 2."""
    return round((-6 + float(np.sqrt(36 - 4 * (2 - n_weights)))) / 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--window", type=float, default=12.0, help="hours of data (default 12: 48 intervals)")
    args = ap.parse_args()
    data = read_csv(SHARED / "chemostat-dev-hplc" / "data.csv")
    base = load_spec(ROOT / "specs" / "chemostat-neural.yaml")
    rows = []
    for n in args.sizes:
        h = width_for(n)
        d = base.to_dict()
        d["parameters"] = {k: v for k, v in d["parameters"].items() if not k.startswith("growthY__")}
        d["neural"][0]["hidden"] = [h, h]
        d["name"] = f"chemostat-neural-{h}"
        from symode.spec import spec_from_dict

        spec = spec_from_dict(d)
        t0 = time.perf_counter()
        model = build_model(spec)
        t_build = time.perf_counter() - t0
        prob = Problem(model, data, window=(0.0, args.window))
        ref = loss_and_gradient(prob, method="discrete", rtol=1e-11, atol=1e-13).gradient
        n_w = len(spec.neural_weights)
        row = {"weights": n_w, "params": len(spec.parameters), "build": t_build if model.built_now else None}
        for method in ("forward", "adjoint", "discrete"):
            g = loss_and_gradient(prob, method=method, rtol=RTOL, atol=ATOL).gradient
            err = float(np.max(np.abs(g - ref)) / np.max(np.abs(ref)))
            t = time_call(lambda m=method, pr=prob: loss_and_gradient(pr, method=m, rtol=RTOL, atol=ATOL),
                          min_time=0.5, max_repeat=200)
            row[method] = (t, err)
        x0, p = model.x0_vector(), model.parameter_vector()
        t_sim = time_call(lambda m=model, pr=prob, x0=x0, p=p: m.backend.integrate(pr.times, x0, p, pr.U, rtol=RTOL,
                                                                               atol=ATOL, method="auto"),
                          min_time=0.3, max_repeat=2000)
        row["solve"] = t_sim
        rows.append(row)
        print(row, file=sys.stderr, flush=True)
    print(f"\nchemostat-neural, {args.window:g} h window ({int(args.window * 4)} intervals), rtol {RTOL:g}; "
          "time per loss gradient (relative error vs. discrete adjoint at rtol 1e-11)\n")
    print("| weights | parameters | forward solve | forward sens. | interp. adjoint | discrete adjoint | "
          "forward / discrete | build (codegen + cc) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [f"{r[m][0] * 1e3:.2f} ms ({r[m][1]:.0e})" for m in ("forward", "adjoint", "discrete")]
        build = f"{r['build']:.0f} s" if r["build"] is not None else "cached"
        print(f"| {r['weights']} | {r['params']} | {r['solve'] * 1e3:.2f} ms | {' | '.join(cells)} | "
              f"{r['forward'][0] / r['discrete'][0]:.0f}x | {build} |")


if __name__ == "__main__":
    main()
