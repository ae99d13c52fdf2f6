"""Plots of structure discovery: the selection path."""

from __future__ import annotations

from pathlib import Path

from symode.discover.result import DiscoveryResult
from symode.viz.plots import new_figure, save_figure

__all__ = ["plot_selection_path"]


def plot_selection_path(res: DiscoveryResult, path: str | Path) -> None:
    """BIC and AICc (relative to their minimum, symlog scale) against the number of edges of every
    accepted model, the selected one marked."""
    from matplotlib.ticker import MaxNLocator

    fig = new_figure((7, 4))
    ax = fig.add_subplot(111)
    n = [len(c.edges) for c in res.path]
    bic0 = min(c.bic for c in res.path)
    aicc0 = min(c.aicc for c in res.path)
    ax.plot(n, [c.bic - bic0 for c in res.path], "o-", label="BIC - min")
    ax.plot(n, [c.aicc - aicc0 for c in res.path], "s--", label="AICc - min")
    ax.axvline(len(res.kept_edges), color="k", lw=0.8, ls=":", label="selected")
    ax.set_xlabel("number of edges")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("criterion (relative)")
    ax.set_yscale("symlog", linthresh=10.0)
    ax.invert_xaxis()
    ax.legend()
    ax.set_title("selection path")
    save_figure(fig, path, dpi=110)
