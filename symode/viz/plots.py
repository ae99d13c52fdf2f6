"""Figures as objects and plots of trajectories and data.

Every plot in symode is a :class:`matplotlib.figure.Figure` with its own Agg canvas (:func:`new_figure`):
no global backend switch, no pyplot state, safe in threads and in programs that use another backend.
:func:`save_figure` renders into memory and writes the file atomically (:func:`symode.io.atomic_write_bytes`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from symode.io import atomic_write_bytes
from symode.solve.simulation import Trajectory
from symode.spec.data import Dataset

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["new_figure", "plot_trajectories", "save_figure"]


def new_figure(figsize: tuple[float, float] = (6.4, 4.8)) -> Figure:
    """A Figure with its own Agg canvas (matplotlib is imported lazily: it is slow to import and most
    commands draw nothing)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path, *, dpi: int = 120, tight: bool = True) -> None:
    """Render a figure into memory and write it atomically (format from the file extension)."""
    buf = io.BytesIO()
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    kw: dict[str, Any] = {"bbox_inches": "tight"} if tight else {}
    fig.savefig(buf, format=fmt, dpi=dpi, **kw)
    atomic_write_bytes(path, buf.getvalue())


def plot_trajectories(path: str | Path, trajectories: Sequence[tuple[str, Trajectory]], *,
                      data: Dataset | None = None, inputs: dict[str, np.ndarray] | None = None,
                      title: str | None = None, time_unit: str = "h") -> None:
    """One panel per state (plus one per input): each labelled trajectory as a line, data as dots.
    ``time_unit``: "h" (shown in days beyond 4 days), another unit, or "" when unknown."""
    states = trajectories[0][1].states
    panels = list(states) + list(inputs or {})
    ncols = 2 if len(panels) > 3 else 1
    nrows = int(np.ceil(len(panels) / ncols))
    fig = new_figure((6.5 * ncols, 2.2 * nrows))
    axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False)
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
        ax.set_xlabel(f"time [{unit}]" if unit else "time (data units)")
    axes.flat[0].legend(loc="best", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
