"""Forward sensitivities: the dense reference path against the seeded sparse one, in one process.

Run: python3 bench/forward_sensitivities.py [--root DIR] [--problems A,B] [--repeat N] [--json OUT.json]

For every problem of the Benchmark collection in DIR (default ../shared/petab/benchmark; a missing problem
is skipped with a note), the PEtab llh gradient with respect to the estimated parameters by forward
sensitivities (``PetabObjective.evaluate(gradient=True, method="forward")``, rtol = atol = 1e-8 as in
bench/petab.py):

- old: each solve's full S = dx/d[x0, p] (nx x (nx+np) per time) by the dense reference implementation
  (``Recording.sensitivities(dense=True)``: dense Jx and Jp at every stage, the second-order terms from
  nx reverse products per stage), then multiplied by the seed [G0; P];
- new: only the seed's nonzero columns propagated (``CompiledBackend.sensitivities(seed=...)``) with the
  model's sparse Jacobians and sparse second-order products.

Both are the same objective code, with the backend's ``sensitivities`` swapped; the adjoint gradient is
timed for reference. Then the chemostat spec (specs/chemostat.yaml) on the chemostat-dev data, window
[0, 240] h (as in tests/test_identifiability.py), at rtol 1e-8, atol 1e-10: the full S (all nx + np
columns, what the fit's residual Jacobian needs) of the recorded solve, old (dense) against new, the
fit's forward-mode loss and residual Jacobian (``loss_and_gradient(method="discrete", jacobian=True)``)
and the adjoint gradient.

Timing: old and new alternate within each of --repeat rounds (the machine is shared and noisy); medians
of the CPU time (time.process_time) and of the wall time per call; the ratio is old / new of the medians.
"diff" is max |g_new - g_old| / max |g_old| of the gradients (chemostat: of S and of the loss gradient
from it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# bench/ holds a petab.py: keep this directory off the import path (it would shadow the petab package)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
DEFAULT_ROOT = next((d for d in (ROOT.parent / "shared" / "petab" / "benchmark",
                                 ROOT.parent.parent / "shared" / "petab" / "benchmark") if d.is_dir()),
                    ROOT.parent / "shared" / "petab" / "benchmark")
SHARED_DATA = DEFAULT_ROOT.parent.parent / "data"
PROBLEMS = ("Bachmann_MSB2011", "Boehm_JProteomeRes2014", "Brannmark_JBC2010", "Bruno_JExpBot2016",
            "Crauste_CellSystems2017", "Elowitz_Nature2000", "Fiedler_BMCSystBiol2016", "Fujita_SciSignal2010",
            "Zheng_PNAS2012")
RTOL = ATOL = 1e-8


class DenseSensitivities:
    """The backend with ``sensitivities`` as before the seeded path: the recorded solve's full S by the dense
    reference implementation, then S [G; P]."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    def sensitivities(self, times, x0, p, U, *, rtol, atol, method, discrete=True, seed=None):
        rec = self.backend.record(times, x0, p, U, rtol=rtol, atol=atol, method=method)
        if rec.status != 0:
            return rec, None
        S = rec.sensitivities(dense=True)
        return rec, (S if seed is None else np.einsum("tij,jk->tik", S, seed))


def timed(fn) -> tuple[float, float, Any]:
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.process_time() - c0, time.perf_counter() - w0, out


def compare(fns: dict[str, Any], repeat: int) -> dict[str, dict[str, float]]:
    """Median CPU and wall time of each function, called in turn within each round; the last results."""
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    wall: dict[str, list[float]] = {k: [] for k in fns}
    last: dict[str, Any] = {}
    for _ in range(repeat):
        for k, fn in fns.items():
            c, w, last[k] = timed(fn)
            cpu[k].append(c)
            wall[k].append(w)
    return {k: {"cpu": float(np.median(cpu[k])), "wall": float(np.median(wall[k])), "out": last[k]} for k in fns}


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-300))


def petab_row(yaml: Path, repeat: int) -> dict[str, Any]:
    from symode.petab.objective import PetabObjective
    from symode.petab.simulate import SolverOptions

    obj = PetabObjective.from_yaml(yaml, validate=False, options=SolverOptions(rtol=RTOL, atol=ATOL))
    sim = obj.simulator
    new_backend, old_backend = sim.backend, DenseSensitivities(sim.backend)

    def forward(backend: Any):
        def run():
            sim.backend = backend
            try:
                return obj.evaluate(gradient=True, method="forward").gradient
            finally:
                sim.backend = new_backend
        return run

    forward(old_backend)()  # warm up both (library loads, caches)
    forward(new_backend)()
    res = compare({"old": forward(old_backend), "new": forward(new_backend),
                   "adjoint": lambda: obj.evaluate(gradient=True, method="adjoint").gradient}, repeat)
    pr = obj.problem
    cols = set()  # the theta that move some p: the seeded directions (per experiment those it moves)
    for exp in pr.experiments:
        cols |= set(np.flatnonzero(np.any(sim.P(exp.sim) != 0, axis=0)))
    return {"problem": yaml.parent.name, "nx": sim.nx, "np": sim.np, "n_theta": pr.n_theta,
            "k": len(cols), **{f"{k}_{m}": v[m] for k, v in res.items() for m in ("cpu", "wall")},
            "diff": rel_diff(res["new"]["out"], res["old"]["out"]), "gmax": float(np.max(np.abs(res["old"]["out"]))),
            "diff_adjoint": rel_diff(res["new"]["out"], res["adjoint"]["out"])}


def chemostat_row(repeat: int) -> dict[str, Any] | None:
    from symode import build_model, read_csv
    from symode.solve.sensitivity import Problem, loss_and_gradient

    data = SHARED_DATA / "chemostat-dev" / "data.csv"
    if not data.exists():
        print(f"note: {data} not found, chemostat row skipped")
        return None
    model = build_model(ROOT / "specs" / "chemostat.yaml")
    prob = Problem(model, read_csv(data), window=(0.0, 240.0))
    be = model.backend
    p, x0 = model.parameter_vector(), model.x0_vector()
    rtol, atol = 1e-8, 1e-10
    rec = be.record(prob.times, x0, p, prob.U, rtol=rtol, atol=atol, method="auto")

    def loss_gradient(S: np.ndarray) -> np.ndarray:
        """dL/d[x0, p] of L = 1/2 sum r^2 from S (the same Python for both S)."""
        nx = len(model.states)
        U = prob.U.reshape(len(prob.times) - 1, -1)
        g = np.zeros(S.shape[2])
        for i, t in enumerate(prob.times):
            u = U[min(i, len(U) - 1)]
            y = be.obs(t, rec.x[i], p, u)
            ok = np.isfinite(prob.data[i])
            r = np.where(ok, (y - np.nan_to_num(prob.data[i])) / prob.sigma[i], 0.0)
            dr = (be.obs_jac_x(t, rec.x[i], p, u) @ S[i]) / prob.sigma[i][:, None]
            dr[:, nx:] += be.obs_jac_p(t, rec.x[i], p, u) / prob.sigma[i][:, None]
            g += r @ dr
        return g

    rec.sensitivities(dense=True)
    res = compare({"old": lambda: rec.sensitivities(dense=True), "new": lambda: rec.sensitivities(),
                   "fit_jacobian": lambda: loss_and_gradient(prob, params=p, x0=x0, method="discrete", jacobian=True,
                                                             rtol=rtol, atol=atol),
                   "adjoint": lambda: loss_and_gradient(prob, params=p, x0=x0, method="discrete", rtol=rtol,
                                                        atol=atol)}, repeat)
    g_old, g_new = loss_gradient(res["old"]["out"]), loss_gradient(res["new"]["out"])
    return {"problem": "chemostat (specs/chemostat.yaml, chemostat-dev [0, 240] h)", "nx": len(model.states),
            "np": len(model.parameters), "k": len(model.states) + len(model.parameters),
            "steps": rec.stats["n_accepted"],
            **{f"{k}_{m}": v[m] for k, v in res.items() for m in ("cpu", "wall")},
            "diff_S": rel_diff(res["new"]["out"], res["old"]["out"]), "diff": rel_diff(g_new, g_old),
            "diff_fit": rel_diff(res["fit_jacobian"]["out"].grad_p, g_old[len(model.states):])}


def ms(v: float) -> str:
    return f"{v * 1e3:.1f} ms" if v < 1 else f"{v:.2f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--no-chemostat", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.1f}, "
          f"--repeat {args.repeat}", flush=True)
    rows = []
    for name in args.problems.split(","):
        yaml = args.root / name / f"{name}.yaml"
        if not yaml.exists():
            print(f"note: {yaml} not found, skipped", flush=True)
            continue
        rows.append(petab_row(yaml, args.repeat))
        print(f"  {name} done", file=sys.stderr, flush=True)
    print("\n| problem | nx | np | n_theta | k | old fwd CPU / wall | new fwd CPU / wall | old / new CPU | "
          "old / new wall | adjoint CPU / wall | new fwd / adjoint CPU | max abs gradient | diff new vs old | "
          "new vs adjoint |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['problem']} | {r['nx']} | {r['np']} | {r['n_theta']} | {r['k']} | "
              f"{ms(r['old_cpu'])} / {ms(r['old_wall'])} | {ms(r['new_cpu'])} / {ms(r['new_wall'])} | "
              f"{r['old_cpu'] / r['new_cpu']:.1f}x | {r['old_wall'] / r['new_wall']:.1f}x | "
              f"{ms(r['adjoint_cpu'])} / {ms(r['adjoint_wall'])} | {r['new_cpu'] / r['adjoint_cpu']:.1f}x | "
              f"{r['gmax']:.2g} | {r['diff']:.1e} | {r['diff_adjoint']:.1e} |")
    chem = None if args.no_chemostat else chemostat_row(args.repeat)
    if chem:
        print(f"\n{chem['problem']}: nx {chem['nx']}, np {chem['np']}, {chem['steps']} steps, S with all "
              f"{chem['k']} columns:\n")
        print("| what | CPU | wall |")
        print("|---|---|---|")
        for key, label in (("old", "S, dense reference (old)"), ("new", "S, sparse (new)"),
                           ("fit_jacobian", "fit: loss + residual Jacobian (forward, new)"),
                           ("adjoint", "fit: loss + gradient (adjoint)")):
            print(f"| {label} | {ms(chem[key + '_cpu'])} | {ms(chem[key + '_wall'])} |")
        print(f"\nS old / new: {chem['old_cpu'] / chem['new_cpu']:.1f}x (CPU), "
              f"{chem['old_wall'] / chem['new_wall']:.1f}x (wall); S new vs old {chem['diff_S']:.1e}, loss gradient "
              f"from S new vs old {chem['diff']:.1e}, the fit's forward gradient vs old {chem['diff_fit']:.1e}")
    print(f"\n# end {time.strftime('%H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.1f}")
    if args.json:
        def clean(r):
            return {k: v for k, v in r.items() if not k.endswith("_out")}
        args.json.write_text(json.dumps({"rows": [clean(r) for r in rows], "chemostat": chem}, indent=1))


if __name__ == "__main__":
    main()
