"""Fit outputs: ``fit.json``, ``fitted.yaml`` and ``report.md`` with PNG plots beside it (all atomic)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from symode.io import atomic_write_json, atomic_write_text
from symode.spec.schema import dump_spec
from symode.viz.plots import pyplot, save_figure


def write_fit_json(result: Any, path: str | Path) -> None:
    atomic_write_json(path, result.to_json())


def write_outputs(result: Any, outdir: str | Path, *, report: bool = True) -> dict[str, Path]:
    """Write fit.json, fitted.yaml and (optionally) report.md with its plots into ``outdir``."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"fit.json": out / "fit.json", "fitted.yaml": out / "fitted.yaml"}
    write_fit_json(result, files["fit.json"])
    dump_spec(result.fitted_spec(), files["fitted.yaml"])
    if report:
        try:
            files.update(write_report(result, out))
        except Exception as exc:  # a plotting failure must not lose the fit itself
            atomic_write_text(out / "report.md", f"# Fit report\n\nReport generation failed: {exc}\n")
            files["report.md"] = out / "report.md"
    return files


def _trajectories(result: Any) -> list[tuple[Any, Any]]:
    """(dataset, fitted Trajectory) per experiment."""
    from symode.solve.model import build_model
    from symode.solve.simulation import simulate

    model = build_model(result.fitted_spec())
    out = []
    for k, data in enumerate(result.datasets):
        traj = simulate(model, data=data, params=result.parameters, x0=result.x0[k])
        out.append((data, traj))
    return out


def write_report(result: Any, out: Path) -> dict[str, Path]:
    plt = pyplot()
    files: dict[str, Path] = {}
    trajs = _trajectories(result)
    spec = result.spec
    obs = list(spec.observables)
    # -- data vs fit and residuals -------------------------------------------------------------------
    for k, (data, traj) in enumerate(trajs):
        suffix = "" if len(trajs) == 1 else f"_{k + 1}"
        scale, unit = (24.0, "d") if traj.times[-1] > 96 else (1.0, "h")
        fig, axes = plt.subplots(len(obs), 2, figsize=(12, 2.4 * len(obs)), squeeze=False, sharex=True)
        for i, name in enumerate(obs):
            y = traj.observables[name] if name in traj.observables else traj[name]
            col = data.columns[name]
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
        fig.suptitle(f"Data vs fit{'' if len(trajs) == 1 else f' (experiment {k + 1})'}")
        fig.tight_layout()
        p = out / f"fit_observables{suffix}.png"
        save_figure(fig, p)
        files[p.name] = p
        # hidden states
        states = traj.states
        fig, axes = plt.subplots(len(states), 1, figsize=(8, 1.8 * len(states)), squeeze=False, sharex=True)
        for i, s in enumerate(states):
            ax = axes[i, 0]
            ax.plot(traj.times / scale, traj[s], color="C0" if s in obs else "C1", lw=1.0)
            ax.set_ylabel(s + ("" if s in obs else " (hidden)"))
            ax.grid(alpha=0.3)
        axes[-1, 0].set_xlabel(f"time [{unit}]")
        fig.suptitle("Fitted states")
        fig.tight_layout()
        p = out / f"states{suffix}.png"
        save_figure(fig, p)
        files[p.name] = p
    # -- parameter intervals -------------------------------------------------------------------------
    iv = result.intervals
    ident = result.identifiable
    names = result.estimated_parameters
    if names:
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.2))
        for i, n in enumerate(names):
            v = result.parameters[n]
            for lev, lw, c in (("0.99", 1.0, "0.6"), ("0.95", 3.0, "C0" if ident[n] else "C3")):
                lo, hi = iv[n][lev]
                lo_r = (lo / v) if lo not in (None, 0) and v > 0 else 1e-4
                hi_r = (hi / v) if hi is not None and v > 0 else 1e4
                ax.plot([max(lo_r, 1e-4), min(hi_r, 1e4)], [i, i], color=c, lw=lw, solid_capstyle="butt")
            ax.plot([1.0], [i], "k|", ms=10)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels([f"{n}{'' if ident[n] else ' (not identifiable)'}" for n in names], fontsize=8)
        ax.set_xscale("log")
        ax.set_xlim(1e-4, 1e4)
        ax.set_xlabel("interval / estimate (95% thick, 99% thin; red: not identifiable)")
        ax.grid(alpha=0.3, axis="x")
        ax.invert_yaxis()
        fig.tight_layout()
        p = out / "intervals.png"
        save_figure(fig, p)
        files[p.name] = p
    if result.profiles:
        n = len(result.profiles)
        ncols = min(n, 3)
        nrows = math.ceil(n / ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3 * nrows), squeeze=False)
        for ax, prof in zip(axes.flat, result.profiles, strict=False):
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
        p = out / "profiles.png"
        save_figure(fig, p)
        files[p.name] = p
    text = render_report(result, trajs, files)
    atomic_write_text(out / "report.md", text)
    files["report.md"] = out / "report.md"
    return files


def _g(v: float | None) -> str:
    if v is None:
        return "open"
    if not np.isfinite(v):
        return "inf"
    return f"{v:.4g}"


def render_report(result: Any, trajs: list[tuple[Any, Any]], files: dict[str, Path]) -> str:
    L = [f"# Fit report: {result.spec.name}", ""]
    status = "converged" if result.converged else ("INTERRUPTED" if result.interrupted else "NOT converged")
    L.append(f"- status: **{status}** ({result.message}); {result.iterations} iterations, "
             f"{result.wall_time_s:.1f} s")
    L.append(f"- objective 1/2·Σr² = {result.objective:.6g} over {result.n_obs} observed values "
             f"(weighted SSR {2 * result.objective:.6g}; ≈ n/2 = {result.n_obs / 2:.0f} when the noise model "
             f"is right)")
    for s in result.stages:
        L.append(f"- stage {s['stage']}: objective {s['objective']:.6g}, {s['iterations']} iterations, "
                 f"{s['time_s']} s — {s['message']}")
    L.append("")
    iv, ident, reasons = result.intervals, result.identifiable, result.reasons()
    L += ["## Parameters", "", "| parameter | estimate | 95% interval | 99% interval | identifiable | reason |",
          "|---|---|---|---|---|---|"]
    for n in result.names:
        v = result.theta[result.names.index(n)]
        a, b = iv[n]["0.95"], iv[n]["0.99"]
        L.append(f"| {n} | {v:.4g} | [{_g(a[0])}, {_g(a[1])}] | [{_g(b[0])}, {_g(b[1])}] | "
                 f"{'yes' if ident[n] else '**no**'} | {reasons.get(n, '').replace('|', '/')} |")
    L.append("")
    if result.spread:
        L += ["## Multi-start", "",
              f"{len(result.multistart)} starts; those within χ²(1, 0.99)/2 = {3.317:.3g} of the best objective "
              "are statistically indistinguishable. Their range per parameter (included in the intervals):", ""]
        L += [f"- {n}: [{lo:.4g}, {hi:.4g}]" for n, (lo, hi) in result.spread.items()]
        L.append("")
    if result.fisher is not None:
        try:
            from symode.identifiability import render_markdown

            ranges = {s: (float(np.min(trajs[0][1][s])), float(np.max(trajs[0][1][s])))
                      for s in trajs[0][1].states} if trajs else None
            L.append(render_markdown(result.fisher, result.symmetries, result.profiles, spec=result.spec,
                                     state_ranges=ranges))
        except Exception as exc:  # pragma: no cover - report section is optional
            L.append(f"(identifiability section unavailable: {exc})")
    L += ["## Plots", ""]
    captions = {"fit_observables": "Data vs fit and weighted residuals", "states": "Fitted states (hidden ones in "
                "orange)", "intervals": "Parameter intervals relative to the estimate", "profiles": "Profile "
                "likelihoods (dashed: 95% and 99% thresholds)"}
    for name in files:
        if name.endswith(".png"):
            cap = next((c for k, c in captions.items() if name.startswith(k)), name)
            L += [f"![{cap}]({name})", ""]
    return "\n".join(L) + "\n"
