"""``symode design`` outputs: ``report.md``, ``design.json`` and the plots beside them (all atomic)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from symode.design.experiment import base_measurements
from symode.design.optimise import option_label
from symode.design.problem import FLOOR_DT, GOOD_REL_SE
from symode.design.run import DesignRun
from symode.identifiability import fisher_analysis, render_markdown
from symode.io import atomic_write_json, atomic_write_text
from symode.viz.design import plot_inputs, plot_intervals, plot_predicted

__all__ = ["render_report", "write_design"]


def _fmt_rel(v: float) -> str:
    if v is None or not np.isfinite(v):
        return "inf"
    return f"{100 * v:.3g}%"


def render_report(run: DesignRun, *, figures: Mapping[str, str] | None = None) -> str:
    """The markdown report of a design run (``figures``: caption -> file name of the plots)."""
    pb, res, P, R = run.problem, run.result, run.proposed, run.reference
    c = pb.constraints
    crit = res.criterion
    names = pb.names
    br = run.best_random
    L = [f"# Experiment design for `{pb.spec.name}`", ""]
    L.append(f"Nominal values: {run.settings['nominal_source']}. Criterion: **{crit}**"
             + (f" (targets {', '.join(run.settings['targets']) or 'all'} below "
                f"{_fmt_rel(run.settings['target_rel_se'])})" if crit == "target" else "")
             + f". Optimised in {res.elapsed_s:.0f} s ({res.n_evaluations} Fisher-information evaluations).")
    L.append("")
    L.append(f"Constraints: at most {c.max_days:g} days; {pb.input_name} piecewise constant on "
             f"{run.settings['segment_h']:g}-h segments in [{c.d_min:g}, {c.d_max:g}] 1/h, changing by at most "
             f"{c.max_step:g} 1/h between segments; {pb.floor_state} never below {c.floor_fraction:g} x its "
             f"starting value (checked every {FLOOR_DT:g} h of the predicted trajectory); at most {c.budget_n} "
             f"extra measured quantit{'y' if c.budget_n == 1 else 'ies'} every {c.budget_h:g} h, chosen among "
             f"{', '.join(pb.candidates) or 'none'} (noise {run.settings['extra_noise'][0]:g} relative + "
             f"{run.settings['extra_noise'][1]:g} absolute).")
    L.append("")
    L += ["## Proposed experiment", ""]
    d = P.design
    L.append(f"- duration: {d.duration_h / 24:g} days; x0: " + ", ".join(f"{k} = {v:.4g}" for k, v in d.x0.items()))
    L.append("- measurements: " + "; ".join(
        f"{m.name} every {m.every_h:g} h ({m.relative:g} relative + {m.absolute:g} absolute)" for m in d.measurements))
    L.append(f"- {pb.input_name}(t) levels (each for {run.settings['segment_h']:g} h): "
             + ", ".join(f"{v:.3f}" for v in d.d_values))
    L.append(f"- lowest predicted {pb.floor_state}: {P.min_floor_state:.4g} (floor {P.floor:.4g}); "
             f"constraints {'all satisfied' if P.feasible else 'VIOLATED: ' + '; '.join(P.violations)}")
    L.append("")
    if figures:
        L += [f"![{k}]({v})" for k, v in figures.items()]
        L.append("")
    L += ["## Criteria", "",
          "D: log det of the Fisher information of the log-parameters on the subspace free of the persistent "
          f"symmetries, with a weak prior (SE {pb.prior_se:g} in log units); higher is better. A: sum of "
          "predicted variances (lower is better). E: smallest eigenvalue (higher is better).", "",
          f"| design | D | A | E | parameters < {_fmt_rel(GOOD_REL_SE)} | constraints |", "|---|---|---|---|---|---|"]
    rows = [(f"before: {R.design.label}", R)] if R is not None else []
    rows.append(("proposed", P))
    if br is not None:
        rows.append((f"best of {len(run.random)} random admissible designs "
                     f"({option_label(br.design.measurements, base_measurements(pb.spec))})", br))
    if run.all_candidates is not None:
        rows.append(("proposed D(t) with all candidates measured (over budget; upper bound)", run.all_candidates))
    for lab, e in rows:
        n_good = e.n_good() if e.rel_se is not None else "—"
        L.append(f"| {lab} | {e.criteria['D']:.4g} | {e.criteria['A']:.4g} | {e.criteria['E']:.3g} | {n_good} | "
                 f"{'ok' if e.feasible else '; '.join(e.violations)} |")
    L.append("")
    if res.per_option:
        L.append("Best exact score per measurement plan: " + "; ".join(f"{k}: {v:.4g}" for k, v in
                                                                       res.per_option.items()) + ".")
        L.append("")
    L += ["## Predicted relative standard errors", "",
          "Cramer-Rao bounds at the nominal values (SE of log theta for log-scale quantities; inf: not "
          "determined — moved by an exact symmetry of the design's measurements or a flat direction).", ""]
    head = "| quantity | nominal | before | proposed |" + (" best random |" if br is not None else "")
    head += " best in any evaluated design |"
    L += [head, "|---|---|---|---|" + ("---|" if br is not None else "") + "---|"]
    best_any = run.settings.get("best_any", {})
    rb = R.rel_se_dict() if R is not None else {}
    rp = P.rel_se_dict()
    rr = br.rel_se_dict() if br is not None else {}
    for i, nm in enumerate(names):
        row = f"| {nm} | {pb.theta[i]:.4g} | {_fmt_rel(rb.get(nm, math.nan))} | **{_fmt_rel(rp[nm])}** |"
        if br is not None:
            row += f" {_fmt_rel(rr[nm])} |"
        row += f" {_fmt_rel(best_any.get(nm, math.nan))} |"
        L.append(row)
    L.append("")
    L += ["## Undetermined under every admissible design", "",
          f"Quantities moved by a symmetry that no admissible measurement breaks, and quantities whose relative "
          f"SE stays above 50% in all {run.settings.get('n_pool', 0)} designs evaluated (proposed, random, "
          f"constant extremes of D, and the proposed D(t) with every candidate measured at once):", ""]
    if run.undetermined:
        L += [f"- **{k}**: {v}" for k, v in run.undetermined.items()]
    else:
        L.append("None: every estimated quantity is determined by some admissible design.")
    L.append("")
    broken = [s for s in pb.symmetries([b.name for b in base_measurements(pb.spec)])
              if not any(_same_sym(s, q) for q in pb.persistent)]
    if broken:
        L += ["Symmetries of the current measurements that an admissible extra measurement breaks:", ""]
        for s in broken:
            L.append(f"- {s.description}: measure {', '.join(s.states)} to break it"
                     + (" (the proposed experiment does)" if set(s.states) & set(d.extras) else ""))
        L.append("")
    if run.robust_proposed is not None:
        rp_, rr_ = run.robust_proposed.summary(), (run.robust_reference.summary() if run.robust_reference else None)
        src = "the fit's 95% intervals" if run.settings.get("fit_spread") else "+-20% (log-normal SD 0.2)"
        L += ["## Robustness to the nominal values", "",
              f"{run.robust_proposed.n} parameter samples (log-normal, spread from {src}):", "",
              f"| design | {crit}-score p10 / p50 / p90 | culture above floor |", "|---|---|---|"]
        for lab, sm in (("proposed", rp_), ("before", rr_)):
            if sm is None:
                continue
            q = sm["score_p10_p50_p90"]
            L.append(f"| {lab} | {q[0]:.4g} / {q[1]:.4g} / {q[2]:.4g} | {100 * sm['feasible_fraction']:.0f}% |")
        L += ["", "Relative SE under the proposed experiment over the samples (p10 / p50 / p90):", ""]
        L += ["| quantity | p10 | p50 | p90 |", "|---|---|---|---|"]
        for nm, q in rp_["rel_se_p10_p50_p90"].items():
            L.append(f"| {nm} | {_fmt_rel(q[0])} | {_fmt_rel(q[1])} | {_fmt_rel(q[2])} |")
        L.append("")
    if P.J is not None:
        fa = fisher_analysis(P.J, names, P.theta, scales=pb.scales, n_obs=P.n_obs, loss=0.5 * P.n_obs,
                             symmetries=P.symmetries, rel_se_max=GOOD_REL_SE * 5)
        ranges = {s: (float(np.min(P.x[:, i])), float(np.max(P.x[:, i]))) for i, s in enumerate(pb.model.states)}
        L += ["## Predicted identifiability under the proposed experiment", "",
              "(Fisher analysis at the nominal values; identifiable combinations are eigenvectors of the "
              "information matrix.)", ""]
        L.append(render_markdown(fa, spec=pb.spec, state_ranges=ranges, heading="###"))
    return "\n".join(L) + "\n"


def _same_sym(a: Any, b: Any) -> bool:
    keys = set(a.exponents) | set(b.exponents)
    va = np.array([a.exponents.get(k, 0.0) for k in keys])
    vb = np.array([b.exponents.get(k, 0.0) for k in keys])
    return bool(abs(abs(va @ vb) - np.linalg.norm(va) * np.linalg.norm(vb)) < 1e-9)


def write_design(run: DesignRun, out: str | Path) -> dict[str, Path]:
    """Write OUTDIR/report.md, design.json and the plots (each atomically)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    P, R = run.proposed, run.reference
    plot_inputs(out / "design_D.png", P.design, R.design if R is not None else None, run.problem.constraints)
    plot_predicted(out / "predicted_trajectories.png", P, run.problem)
    before = R.rel_se if R is not None and R.rel_se is not None else np.full(len(run.problem.names), np.inf)
    plot_intervals(out / "predicted_intervals.png", run.problem.names, before, P.rel_se)
    figs = {"proposed D(t)": "design_D.png", "predicted trajectories": "predicted_trajectories.png",
            "predicted intervals before vs after": "predicted_intervals.png"}
    atomic_write_json(out / "design.json", run.document)
    atomic_write_text(out / "report.md", render_report(run, figures=figs))
    return {"report": out / "report.md", "design": out / "design.json",
            **{k: out / v for k, v in figs.items()}}
