"""Scaling of the parallel loops: wall time of a multistart fit and of a structure discovery on 1 and 2
local worker processes and on a 2-worker Dask LocalCluster (one run each, side by side, in this process),
and a projection to 8-256 workers from the measured job times.

Every :func:`symode.parallel.run_tasks` batch is recorded (:func:`symode.parallel.record_tasks`): its wall
time here and each job's time on its worker. Projection (Amdahl): the serial part s (wall time outside the
batches: loading, the fit from the spec's values, the analysis at the optimum, the search's bookkeeping)
plus, per batch of n jobs of mean time t and longest job t_max, max(t_max, ceil(n / W) * t), plus the
batch's overhead o (its wall time minus that bound at the workers it ran on: shipping the jobs, a worker's
first import of the job's module, fetching the results), taken as independent of W:

    T(W) = s + sum over batches of [max(t_max, ceil(n_b / W) * t_b) + o_b]

from the Dask run's records. Discovery fits its candidates in
batches of ``workers`` (the search width, which shapes the search): a search of width 2 cannot use more
than 2 workers, so the discovery is also run with a wide search (``--width``, default 8) on the 2-worker
cluster, and projected from that run.

The machine is shared: the load average before and after each run is printed with it; times are wall
times of one run each.

    python3 bench/scale.py [--only fit,discover] [--starts 8] [--days 2] [--width 8] [--json FILE]
    python3 bench/scale.py --write --from-json A.json [B.json ...]   # the table and plot into bench/README.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
PROJECTED = (1, 2, 8, 16, 32, 64, 128, 256)
DISCOVERY_TRUTH = {"prod:X->M1": {"v": 0.002}, "inhib:M1-|X": {"kappa": 0.5},
                   "uptake:M1->Y1": {"mu": 0.8, "K": 0.1, "g": 1.5}, "prod:Y1->M2": {"u": 0.1}}


# ----------------------------------------------------------------------------------------------------
# Workloads
# ----------------------------------------------------------------------------------------------------


def fit_workload(days: float, starts: int) -> tuple[str, Any]:
    """Model (1) (specs/chemostat.yaml, every parameter and initial state estimated) on ``days`` of X and
    S every 15 min from the spec's values, with ``starts`` Latin-hypercube starts."""
    from symode.fit import fit
    from symode.solve.model import build_model
    from symode.solve.simulation import simulate
    from symode.solve.synth import make_dataset, noisy_observations, smooth_dilution

    model = build_model(HERE.parent / "specs" / "chemostat.yaml")
    times = np.arange(0, int(days * 24 * 4) + 1) * 0.25
    D = smooth_dilution(times, seed=3, amplitude=0.05, min_period=6.0, max_period=48.0)
    truth = {"gA": 0.5, "gB": 2.0, "vA": 0.0003, "vB": 0.006, "muA": 0.15, "muB": 0.5, "KA": 0.5, "IA": 50.0,
             "KB": 0.2, "IB": 2.0}
    traj = simulate(model, times, inputs={"D": D}, params=truth)
    data = make_dataset(times, {"D": D}, noisy_observations(model, traj, seed=5))

    def run(workers: int) -> dict[str, Any]:
        res = fit(model, [data], multistart=starts, workers=workers, progress=False, seed=1, max_iter=100)
        return {"objective": float(res.objective), "starts": [float(s["objective"]) for s in res.multistart]}

    return f"multistart fit: model (1), {days:g} days, {starts} starts", run


def discover_workload(days: float) -> tuple[str, Any]:
    """Structure discovery on the 1-satellite x 2-metabolite template (synthetic, sparse truth)."""
    from symode.discover import discover, synthetic_case

    spec, data, _truth = synthetic_case(1, 2, DISCOVERY_TRUTH, days=days, seed=3, metabolite_every=4)

    def run(workers: int) -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as out:
            res = discover(spec, data, outdir=out, progress=False, workers=workers, final_analysis=False)
        return {"kept": sorted(res.kept_edges), "objective": float(res.selected.objective),
                "candidates": len(res.evaluated)}

    return f"discovery: 1x2 template, {days:g} days", run


# ----------------------------------------------------------------------------------------------------
# Measuring and projecting
# ----------------------------------------------------------------------------------------------------


def measure(run: Any, workers: int, scheduler: str | None, ran_on: int) -> dict[str, Any]:
    """One run of ``run(workers)`` on ``scheduler`` (None: local processes); ``ran_on``: the workers that
    ran the jobs."""
    from symode.parallel import record_tasks, use_scheduler

    load0 = os.getloadavg()[0]
    with use_scheduler(scheduler), record_tasks() as batches:
        t0 = time.perf_counter()
        outcome = run(workers)
        wall = time.perf_counter() - t0
    return {"wall_s": wall, "workers": ran_on, "load": [round(load0, 1), round(os.getloadavg()[0], 1)],
            "outcome": outcome,
            "batches": [{"name": b.name, "backend": b.backend, "n": len(b.task_s), "wall_s": b.wall_s,
                         "task_s": [None if math.isnan(t) else t for t in b.task_s]} for b in batches]}


def batch_bound(b: dict[str, Any], workers: int) -> float:
    """max(t_max, ceil(n / W) * t_mean) of a recorded batch."""
    times = [t for t in b["task_s"] if t is not None]
    return max(max(times), math.ceil(b["n"] / workers) * float(np.mean(times))) if times else 0.0


def overhead(run: dict[str, Any]) -> float:
    """Sum over batches of (wall time - bound at the run's workers)."""
    return sum(max(0.0, b["wall_s"] - batch_bound(b, run["workers"])) for b in run["batches"])


def project(run: dict[str, Any], workers: int) -> float:
    """T(W) = serial + sum over batches of [max(t_max, ceil(n / W) * t_mean) + overhead] (module docstring)."""
    return serial_part(run) + overhead(run) + sum(batch_bound(b, workers) for b in run["batches"])


def serial_part(run: dict[str, Any]) -> float:
    return run["wall_s"] - sum(b["wall_s"] for b in run["batches"])


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    import distributed

    from symode.parallel import default_workers

    only = set(args.only.split(","))
    workloads = []
    if "fit" in only:
        workloads.append(("fit", *fit_workload(args.days, args.starts), None))
    if "discover" in only:
        workloads.append(("discover", *discover_workload(args.discover_days), args.width))
    t0 = time.perf_counter()
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    cluster_start = time.perf_counter() - t0
    out: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "cpus": default_workers(),
                           "cluster_start_s": cluster_start, "workloads": {},
                           "command": "python3 bench/scale.py " + " ".join(
                               f"--{k.replace('_', '-')} {v}" for k, v in (("only", args.only), ("starts", args.starts),
                                                                          ("days", args.days),
                                                                          ("discover_days", args.discover_days),
                                                                          ("width", args.width)))}
    try:
        for key, label, run, width in workloads:
            runs = {}
            configs = [("local, 1 worker", 1, None), ("local, 2 workers", 2, None),
                       ("Dask, 2 workers", 2, cluster.scheduler_address)]
            if width:
                configs.append((f"Dask, 2 workers, width {width}", width, cluster.scheduler_address))
            for name, workers, scheduler in configs:
                runs[name] = measure(run, workers, scheduler, 2 if scheduler else workers)
                r = runs[name]
                print(f"{key}: {name}: {r['wall_s']:.1f} s (load {r['load'][0]} -> {r['load'][1]}), "
                      f"{sum(b['n'] for b in r['batches'])} jobs in {len(r['batches'])} batches; {r['outcome']}",
                      flush=True)
            out["workloads"][key] = {"label": label, "runs": runs, "width": width}
    finally:
        cluster.close()
    return out


# ----------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------


def basis(w: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The run the projection starts from: the wide search on the cluster if there is one, else the
    Dask run."""
    names = [n for n in w["runs"] if n.startswith("Dask")]
    name = names[-1]
    return name, w["runs"][name]


def table(results: dict[str, Any]) -> str:
    head = ["workload", "run", "wall [s]", "load", "jobs / batches", "mean job [s]", "serial [s]", "overhead [s]"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for w in results["workloads"].values():
        for name, r in w["runs"].items():
            times = [t for b in r["batches"] for t in b["task_s"] if t is not None]
            lines.append(f"| {w['label']} | {name} | {r['wall_s']:.1f} | {r['load'][0]}-{r['load'][1]} | "
                         f"{len(times)} / {len(r['batches'])} | {np.mean(times) if times else 0:.2f} | "
                         f"{serial_part(r):.1f} | {overhead(r):.1f} |")
    proj = ["| workload (projected from) | " + " | ".join(f"W={n}" for n in PROJECTED) + " |",
            "|---|" + "---|" * len(PROJECTED)]
    for w in results["workloads"].values():
        name, r = basis(w)
        proj.append(f"| {w['label']} ({name}) | " + " | ".join(f"{project(r, n):.0f}" for n in PROJECTED) + " |")
    return "\n".join(lines) + "\n\nProjected wall time [s] on W workers:\n\n" + "\n".join(proj)


def plot(results: dict[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.0))
    ax = fig.add_subplot()
    for w in results["workloads"].values():
        _name, r = basis(w)
        line, = ax.plot(PROJECTED, [project(r, n) for n in PROJECTED], marker="o", label=f"{w['label']} (model)")
        for run_name, run in w["runs"].items():
            n = 1 if "1 worker" in run_name else 2
            ax.plot([n], [run["wall_s"]], marker="x" if run_name.startswith("Dask") else "s", ms=8, ls="none",
                    color=line.get_color())
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("workers W")
    ax.set_ylabel("wall time [s]")
    ax.set_title("measured (squares: local, crosses: Dask) and projected", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_readme(results: dict[str, Any]) -> None:
    png = HERE / "scale.png"
    plot(results, png)
    runs = [r for w in results["workloads"].values() for r in w["runs"].values()]
    loads = [x for r in runs for x in r["load"]]
    command = results.get("command", "python3 bench/scale.py")
    section = (f"## scale\n\n`{command}` ({results['date']}, {results['cpus']}-core machine shared with "
               f"other jobs: load average {min(loads):.1f}-{max(loads):.1f} during the runs, so absolute times are "
               f"inflated and noisy): one run of each workload on 1 and 2 local worker processes and on a 2-worker "
               f"Dask LocalCluster (started in {results['cluster_start_s']:.1f} s, not counted). \"serial\" is the "
               "wall time outside the parallel batches, \"overhead\" the batches' wall time beyond max(longest job, "
               "ceil(n/W) x mean job) at the run's W workers (process or worker start-up, first imports, shipping "
               "jobs and results); the projection is T(W) = serial + overhead + sum over batches of "
               "max(longest job, ceil(n/W) x mean job), from the Dask run's job times. A multistart fit scales "
               "until every start has a worker (then the longest start and the serial fit from the spec's values "
               "remain); a discovery's batches are as wide as its search (`--workers`), so it is projected from a "
               "wide search.\n\n"
               + table(results) + "\n\n![scaling](scale.png)\n"
               + (f"\n{results['note']}\n" if results.get("note") else ""))
    readme = HERE / "README.md"
    text = readme.read_text()
    start = text.find("\n## scale\n")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start + 1] + section + (text[end:] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    readme.write_text(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="fit,discover")
    p.add_argument("--starts", type=int, default=8, help="multistart starts (default 8)")
    p.add_argument("--days", type=float, default=2.0, help="days of data of the fit (default 2)")
    p.add_argument("--discover-days", type=float, default=5.0, help="days of data of the discovery (default 5)")
    p.add_argument("--width", type=int, default=8, help="search width of the wide discovery run (0: none)")
    p.add_argument("--json", metavar="FILE", help="write the measurements here")
    p.add_argument("--from-json", nargs="+", metavar="FILE", help="report these measurements (merged)")
    p.add_argument("--write", action="store_true", help="write the scale section of bench/README.md")
    args = p.parse_args()
    if args.from_json:
        results: dict[str, Any] = {}
        for f in args.from_json:
            part = json.loads(Path(f).read_text())
            workloads = {**results.get("workloads", {}), **part["workloads"]}
            results = {**part, "workloads": workloads}
    else:
        results = run_all(args)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
    print(table(results))
    if args.write:
        write_readme(results)


if __name__ == "__main__":
    main()
