"""Neural-term gradient benchmark. Run: python3 bench/neural.py [--sizes 1000 10000] [--window 12]
[--cache-dir DIR] [--codegen auto|sx|mx]

specs/chemostat-neural.yaml with the MLP widened to two hidden layers of width h so that it has about
1k / 10k weights, on a window of the chemostat-dev-hplc data (X, S every 15 min, A, B every 2 h).
Time per loss gradient (all estimated parameters and initial states) by continuous forward sensitivities
(cost grows with the number of parameters), discrete forward sensitivities (with the residual Jacobian,
as the Levenberg-Marquardt polish uses them), the interpolating and backsolve continuous adjoints and the
discrete adjoint (cost nearly independent of it), with each gradient's relative error against the
discrete adjoint at a tight tolerance. Also the code-generation + compile time of each model (only when
it was built by this run: pass an empty --cache-dir to measure it) and how its networks were generated
(symode.codegen.layout.neural_codegen: "sx" scalar-expanded, "mx" matrix operations). Prints a markdown table.
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
from symode.codegen import layout as codegen_layout  # noqa: E402
from symode.codegen.layout import neural_codegen  # noqa: E402
from symode.errors import SymodeError  # noqa: E402
from symode.solve.sensitivity import Problem, loss_and_gradient  # noqa: E402
from symode.spec import spec_from_dict  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
RTOL, ATOL = 1e-8, 1e-10
#: column -> (gradient method, residual Jacobian too)
METHODS = {"forward": ("forward", False), "discrete forward": ("discrete", True), "adjoint": ("adjoint", False),
           "backsolve": ("backsolve", False), "discrete": ("discrete", False)}


def timed(fn, min_time: float = 0.5, max_repeat: int = 200) -> tuple[float, float]:
    """(wall, CPU) seconds per call: medians over 5 batches (as symode.gradient.time_call). CPU time is the
    better measure on a shared machine (the computation is single-threaded)."""
    fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t0 >= min_time / 5 or n >= max_repeat:
            break
        n *= 4
    wall, cpu = [], []
    for _ in range(5):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            fn()
        wall.append((time.perf_counter() - t0) / n)
        cpu.append((time.process_time() - c0) / n)
    return float(np.median(wall)), float(np.median(cpu))


def width_for(n_weights: int) -> int:
    """Hidden width h of a 2 -> h -> h -> 2 MLP with about n_weights weights: h^2 + 6h + 2."""
    return round((-6 + float(np.sqrt(36 - 4 * (2 - n_weights)))) / 2)


def wide_spec(base, n_weights: int):
    """specs/chemostat-neural.yaml with the MLP widened to about n_weights weights (seeded Glorot init)."""
    h = width_for(n_weights)
    d = base.to_dict()
    d["parameters"] = {k: v for k, v in d["parameters"].items() if not k.startswith("growthY__")}
    d["neural"][0]["hidden"] = [h, h]
    d["name"] = f"chemostat-neural-{h}"
    return spec_from_dict(d)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--window", type=float, default=12.0, help="hours of data (default 12: 48 intervals)")
    ap.add_argument("--cache-dir", type=Path, default=None,
                    help="model cache (default: symode's); an empty one measures the build times")
    ap.add_argument("--codegen", choices=["auto", "sx", "mx"], default="auto",
                    help="neural code generation: by the number of weights (default), or forced")
    args = ap.parse_args()
    if args.codegen != "auto":
        codegen_layout.NEURAL_MX_MIN_WEIGHTS = 0 if args.codegen == "mx" else 10**12
    data = read_csv(SHARED / "chemostat-dev-hplc" / "data.csv")
    base = load_spec(ROOT / "specs" / "chemostat-neural.yaml")
    rows = []
    for n in args.sizes:
        spec = wide_spec(base, n)
        t0 = time.perf_counter()
        model = build_model(spec, cache_dir=args.cache_dir)
        t_build = time.perf_counter() - t0
        csize = (model.directory / "model_casadi.c").stat().st_size
        prob = Problem(model, data, window=(0.0, args.window))
        ref = loss_and_gradient(prob, method="discrete", rtol=1e-11, atol=1e-13).gradient
        row = {"weights": len(spec.neural_weights), "params": len(spec.parameters), "codegen": neural_codegen(spec),
               "c_size": csize, "build": t_build if model.built_now else None}
        for col, (method, jac) in METHODS.items():
            def run(m=method, pr=prob, j=jac):
                return loss_and_gradient(pr, method=m, rtol=RTOL, atol=ATOL, jacobian=j)
            try:
                g = run().gradient
            except SymodeError as exc:
                row[col] = str(exc)
                continue
            err = float(np.max(np.abs(g - ref)) / np.max(np.abs(ref)))
            row[col] = (*timed(run), err)
        x0, p = model.x0_vector(), model.parameter_vector()
        row["solve"] = timed(lambda m=model, pr=prob, x0=x0, p=p: m.backend.integrate(pr.times, x0, p, pr.U, rtol=RTOL,
                                                                                  atol=ATOL, method="auto"),
                             min_time=0.3, max_repeat=2000)
        rows.append(row)
        print(row, file=sys.stderr, flush=True)
    print(f"\nchemostat-neural, {args.window:g} h window ({int(args.window * 4)} intervals), rtol {RTOL:g}; "
          "CPU time per loss gradient (wall time / relative error vs. discrete adjoint at rtol 1e-11)\n")
    print("| weights | parameters | codegen | forward solve | forward sens. | discrete forward sens. (+ residual "
          "Jacobian) | interp. adjoint | backsolve adjoint | discrete adjoint | forward / discrete adjoint | "
          "build (codegen + cc) | generated C |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [f"{r[c][1] * 1e3:.3g} ms ({r[c][0] * 1e3:.3g} ms / {r[c][2]:.0e})" if isinstance(r[c], tuple)
                 else f"failed: {r[c]}" for c in METHODS]
        build = f"{r['build']:.1f} s" if r["build"] is not None else "cached"
        ratio = (f"{r['forward'][1] / r['discrete'][1]:.1f}x"
                 if isinstance(r["forward"], tuple) and isinstance(r["discrete"], tuple) else "-")
        solve = f"{r['solve'][1] * 1e3:.3g} ms ({r['solve'][0] * 1e3:.3g} ms)"
        print(f"| {r['weights']} | {r['params']} | {r['codegen']} | {solve} | {' | '.join(cells)} | "
              f"{ratio} | {build} | {r['c_size'] / 1e6:.2f} MB |")


if __name__ == "__main__":
    main()
