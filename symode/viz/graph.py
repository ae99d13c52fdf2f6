"""Drawing the community graph (matplotlib): species, metabolites and their interactions, laid out in role columns."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import networkx as nx

from symode.graph.community import EDGE_STYLE, NODE_STYLE, build_graph
from symode.spec import Spec
from symode.viz.plots import new_figure, save_figure

COLUMN = ("substrate", "main", "metabolite", "satellite")  # left to right


def graph_layout(G: nx.MultiDiGraph) -> dict[str, tuple[float, float]]:
    """Deterministic positions: substrate left, main culture centre-left, metabolites and satellites in
    columns to the right, other states in a row underneath."""
    groups: dict[str, list[str]] = {r: [] for r in (*COLUMN, "other")}
    for n, data in G.nodes(data=True):
        role = data.get("role", "other")
        groups[role if role in groups else "other"].append(n)
    pos: dict[str, tuple[float, float]] = {}
    spacing = 1.1
    # Metabolites and satellites are linked all-to-all in a full template: widen their gap as they grow.
    rows = max(len(groups["metabolite"]), len(groups["satellite"]), 1)
    gap = {"substrate": 1.6, "main": 1.8, "metabolite": max(1.8, 1.0 + 0.6 * rows), "satellite": 0.0}
    x = 0.0
    for role in COLUMN:  # empty columns take no room
        names = groups[role]
        if not names:
            continue
        for i, n in enumerate(names):
            pos[n] = (x, ((len(names) - 1) / 2 - i) * spacing)
        x += gap[role]
    tallest = max((len(groups[r]) for r in COLUMN), default=1)
    y_other = -((max(tallest, 1) - 1) / 2 + 1) * spacing
    for i, n in enumerate(groups["other"]):
        pos[n] = (i * 1.4, y_other)
    return pos


def _node_patch(xy: tuple[float, float], style: dict[str, Any]) -> Any:
    from matplotlib import patches

    r = style["size"]
    kw = {"facecolor": style["face"], "edgecolor": style["edge"], "linewidth": 1.6, "zorder": 3}
    if style["shape"] == "circle":
        return patches.Circle(xy, r, **kw)
    if style["shape"] == "square":
        return patches.FancyBboxPatch((xy[0] - r, xy[1] - r), 2 * r, 2 * r,
                                      boxstyle="round,pad=0,rounding_size=0.05", **kw)
    if style["shape"] == "hexagon":
        return patches.RegularPolygon(xy, 6, radius=r * 1.15, **kw)
    return patches.Ellipse(xy, 2.6 * r, 1.6 * r, **kw)


def _edge_style(kind: str) -> dict[str, Any]:
    return EDGE_STYLE.get(kind, EDGE_STYLE["other"])


LABEL_BOX = (0.5, 0.18)     # (width, height) in layout units that two edge labels' centres must keep apart


def label_point(p1: tuple[float, float], p2: tuple[float, float], rad: float,
                 placed: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Where to print an edge's label: on the arc3 curve from ``p1`` to ``p2`` (quadratic Bezier
    B(t) = (1-t)^2 p1 + 2t(1-t) c + t^2 p2 with control point c = midpoint + rad (dy, -dx)), at the first
    of t = 0.5, 0.38, 0.62, 0.28, 0.72 whose label box (:data:`LABEL_BOX`) clears every label already
    ``placed`` (edges that cross at their midpoints would otherwise print their labels on top of each
    other), else at the t farthest from them."""
    (x1, y1), (x2, y2) = p1, p2
    cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)
    best, best_d = (0.0, 0.0), -1.0
    for t in (0.5, 0.38, 0.62, 0.28, 0.72):
        a, b, c = (1 - t) ** 2, 2 * t * (1 - t), t ** 2
        pt = (a * x1 + b * cx + c * x2, a * y1 + b * cy + c * y2)
        d = min((max(abs(pt[0] - q[0]) / LABEL_BOX[0], abs(pt[1] - q[1]) / LABEL_BOX[1]) for q in placed),
                default=math.inf)
        if d >= 1.0:
            return pt
        if d > best_d:
            best, best_d = pt, d
    return best


def draw_graph(spec_or_graph: Spec | nx.MultiDiGraph, path: str | Path, *,
               strengths: Mapping[str, float] | None = None, title: str | None = None) -> None:
    """Draw the community graph to a PNG or SVG file (chosen by the extension), atomically.

    strengths: interaction id -> value (e.g. fitted strengths); edge widths grow with sqrt(|value|)
    relative to the largest value of the same edge kind, non-zero values are printed on the edges and
    zero-strength edges are drawn faint.
    """
    from matplotlib import patches
    from matplotlib.lines import Line2D

    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise ValueError(f"draw_graph writes .png or .svg files, not {path.name!r}")
    G = spec_or_graph if isinstance(spec_or_graph, nx.MultiDiGraph) else build_graph(spec_or_graph)
    pos = graph_layout(G)
    strengths = dict(strengths or {})
    # Widths are relative within each edge kind (a rate constant and an affinity are not comparable).
    smax: dict[str, float] = {}
    for _u, _v, k, d in G.edges(keys=True, data=True):
        v = strengths.get(k)
        if v is not None and math.isfinite(v):
            kind = d.get("kind", "other")
            smax[kind] = max(smax.get(kind, 0.0), abs(v))

    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]
    width = max(xs) - min(xs) + 2.0
    height = max(ys) - min(ys) + 2.0
    scale = 1.3          # inches per layout unit
    legend_w = 2.3       # inches
    graph_w, graph_h = width * scale, height * scale + (0.4 if title else 0.0)
    fig_w = max(6.0, graph_w + legend_w)
    fig = new_figure((fig_w, max(3.0, graph_h)))
    ax_w = (fig_w - legend_w) / fig_w
    ax = fig.add_axes((0.0, 0.0, ax_w, (height * scale) / max(3.0, graph_h)))
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_xlim(min(xs) - 1.0, max(xs) + 1.0)
    ax.set_ylim(min(ys) - 1.0, max(ys) + 1.0)

    node_patches: dict[str, Any] = {}
    for n, data in G.nodes(data=True):
        style = NODE_STYLE.get(data.get("role", "other"), NODE_STYLE["other"])
        patch = _node_patch(pos[n], style)
        ax.add_patch(patch)
        node_patches[n] = patch
        ax.text(*pos[n], str(n), ha="center", va="center", fontsize=10, fontweight="bold", zorder=4)

    # Parallel edges between one pair of nodes fan out with different curvatures.
    pairs: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for u, v, k in G.edges(keys=True):
        pairs.setdefault(tuple(sorted((str(u), str(v)))), []).append((u, v, k))  # type: ignore[arg-type]
    placed: list[tuple[float, float]] = []      # edge-label positions so far (labels must not overlap)
    for (a, _b), edges in pairs.items():
        n_par = len(edges)
        for i, (u, v, k) in enumerate(edges):
            data = G.edges[u, v, k]
            style = _edge_style(data.get("kind", "other"))
            s = strengths.get(k)
            lw = 1.4
            alpha = 0.9
            if s is not None and math.isfinite(s):
                top = smax.get(data.get("kind", "other"), 0.0)
                lw = 0.8 + 3.2 * (math.sqrt(abs(s) / top) if top > 0 else 0.0)
                if s == 0:
                    alpha = 0.25
            if u == v:
                _self_loop(ax, pos[u], NODE_STYLE.get(G.nodes[u].get("role", "other"), NODE_STYLE["other"]),
                           style, lw, alpha)
                continue
            rad = 0.0 if n_par == 1 else 0.22 * (i - (n_par - 1) / 2)
            if u != a:
                rad = -rad
            if style["arrow"] == "bar":
                arrowstyle = patches.ArrowStyle("-[", widthB=4.0 + lw, lengthB=0.0)
            else:
                arrowstyle = patches.ArrowStyle("-|>", head_length=4 + lw, head_width=2.2 + 0.8 * lw)
            arrow = patches.FancyArrowPatch(pos[u], pos[v], patchA=node_patches[u], patchB=node_patches[v],
                                            arrowstyle=arrowstyle, connectionstyle=f"arc3,rad={rad}",
                                            color=style["color"], linestyle=style["linestyle"], linewidth=lw,
                                            alpha=alpha, shrinkA=2, shrinkB=3, mutation_scale=1.0, zorder=2)
            ax.add_patch(arrow)
            if s is not None and s != 0:
                lx, ly = label_point(pos[u], pos[v], rad, placed)
                placed.append((lx, ly))
                ax.text(lx, ly, f"{s:.3g}", fontsize=7, ha="center", va="center", color=style["color"], zorder=5,
                        bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none",
                              "alpha": 0.8})

    handles: list[Any] = []
    roles = {d.get("role", "other") for _n, d in G.nodes(data=True)}
    markers = {"circle": "o", "square": "s", "hexagon": "h", "ellipse": "o"}
    for role, st in NODE_STYLE.items():
        if role in roles:
            handles.append(Line2D([], [], linestyle="", marker=markers[st["shape"]], markersize=11,
                                  markerfacecolor=st["face"], markeredgecolor=st["edge"], label=st["label"]))
    kinds = {d.get("kind", "other") for _u, _v, d in G.edges(data=True)}
    kinds = {k if k in EDGE_STYLE else "other" for k in kinds}
    for kind, st in EDGE_STYLE.items():
        if kind in kinds:
            marker = "|" if st["arrow"] == "bar" else ">"
            handles.append(Line2D([], [], color=st["color"], linestyle=st["linestyle"], linewidth=1.6,
                                  marker=marker, markevery=[1], markersize=8, label=st["label"]))
    if handles:
        fig.legend(handles=handles, loc="center left", bbox_to_anchor=(ax_w, 0.5), frameon=False, fontsize=9,
                   handlelength=2.6)
    if title is None:
        title = G.graph.get("name")
    if title:
        fig.suptitle(title, fontsize=12)
    save_figure(fig, path, dpi=120, tight=False)


def _self_loop(ax: Any, xy: tuple[float, float], node_style: dict[str, Any], style: dict[str, Any], lw: float,
               alpha: float) -> None:
    from matplotlib import patches

    r = node_style["size"]
    start = (xy[0] - 0.5 * r, xy[1] + 0.9 * r)
    end = (xy[0] + 0.5 * r, xy[1] + 0.9 * r)
    arrowstyle = "-[" if style["arrow"] == "bar" else "-|>"
    ax.add_patch(patches.FancyArrowPatch(start, end, connectionstyle="arc3,rad=-1.6", arrowstyle=arrowstyle,
                                         mutation_scale=8, color=style["color"], linestyle=style["linestyle"],
                                         linewidth=lw, alpha=alpha, zorder=2))
