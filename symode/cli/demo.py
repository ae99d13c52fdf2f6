"""``symode demo``: model (1) of docs/model.md end to end, on the ``chemostat`` example data set.

1. load and compile the shipped ``chemostat`` spec (and show that a rebuild hits the cache);
2. the experiment: the ``chemostat`` example data set (the original study's true parameters, D(t) =
   0.25 plus slow fluctuations, X and S every 15 minutes with 2% + 0.01 noise): its first 10 days, or
   all 90 with ``--full``;
3. simulate from the original study's starting values, where B's uptake is stiff, and show that the
   default integrator detects it and switches to the Rosenbrock method while a purely explicit one
   needs more steps;
4. fit the experiment from those starting values (intervals, identifiability, exact symmetries);
5. design a better experiment, simulate it and fit it;
6. structure discovery on a small community template; every report and plot is listed at the end.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

from symode.errors import SymodeError
from symode.examples.datasets import ORIGINAL_BEST, ORIGINAL_TRUE

__all__ = ["FULL_DAYS", "ORIGINAL_BEST", "ORIGINAL_TRUE", "SHORT_DAYS", "register", "run_demo"]

SHORT_DAYS = 10.0   # the default demo: the first 10 days of the 90-day experiment
FULL_DAYS = 90.0    # --full


def run_demo(out: Path, *, full: bool = False) -> dict[str, Any]:
    """Run the demo, write its files into ``out`` and print a summary. Returns the key numbers."""
    from symode.examples import spec_path
    from symode.examples.datasets import make_example
    from symode.io import atomic_write_json, atomic_write_text
    from symode.solve.model import build_model
    from symode.solve.simulation import simulate
    from symode.solve.synth import dataset_to_csv_text
    from symode.spec import load_spec
    from symode.viz.graph import draw_graph
    from symode.viz.plots import plot_trajectories

    t_start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    spec = load_spec(spec_path("chemostat"))
    print(f"symode demo — {spec.name}: {spec.description}")
    print(f"  spec: {len(spec.states)} states ({', '.join(spec.states)}), {len(spec.estimated_parameters)} "
          f"estimated parameters, {len(spec.interactions)} interactions (the model: docs/model.md)")
    print("  compiling the model (sympy -> CasADi -> C; the first time takes a few seconds) ...", flush=True)
    t0 = time.perf_counter()
    model = build_model(spec)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    build_model(spec)
    t_cached = time.perf_counter() - t0
    how = "compiled now" if model.built_now else "loaded from cache"
    print(f"  model: {how} in {t_build:.2f} s ({model.backend.kind}, {model.directory}); "
          f"cached rebuild {t_cached * 1e3:.1f} ms")

    days = FULL_DAYS if full else SHORT_DAYS
    example = make_example("chemostat", days=days)
    data, truth = example.data, example.states
    times = data.times
    D = data.columns["D"]
    atomic_write_text(out / "experiment.csv", dataset_to_csv_text(data))
    atomic_write_json(out / "truth.json", example.truth)
    truth.to_csv(out / "truth_states.csv")
    t0 = time.perf_counter()
    simulate(model, times, inputs={"D": D}, params=ORIGINAL_TRUE)
    t_sim = time.perf_counter() - t0
    print(f"  experiment (symode example chemostat{'' if full else f' --days {days:g}'}): {days:g} days, "
          f"{len(times)} samples of X and S every 15 min at the original study's true parameters; one "
          f"simulation takes {t_sim * 1e3:.0f} ms -> {out / 'experiment.csv'}")

    start = simulate(model, times, inputs={"D": D})
    print(f"  at the original study's starting values: {start.stats['n_accepted']} steps, "
          f"{start.stats['n_switches']} explicit<->stiff switch(es), ended {start.stats['method_used']}")
    budget = 20 * start.stats["n_steps"] + 1000
    try:
        explicit = simulate(model, times, inputs={"D": D}, method="explicit", max_steps=budget)
        print(f"  explicit-only at the starting values: {explicit.stats['n_accepted']} steps "
              f"({explicit.stats['n_accepted'] / max(start.stats['n_accepted'], 1):.1f}x the automatic choice)")
    except SymodeError as exc:
        print(f"  explicit-only at the starting values fails within {budget} steps: {exc}")

    plot_trajectories(out / "trajectories.png", [("true parameters", truth), ("starting values", start)],
                      data=data, inputs={"D": D}, title="Model (1): the experiment")
    draw_graph(spec, out / "graph.png", title="Model (1) community graph")
    final = {n: float(truth[n][-1]) for n in model.states}
    print("  state at the end (true parameters): " + ", ".join(f"{k}={v:.4g}" for k, v in final.items()))
    summary: dict[str, Any] = {"days": days, "build_s": t_build, "cached_s": t_cached, "simulate_s": t_sim,
                               "final": final, "start_switches": start.stats["n_switches"]}
    summary["fit"] = _demo_fit(model, data, out)
    summary["design"] = _demo_design(model, data, out, full=full, start=summary["fit"]["parameters"])
    summary["discover"] = _demo_discover(out)
    summary["wall_time_s"] = time.perf_counter() - t_start
    atomic_write_json(out / "summary.json", _plain(summary))
    reports = [out / "fit" / "report.md", out / "design" / "report.md", out / "discover" / "report.md"]
    plots = [out / "trajectories.png", out / "graph.png", *sorted((out / "fit").glob("*.png")),
             *sorted((out / "design").glob("*.png")), *sorted((out / "discover").glob("*.png"))]
    print(f"done in {summary['wall_time_s']:.0f} s.")
    print("  reports: " + ", ".join(str(p) for p in reports if p.exists()))
    print("  plots:   " + ", ".join(str(p) for p in plots if p.exists()))
    print(f"  data:    {out / 'experiment.csv'}, {out / 'truth.json'}, {out / 'truth_states.csv'}; "
          f"key numbers: {out / 'summary.json'}")
    return summary


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and non-finite floats as None (for JSON)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _demo_fit(model, data, out: Path) -> dict[str, Any]:
    """Fit the experiment from the original study's starting values (the spec's values) and print truth
    vs the study's best estimate vs symode, with 95% intervals and identifiability."""
    from symode.fit import fit
    from symode.report.fit import write_outputs

    print("  fitting the experiment from the original study's starting values (symode fit) ...", flush=True)
    result = fit(model, [data], progress=True)
    write_outputs(result, out / "fit")
    iv, ident = result.intervals, result.identifiable
    print(f"  fit: objective {result.objective:.6g} for {result.n_obs} observations, "
          f"{'converged' if result.converged else 'NOT converged'}, {result.iterations} iterations, "
          f"{result.wall_time_s:.0f} s -> {out / 'fit'}")
    print(f"  {'param':>6} {'truth':>9} {'study':>9} {'symode':>10}  {'95% interval':<24} identifiable")
    for name in result.estimated_parameters:
        lo, hi = iv[name]["0.95"]
        text = f"[{'open' if lo is None else f'{lo:.3g}'}, {'open' if hi is None else f'{hi:.3g}'}]"
        best = ORIGINAL_BEST.get(name)
        reason = result.reasons().get(name, "").split(";")[0][:60]
        print(f"  {name:>6} {ORIGINAL_TRUE[name]:>9.4g} {'' if best is None else f'{best:.4g}':>9} "
              f"{result.parameters[name]:>10.4g}  {text:<24} {'yes' if ident[name] else 'no: ' + reason}")
    print("  ('study': the original study's best estimate, where it reports one; docs/model.md)")
    for s in result.symmetries:
        print(f"  exact symmetry: {s.description}")
    return {"objective": result.objective, "converged": result.converged, "parameters": result.parameters,
            "identifiable": ident, "wall_time_s": result.wall_time_s}


def _demo_design(model, data, out: Path, *, full: bool = False, seed: int = 1,
                 start: dict[str, float] | None = None) -> dict[str, Any]:
    """The experiment cannot determine most parameters; `symode design` proposes a 30-day experiment
    (D(t) profile + one extra measurement every 2 h); a simulated run of it (independent noise) is fitted,
    starting from the first fit, and recovers the parameters it was designed for."""
    from symode.design import Constraints, design_from_data, run_design, simulate_design_data
    from symode.fit import fit
    from symode.io import atomic_write_text
    from symode.report.design import write_design
    from symode.solve.synth import dataset_to_csv_text

    print("  experiment design (symode design) at the true parameters ...", flush=True)
    spec = model.spec.with_values(ORIGINAL_TRUE)
    c = Constraints(max_days=max(30.0, float(data.times[-1]) / 24))
    ref = design_from_data(data, spec, label=f"the {data.times[-1] / 24:g}-day X+S experiment")
    run = run_design(spec, nominal_source="the original study's true parameters (demo)", reference=ref,
                     constraints=c, model=model, time_limit=90.0 if full else 20.0, n_random=50 if full else 10,
                     n_robust=20 if full else 5, seed=seed, progress=True)
    files = write_design(run, out / "design")
    R, P = run.reference, run.proposed
    rr, rp = R.rel_se_dict(), P.rel_se_dict()
    und = [n for n, v in rr.items() if not v < 0.1 and not n.startswith("x0.")]
    print(f"  the experiment: {R.n_good()} of {len(ORIGINAL_TRUE)} parameters below 10% predicted relative "
          f"error; not determined: {', '.join(und)}")
    extra = [m for m in P.design.measurements if m.name not in model.spec.observables]
    print(f"  proposed: {P.design.duration_h / 24:g} days, D(t) on 24-h steps in [{c.d_min:g}, {c.d_max:g}] "
          f"(lowest X {P.min_floor_state:.3g}, floor {P.floor:.3g}), measure "
          + ", ".join(f"{m.name} every {m.every_h:g} h" for m in extra)
          + f" -> {P.n_good()} parameters below 10%; D-criterion {P.criteria['D']:.1f} vs the experiment's "
            f"{R.criteria['D']:.1f}" + (f", best random {run.best_random.criteria['D']:.1f}" if run.best_random
                                        else "") + f" -> {files['report']}")
    for name, why in run.undetermined.items():
        if not name.startswith("x0."):
            print(f"  undetermined under every admissible design: {name} — {why.split(':')[0]}")
    spec_true, new_data = simulate_design_data(run.problem, P.design, seed=seed + 1000)
    atomic_write_text(out / "design" / "experiment.csv", dataset_to_csv_text(new_data))
    print(f"  simulated the proposed experiment (independent noise) -> {out / 'design' / 'experiment.csv'}")
    summary: dict[str, Any] = {"n_good_original": R.n_good(), "n_good_proposed": P.n_good(),
                               "D_original": R.criteria["D"], "D_proposed": P.criteria["D"]}
    # As in practice: the new experiment is fitted starting from the estimate of the old one.
    first = start or {n: model.spec.parameters[n].value for n in model.spec.estimated_parameters}
    spec_start = spec_true.with_values({n: float(first[n]) for n in model.spec.estimated_parameters},
                                       {s: st.x0 for s, st in model.spec.states.items()})
    print("  fitting the simulated experiment, starting from the first fit ...", flush=True)
    result = fit(spec_start, [new_data], progress=True, max_time=1200.0 if full else 300.0)
    print(f"  {'param':>6} {'truth':>9} {'fit':>10} {'pred. SE':>9}  within 3 SE")
    ok = []
    problem = run.problem
    for i, name in enumerate(problem.names):
        if name.startswith("x0.") or not rp[name] < 0.1:
            continue
        est, true = float(result.parameters[name]), float(problem.theta[i])
        z = math.log(est / true) / rp[name]
        ok.append(abs(z) <= 3)
        print(f"  {name:>6} {true:>9.4g} {est:>10.4g} {100 * rp[name]:>8.2g}%  {'yes' if abs(z) <= 3 else 'NO'} "
              f"({z:+.1f} SE)")
    summary["closed_loop_within_3se"] = all(ok)
    return summary


#: The sparse truth of the demo's structure-discovery step (1 satellite x 2 metabolites, 4 of 10 edges).
DISCOVER_TRUTH = {"prod:X->M1": {"v": 0.002}, "inhib:M1-|X": {"kappa": 0.5},
                  "uptake:M1->Y1": {"mu": 0.8, "K": 0.1, "g": 1.5}, "prod:Y1->M2": {"u": 0.1}}


def _demo_discover(out: Path, *, seed: int = 1) -> dict[str, Any]:
    """Structure discovery on a small template (1 satellite x 2 metabolites, 10 edges) with 5 days of
    synthetic data from a sparse truth (4 edges)."""
    from symode.discover import discover, synthetic_case
    from symode.report.discover import write_discovery

    print("  structure discovery (symode discover) on the 1x2 community template, 5 days of synthetic data ...",
          flush=True)
    try:
        spec, data, _ = synthetic_case(1, 2, DISCOVER_TRUTH, days=5, seed=seed, metabolite_every=4)
        res = discover(spec, data, outdir=out / "discover", progress=True, resume=False)
        write_discovery(res, out / "discover")
    except SymodeError as exc:
        print(f"  structure discovery failed: {exc}")
        return {}
    kept, truth = set(res.kept_edges), set(DISCOVER_TRUTH)
    print(f"  discover: kept {len(kept)} of {len(kept) + len(res.pruned_edges)} edges "
          f"({'exactly the true ones' if kept == truth else f'true {sorted(truth)}'}): "
          f"{', '.join(res.kept_edges)}; {res.wall_time_s:.0f} s -> {out / 'discover' / 'report.md'}")
    return {"kept_edges": res.kept_edges, "exact": kept == truth, "wall_time_s": res.wall_time_s}


def run(args: argparse.Namespace) -> int:
    run_demo(Path(args.output), full=args.full)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add demo to the ``symode`` parser."""
    p = sub.add_parser("demo", help="model (1) end to end: simulate, fit, design, discover (about 2 min)",
                       description="Model (1) (a main culture, an averaged satellite and two metabolites in a "
                                   "chemostat) end to end: compile the shipped spec; take the chemostat example "
                                   "experiment (10 days; --full: 90 days); show the stiffness at the original "
                                   "study's starting values; fit from them with intervals and identifiability; "
                                   "design a better experiment and fit its simulation; run structure discovery on a "
                                   "small community. Prints where its reports and plots are. About 2 minutes on "
                                   "2 cores (--full: several minutes).")
    p.add_argument("-o", "--output", default="demo-out", metavar="DIR", help="output directory (default demo-out)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--full", action="store_true",
                        help="the whole 90-day experiment and a longer design search (several minutes)")
    length.add_argument("--quick", action="store_true", help="the short version (the default; kept for old scripts)")
    p.set_defaults(func=run)
