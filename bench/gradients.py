"""Gradient benchmarks. Run: python3 bench/gradients.py [--quick]

(a) Model (1) (specs/chemostat.yaml) on the chemostat-dev data: a 12-hour window (48 intervals) and a
    30-day span (2880 intervals); time per loss gradient of every symode method and of CasADi's CVODES
    adjoint (reverse-mode AD through casadi.integrator('cvodes') mapped over the sample intervals) on the
    same problem at the same tolerance, measured side by side in this process; plus each gradient's
    relative error against a tight-tolerance reference.
(b) Generalized templates N x M for N, M in {1, 2, 4, 8}: gradient time / forward-solve time per method.

Prints markdown tables. Times are medians over repeated calls; ratios are medians of ratios of a
method and the forward solve timed alternately (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from symode import apply_params, build_model, load_spec, read_csv, simulate  # noqa: E402
from symode.solve.gradcheck import rel_error  # noqa: E402
from symode.solve.sensitivity import METHODS, Problem, loss_and_gradient, time_call  # noqa: E402
from symode.solve.synth import make_dataset, noisy_observations, smooth_dilution  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
RTOL, ATOL = 1e-8, 1e-10
SYMODE_METHODS = [m for m in ("forward", "adjoint", "backsolve", "discrete", "auto") if m in METHODS]


def paired(fn, base, rounds: int = 7) -> tuple[float, float]:
    """(median time of fn, median of fn/base time ratios), fn and base timed alternately so that load
    changes on this shared machine hit both alike."""
    t_fn, ratios = [], []
    for _ in range(rounds):
        a = time_call(fn, min_time=0.05, max_repeat=2000)
        b = time_call(base, min_time=0.05, max_repeat=2000)
        t_fn.append(a)
        ratios.append(a / b)
    return float(np.median(t_fn)), float(np.median(ratios))


def casadi_cvodes_gradient(problem: Problem, p: np.ndarray, x0: np.ndarray, tol: float):
    """loss and gradient via CasADi: CVODES per interval, mapaccum over intervals, reverse-mode AD."""
    import casadi as ca

    from symode.codegen.translate import to_casadi

    model = problem.model
    sym = model.symbolic
    nx, np_ = len(model.states), len(model.parameters)
    x = ca.SX.sym("x", nx)
    pp = ca.SX.sym("p", np_)
    u = ca.SX.sym("u", len(model.inputs))
    mapping = {s: x[i] for i, s in enumerate(sym.x)}
    mapping.update({s: pp[i] for i, s in enumerate(sym.p)})
    mapping.update({s: u[i] for i, s in enumerate(sym.u)})
    f = ca.vertcat(*to_casadi(list(sym.f), mapping))
    dts = np.diff(problem.times)
    if not np.allclose(dts, dts[0]):
        raise ValueError("benchmark expects a uniform sample grid")
    F = ca.integrator("F", "cvodes", {"x": x, "p": ca.vertcat(pp, u), "ode": f}, 0.0, float(dts[0]),
                      {"abstol": ATOL, "reltol": tol})
    n = len(dts)
    step = ca.Function("step", [x, ca.vertcat(pp, u)], [F(x0=x, p=ca.vertcat(pp, u))["xf"]])
    acc = step.mapaccum("acc", n)
    X0 = ca.MX.sym("x0", nx)
    P = ca.MX.sym("p", np_)
    U = ca.DM(problem.U.T)  # (nu, n)
    Xs = acc(X0, ca.vertcat(ca.repmat(P, 1, n), U))
    Xall = ca.horzcat(X0, Xs)  # nx x (n+1)
    h = ca.Function("h", [x, pp, u], [ca.vertcat(*to_casadi(list(sym.h), mapping))])
    Ys = h.map(n + 1)(Xall, ca.repmat(P, 1, n + 1), ca.DM(np.vstack([problem.U, problem.U[-1:]]).T))
    d = np.nan_to_num(problem.data.T)
    w = (problem.observed / problem.sigma).T
    r = (Ys - ca.DM(d)) * ca.DM(w)
    L = 0.5 * ca.sumsqr(r)
    theta = ca.vertcat(X0, P)
    G = ca.Function("G", [X0, P], [L, ca.gradient(L, theta)])
    return lambda: G(x0, p)


def bench_chemostat(quick: bool) -> list[str]:
    spec = apply_params(load_spec(ROOT / "specs" / "chemostat.yaml"), SHARED / "chemostat-dev" / "truth.json")
    model = build_model(spec)
    data = read_csv(SHARED / "chemostat-dev" / "data.csv")
    rows = ["| problem | method | time per gradient | vs CasADi CVODES | gradient / forward solve | rel. error |",
            "|---|---|---|---|---|---|"]
    spans = [("12-hour window", (0.0, 12.0)), ("30-day span", (0.0, 24.0 * 30))]
    if quick:
        spans = spans[:1]
    for label, window in spans:
        problem = Problem(model, data, window=window)
        p, x0 = model.parameter_vector(), model.x0_vector()
        ref = loss_and_gradient(problem, method="forward", rtol=1e-12, atol=1e-14).gradient
        fwd = time_call(lambda problem=problem, p=p, x0=x0: model.backend.integrate(
            problem.times, x0, p, problem.U, rtol=RTOL, atol=ATOL, method="auto"))
        try:
            g = casadi_cvodes_gradient(problem, p, x0, RTOL)
            t_cas = time_call(g, min_time=0.5, max_repeat=50)
            cas_grad = np.asarray(g()[1]).ravel()
            cas_err = rel_error(cas_grad, ref)
        except Exception as exc:
            print(f"CasADi CVODES failed on {label}: {exc}", file=sys.stderr)
            t_cas, cas_err = float("nan"), float("nan")
        rows.append(f"| {label} | forward solve only | {fwd * 1e3:.3f} ms | | 1.0 | |")
        # every method at the benchmark's tolerance, and the discrete adjoint at rtol 1e-6 (the speed target
        # is stated at 1e-6 accuracy)
        runs = [(name, RTOL, ATOL, f"symode {name}") for name in SYMODE_METHODS]
        runs.append(("discrete", 1e-6, 1e-8, "symode discrete, rtol 1e-6"))
        for name, rtol, atol, what in runs:
            res = loss_and_gradient(problem, method=name, rtol=rtol, atol=atol)
            t, ratio = paired(lambda name=name, rtol=rtol, atol=atol, problem=problem: loss_and_gradient(
                                  problem, method=name, rtol=rtol, atol=atol),
                              lambda problem=problem, p=p, x0=x0: model.backend.integrate(
                                  problem.times, x0, p, problem.U, rtol=RTOL, atol=ATOL, method="auto"))
            rows.append(f"| {label} | {what} | {t * 1e3:.3f} ms | {t_cas / t:.0f}x faster | {ratio:.1f} | "
                        f"{rel_error(res.gradient, ref):.1e} |")
        rows.append(f"| {label} | CasADi CVODES adjoint | {t_cas * 1e3:.3f} ms | 1.0 | {t_cas / fwd:.0f} | "
                    f"{cas_err:.1e} |")
    return rows


def bench_templates(quick: bool) -> list[str]:
    from symode.graph.template import template_spec

    sizes = [1, 2] if quick else [1, 2, 4, 8]
    names = [m for m in SYMODE_METHODS]
    rows = ["| template N x M | states | parameters | forward solve | " + " | ".join(
        f"{n} / solve" for n in names) + " | auto picks |", "|---" * (5 + len(names)) + "|"]
    for n in sizes:
        for m in sizes:
            spec = template_spec(n, m)
            model = build_model(spec)
            times = np.arange(0.0, 48.0 + 1e-9, 0.25)
            D = smooth_dilution(times, seed=1)
            traj = simulate(model, times, inputs={"D": D})
            obs = noisy_observations(model, traj, seed=1, every={o: 8 for o in model.observables if o.startswith("M")})
            problem = Problem(model, make_dataset(times, {"D": D}, obs))
            p, x0 = model.parameter_vector(), model.x0_vector()
            fwd = time_call(lambda problem=problem, model=model, p=p, x0=x0: model.backend.integrate(
                problem.times, x0, p, problem.U, rtol=RTOL, atol=ATOL, method="auto"), max_repeat=200)
            ratios = []
            for name in names:
                _, ratio = paired(lambda name=name, problem=problem: loss_and_gradient(problem, method=name,
                                                                                      rtol=RTOL, atol=ATOL),
                                  lambda problem=problem, model=model, p=p, x0=x0: model.backend.integrate(
                                      problem.times, x0, p, problem.U, rtol=RTOL, atol=ATOL, method="auto"),
                                  rounds=5)
                ratios.append(f"{ratio:.1f}")
            from symode.solve.sensitivity import Auto

            picked = Auto().choose(problem, False).name
            rows.append(f"| {n} x {m} | {len(model.states)} | {len(model.parameters)} | {fwd * 1e3:.2f} ms | "
                        + " | ".join(ratios) + f" | {picked} |")
            print(rows[-1], file=sys.stderr)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="12-hour window and small templates only")
    args = ap.parse_args()
    t0 = time.time()
    print("## gradients (a): model (1), chemostat-dev at its true parameters, rtol 1e-8\n")
    print("\n".join(bench_chemostat(args.quick)))
    print("\nrel. error: against forward sensitivities at rtol 1e-12.\n")
    print("## gradients (b): generalized templates, 48 h at 15-min samples, rtol 1e-8\n")
    print("\n".join(bench_templates(args.quick)))
    print(f"\n(total benchmark time {time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
