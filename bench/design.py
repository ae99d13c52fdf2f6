"""Experiment design benchmark: the optimiser against random designs and the original experiment.

Model (1) (specs/chemostat.yaml) at its true parameters (symode.cli.demo.ORIGINAL_TRUE),
x0 from the spec. Admissible: <= 30 days, D piecewise constant on 24-h segments in [0.05, 0.3] changing by
at most 0.1 between segments, X never below 10% of its start along the predicted trajectory, at most one
extra measured quantity (A or B, 5% + 0.002 noise) every 2 h; X and S every 15 min (2% + 0.01).

Prints markdown tables: criteria of the proposed design, of the best of N random admissible designs (each
with its best measurement plan) and of the original 90-day X-and-S experiment; predicted relative SEs; and,
when symode.fit is available, the closed loop: data simulated from the proposed design (independent noise)
fitted from the spec's starting values, estimates against the truth in predicted SEs.

    python bench/design.py [--time-limit 180] [--random 50] [--no-fit] [--json out.json]
    python bench/design.py --integrators    # CPU time per integrator order, at two sets of nominal values
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from symode.cli.demo import ORIGINAL_TRUE  # noqa: E402
from symode.design import (  # noqa: E402
    GOOD_REL_SE,
    METHODS,
    Constraints,
    Design,
    DesignProblem,
    Measurement,
    base_measurements,
    optimise_design,
    piecewise_design,
    project_levels,
    random_baseline,
    simulate_design_data,
    structured_starts,
    undetermined_explanations,
)
from symode.solve.synth import smooth_dilution  # noqa: E402
from symode.spec import load_spec  # noqa: E402


def original_design(problem: DesignProblem) -> Design:
    """The original experiment: 90 days, D = 0.25 + low-frequency noise (the demo's), X and S every 15 min."""
    times = np.arange(0, 90 * 96 + 1) * 0.25
    D = smooth_dilution(times, seed=1)
    ms = [Measurement("X", 0.25, 0.02, 0.01), Measurement("S", 0.25, 0.02, 0.01)]
    return Design(times[-1], dict(zip(problem.model.states, problem.x0, strict=True)), times[:-1], D[:-1], ms,
                  label="original 90-day X+S")


def pct(v: float) -> str:
    return "inf" if not np.isfinite(v) else f"{100 * v:.3g}%"


def closed_loop(problem: DesignProblem, design: Design, rel: dict[str, float], *, seed: int,
                max_time: float) -> dict:
    try:
        from symode.fit import fit
    except ImportError as exc:   # fitting not available yet
        return {"skipped": f"symode.fit unavailable ({exc})"}
    spec_true, data = simulate_design_data(problem, design, seed=seed)
    start = load_spec(ROOT / "specs" / "chemostat.yaml")
    spec_start = spec_true.with_values({n: start.parameters[n].value for n in start.estimated_parameters},
                                       {s: st.x0 for s, st in start.states.items()})
    t0 = time.perf_counter()
    res = fit(spec_start, [data], progress=False, max_time=max_time)
    wall = time.perf_counter() - t0
    rows = []
    for i, nm in enumerate(problem.names):
        if nm.startswith("x0.") or not rel[nm] < GOOD_REL_SE:
            continue
        est = float(res.parameters[nm])
        truth = float(problem.theta[i])
        z = math.log(est / truth) / rel[nm]
        rows.append({"name": nm, "truth": truth, "estimate": est, "predicted_rel_se": rel[nm], "z": z})
    return {"wall_s": wall, "converged": bool(res.converged), "objective": float(res.objective),
            "n_obs": int(res.n_obs), "rows": rows, "all_within_3se": all(abs(r["z"]) <= 3 for r in rows),
            "estimates": {k: float(v) for k, v in res.parameters.items() if k in ORIGINAL_TRUE}}


def integrator_table() -> None:
    """CPU time of the optimiser's coarse evaluations (30 days, 1-h grid, the 19 structured starts of
    ``optimise_design`` plus 10 random level vectors) with each integrator order, at the true
    parameters and at the spec's starting values (where the explicit integrator's sensitivities blow up
    on strongly varying designs); ratios against the default order (explicit, then the stiff switch)."""
    spec = load_spec(ROOT / "specs" / "chemostat.yaml")
    c = Constraints()
    rng = np.random.default_rng(0)
    starts = structured_starts(30, c, rng, nominal=0.25, n_random=10)
    print("| nominal values | integrators tried | CPU s (all evaluations) | ratio to default | failed points |")
    print("|---|---|---:|---:|---:|")
    for label, params in (("true values", ORIGINAL_TRUE), ("spec's starting values", {})):
        base_cpu = None
        for methods in (METHODS, ("auto",), ("explicit",)):
            pb = DesignProblem(spec, params=params, constraints=c, candidates=["A", "B"], methods=methods)
            base = base_measurements(pb.spec, 0.25)
            cpu0, failed = time.process_time(), 0
            for u in starts:
                d = piecewise_design(pb, project_levels(u, c), base, duration_h=720, segment_h=24)
                failed += not pb.evaluate(d, coarse=1.0, full=False, rtol=1e-7).ok
            cpu = time.process_time() - cpu0
            base_cpu = base_cpu or cpu
            print(f"| {label} | {', '.join(methods)} | {cpu:.1f} | {cpu / base_cpu:.2f} | {failed} of {len(starts)} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--integrators", action="store_true",
                    help="only the table of integrator orders (CPU time of coarse evaluations) and exit")
    ap.add_argument("--time-limit", type=float, default=180.0)
    ap.add_argument("--random", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-fit", action="store_true")
    ap.add_argument("--fit-time", type=float, default=1200.0)
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    if args.integrators:
        integrator_table()
        return 0

    spec = load_spec(ROOT / "specs" / "chemostat.yaml")
    c = Constraints(d_min=0.05, d_max=0.3, max_step=0.1, floor_fraction=0.1, max_days=90, budget_n=1, budget_h=2.0)
    problem = DesignProblem(spec, params=ORIGINAL_TRUE, constraints=c, candidates=["A", "B"])
    base = base_measurements(problem.spec, 0.25)
    t0 = time.perf_counter()
    res = optimise_design(problem, base, days=30, segment_h=24, budget=(1, 2.0), time_limit=args.time_limit,
                          seed=args.seed, progress=False, log=lambda m: print("#", m, file=sys.stderr))
    t_opt = time.perf_counter() - t0
    P = res.best
    t0 = time.perf_counter()
    rnd = random_baseline(problem, base, n=args.random, days=30, segment_h=24, budget=(1, 2.0), seed=args.seed + 99)
    t_rnd = time.perf_counter() - t0
    br = max(rnd, key=lambda e: e.criteria["D"])
    br = problem.evaluate(br.design)
    orig = problem.evaluate(original_design(problem))
    allc = problem.evaluate(Design(P.design.duration_h, P.design.x0, P.design.d_times, P.design.d_values,
                                   [*base, Measurement("A", 2.0, 0.05, 0.002), Measurement("B", 2.0, 0.05, 0.002)],
                                   problem.input_name))
    extremes = [problem.evaluate(Design(720.0, P.design.x0, np.array([0.0]), np.array([lv]), allc.design.measurements,
                                        problem.input_name)) for lv in (0.05, 0.3)]
    und = undetermined_explanations(problem, [P, br, allc, *extremes, *[problem.evaluate(e.design) for e in rnd[:10]]])

    def extra(e):
        return ", ".join(m.name for m in e.design.measurements if m.name not in ("X", "S")) or "none"

    print("## design\n")
    print(f"`python bench/design.py` — model (1) at its true parameters; optimiser wall time "
          f"{t_opt:.0f} s ({res.n_evaluations} information evaluations, time limit {args.time_limit:g} s); "
          f"{len(rnd)} random admissible designs in {t_rnd:.0f} s.\n")
    print("| design | days | extra measurement | D-criterion (log det) | A | min X (floor 2) | "
          "parameters < 10% rel. SE |")
    print("|---|---|---|---|---|---|---|")
    mean_r = np.mean([e.criteria["D"] for e in rnd])
    for lab, e in (("original (X, S every 15 min, D = 0.25 + noise)", orig), ("proposed (optimised)", P),
                   (f"best of {len(rnd)} random", br)):
        print(f"| {lab} | {e.design.duration_h / 24:g} | {extra(e)} | {e.criteria['D']:.2f} | {e.criteria['A']:.1f} | "
              f"{e.min_floor_state:.3g} | {e.n_good()} |")
    print(f"\nMean D-criterion of the random designs: {mean_r:.2f}. Proposed minus best random: "
          f"{P.criteria['D'] - br.criteria['D']:+.2f} (a factor e^{P.criteria['D'] - br.criteria['D']:.2f} in the "
          f"information determinant). Constraints of the proposed design: "
          f"{'all satisfied' if P.feasible else P.violations}.\n")
    print("Proposed D(t) (24-h levels): " + ", ".join(f"{v:.3f}" for v in P.design.d_values) + "\n")
    print("| quantity | truth | original 90 d | proposed | best random |")
    print("|---|---|---|---|---|")
    ro, rp, rr = orig.rel_se_dict(), P.rel_se_dict(), br.rel_se_dict()
    for i, nm in enumerate(problem.names):
        print(f"| {nm} | {problem.theta[i]:.4g} | {pct(ro[nm])} | {pct(rp[nm])} | {pct(rr[nm])} |")
    print("\nUndetermined under every admissible design:\n")
    for k, v in und.items():
        print(f"- {k}: {v}")
    out = {"proposed": P.design.to_json(rp), "criteria": {"proposed": P.criteria, "best_random": br.criteria,
                                                          "original": orig.criteria},
           "n_good": {"proposed": P.n_good(), "best_random": br.n_good(), "original": orig.n_good()},
           "undetermined": und, "optimiser_s": t_opt}
    if not args.no_fit:
        cl = closed_loop(problem, P.design, rp, seed=args.seed + 2024, max_time=args.fit_time)
        out["closed_loop"] = cl
        print("\nClosed loop: data simulated from the proposed design (independent noise), fitted with "
              "symode.fit from the spec's starting values")
        if "skipped" in cl:
            print(f"\n{cl['skipped']}")
        else:
            print(f"(fit {cl['wall_s']:.0f} s, converged {cl['converged']}, 2*objective/n_obs = "
                  f"{2 * cl['objective'] / cl['n_obs']:.3f}):\n")
            print("| parameter | truth | estimate | predicted rel. SE | (log est - log truth) / SE |")
            print("|---|---|---|---|---|")
            for r in cl["rows"]:
                print(f"| {r['name']} | {r['truth']:.4g} | {r['estimate']:.4g} | {pct(r['predicted_rel_se'])} | "
                      f"{r['z']:+.2f} |")
            print(f"\nAll within 3 predicted SEs: {cl['all_within_3se']}.")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
