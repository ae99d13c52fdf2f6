"""Fit outputs: ``fit.json``, ``fitted.yaml`` and ``report.md`` with PNG plots beside it (all atomic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from symode.identifiability import render_markdown
from symode.io import atomic_write_json, atomic_write_text
from symode.solve.model import build_model
from symode.solve.simulation import simulate
from symode.spec import dump_spec
from symode.viz.fit import plot_fit_observables, plot_fitted_states, plot_parameter_intervals, plot_profiles


def write_fit_json(result: Any, path: str | Path) -> None:
    """Write a FitResult as fit.json (atomically)."""
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


FINE_POINTS = 400   # model curves in the report's plots: this many points (plus the sample times)


def fine_inputs(spec: Any, data: Any, times: np.ndarray) -> dict[str, np.ndarray]:
    """The data's inputs on another time grid: piecewise constant (the value at the last sample at or
    before t) or linear, as the spec interpolates them."""
    from symode.spec.data import input_matrix

    values = input_matrix(spec, data, data.times)
    out = {}
    for name, v in values.items():
        if spec.inputs[name].interpolation == "linear":
            out[name] = np.interp(times, data.times, v)
        else:
            idx = np.clip(np.searchsorted(data.times, times, side="right") - 1, 0, len(v) - 1)
            out[name] = np.asarray(v, dtype=float)[idx]
    return out


def _trajectories(result: Any) -> list[tuple[Any, Any, Any]]:
    """(dataset, fitted Trajectory at the sample times, the same on a fine grid or None) per experiment."""
    model = build_model(result.fitted_spec())
    out = []
    for k, data in enumerate(result.datasets):
        traj = simulate(model, data=data, params=result.parameters, x0=result.x0[k])
        fine = None
        try:
            grid = np.union1d(np.linspace(data.times[0], data.times[-1], FINE_POINTS), data.times)
            fine = simulate(model, grid, inputs=fine_inputs(model.spec, data, grid), params=result.parameters,
                            x0=result.x0[k])
        except Exception:  # the fine curve is a nicety; the sample-time trajectory is what counts
            fine = None
        out.append((data, traj, fine))
    return out


def write_report(result: Any, out: Path) -> dict[str, Path]:
    """Write the plots (data vs fit, states, intervals, profiles) and report.md into ``out``."""
    files: dict[str, Path] = {}
    trajs = _trajectories(result)
    spec = result.spec
    obs = list(spec.observables)
    log_states = [o for o in obs if o in spec.states and spec.observables[o].transform == "log10"]
    for k, (data, traj, fine) in enumerate(trajs):
        suffix = "" if len(trajs) == 1 else f"_{k + 1}"
        p = out / f"fit_observables{suffix}.png"
        plot_fit_observables(p, spec, data, traj, f"Data vs fit{'' if len(trajs) == 1 else f' (experiment {k + 1})'}",
                             fine=fine)
        files[p.name] = p
        p = out / f"states{suffix}.png"
        plot_fitted_states(p, fine if fine is not None else traj, obs, time_column=data.time_column,
                           log_states=log_states)
        files[p.name] = p
    names = result.estimated_parameters
    if names:
        p = out / "intervals.png"
        plot_parameter_intervals(p, names, result.parameters, result.intervals, result.identifiable)
        files[p.name] = p
    if result.profiles:
        p = out / "profiles.png"
        plot_profiles(p, result.profiles)
        files[p.name] = p
    text = render_report(result, [(d, t) for d, t, _ in trajs], files)
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
    data_obj = result.objective - result.penalty
    L.append(f"- objective 1/2·Σr² = {data_obj:.6g} over {result.n_obs} observed values "
             f"(weighted SSR {2 * data_obj:.6g}; ≈ n/2 = {result.n_obs / 2:.0f} when the noise model "
             f"is right)")
    if result.spec.penalties:
        L.append(f"- penalties {result.penalty:.6g} ("
                 + ", ".join(f"{p.name}: {p.kind} on {len(p.parameters)} parameter(s)" for p in result.spec.penalties)
                 + f"); total objective {result.objective:.6g}")
    for st in getattr(result, "stability", []):
        held = "holds" if st["satisfied"] else "**does not hold** (the penalty is active)"
        L.append(f"- stability term '{st['name']}': lambda_max of the scaled interaction matrix's symmetric part "
                 f"{st['lambda_max']:.4g}; lambda_max <= -margin = {-st['margin']:.4g} {held}")
    for s in result.stages:
        L.append(f"- stage {s['stage']}: objective {s['objective']:.6g}, {s['iterations']} iterations, "
                 f"{s['time_s']} s — {s['message']}")
    if getattr(result, "analysis", "full") != "full":
        L.append(f"- analysis: {result.analysis} (no profile checks of borderline Wald intervals"
                 f"{'; no Fisher analysis' if result.analysis == 'none' else ''})")
    cut = getattr(result, "cut_short", [])
    if cut:
        L.append("- **cut short by the time limit** (--max-time):")
        for c in cut:
            what = f"{c['phase']}" + (f" of {c['name']}" if c.get("name") else "") + \
                   (f" ({c['sides']} side)" if c.get("sides") else "")
            L.append(f"  - {what}: {c['effect']}")
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
