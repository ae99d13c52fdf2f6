"""Plots of an experiment design: the proposed D(t), the predicted trajectories and the predicted
intervals before vs after."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from symode.design.experiment import Constraints, Design
from symode.design.problem import DesignProblem, Evaluation
from symode.viz.plots import new_figure, save_figure

__all__ = ["plot_inputs", "plot_intervals", "plot_predicted"]


def plot_inputs(path: str | Path, proposed: Design, reference: Design | None, c: Constraints) -> None:
    """The proposed D(t) (and the reference's) as steps, with the admissible bounds."""
    fig = new_figure((8, 2.6))
    ax = fig.subplots()
    if reference is not None:
        t = np.append(reference.d_times, reference.duration_h)
        ax.step(t / 24, np.append(reference.d_values, reference.d_values[-1]), where="post", color="0.6", lw=0.8,
                label=f"before ({reference.label or 'reference'})")
    t = np.append(proposed.d_times, proposed.duration_h)
    ax.step(t / 24, np.append(proposed.d_values, proposed.d_values[-1]), where="post", color="C0", lw=1.5,
            label="proposed")
    for y in (c.d_min, c.d_max):
        ax.axhline(y, color="C3", ls=":", lw=0.8)
    ax.set_xlabel("time [d]")
    ax.set_ylabel(f"{proposed.input_name} [1/h]")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title("Dilution rate: proposed experiment")
    save_figure(fig, path)


def plot_predicted(path: str | Path, ev: Evaluation, problem: DesignProblem) -> None:
    """Predicted states under a design (nominal parameters), the culture floor and D(t)."""
    states = problem.model.states
    n = len(states) + 1
    ncols = 2
    nrows = math.ceil(n / ncols)
    fig = new_figure((12, 2.2 * nrows))
    axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False)
    t = ev.times / 24
    measured = {m.name: m for m in ev.design.measurements}
    for ax, (i, s) in zip(axes.flat, enumerate(states), strict=False):
        ax.plot(t, ev.x[:, i], color="C0", lw=1.0)
        if s == problem.floor_state:
            ax.axhline(ev.floor, color="C3", ls="--", lw=0.8, label=f"floor {ev.floor:g}")
            ax.legend(fontsize=8)
        tag = f" (measured every {measured[s].every_h:g} h)" if s in measured else " (hidden)"
        ax.set_ylabel(s)
        ax.set_title(s + tag, fontsize=9)
        ax.grid(alpha=0.3)
    ax = axes.flat[len(states)]
    ax.step(t, ev.design.d_at(ev.times), where="post", color="C2", lw=1.0)
    ax.set_ylabel(ev.design.input_name)
    ax.grid(alpha=0.3)
    for a in axes.flat[n:]:
        a.axis("off")
    for a in axes[-1]:
        a.set_xlabel("time [d]")
    fig.suptitle("Predicted trajectories under the proposed experiment (nominal parameters)")
    fig.tight_layout()
    save_figure(fig, path)


def plot_intervals(path: str | Path, names: Sequence[str], before: np.ndarray, after: np.ndarray,
                   labels: tuple[str, str] = ("before", "proposed")) -> None:
    """Predicted 95% intervals (factor around the nominal value; log scale), before vs after."""
    fig = new_figure((max(6, 0.55 * len(names)), 3.4))
    ax = fig.subplots()
    x = np.arange(len(names))
    cap = math.log(1e3)
    for off, rel, col, lab in ((-0.15, before, "0.55", labels[0]), (0.15, after, "C0", labels[1])):
        half = np.minimum(np.where(np.isfinite(rel), 1.959963984540054 * rel, cap), cap)
        ax.vlines(x + off, np.exp(-half), np.exp(half), color=col, lw=4, label=lab)
        inf = ~np.isfinite(rel)
        ax.plot(x[inf] + off, np.full(inf.sum(), 1.0), "x", color=col, ms=6)
    ax.axhline(1.0, color="k", lw=0.6)
    for f in (0.9, 1.1):
        ax.axhline(f, color="C3", ls=":", lw=0.6)
    ax.set_yscale("log")
    ax.set_ylim(1e-3, 1e3)
    ax.set_xticks(x)
    ax.set_xticklabels([n[3:] + "(0)" if n.startswith("x0.") else n for n in names], rotation=45, ha="right")
    ax.set_ylabel("95% interval / nominal")
    ax.set_title("Predicted 95% intervals (x: undetermined; dotted: +-10%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    save_figure(fig, path)
