"""Synthetic discovery cases (tests, benchmarks, demo): a community template and noisy data simulated
from a sparse truth, like the community-dev data set."""

from __future__ import annotations

from typing import Any

import numpy as np

from symode.graph.template import community_truth_params, template_spec
from symode.solve.model import build_model
from symode.solve.simulation import simulate
from symode.solve.synth import make_dataset, noisy_observations, smooth_dilution
from symode.spec import Spec
from symode.spec.data import Dataset

__all__ = ["synthetic_case"]


def synthetic_case(satellites: int, metabolites: int, edges: dict[str, dict[str, float]], *, days: float = 30.0,
                   seed: int = 0, metabolite_every: int = 8, dilution_sd: float = 0.013
                   ) -> tuple[Spec, Dataset, dict[str, Any]]:
    """(template spec, noisy data set, truth params) for a template with the given true edges (truth.json
    ``edges`` format), simulated with symode.synth like the community-dev data set: ``days`` days, X and S
    every 15 min (2% + 0.01 noise), metabolites every ``metabolite_every`` samples (5% + 0.002), D(t) =
    0.25 + slow fluctuations of standard deviation ``dilution_sd``, the template's initial states."""
    spec = template_spec(satellites, metabolites)
    truth = community_truth_params({"satellites": satellites, "metabolites": metabolites, "edges": edges})
    model = build_model(spec)
    times = np.arange(0, round(days * 24 * 4) + 1) * 0.25
    D = smooth_dilution(times, seed=seed, amplitude=dilution_sd)
    traj = simulate(model, times, inputs={"D": D}, params=truth["parameters"], x0=truth["x0"])
    every = {m: metabolite_every for m in spec.observables if spec.states[m].role == "metabolite"}
    obs = noisy_observations(model, traj, seed=seed, every=every)
    return spec, make_dataset(times, {"D": D}, obs), truth
