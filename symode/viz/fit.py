"""Plots of a fit: data vs fit with weighted residuals, the fitted states, parameter intervals and
profile likelihoods."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from symode.viz.plots import new_figure, save_figure

__all__ = ["plot_fit_observables", "plot_fitted_states", "plot_parameter_intervals", "plot_profiles"]


def _time_scale(times: np.ndarray) -> tuple[float, str]:
    return (24.0, "d") if times[-1] > 96 else (1.0, "h")


def plot_fit_observables(path: str | Path, spec: Any, data: Any, traj: Any, title: str) -> None:
    """One row per observable: data and fit (left), weighted residuals (y - d) / sigma (right)."""
    obs = list(spec.observables)
    scale, unit = _time_scale(traj.times)
    fig = new_figure((12, 2.4 * len(obs)))
    axes = fig.subplots(len(obs), 2, squeeze=False, sharex=True)
    for i, name in enumerate(obs):
        y = traj.observables[name] if name in traj.observables else traj[name]
        col = spec.observables[name].transform_data(data.columns[name])
        ok = np.isfinite(col)
        ax = axes[i, 0]
        ax.plot(data.times[ok] / scale, col[ok], ".", ms=2, color="0.6", label="data")
        ax.plot(traj.times / scale, y, color="C0", lw=1.0, label="fit")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        noise = spec.observables[name].noise
        sigma = np.sqrt(noise.absolute ** 2 + (noise.relative * col) ** 2)
        ax = axes[i, 1]
        ax.plot(data.times[ok] / scale, ((y - col) / sigma)[ok], ".", ms=2, color="C3")
        ax.axhline(0, color="k", lw=0.6)
        ax.set_ylabel(f"{name}: weighted residual")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="best", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel(f"time [{unit}]")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def plot_fitted_states(path: str | Path, traj: Any, observed: Sequence[str]) -> None:
    """Every state of the fitted trajectory, hidden (unobserved) ones in orange."""
    states = traj.states
    scale, unit = _time_scale(traj.times)
    fig = new_figure((8, 1.8 * len(states)))
    axes = fig.subplots(len(states), 1, squeeze=False, sharex=True)
    for i, s in enumerate(states):
        ax = axes[i, 0]
        ax.plot(traj.times / scale, traj[s], color="C0" if s in observed else "C1", lw=1.0)
        ax.set_ylabel(s + ("" if s in observed else " (hidden)"))
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(f"time [{unit}]")
    fig.suptitle("Fitted states")
    fig.tight_layout()
    save_figure(fig, path)


def plot_parameter_intervals(path: str | Path, names: Sequence[str], values: Any, intervals: Any,
                             identifiable: Any) -> None:
    """95% (thick) and 99% (thin) intervals relative to the estimate, log scale; red: not identifiable."""
    fig = new_figure((7, 0.45 * len(names) + 1.2))
    ax = fig.subplots()
    for i, n in enumerate(names):
        v = values[n]
        for lev, lw, c in (("0.99", 1.0, "0.6"), ("0.95", 3.0, "C0" if identifiable[n] else "C3")):
            lo, hi = intervals[n][lev]
            lo_r = (lo / v) if lo not in (None, 0) and v > 0 else 1e-4
            hi_r = (hi / v) if hi is not None and v > 0 else 1e4
            ax.plot([max(lo_r, 1e-4), min(hi_r, 1e4)], [i, i], color=c, lw=lw, solid_capstyle="butt")
        ax.plot([1.0], [i], "k|", ms=10)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels([f"{n}{'' if identifiable[n] else ' (not identifiable)'}" for n in names], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1e4)
    ax.set_xlabel("interval / estimate (95% thick, 99% thin; red: not identifiable)")
    ax.grid(alpha=0.3, axis="x")
    ax.invert_yaxis()
    fig.tight_layout()
    save_figure(fig, path)


def plot_profiles(path: str | Path, profiles: Sequence[Any]) -> None:
    """Profile likelihoods 2 (objective - minimum) with the chi^2(1) 95% and 99% thresholds."""
    n = len(profiles)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = new_figure((4 * ncols, 3 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, prof in zip(axes.flat, profiles, strict=False):
        ax.plot(prof.values, prof.q, "o-", ms=3)
        for thr, c in ((3.841, "C1"), (6.635, "C3")):
            ax.axhline(thr, color=c, lw=0.8, ls="--")
        if prof.scale == "log":
            ax.set_xscale("log")
        ax.set_title(prof.name)
        ax.set_ylabel("2 Δ objective")
        ax.grid(alpha=0.3)
    for ax in axes.flat[n:]:
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path)
