"""Would a fifth-order Rosenbrock method pay? Steps and right-hand sides of RODAS4 against RODAS5 on the
Benchmark-collection problems, counted by one Python stepper with either tableau.

Run: python3 bench/rosenbrock_order.py [--root DIR] [--problems A,B] [--tolerances 1e-6,1e-8,1e-10]

symode's compiled integrator is RODAS4 (6 stages, order 4 with an embedded order 3: the step size goes as
tol^(1/4)). Its gradients cost about a microsecond per step in each direction on small models, latency
bound (docs/petab.md, Benchmark), so the number of steps is what is left to cut. This script integrates
the first simulation of each problem (the compiled model's f and df/dx through ``CompiledBackend``, the
PEtab problem's parameters and initial state at the nominal values) over its measurement grid with the
generic s-stage form of ``symode_ros_attempt``:

    (1/(h gamma) I - J) u_i = f(t + c_i h, y + sum_{j<i} a_ij u_j) + sum_{j<i} (C_ij / h) u_j + h d_i f_t,
    y_new = y + sum_j a_{s+1,j} u_j,   error estimate u_s,

for RODAS4 (Hairer & Wanner, rodas.f: the coefficients of ``symode_methods.h``) and for RODAS5, the
8-stage, stiffly accurate order 5(4) method of G. A. Di Marzo, "RODAS5(4) - Méthodes de Rosenbrock d'ordre
5(4) adaptées aux problèmes différentiels-algébriques", Université de Genève, 1993 (whose stages 6-8 reuse
a_6j as RODAS4's stage 6 reuses a_5j). Both with the same standard controller (safety 0.9, step ratio in
[1/5, 6], err^(1/4) and err^(1/5)), the same error norm as symode (rms of u_s / (atol + rtol max(|y|,
|y_new|))), stepping onto every grid time. The prototype's RODAS4 column reproduces the compiled
integrator's accepted steps (shown beside it) to within a few. "err" is the final state's max relative
error against the compiled RODAS4 at rtol 1e-13, atol 1e-14; the work ratio counts one LU solve and one f
per stage, and one Jacobian and one LU factorisation per step, as equal units (they are of similar cost
for these models). Step counts are deterministic: no timing, no repeat.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# bench/petab.py is named like the ``petab`` package: keep this directory off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
DEFAULT_ROOT = ROOT.parent / "shared" / "petab" / "benchmark"


def rodas4() -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """(gamma, a (s+1 x s+1; row s is y_new), C (s x s), c, d, order of the error exponent)."""
    a, C = np.zeros((7, 7)), np.zeros((6, 6))
    a[1, 0] = 1.544
    a[2, :2] = [0.9466785280815826, 0.2557011698983284]
    a[3, :3] = [3.314825187068521, 2.896124015972201, 0.9986419139977817]
    a[4, :4] = [1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950]
    a[5, :5] = [*a[4, :4], 1.0]
    a[6, :6] = [*a[5, :5], 1.0]
    C[1, 0] = -5.6688
    C[2, :2] = [-2.430093356833875, -0.2063599157091915]
    C[3, :3] = [-0.1073529058151375, -9.594562251023355, -20.47028614809616]
    C[4, :4] = [7.496443313967647, -10.24680431464352, -33.99990352819905, 11.70890893206160]
    C[5, :5] = [8.083246795921522, -7.981132988064893, -31.52159432874371, 16.31930543123136, -6.058818238834054]
    c = np.array([0.0, 0.386, 0.21, 0.63, 1.0, 1.0])
    d = np.array([0.25, -0.1043, 0.1035, -0.0362, 0.0, 0.0])
    return 0.25, a, C, c, d, 4


def rodas5() -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Di Marzo's RODAS5 in the same form (gamma = 0.19, 8 stages)."""
    a, C = np.zeros((9, 9)), np.zeros((8, 8))
    a[1, 0] = 2.0
    a[2, :2] = [3.040894194418781, 1.041747909077569]
    a[3, :3] = [2.576417536461461, 1.622083060776640, -0.9089668560264532]
    a[4, :4] = [2.760842080225597, 1.446624659844071, -0.3036980084553738, 0.2877498600325443]
    a[5, :5] = [-14.09640773051259, 6.925207756232704, -41.47510893210728, 2.343771018586405, 24.13215229196062]
    for i in (6, 7, 8):
        a[i, :i] = [*a[i - 1, :i - 1], 1.0]
    C[1, 0] = -10.31323885133993
    C[2, :2] = [-21.04823117650003, -7.234992135176716]
    C[3, :3] = [32.22751541853323, -4.943732386540191, 19.44922031041879]
    C[4, :4] = [-20.69865579590063, -8.816374604402768, 1.260436877740897, -0.7495647613787146]
    C[5, :5] = [-46.22004352711257, -17.49534862857472, -289.6389582892057, 93.60855400400906, 318.3822534212147]
    C[6, :6] = [34.20013733472935, -14.15535402717690, 57.82335640988400, 25.83362985412365, 1.408950972071624,
                -6.551835421242162]
    C[7, :7] = [42.57076742291101, -13.80770672017997, 93.98938432427124, 18.77919633714503, -31.58359187223370,
                -6.685968952921985, -5.810979938412932]
    c = np.array([0.0, 0.38, 0.3878509998321533, 0.4839718937873840, 0.4570477008819580, 1.0, 1.0, 1.0])
    d = np.array([0.19, -0.1823079225333714636, -0.319231832186874912, 0.3449828624725343,
                  -0.377417564392089818, 0.0, 0.0, 0.0])
    return 0.19, a, C, c, d, 5


def integrate(f, jac, y0: np.ndarray, grid: np.ndarray, rtol: float, atol: float, tableau) -> dict:
    """Steps over ``grid`` (landing on every point); counts and the final state."""
    from scipy.linalg import lu_factor, lu_solve

    gamma, a, C, c, d, q = tableau
    s, n = len(c), len(y0)
    y, h = y0.astype(float).copy(), None
    acc = rej = nf = 0
    for t, t1 in itertools.pairwise(grid):
        h = h or 1e-6 * (t1 - t)
        while t < t1:
            last = t + 1.01 * h >= t1
            hs = t1 - t if last else h
            delt = math.sqrt(2.2e-16 * max(1e-5, abs(t)))
            fy = f(t, y)
            ft = (f(t + delt, y) - fy) / delt
            nf += 2
            lu = lu_factor(np.eye(n) / (hs * gamma) - jac(t, y))
            u = np.zeros((s, n))
            for i in range(s):
                fi = fy if i == 0 else f(t + c[i] * hs, y + a[i, :i] @ u[:i])
                nf += i > 0
                u[i] = lu_solve(lu, fi + (C[i, :i] / hs) @ u[:i] + hs * d[i] * ft)
            y_new = y + a[s, :s] @ u
            err = float(np.sqrt(np.mean((u[s - 1] / (atol + rtol * np.maximum(abs(y), abs(y_new)))) ** 2)))
            h_new = hs / max(1 / 6, min(5.0, err ** (1 / q) / 0.9)) if np.isfinite(err) else 0.1 * hs
            if err <= 1.0:
                acc += 1
                t, y = (t1 if last else t + hs), y_new
                h = max(h_new, h) if last and hs < h else h_new
            else:
                rej += 1
                h = h_new
    return {"y": y, "accepted": acc, "rejected": rej, "rhs": nf, "stages": s}


def work(r: dict) -> int:
    """Per attempted step: one Jacobian, one factorisation, and per stage one f and one solve."""
    return (r["accepted"] + r["rejected"]) * (2 + 2 * r["stages"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=str(DEFAULT_ROOT), help="directory of the Benchmark-collection problems")
    ap.add_argument("--problems", help="comma-separated subset")
    ap.add_argument("--tolerances", default="1e-6,1e-8,1e-10", help="rtol = atol values (1e-6,1e-8,1e-10)")
    args = ap.parse_args()
    from symode.petab.objective import PetabObjective

    root = Path(args.root)
    names = sorted(p.name for p in root.iterdir() if (p / f"{p.name}.yaml").exists()) if root.is_dir() else []
    if args.problems:
        names = [n for n in names if n in args.problems.split(",")]
    if not names:
        print(f"no problems under {root}", file=sys.stderr)
        return 2
    tols = [float(v) for v in args.tolerances.split(",")]
    print("| problem | rtol = atol | compiled RODAS4 steps | RODAS4 steps (rejected) | RODAS5 steps (rejected) "
          "| f evaluations RODAS4 / RODAS5 | work RODAS5 / RODAS4 | err RODAS4 | err RODAS5 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        obj = PetabObjective.from_yaml(root / name / f"{name}.yaml", validate=False)
        sim, exp = obj.simulator, obj.experiments[0]
        be, cond, theta = sim.backend, exp.sim, obj.problem.nominal
        p = cond.p(theta)
        x0, _ = sim.initial(cond, theta, False)
        grid, _ = sim.grid(exp.times, p)
        if len(grid) < 2:
            continue
        U = sim.U

        def f(t, x, be=be, p=p, U=U):
            return be.rhs(t, x, p, U)

        def jac(t, x, be=be, p=p, U=U):
            return be.jac_x(t, x, p, U)

        exact = be.integrate(grid, x0, p, U, rtol=1e-13, atol=1e-14, method="stiff").x[-1]
        for tol in tols:
            compiled = be.integrate(grid, x0, p, U, rtol=tol, atol=tol, method="stiff").stats["n_accepted"]
            r4, r5 = (integrate(f, jac, x0, grid, tol, tol, tab()) for tab in (rodas4, rodas5))
            errs = [float(np.max(np.abs(r["y"] - exact) / (np.abs(exact) + tol))) for r in (r4, r5)]
            print(f"| {name} | {tol:g} | {compiled} | {r4['accepted']} ({r4['rejected']}) | {r5['accepted']} "
                  f"({r5['rejected']}) | {r4['rhs']} / {r5['rhs']} | {work(r5) / work(r4):.2f} | {errs[0]:.1e} "
                  f"| {errs[1]:.1e} |", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
