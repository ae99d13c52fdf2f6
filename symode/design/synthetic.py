"""Synthetic data of a design: the predicted observables of an experiment with independent Gaussian
noise from each measurement's noise model (closed-loop checks of a design)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from symode.design.experiment import Design
from symode.design.problem import DesignProblem
from symode.solve.model import build_model
from symode.solve.simulation import simulate
from symode.solve.synth import make_dataset
from symode.spec.schema import Noise, Spec

__all__ = ["simulate_design_data"]


def simulate_design_data(problem: DesignProblem, design: Design, *, seed: int = 0,
                         params: Mapping[str, float] | None = None) -> tuple[Spec, Any]:
    """Synthetic data of a design (independent Gaussian noise from each measurement's noise model):
    (spec observing exactly the design's measurements, Dataset with blank cells between samples)."""
    sp = problem.measured_spec(design.extras)
    for m_ in design.measurements:
        sp.observables[m_.name].noise = Noise(m_.absolute, m_.relative)
    if params:
        sp = sp.with_values(params)
    sp = sp.with_values(None, design.x0)
    T = design.duration_h
    times = np.unique(np.round(np.concatenate([m_.sample_times(T) for m_ in design.measurements]
                                              + [design.d_times[design.d_times < T], [0.0, T]]), 9))
    model = build_model(sp)
    D = design.d_at(times)
    traj = simulate(model, times, inputs={design.input_name: D})
    rng = np.random.default_rng(seed)
    cols = {}
    for m_ in design.measurements:
        y = traj[m_.name]
        sigma = np.sqrt(m_.absolute ** 2 + (m_.relative * y) ** 2)
        obs = y + sigma * rng.normal(size=y.shape)
        keep = np.zeros(len(times), dtype=bool)
        keep[np.searchsorted(times, m_.sample_times(T) - 1e-7)] = True
        obs[~keep] = np.nan
        cols[m_.name] = obs
    return sp, make_dataset(times, {design.input_name: D}, cols)
