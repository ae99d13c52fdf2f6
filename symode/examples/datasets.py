"""Example data sets, simulated by symode from the shipped specs with fixed seeds.

Every data set is a synthetic cultivation experiment in a chemostat (docs/model.md):

- the dilution rate D(t) = 0.25 1/h plus slow fluctuations (a sum of sinusoids with random periods
  between 12 h and 10 days, :func:`symode.solve.synth.smooth_dilution`), a known input;
- the states simulated at the true parameters (tolerances 1e-10 relative, 1e-12 absolute) and sampled
  every 15 minutes;
- the observables with Gaussian noise from the spec's noise model, y_obs = y + sigma e with
  sigma^2 = absolute^2 + (relative y)^2: 2% + 0.01 for X and S, 5% + 0.002 for metabolites, which are
  measured every 2 hours only (blank cells in between).

Files written by :func:`write_example` (the layout ``symode simulate``, ``fit`` and ``discover`` take):
``spec.yaml`` (the model with starting values to fit from), ``data.csv`` (time_h, D, observables),
``truth.json`` (true parameters, constants and initial states; a params file for ``--params``) and
``truth_states.csv`` (the exact hidden states at the sample times).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from symode.errors import SymodeError
from symode.examples import spec_path
from symode.io import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from symode.solve.simulation import Trajectory
    from symode.spec import Spec
    from symode.spec.data import Dataset

__all__ = ["EXAMPLES", "ORIGINAL_BEST", "ORIGINAL_TRUE", "Example", "ExampleData", "example_names",
           "make_example", "write_example"]

#: The true parameters of model (1) in the original data-assimilation study (docs/model.md, "Origin").
ORIGINAL_TRUE: dict[str, float] = {"gA": 0.3, "gB": 3.0, "vA": 0.0001, "vB": 0.009, "muA": 0.1, "muB": 0.7,
                                   "KA": 1.0, "IA": 100.0, "KB": 0.1, "IB": 1.0}
#: The best estimate reported by that study (only the values it lists as far off), for comparison tables.
ORIGINAL_BEST: dict[str, float] = {"gB": 5.69, "muB": 1.37, "KB": 0.25, "vB": 0.0165}

#: The sparse 2 x 3 community of the ``community`` example: edge id -> values by role (truth.json format).
COMMUNITY_EDGES: dict[str, dict[str, float]] = {
    "prod:X->M1": {"v": 0.0005},
    "prod:X->M2": {"v": 0.002},
    "inhib:M1-|X": {"kappa": 1.0},
    "inhib:M2-|X": {"kappa": 0.5},
    "uptake:M1->Y1": {"mu": 0.8, "K": 0.1, "g": 1.5},
    "uptake:M2->Y2": {"mu": 0.6, "K": 0.05, "g": 2.0},
    "prod:Y1->M3": {"u": 0.1},
}

DT_H = 0.25           # sampling interval (h): every 15 minutes
METABOLITE_EVERY = 8  # metabolites measured every 8th sample (2 h)
TRUTH_RTOL, TRUTH_ATOL = 1e-10, 1e-12


@dataclass(frozen=True)
class ExampleData:
    """One example data set in memory."""

    name: str
    spec: Spec                  # the model with its starting values (what a user fits from)
    spec_text: str              # the same as YAML
    data: Dataset               # time_h, inputs, noisy observables
    truth: dict[str, Any]       # truth.json: parameters, constants, x0 and how the data were made
    states: Trajectory          # the exact hidden states at the sample times


@dataclass(frozen=True)
class Example:
    """How one example data set is made."""

    name: str
    description: str
    days: float
    seed: int
    dilution_sd: float
    spec_text: Callable[[], str]               # the model (YAML) with starting values
    truth: Callable[[Spec], dict[str, Any]]    # truth.json content (parameters, constants, x0, ...)


def _shipped(name: str) -> Callable[[], str]:
    return lambda: spec_path(name).read_text()


def _community_spec() -> str:
    from symode.graph.template import template_spec

    return ("# The generalized 2 x 3 community template (docs/model.md): every interaction is a prunable edge.\n"
            + template_spec(2, 3).to_yaml())


def _chemostat_truth(spec: Spec) -> dict[str, Any]:
    constants = {n: p.value for n, p in spec.parameters.items() if not p.estimate}
    return {"parameters": dict(ORIGINAL_TRUE), "constants": constants,
            "x0": {n: s.x0 for n, s in spec.states.items()}}


def _community_truth(spec: Spec) -> dict[str, Any]:
    from symode.graph.template import community_truth_params

    truth = community_truth_params({"satellites": 2, "metabolites": 3, "edges": COMMUNITY_EDGES})
    return {"satellites": 2, "metabolites": 3, "edges": COMMUNITY_EDGES, **truth}


EXAMPLES: dict[str, Example] = {e.name: e for e in (
    Example("chemostat", "model (1), 90 days, X and S every 15 min, at the original study's true parameters",
            days=90.0, seed=1, dilution_sd=0.01, spec_text=_shipped("chemostat"), truth=_chemostat_truth),
    Example("chemostat-hplc", "model (1), 90 days, X and S every 15 min and the metabolites A and B every 2 h "
            "(HPLC), at the original study's true parameters; another noise realisation",
            days=90.0, seed=2, dilution_sd=0.01, spec_text=_shipped("chemostat-hplc"), truth=_chemostat_truth),
    Example("community", "a sparse community (7 of 24 edges) in the 2 x 3 template, 30 days, X and S every "
            "15 min, metabolites M1..M3 every 2 h",
            days=30.0, seed=3, dilution_sd=0.013, spec_text=_community_spec, truth=_community_truth),
)}


def example_names() -> list[str]:
    return list(EXAMPLES)


def _example(name: str) -> Example:
    try:
        return EXAMPLES[name]
    except KeyError:
        raise SymodeError(f"no example data set {name!r}; available: {', '.join(EXAMPLES)}") from None


def make_example(name: str, *, days: float | None = None) -> ExampleData:
    """Simulate the example data set ``name``; ``days`` keeps only its first days (the same experiment,
    shortened: its first samples are identical to the full data set's)."""
    from symode.solve.model import build_model
    from symode.solve.simulation import Trajectory, simulate
    from symode.solve.synth import make_dataset, noisy_observations, smooth_dilution
    from symode.spec import loads_spec

    ex = _example(name)
    if days is not None and not 0 < days <= ex.days:
        raise SymodeError(f"days must be in (0, {ex.days:g}] for the {name} example")
    spec_text = ex.spec_text()
    spec = loads_spec(spec_text, file=f"<example {name}>")
    truth = ex.truth(spec)
    times = np.arange(0, round(ex.days * 24 / DT_H) + 1) * DT_H
    D = smooth_dilution(times, seed=ex.seed, amplitude=ex.dilution_sd)
    model = build_model(spec)
    states = simulate(model, times, inputs={"D": D}, params={**truth["parameters"], **truth["constants"]},
                      x0=truth["x0"], rtol=TRUTH_RTOL, atol=TRUTH_ATOL)
    every = {m: METABOLITE_EVERY for m in spec.observables if spec.states[m].role == "metabolite"}
    obs = noisy_observations(model, states, seed=ex.seed, every=every)
    data = make_dataset(times, {"D": D}, obs)
    noise = {n: {"relative": o.noise.relative, "absolute": o.noise.absolute, "every_n_rows": every.get(n, 1)}
             for n, o in spec.observables.items()}
    truth = {"description": ex.description, **truth, "dt_h": DT_H, "days": ex.days, "noise": noise,
             "seed": ex.seed, "dilution": {"mean": 0.25, "sd": ex.dilution_sd, "seed": ex.seed}}
    states.time_column = "time_h"
    if days is not None and days < ex.days:
        data = data.until(days * 24)
        n = len(data.times)
        states = Trajectory(states.times[:n], states.x[:n], states.states, states.time_column, states.stats,
                            {k: v[:n] for k, v in states.observables.items()})
        truth["days"] = days
    return ExampleData(name, spec, spec_text, data, truth, states)


def write_example(name: str, outdir: str | Path, *, days: float | None = None) -> dict[str, Path]:
    """Write the example data set ``name`` into ``outdir`` (created): spec.yaml, data.csv, truth.json,
    truth_states.csv. Returns the paths by kind."""
    from symode.solve.synth import dataset_to_csv_text

    ex = make_example(name, days=days)
    out = Path(outdir)
    files = {"spec": out / "spec.yaml", "data": out / "data.csv", "truth": out / "truth.json",
             "states": out / "truth_states.csv"}
    atomic_write_text(files["spec"], ex.spec_text)
    atomic_write_text(files["data"], dataset_to_csv_text(ex.data))
    atomic_write_json(files["truth"], ex.truth)
    ex.states.to_csv(files["states"])
    return files
