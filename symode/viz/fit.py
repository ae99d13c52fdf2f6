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


def time_axis(times: np.ndarray, time_column: str = "time_h") -> tuple[float, str]:
    """(divisor, x-axis label) for sample times read from ``time_column``: hours for ``time_h`` (days when
    the series is longer than 4 days), else the data's own unit, which symode does not know."""
    if time_column == "time_h":
        return (24.0, "time [d]") if len(times) and times[-1] > 96 else (1.0, "time [h]")
    return 1.0, f"{time_column} (data units)"


def _observable_label(spec: Any, name: str) -> str:
    obs = spec.observables[name]
    return f"log10({name} + {obs.offset:g})" if obs.transform == "log10" else name


def plot_fit_observables(path: str | Path, spec: Any, data: Any, traj: Any, title: str, fine: Any = None) -> None:
    """One row per observable: data and fit (left; the fit on the ``fine`` trajectory's grid when given),
    weighted residuals (y - d) / sigma (right). Transformed observables are drawn on their scale."""
    obs = list(spec.observables)
    scale, xlabel = time_axis(data.times, getattr(data, "time_column", "time_h"))
    curve = fine if fine is not None else traj
    fig = new_figure((12, 2.4 * len(obs)))
    axes = fig.subplots(len(obs), 2, squeeze=False, sharex=True)
    for i, name in enumerate(obs):
        y = traj.observables[name] if name in traj.observables else traj[name]
        yf = curve.observables[name] if name in curve.observables else curve[name]
        col = spec.observables[name].transform_data(data.columns[name])
        ok = np.isfinite(col)
        ax = axes[i, 0]
        ax.plot(data.times[ok] / scale, col[ok], ".", ms=3, color="0.5", label="data")
        ax.plot(curve.times / scale, yf, color="C0", lw=1.0, label="fit")
        ax.set_ylabel(_observable_label(spec, name), fontsize=8)
        ax.grid(alpha=0.3)
        noise = spec.observables[name].noise
        sigma = np.sqrt(noise.absolute ** 2 + (noise.relative * col) ** 2)
        ax = axes[i, 1]
        ax.plot(data.times[ok] / scale, ((y - col) / sigma)[ok], ".", ms=3, color="C3")
        ax.axhline(0, color="k", lw=0.6)
        ax.set_ylabel(f"{name}: weighted residual", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="best", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel(xlabel)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def plot_fitted_states(path: str | Path, traj: Any, observed: Sequence[str], *, time_column: str = "time_h",
                       log_states: Sequence[str] = ()) -> None:
    """Every state of the fitted trajectory, hidden (unobserved) ones in orange; ``log_states`` on a log
    scale (abundances observed on a log scale)."""
    states = traj.states
    scale, xlabel = time_axis(traj.times, time_column)
    fig = new_figure((8, 1.8 * len(states)))
    axes = fig.subplots(len(states), 1, squeeze=False, sharex=True)
    for i, s in enumerate(states):
        ax = axes[i, 0]
        ax.plot(traj.times / scale, traj[s], color="C0" if s in observed else "C1", lw=1.0)
        if s in log_states and np.all(np.asarray(traj[s]) > 0):
            ax.set_yscale("log")
        ax.set_ylabel(s + ("" if s in observed else " (hidden)"), fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(xlabel)
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
