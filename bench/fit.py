"""Fitting benchmark: the original study's approach vs a plain finite-difference least-squares baseline vs
``symode.fit`` on a chemostat data set (default ../shared/data/chemostat-dev), all from the spec's
starting values (the original study's, up to 100x off) and with the same wall-time budget (symode's).

- original: Adam on the raw parameters, loss on random 12-hour windows (48 samples), the window's start
  state from the observed X, S and the hidden Y, A, B of a simulation at the current parameters;
- fd-lsq: scipy.optimize.least_squares (trust-region reflective) on the raw parameters and x0 with a
  2-point finite-difference Jacobian;
- symode: ``symode.fit.fit`` (log transforms, exact sensitivities, geodesic LM, gauge fixing).

Prints a markdown table: final objective on the full data (1/2 weighted SSR), the objective at the true
parameters, median / max |log10(estimate / truth)| over the 10 parameters and over the identifiable ones
(as reported by symode), and the time. ``--write`` appends the table under "## fit" in bench/README.md.

    python bench/fit.py [--data DIR] [--write]

``--optimizers`` instead runs ``fit(method="lm")`` and ``fit(method="trf")`` (same exact residual Jacobians
from forward sensitivities, same log-parametrisation and gauge, the default shooting) side by side on
chemostat-dev (specs/chemostat.yaml), chemostat-dev-hplc (specs/chemostat-hplc.yaml) and a 2x3 template fit
(specs/community-2x3.yaml on community-dev): objective reached, local-optimisation and total wall time, CPU
time, iterations, residual and Jacobian evaluations, and the load average around each run (the machine is
shared). ``--write`` puts that table under "### LM vs TRF" in bench/README.md.

    python bench/fit.py --optimizers [--shared DIR] [--cases chemostat-dev,...] [--write]

``--breakdown`` runs ``symode.fit.fit`` (the defaults of ``symode fit``: intervals, flags, profile checks) on
chemostat-dev and chemostat-dev-hplc (``--cases`` may add original-xs, original-hplc, mid-hplc: the data sets
of bench/fit_datasets.py, generated into ``--sets-dir``) and prints where the time went (``result.timings``:
model build, symmetry detection, the local fit split into residual solves / sensitivities / linear algebra, stiff vs
non-stiff integration, multiple shooting, the Fisher analysis, profile checks), with wall and CPU time,
the objective against the truth's and the flags. ``--write`` puts the table under "### fit time
breakdown" in bench/README.md (``--label`` names the column set, e.g. "before" / "after").

    python bench/fit.py --breakdown [--cases chemostat-dev,original-hplc,...] [--sets-dir DIR] [--max-time S]
                                    [--write --label after]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from symode.fit import FitProblem, fit
from symode.solve.model import build_model
from symode.solve.sensitivity import Problem, loss_and_gradient
from symode.solve.simulation import simulate
from symode.spec.data import read_csv

ROOT = Path(__file__).resolve().parent.parent


class Budget(Exception):
    pass


def original(model, data, names, budget_s: float, seed: int = 0) -> dict[str, float]:
    """Adam on raw parameters over random 12 h windows (the original study's approach)."""
    rng = np.random.default_rng(seed)
    p = model.parameter_vector()
    idx = [model.parameters.index(n) for n in names]
    theta = p[idx].copy()
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    lr, b1, b2 = 1e-3, 0.9, 0.999
    t0 = time.perf_counter()
    step = 0
    best = (np.inf, theta.copy())
    full = Problem(model, data)
    hidden = None
    while time.perf_counter() - t0 < budget_s:
        step += 1
        pp = p.copy()
        pp[idx] = theta
        if step % 20 == 1:
            try:
                hidden = simulate(model, data=data, params=dict(zip(model.parameters, pp, strict=True)))
            except Exception:
                hidden = None
        t_start = rng.uniform(data.times[0], data.times[-1] - 12.0)
        prob = Problem(model, data, window=(t_start, t_start + 12.0))
        k = int(np.searchsorted(data.times, t_start))
        x0 = hidden.x[k].copy() if hidden is not None else model.x0_vector()
        for name in ("X", "S"):
            col = data.columns[name][k]
            if np.isfinite(col):
                x0[model.states.index(name)] = col
        try:
            g = loss_and_gradient(prob, params=pp, x0=x0, rtol=1e-6, atol=1e-8)
        except Exception:
            continue
        grad = g.grad_p[idx]
        if not np.all(np.isfinite(grad)):
            continue
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad**2
        theta = theta - lr * (m / (1 - b1**step)) / (np.sqrt(v / (1 - b2**step)) + 1e-8)
        theta = np.maximum(theta, 1e-8)
        if step % 50 == 0:
            pp[idx] = theta
            try:
                L = loss_and_gradient(full, params=pp).loss
            except Exception:
                continue
            if L < best[0]:
                best = (L, theta.copy())
    if not np.isfinite(best[0]):
        best = (np.nan, theta)
    return dict(zip(names, best[1], strict=True)), step


def fd_lsq(model, data, budget_s: float) -> tuple[dict[str, float], dict[str, float], int]:
    from scipy.optimize import least_squares

    fp = FitProblem(model, [data], rtol=1e-7, atol=1e-9)
    # raw parameters: undo the log transform
    z0 = fp.z_from_values()
    x_raw0 = fp.natural(z0)
    lb = np.array([u.lower if u.lower is not None else -np.inf for u in fp.unknowns])
    ub = np.array([u.upper if u.upper is not None else np.inf for u in fp.unknowns])
    t0 = time.perf_counter()
    best = [np.inf, x_raw0.copy()]
    nfev = [0]

    def fun(x):
        if time.perf_counter() - t0 > budget_s:
            raise Budget
        nfev[0] += 1
        z = np.array([np.log(max(v, 1e-300)) if s == "log" else v for v, s in zip(x, fp.scales, strict=True)])
        r = fp.residuals(z)
        L = 0.5 * float(r @ r)
        if L < best[0]:
            best[0], best[1] = L, x.copy()
        return r

    try:
        least_squares(fun, x_raw0, bounds=(lb, ub), jac="2-point", method="trf")
    except Budget:
        pass
    x = best[1]
    named = dict(zip(fp.names, x, strict=True))
    params = {n: v for n, v in named.items() if not n.startswith("x0.")}
    x0 = {n[3:]: v for n, v in named.items() if n.startswith("x0.")}
    return params, x0, nfev[0]


def objective(model, data, params, x0=None) -> float:
    try:
        return loss_and_gradient(Problem(model, data), params=model.parameter_vector(params),
                                 x0=model.x0_vector(x0)).loss
    except Exception:
        return float("nan")


def errors(params, truth, names) -> tuple[float, float]:
    if not names:
        return float("nan"), float("nan")
    e = [abs(np.log10(params[n] / truth[n])) for n in names]
    return float(np.median(e)), float(np.max(e))


#: (case, data directory under the shared data, spec) of the optimiser comparison
OPTIMIZER_CASES = [("chemostat-dev", "chemostat-dev", "chemostat.yaml"),
                   ("chemostat-dev-hplc", "chemostat-dev-hplc", "chemostat-hplc.yaml"),
                   ("2x3 template", "community-dev", "community-2x3.yaml")]


def _local_seconds(stages: list[dict]) -> float:
    return float(sum(s.get("time_s", 0.0) for s in stages))


def compare_optimizers(shared: Path, cases: list[str]) -> str:
    """fit(method="lm") vs fit(method="trf") per case, one after the other in this process."""
    rows = []
    for case, ddir, spec in OPTIMIZER_CASES:
        if cases and case not in cases:
            continue
        data = read_csv(shared / ddir / "data.csv")
        model = build_model(ROOT / "specs" / spec)
        truth_file = shared / ddir / "truth.json"
        L_true = float("nan")
        if spec.startswith("chemostat"):
            truth = json.loads(truth_file.read_text())
            L_true = objective(model, data, truth["parameters"], truth.get("x0"))
        for method in ("lm", "trf"):
            load0 = os.getloadavg()[0]
            w0, c0 = time.perf_counter(), time.process_time()
            res = fit(model, [data], method=method, progress=False)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            load1 = os.getloadavg()[0]
            fp = res.problem
            stages = "; ".join(f"{s['stage']}: {s['objective']:.6g} in {s.get('iterations', 0)} it, "
                               f"{s.get('time_s', 0):.0f} s" for s in res.stages)
            row = dict(case=case, method=method, objective=res.objective, truth=L_true, converged=res.converged,
                       local_s=_local_seconds(res.stages), wall_s=wall, cpu_s=cpu, iterations=res.iterations,
                       solves=fp.n_solves if fp else 0, jacobians=fp.n_jacobians if fp else 0,
                       load=(load0, load1), stages=stages, message=res.message)
            print(json.dumps(row, default=str), flush=True)
            rows.append(row)
    lines = ["| case | method | objective | at truth | converged | local fit wall [s] | total wall [s] | "
             "total CPU [s] | iterations | residual evals | Jacobians | load avg before/after |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['method']} | {r['objective']:.6g} | {r['truth']:.6g} | "
                     f"{'yes' if r['converged'] else 'no'} | {r['local_s']:.0f} | {r['wall_s']:.0f} | "
                     f"{r['cpu_s']:.0f} | {r['iterations']} | {r['solves']} | {r['jacobians']} | "
                     f"{r['load'][0]:.1f} / {r['load'][1]:.1f} |")
    lines += ["", "Stages:", ""]
    lines += [f"- {r['case']}, {r['method']}: {r['stages']}" for r in rows]
    return "\n".join(lines)


#: chemostat-dev and chemostat-dev-hplc from the shared data, and the data sets of bench/fit_datasets.py at
#: other true parameters (generated into a temporary directory when ``--sets-dir`` does not hold them)
BREAKDOWN_CASES = [*OPTIMIZER_CASES[:2], ("original-xs", "original-xs", "chemostat.yaml"),
                   ("original-hplc", "original-hplc", "chemostat-hplc.yaml"),
                   ("mid-hplc", "mid-hplc", "chemostat-hplc.yaml")]
DEFAULT_BREAKDOWN = ("chemostat-dev", "chemostat-dev-hplc")


def _case_dir(shared: Path, sets_dir: Path | None, ddir: str) -> Path:
    """The directory with data.csv and truth.json of a breakdown case (a generated set made on first use)."""
    if (shared / ddir / "data.csv").exists():
        return shared / ddir
    import tempfile

    from fit_datasets import make_set  # bench/ is this script's directory

    out = sets_dir if sets_dir is not None else Path(tempfile.mkdtemp(prefix="symode-breakdown-"))
    if not (out / ddir / "data.csv").exists():
        make_set(ddir, out)
    return out / ddir


def _cpu() -> float:
    """CPU seconds of this process and of its finished child processes (the fit's workers)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def breakdown(shared: Path, cases: list[str], max_time: float | None, sets_dir: Path | None = None
              ) -> tuple[str, list[dict]]:
    """One ``fit`` per case in this process; a table of ``result.timings`` per case."""
    runs = []
    for case, ddir, spec in BREAKDOWN_CASES:
        if case not in (cases or DEFAULT_BREAKDOWN):
            continue
        where = _case_dir(shared, sets_dir, ddir)
        data = read_csv(where / "data.csv")
        truth = json.loads((where / "truth.json").read_text())
        load0 = os.getloadavg()[0]
        w0, c0 = time.perf_counter(), _cpu()
        res = fit(ROOT / "specs" / spec, [data], progress=False, max_time=max_time)
        wall, cpu = time.perf_counter() - w0, _cpu() - c0
        model = res.problem.model
        L_true = objective(model, data, truth["parameters"], truth.get("x0"))
        cover = []
        for n in res.estimated_parameters:
            lo, hi = res.intervals[n]["0.95"]
            t = truth["parameters"].get(n)
            if t is not None:
                cover.append((lo is None or lo <= t) and (hi is None or t <= hi))
        run = dict(case=case, wall=wall, cpu=cpu, load=(load0, os.getloadavg()[0]), objective=res.objective,
                   truth=L_true, converged=res.converged, iterations=res.iterations,
                   identifiable=[n for n in res.estimated_parameters if res.identifiable[n]],
                   covered=f"{sum(cover)}/{len(cover)}", cut=[c["phase"] + (" " + c["name"] if c["name"] else "")
                                                            for c in res.cut_short],
                   profiles={p.name: {"evaluations": p.evaluations, "stop": p.stop, "decided": p.decided}
                             for p in res.profiles},
                   timings=res.timings)
        print(json.dumps(run, default=str), flush=True)
        runs.append(run)
    return breakdown_table(runs), runs


def breakdown_table(runs: list[dict]) -> str:
    from symode.timing import Timings

    tabs = []
    for r in runs:
        t = Timings()
        t.merge(r["timings"])
        for k in sorted(t.seconds, key=lambda k: -k.count("/")):    # a parent row for merged worker phases
            parent = k.rsplit("/", 1)[0] if "/" in k else None
            if parent and parent not in t.seconds and parent.endswith("workers"):
                kids = [c for c in t.seconds if c.startswith(parent + "/") and c.count("/") == k.count("/")]
                t.seconds[parent] = sum(t.seconds[c] for c in kids)
                t.cpu[parent] = sum(t.cpu.get(c, 0.0) for c in kids)
        tabs.append({k: (w, c, n) for k, w, c, n in t.table()})
    keys = sorted({k for tab in tabs for k in tab}, key=lambda k: k.split("/"))
    head = "| phase | " + " | ".join(f"{r['case']}: CPU [s] | wall [s] | calls" for r in runs) + " |"
    lines = [head, "|---|" + "---:|---:|---:|" * len(runs)]
    for k in keys:
        depth = k.count("/")
        cells = []
        for tab in tabs:
            w, c, n = tab.get(k, (0.0, None, 0))
            cells.append(f"{'' if c is None else f'{c:.2f}'} | {w:.2f} | {n or ''}")
        lines.append(f"| {'&nbsp;&nbsp;' * depth}{k.split('/')[-1]} | " + " | ".join(cells) + " |")
    lines.append("| **whole fit** (CPU: this process and its workers) | " +
                 " | ".join(f"**{r['cpu']:.1f}** | **{r['wall']:.1f}** | " for r in runs) + " |")
    lines += ["", "| case | objective | at truth | converged | iterations | identifiable | truths in 95% intervals "
              "| cut short | load avg before/after |", "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['case']} | {r['objective']:.6g} | {r['truth']:.6g} | {'yes' if r['converged'] else 'no'} "
                     f"| {r['iterations']} | {', '.join(r['identifiable']) or '-'} | {r['covered']} | "
                     f"{', '.join(r['cut']) or '-'} | {r['load'][0]:.1f} / {r['load'][1]:.1f} |")
    return "\n".join(lines)


def _write_section(marker: str, body: str) -> None:
    """Replace the block that starts with the heading ``marker`` ("## fit" or "### LM vs TRF") in
    bench/README.md up to the next heading, or add it (a "###" block at the end of "## fit")."""
    readme = ROOT / "bench" / "README.md"
    text = readme.read_text() if readme.exists() else "# Benchmarks\n"
    block = f"\n{marker}\n\n{body}\n"
    if f"\n{marker}\n" in text:
        head, rest = text.split(f"\n{marker}\n", 1)
        ends = [i for i in (rest.find("\n## "), rest.find("\n### ")) if i >= 0]
        text = head + block + (rest[min(ends):] if ends else "")
    elif marker.startswith("### ") and "\n## fit\n" in text:
        head, rest = text.split("\n## fit\n", 1)
        nxt = rest.find("\n## ")
        text = head + "\n## fit\n" + (rest[:nxt] + block + rest[nxt:] if nxt >= 0 else rest + block)
    else:
        text = text.rstrip("\n") + "\n" + block
    readme.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "chemostat-dev"))
    ap.add_argument("--spec", default=str(ROOT / "specs" / "chemostat.yaml"))
    ap.add_argument("--write", action="store_true", help="append the table to bench/README.md under '## fit'")
    ap.add_argument("--optimizers", action="store_true", help="LM vs TRF on three data sets (see above)")
    ap.add_argument("--shared", default=os.environ.get("SYMODE_SHARED_DATA", str(ROOT.parent / "shared" / "data")),
                    help="shared data directory (default $SYMODE_SHARED_DATA or ../shared/data)")
    ap.add_argument("--cases", default="", help="comma-separated subset of the --optimizers/--breakdown cases")
    ap.add_argument("--breakdown", action="store_true", help="where a fit's time goes, per data set (see above)")
    ap.add_argument("--max-time", type=float, default=None, help="--breakdown: fit(max_time=...)")
    ap.add_argument("--sets-dir", default=None, help="--breakdown: where the generated data sets (original-xs, "
                    "original-hplc, mid-hplc) are or go (default: a temporary directory)")
    ap.add_argument("--label", default="", help="--breakdown --write: a name for this table (e.g. before, after)")
    args = ap.parse_args()
    if args.breakdown:
        table, _runs = breakdown(Path(args.shared), [c for c in args.cases.split(",") if c], args.max_time,
                                 Path(args.sets_dir) if args.sets_dir else None)
        print(table)
        if args.write:
            when = time.strftime("%Y-%m-%d %H:%M")
            _write_section(f"### fit time breakdown{' (' + args.label + ')' if args.label else ''}",
                           f"`python3 bench/fit.py --breakdown --write` ({when}, 2-core machine shared with other "
                           f"work: compare shares and CPU time, not wall times across runs):\n\n{table}")
        return
    if args.optimizers:
        table = compare_optimizers(Path(args.shared), [c for c in args.cases.split(",") if c])
        print(table)
        if args.write:
            when = time.strftime("%Y-%m-%d %H:%M")
            _write_section("### LM vs TRF", f"`python3 bench/fit.py --optimizers --write` ({when}, 2-core shared "
                           f"machine; one process, the runs one after the other):\n\n{table}")
        return
    data = read_csv(Path(args.data) / "data.csv")
    truth = json.loads((Path(args.data) / "truth.json").read_text())
    model = build_model(args.spec)
    names = model.spec.estimated_parameters
    tp, tx = truth["parameters"], truth.get("x0")

    t0 = time.perf_counter()
    res = fit(model, [data], progress=False)
    t_sym = time.perf_counter() - t0
    ident = [n for n in names if res.identifiable[n]]
    rows = [("symode fit", objective(model, data, res.parameters, res.x0[0]), res.parameters, t_sym,
             f"{res.iterations} iterations")]
    t0 = time.perf_counter()
    p_adam, steps = original(model, data, names, t_sym)
    rows.append(("original (Adam, 12 h windows, raw params)", objective(model, data, p_adam), p_adam,
                 time.perf_counter() - t0, f"{steps} steps"))
    t0 = time.perf_counter()
    p_fd, x_fd, nfev = fd_lsq(model, data, t_sym)
    rows.append(("finite-difference least squares (raw params)", objective(model, data, p_fd, x_fd), p_fd,
                 time.perf_counter() - t0, f"{nfev} solves"))
    L_true = objective(model, data, tp, tx)
    lines = [f"Data: `{Path(args.data).name}` ({len(data.times)} samples), spec `{Path(args.spec).name}` from its "
             f"starting values; objective = 1/2 weighted SSR (at the true parameters: {L_true:.6g}). "
             f"Errors are |log10(estimate/truth)|: median / max over all 10 parameters, and over the "
             f"{len(ident)} that symode reports identifiable ({', '.join(ident)}).", "",
             "| method | objective | all params: median / max error | identifiable: median / max | time [s] | work |",
             "|---|---|---|---|---|---|"]
    for label, L, params, t, work in rows:
        a = errors(params, tp, names)
        b = errors(params, tp, ident)
        lines.append(f"| {label} | {L:.6g} | {a[0]:.2f} / {a[1]:.2f} | {b[0]:.3f} / {b[1]:.3f} | {t:.0f} | {work} |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        when = time.strftime("%Y-%m-%d")
        _write_section("## fit", f"`python bench/fit.py --write` ({when}, 2-core machine):\n\n{table}")

if __name__ == "__main__":
    main()
