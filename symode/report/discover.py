"""``symode discover`` outputs: ``discovery.json``, ``pruned.yaml``, ``report.md`` and the plots beside
them (selection path, graph before and after pruning), all written atomically."""

from __future__ import annotations

from pathlib import Path

from symode.discover.result import DiscoveryResult
from symode.io import atomic_write_json, atomic_write_text
from symode.spec import Spec
from symode.viz.discover import plot_selection_path
from symode.viz.graph import draw_graph

__all__ = ["render_report", "write_discovery"]


def _strengths(spec: Spec, params: dict[str, float]) -> dict[str, float]:
    """Interaction id -> the value of its strength parameter (fitted where given)."""
    return {e.id: float(params.get(e.strength, spec.parameters[e.strength].value))
            for e in spec.interactions if isinstance(e.strength, str) and e.strength in spec.parameters}


def write_discovery(res: DiscoveryResult, out: str | Path) -> dict[str, Path]:
    """Write OUTDIR/discovery.json, pruned.yaml, report.md, the selection-path plot and the graphs before
    and after pruning (each atomically)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": out / "discovery.json", "spec": out / "pruned.yaml", "report": out / "report.md",
             "path_plot": out / "selection_path.png", "graph_before": out / "graph_before.png",
             "graph_after": out / "graph_after.png"}
    atomic_write_json(files["json"], res.to_json())
    atomic_write_text(files["spec"], f"# Selected model of `symode discover` on {res.spec.name} "
                                     f"({len(res.kept_edges)} of {len(res.kept_edges) + len(res.pruned_edges)} "
                                     f"edges kept; fitted values).\n" + res.pruned_spec.to_yaml())
    plot_selection_path(res, files["path_plot"])
    full = res.path[0]
    draw_graph(res.spec, files["graph_before"], strengths=_strengths(res.spec, full.parameters),
               title=f"{res.spec.name}: full template fit")
    params = res.final_fit.parameters if res.final_fit is not None else res.selected.parameters
    draw_graph(res.pruned_spec, files["graph_after"], strengths=_strengths(res.pruned_spec, params),
               title=f"{res.spec.name}: selected model")
    atomic_write_text(files["report"], render_report(res))
    return files


def render_report(res: DiscoveryResult) -> str:
    """The markdown report of a discovery result."""
    lines = [f"# Structure discovery: {res.spec.name}", "",
             f"Strategy selected by {res.criterion.upper()}: kept {len(res.kept_edges)} edges, pruned "
             f"{len(res.pruned_edges)}; {len(res.evaluated)} candidate fits, {res.wall_time_s:.0f} s.", "",
             "Kept: " + ", ".join(f"`{e}`" for e in res.kept_edges), "",
             "Pruned: " + ", ".join(f"`{e}`" for e in res.pruned_edges), ""]
    if res.budget_exhausted:
        lines += [f"**The time budget ({res.budget_s:.0f} s) cut the search short**: this is the best model found "
                  "so far, not the end of the search.", ""]
    if res.failed:
        lines += [f"**{len(res.failed)} candidate fit(s) failed** (objective not finite after a retry with multiple "
                  "shooting); none of them was kept:", "", "| edges | reason |", "|---:|---|"]
        lines += [f"| {f['n_edges']} | {f['reason']} |" for f in res.failed]
        lines.append("")
    if res.notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in res.notes] + [""]
    if res.relabelling:
        lines += ["Satellites are exchangeable in the template (only X, S and metabolites are observed), so they were "
                  "renamed to the canonical order (numbered by the lowest-numbered metabolite they take up): "
                  + ", ".join(f"{a} -> {b}" for a, b in res.relabelling.items()) + ".", ""]
    lines += ["## Selection path", "", "![selection path](selection_path.png)", "",
              "| step | edges | objective | AICc | BIC |", "|---:|---:|---:|---:|---:|"]
    for i, c in enumerate(res.path):
        lines.append(f"| {i} | {len(c.edges)} | {c.objective:.6g} | {c.aicc:.6g} | {c.bic:.6g} |")
    lines += ["", "## Graph before pruning (full template fit)", "", "![before](graph_before.png)", "",
              "## Graph after pruning (selected model)", "", "![after](graph_after.png)", ""]
    if res.final_fit is not None:
        ident = res.final_fit.identifiable
        lines += ["## Parameters of the selected model", "", "| parameter | value | identifiable |",
                  "|---|---:|:---:|"]
        for n in res.final_fit.estimated_parameters:
            lines.append(f"| {n} | {res.final_fit.parameters[n]:.6g} | {'yes' if ident.get(n) else 'no'} |")
        lines.append("")
    return "\n".join(lines)
