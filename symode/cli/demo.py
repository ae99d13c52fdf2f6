"""``symode demo``: the seed chemostat (MISSION.md model (1)) end to end.

1. load and compile ``specs/chemostat.yaml`` (and show that a rebuild hits the cache);
2. simulate the original experiment: the original author's exact parameters, 90 days, D(t) = 0.25 plus
   low-frequency noise, X and S sampled every 15 minutes with 2% + 0.01 noise;
3. simulate from the original author's starting values, where B's uptake is stiff, and show that the
   default integrator detects it and switches to the Rosenbrock method while a purely explicit one
   needs far more steps;
4. plot the trajectories, the data and the community graph.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from symode.errors import SymodeError
from symode.io import atomic_write_text

#: Parameters the original author used to generate his data (MISSION.md section 2).
ORIGINAL_TRUE = {"gA": 0.3, "gB": 3.0, "vA": 0.0001, "vB": 0.009, "muA": 0.1, "muB": 0.7, "KA": 1.0,
                 "IA": 100.0, "KB": 0.1, "IB": 1.0}
#: The original author's best fit (MISSION.md section 2), for comparison tables.
ORIGINAL_BEST = {"gB": 5.69, "muB": 1.37, "KB": 0.25, "vB": 0.0165}


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def example_spec_path(name: str = "chemostat.yaml") -> Path:
    path = repo_root() / "specs" / name
    if not path.exists():
        raise SymodeError(f"example spec {name} not found (expected in {path.parent}; run from a source checkout)")
    return path


def run_demo(out: Path, *, quick: bool = False, seed: int = 1) -> dict[str, object]:
    """Run the demo, write its files into ``out`` and print a summary. Returns the key numbers."""
    from symode.solve.model import build_model
    from symode.solve.simulation import simulate
    from symode.solve.synth import dataset_to_csv_text, make_dataset, noisy_observations, smooth_dilution
    from symode.spec.schema import load_spec
    from symode.viz.graph import draw_graph
    from symode.viz.plots import plot_trajectories

    out.mkdir(parents=True, exist_ok=True)
    spec_path = example_spec_path()
    spec = load_spec(spec_path)
    print(f"symode demo — {spec.name}: {spec.description}")
    print(f"  spec {spec_path}: {len(spec.states)} states ({', '.join(spec.states)}), "
          f"{len(spec.estimated_parameters)} estimated parameters, {len(spec.interactions)} interactions")

    t0 = time.perf_counter()
    model = build_model(spec)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    build_model(spec)
    t_cached = time.perf_counter() - t0
    how = "compiled now" if model.built_now else "loaded from cache"
    print(f"  model: {how} in {t_build:.2f} s ({model.backend.kind}, {model.directory}); "
          f"cached rebuild {t_cached * 1e3:.1f} ms")

    days = 10 if quick else 90
    times = np.arange(0, days * 24 * 4 + 1) * 0.25
    D = smooth_dilution(times, seed=seed)
    truth = simulate(model, times, inputs={"D": D}, params=ORIGINAL_TRUE)
    t0 = time.perf_counter()
    truth = simulate(model, times, inputs={"D": D}, params=ORIGINAL_TRUE)
    t_sim = time.perf_counter() - t0
    obs = noisy_observations(model, truth, seed=seed)
    data = make_dataset(times, {"D": D}, obs)
    atomic_write_text(out / "experiment.csv", dataset_to_csv_text(data))
    truth.time_column = "time_h"
    truth.to_csv(out / "truth_states.csv")
    print(f"  original experiment: {days} days, {len(times)} samples of X and S every 15 min; simulated in "
          f"{t_sim * 1e3:.0f} ms ({truth.stats['n_accepted']} steps, method {truth.stats['method_used']}) "
          f"-> {out / 'experiment.csv'}")

    start = simulate(model, times, inputs={"D": D})
    print(f"  at the original author's starting values: {start.stats['n_accepted']} steps, "
          f"{start.stats['n_switches']} explicit<->stiff switch(es), ended {start.stats['method_used']}")
    budget = 20 * start.stats["n_steps"] + 1000
    try:
        explicit = simulate(model, times, inputs={"D": D}, method="explicit", max_steps=budget)
        print(f"  explicit-only at the starting values: {explicit.stats['n_accepted']} steps "
              f"({explicit.stats['n_accepted'] / max(start.stats['n_accepted'], 1):.1f}x the automatic choice)")
    except SymodeError as exc:
        print(f"  explicit-only at the starting values fails within {budget} steps: {exc}")

    plot_trajectories(out / "trajectories.png", [("original parameters", truth), ("author's start", start)],
                      data=data, inputs={"D": D}, title="Model (1): original experiment")
    draw_graph(spec, out / "graph.png", title="Model (1) community graph")
    print(f"  plots: {out / 'trajectories.png'}, {out / 'graph.png'}")
    final = {n: float(truth[n][-1]) for n in model.states}
    print("  state at the end (original parameters): " + ", ".join(f"{k}={v:.4g}" for k, v in final.items()))
    summary: dict[str, object] = {"build_s": t_build, "cached_s": t_cached, "simulate_s": t_sim, "final": final,
                                  "start_switches": start.stats["n_switches"]}
    summary["fit"] = _demo_fit(model, data, out)
    summary["design"] = _demo_design(model, data, out, quick=quick, seed=seed,
                                     start=summary["fit"]["parameters"])  # type: ignore[index]
    summary["discover"] = _demo_discover(out, seed=seed)
    return summary


def _demo_discover(out: Path, *, seed: int = 1) -> dict[str, object]:
    """Issue 5: structure discovery on a small template (1 satellite x 2 metabolites, 10 edges) with
    5 days of synthetic data from a sparse truth (4 edges)."""
    from symode.discover.core import discover, synthetic_case

    true = {"prod:X->M1": {"v": 0.002}, "inhib:M1-|X": {"kappa": 0.5},
            "uptake:M1->Y1": {"mu": 0.8, "K": 0.1, "g": 1.5}, "prod:Y1->M2": {"u": 0.1}}
    print("  structure discovery (symode discover) on the 1x2 community template, 5 days of synthetic data ...")
    try:
        spec, data, _ = synthetic_case(1, 2, true, days=5, seed=seed, metabolite_every=4)
        res = discover(spec, data, outdir=out / "discover", progress=True, resume=False)
    except SymodeError as exc:
        print(f"  structure discovery failed: {exc}")
        return {}
    kept, truth = set(res.kept_edges), set(true)
    print(f"  discover: kept {len(kept)} of {len(kept) + len(res.pruned_edges)} edges "
          f"({'exactly the true ones' if kept == truth else f'true {sorted(truth)}'}): "
          f"{', '.join(res.kept_edges)}; {res.wall_time_s:.0f} s -> {out / 'discover' / 'report.md'}")
    return {"kept_edges": res.kept_edges, "exact": kept == truth, "wall_time_s": res.wall_time_s}


def _demo_fit(model, data, out: Path) -> dict[str, object]:
    """Fit the original experiment from the original author's starting values (the spec's values) and
    print truth vs the author's best vs symode, with 95% intervals and identifiability."""
    from symode.fit import fit
    from symode.report.fit import write_outputs

    print("  fitting the original experiment from the original author's starting values (symode fit) ...")
    result = fit(model, [data], progress=True)
    write_outputs(result, out / "fit")
    iv, ident = result.intervals, result.identifiable
    print(f"  fit: objective {result.objective:.6g} for {result.n_obs} observations, "
          f"{'converged' if result.converged else 'NOT converged'}, {result.iterations} iterations, "
          f"{result.wall_time_s:.0f} s -> {out / 'fit'}")
    print(f"  {'param':>6} {'truth':>9} {'author':>9} {'symode':>10}  {'95% interval':<24} identifiable")
    for name in result.estimated_parameters:
        lo, hi = iv[name]["0.95"]
        text = f"[{'open' if lo is None else f'{lo:.3g}'}, {'open' if hi is None else f'{hi:.3g}'}]"
        best = ORIGINAL_BEST.get(name)
        print(f"  {name:>6} {ORIGINAL_TRUE[name]:>9.4g} {'' if best is None else f'{best:.4g}':>9} "
              f"{result.parameters[name]:>10.4g}  {text:<24} {'yes' if ident[name] else 'no: ' + _short(result, name)}")
    for s in result.symmetries:
        print(f"  exact symmetry: {s.description}")
    return {"objective": result.objective, "converged": result.converged, "parameters": result.parameters,
            "identifiable": ident, "wall_time_s": result.wall_time_s}


def _short(result, name: str) -> str:
    reason = result.reasons().get(name, "")
    return reason.split(";")[0][:60]


def _demo_design(model, data, out: Path, *, quick: bool = False, seed: int = 1,
                 start: dict[str, float] | None = None) -> dict[str, object]:
    """Issue 7: the original experiment cannot determine most parameters; `symode design` proposes a
    30-day experiment (D(t) profile + one extra measurement every 2 h); a simulated run of it (independent
    noise) is fitted (when symode.fit is available) and recovers the parameters it was designed for."""
    import math

    from symode.design.core import (
        Constraints,
        DesignProblem,
        design_from_data,
        run_design,
        simulate_design_data,
        write_design,
    )
    from symode.solve.synth import dataset_to_csv_text

    print("  experiment design (symode design) at the original author's parameters ...")
    spec = model.spec.with_values(ORIGINAL_TRUE)
    c = Constraints(max_days=max(30.0, float(data.times[-1]) / 24))
    ref = design_from_data(data, spec, label=f"original {data.times[-1] / 24:g}-day X+S experiment")
    run = run_design(spec, nominal_source="the original author's exact parameters (demo)", reference=ref,
                     constraints=c, model=model, time_limit=20.0 if quick else 90.0, n_random=10 if quick else 50,
                     n_robust=5 if quick else 20, seed=seed, progress=True)
    files = write_design(run, out / "design")
    R, P = run.reference, run.proposed
    rr, rp = R.rel_se_dict(), P.rel_se_dict()
    und = [n for n, v in rr.items() if not v < 0.1 and not n.startswith("x0.")]
    print(f"  original experiment: {R.n_good()} of {len(ORIGINAL_TRUE)} parameters below 10% predicted relative "
          f"error; not determined: {', '.join(und)}")
    extra = [m for m in P.design.measurements if m.name not in model.spec.observables]
    print(f"  proposed: {P.design.duration_h / 24:g} days, D(t) on 24-h steps in [{c.d_min:g}, {c.d_max:g}] "
          f"(lowest X {P.min_floor_state:.3g}, floor {P.floor:.3g}), measure "
          + ", ".join(f"{m.name} every {m.every_h:g} h" for m in extra)
          + f" -> {P.n_good()} parameters below 10%; D-criterion {P.criteria['D']:.1f} vs original "
            f"{R.criteria['D']:.1f}" + (f", best random {run.best_random.criteria['D']:.1f}" if run.best_random
                                        else "") + f" -> {files['report']}")
    for name, why in run.undetermined.items():
        if not name.startswith("x0."):
            print(f"  undetermined under every admissible design: {name} — {why.split(':')[0]}")
    spec_true, new_data = simulate_design_data(run.problem, P.design, seed=seed + 1000)
    from symode.io import atomic_write_text

    atomic_write_text(out / "design" / "experiment.csv", dataset_to_csv_text(new_data))
    print(f"  simulated the proposed experiment (independent noise) -> {out / 'design' / 'experiment.csv'}")
    summary: dict[str, object] = {"n_good_original": R.n_good(), "n_good_proposed": P.n_good(),
                                  "D_original": R.criteria["D"], "D_proposed": P.criteria["D"]}
    try:
        from symode.fit import fit
    except ImportError:
        print("  (symode.fit not available: skipping the fit of the simulated experiment)")
        return summary
    # As in practice: the new experiment is fitted starting from the estimate of the old one.
    first = start or {n: model.spec.parameters[n].value for n in model.spec.estimated_parameters}
    spec_start = spec_true.with_values({n: float(first[n]) for n in model.spec.estimated_parameters},
                                       {s: st.x0 for s, st in model.spec.states.items()})
    print("  fitting the simulated experiment, starting from the fit of the original experiment ...")
    result = fit(spec_start, [new_data], progress=True, max_time=300.0 if quick else 1200.0)
    print(f"  {'param':>6} {'truth':>9} {'fit':>10} {'pred. SE':>9}  within 3 SE")
    ok = []
    problem: DesignProblem = run.problem
    for i, name in enumerate(problem.names):
        if name.startswith("x0.") or not rp[name] < 0.1:
            continue
        est, truth = float(result.parameters[name]), float(problem.theta[i])
        z = math.log(est / truth) / rp[name]
        ok.append(abs(z) <= 3)
        print(f"  {name:>6} {truth:>9.4g} {est:>10.4g} {100 * rp[name]:>8.2g}%  {'yes' if abs(z) <= 3 else 'NO'} "
              f"({z:+.1f} SE)")
    summary["closed_loop_within_3se"] = all(ok)
    return summary
