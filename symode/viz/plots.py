"""Plots of trajectories and data (matplotlib, Agg backend; files written atomically)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from symode.io import atomic_write_bytes
from symode.solve.simulation import Trajectory
from symode.spec.data import Dataset


def pyplot():  # imported lazily: matplotlib is slow to import and not needed by most commands
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> None:
    """Render a figure into memory and write it atomically (format from the file extension)."""
    buf = io.BytesIO()
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    fig.savefig(buf, format=fmt, dpi=120, bbox_inches="tight")
    pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())


def plot_trajectories(path: str | Path, trajectories: Sequence[tuple[str, Trajectory]], *,
                      data: Dataset | None = None, inputs: dict[str, np.ndarray] | None = None,
                      title: str | None = None, time_unit: str = "h") -> None:
    """One panel per state (plus one per input): each labelled trajectory as a line, data as dots."""
    plt = pyplot()
    states = trajectories[0][1].states
    panels = list(states) + list(inputs or {})
    ncols = 2 if len(panels) > 3 else 1
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.5 * ncols, 2.2 * nrows), sharex=True, squeeze=False)
    scale, unit = (24.0, "d") if time_unit == "h" and trajectories[0][1].times[-1] > 96 else (1.0, time_unit)
    for ax, name in zip(axes.flat, panels, strict=False):
        if data is not None and name in data.columns and name not in (inputs or {}):
            col = data.columns[name]
            ok = np.isfinite(col)
            ax.plot(data.times[ok] / scale, col[ok], ".", ms=2, color="0.6", label="data", zorder=1)
        if inputs and name in inputs:
            t = trajectories[0][1].times
            ax.step(t / scale, inputs[name], where="post", color="C2", lw=0.8)
        else:
            for k, (label, traj) in enumerate(trajectories):
                ax.plot(traj.times / scale, traj[name], color=f"C{k}", lw=1.0, label=label, zorder=2)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel(f"time [{unit}]")
    axes.flat[0].legend(loc="best", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
