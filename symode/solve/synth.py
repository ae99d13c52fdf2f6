"""Synthetic experiments: dilution profiles and noisy measurements drawn from a simulation.

Noise follows the spec's observation model: y_obs = y + sigma * e, e ~ N(0, 1), with
sigma^2 = absolute^2 + (relative * y)^2.
"""

from __future__ import annotations

import numpy as np

from symode.solve.model import Model
from symode.solve.simulation import Trajectory
from symode.spec.data import Dataset


def smooth_dilution(times: np.ndarray, *, mean: float = 0.25, amplitude: float = 0.02, seed: int = 0,
                    n_modes: int = 6, min_period: float = 12.0, max_period: float = 240.0,
                    bounds: tuple[float, float] = (0.05, 0.3)) -> np.ndarray:
    """D(t) = mean + low-frequency noise: a sum of sinusoids with random periods in
    [min_period, max_period] and random phases, scaled to a standard deviation of ``amplitude``."""
    rng = np.random.default_rng(seed)
    periods = np.exp(rng.uniform(np.log(min_period), np.log(max_period), n_modes))
    phases = rng.uniform(0, 2 * np.pi, n_modes)
    weights = rng.normal(size=n_modes)
    wave = sum(w * np.sin(2 * np.pi * times / P + ph) for w, P, ph in zip(weights, periods, phases, strict=True))
    wave = np.asarray(wave, dtype=float)
    std = wave.std() or 1.0
    return np.clip(mean + amplitude * wave / std, *bounds)


def noisy_observations(model: Model, traj: Trajectory, *, seed: int = 0,
                       every: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Observable values with Gaussian noise from the spec's noise model; ``every[name] = k`` keeps only
    every k-th sample of that observable (others blank, NaN)."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name in model.observables:
        y = traj.observables[name] if name in traj.observables else traj[name]
        noise = model.spec.observables[name].noise
        sigma = np.sqrt(noise.absolute**2 + (noise.relative * y) ** 2)
        obs = y + sigma * rng.normal(size=y.shape)
        k = (every or {}).get(name, 1)
        if k > 1:
            mask = np.ones(len(y), dtype=bool)
            mask[::k] = False
            obs[mask] = np.nan
        out[name] = obs
    return out


def make_dataset(times: np.ndarray, inputs: dict[str, np.ndarray], observations: dict[str, np.ndarray],
                 time_column: str = "time_h") -> Dataset:
    return Dataset(times=np.asarray(times, float), columns={**inputs, **observations}, time_column=time_column,
                   file="<synthetic>")


def dataset_to_csv_text(data: Dataset) -> str:
    """CSV text (blank cells for NaN) that :func:`symode.data.read_csv` reads back."""
    names = list(data.columns)
    lines = [",".join([data.time_column, *names])]
    for i, t in enumerate(data.times):
        cells = [repr(float(t))]
        for n in names:
            v = data.columns[n][i]
            cells.append("" if not np.isfinite(v) else f"{v:.9g}")
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"
