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

from .errors import SymodeError
from .io import atomic_write_text

#: Parameters the original author used to generate his data (MISSION.md section 2).
ORIGINAL_TRUE = {"gA": 0.3, "gB": 3.0, "vA": 0.0001, "vB": 0.009, "muA": 0.1, "muB": 0.7, "KA": 1.0,
                 "IA": 100.0, "KB": 0.1, "IB": 1.0}
#: The original author's best fit (MISSION.md section 2), for comparison tables.
ORIGINAL_BEST = {"gB": 5.69, "muB": 1.37, "KB": 0.25, "vB": 0.0165}


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def example_spec_path(name: str = "chemostat.yaml") -> Path:
    path = repo_root() / "specs" / name
    if not path.exists():
        raise SymodeError(f"example spec {name} not found (expected in {path.parent}; run from a source checkout)")
    return path


def run_demo(out: Path, *, quick: bool = False, seed: int = 1) -> dict[str, object]:
    """Run the demo, write its files into ``out`` and print a summary. Returns the key numbers."""
    from .graph import draw_graph
    from .model import build_model
    from .plots import plot_trajectories
    from .solve import simulate
    from .spec import load_spec
    from .synth import dataset_to_csv_text, make_dataset, noisy_observations, smooth_dilution

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
    return {"build_s": t_build, "cached_s": t_cached, "simulate_s": t_sim, "final": final,
            "start_switches": start.stats["n_switches"]}
