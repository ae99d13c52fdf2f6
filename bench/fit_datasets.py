"""Fit time and quality of the whole ``symode fit`` command on chemostat data sets made like the
development sets at other true parameters (build for the class, not for two files).

    python3 bench/fit_datasets.py [--out DIR] [--sets original-xs,original-hplc,mid-hplc]
                                  [--shared DIR] [--baseline SRC] [--repeat N] [--json FILE]

Data sets (generated into ``--out``, default a temporary directory; never committed): 90 days, X and S
every 15 min (2% + 0.01 noise), A and B every 2 h (5% + 0.002) where the spec observes them, D(t) = 0.25
+ slow fluctuations of SD 0.01 (``symode.solve.synth``), the specs' initial states, one seed each:

- ``original-xs``: specs/chemostat.yaml (X, S) at the original study's true parameters;
- ``original-hplc``: specs/chemostat-hplc.yaml (X, S, A, B) at the same values;
- ``mid-hplc``: specs/chemostat-hplc.yaml at the geometric mean of those values and chemostat-dev's;

plus the shared chemostat-dev and chemostat-dev-hplc if ``--shared`` (default ``$SYMODE_SHARED_DATA`` or
../shared/data) holds them. Each case runs ``python3 -m symode fit SPEC --data CSV -o OUT`` as a child
process (start-up, report and plots included) and reports its wall time, the CPU time of it and its worker
processes, and from fit.json: the objective against the truth's, the truths inside the 95% intervals, and
the identifiable flags against the Cramer-Rao bound at the truth (relative SE <= the fit's limit, the exact
symmetries removed). ``--baseline SRC``: the same commands with another source tree on PYTHONPATH (e.g. an
export of main), alternating with this tree's, and the ratios. Timing on a shared machine: compare CPU
seconds and ratios measured in the same run; the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from symode.examples.datasets import ORIGINAL_TRUE  # noqa: E402
from symode.fit import FitProblem  # noqa: E402
from symode.fit.problem import find_symmetries  # noqa: E402
from symode.fit.result import REL_SE_MAX  # noqa: E402
from symode.identifiability import cramer_rao  # noqa: E402
from symode.solve.model import build_model  # noqa: E402
from symode.solve.simulation import simulate  # noqa: E402
from symode.solve.synth import dataset_to_csv_text, make_dataset, noisy_observations, smooth_dilution  # noqa: E402
from symode.spec import load_spec  # noqa: E402
from symode.spec.data import read_csv  # noqa: E402

DEV_TRUE = {"gA": 0.5, "gB": 2.0, "vA": 0.0003, "vB": 0.006, "muA": 0.15, "muB": 0.5, "KA": 0.5, "IA": 50.0,
            "KB": 0.2, "IB": 2.0}
MID_TRUE = {k: float(np.sqrt(ORIGINAL_TRUE[k] * DEV_TRUE[k])) for k in ORIGINAL_TRUE}

#: name -> (spec under specs/, true parameters, noise seed)
SETS = {
    "original-xs": ("chemostat.yaml", ORIGINAL_TRUE, 101),
    "original-hplc": ("chemostat-hplc.yaml", ORIGINAL_TRUE, 102),
    "mid-hplc": ("chemostat-hplc.yaml", MID_TRUE, 103),
}
SHARED = {"chemostat-dev": "chemostat.yaml", "chemostat-dev-hplc": "chemostat-hplc.yaml"}
DAYS, DT_H, METABOLITE_EVERY = 90.0, 0.25, 8


def make_set(name: str, out: Path) -> tuple[Path, Path, dict]:
    """Simulate data set ``name`` into out/name/data.csv (+ truth.json); (spec, data, truth)."""
    spec_name, params, seed = SETS[name]
    spec_file = ROOT / "specs" / spec_name
    spec = load_spec(spec_file)
    model = build_model(spec)
    times = np.arange(0, round(DAYS * 24 / DT_H) + 1) * DT_H
    D = smooth_dilution(times, seed=seed, amplitude=0.01)
    constants = {n: p.value for n, p in spec.parameters.items() if not p.estimate}
    x0 = {n: s.x0 for n, s in spec.states.items()}
    states = simulate(model, times, inputs={"D": D}, params={**params, **constants}, x0=x0, rtol=1e-10,
                      atol=1e-12)
    every = {m: METABOLITE_EVERY for m in spec.observables if spec.states[m].role == "metabolite"}
    obs = noisy_observations(model, states, seed=seed, every=every)
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "data.csv").write_text(dataset_to_csv_text(make_dataset(times, {"D": D}, obs)))
    truth = {"parameters": dict(params), "constants": constants, "x0": x0, "seed": seed}
    (d / "truth.json").write_text(json.dumps(truth, indent=1))
    return spec_file, d / "data.csv", truth


def quality(spec_file: Path, data_file: Path, truth: dict, fit_json: Path) -> dict:
    """Objective vs the truth's, truths in the 95% intervals, flags vs the Cramer-Rao bound at the truth."""
    res = json.loads(fit_json.read_text())
    spec = load_spec(spec_file)
    model = build_model(spec)
    fp = FitProblem(model, [read_csv(data_file)])
    z = fp.z_from_values({**truth["parameters"]}, truth.get("x0"))
    L_true = fp.loss(z, check=False)
    _, J = fp.jacobian(z, gauge=False, rtol=fp.rtol)
    rel = cramer_rao(J, fp.names, fp.scales, fp.natural(z), symmetries=find_symmetries(model), rel_se_max=REL_SE_MAX)
    cr = {n for n, r in zip(fp.names, rel, strict=True) if not n.startswith("x0.") and r <= REL_SE_MAX}
    flags, cover = set(), []
    for n, t in truth["parameters"].items():
        if res["identifiable"].get(n):
            flags.add(n)
        iv = res["confidence_intervals"].get(n, {}).get("0.95")
        if iv is not None:
            lo, hi = iv
            cover.append((lo is None or lo <= t) and (hi is None or t <= hi))
    return dict(objective=res.get("objective"), truth_objective=L_true, converged=res.get("converged"),
                identifiable=sorted(flags), cramer_rao=sorted(cr), flags_agree=flags == cr,
                covered=f"{sum(cover)}/{len(cover)}", cut_short=[c.get("phase", "") + " " + c.get("name", "")
                                                                 for c in res.get("cut_short", [])],
                fit_wall=res.get("wall_time_s"))


def run_cli(src: Path, spec: Path, data: Path, out: Path) -> tuple[float, float]:
    """(wall, CPU of the command and its workers) of one ``symode fit``."""
    env = dict(os.environ, PYTHONPATH=str(src))
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "symode", "fit", str(spec), "--data", str(data), "-o", str(out)],
                          env=env, cwd=str(src), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"symode fit failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="where the data sets and fits go (default: a temporary directory)")
    ap.add_argument("--sets", default=",".join([*SETS, *SHARED]), help="comma-separated cases")
    ap.add_argument("--shared", default=os.environ.get("SYMODE_SHARED_DATA", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--baseline", default=None, help="another source tree to time the same commands with")
    ap.add_argument("--repeat", type=int, default=1, help="runs per case and tree (the median is reported)")
    ap.add_argument("--json", default=None, help="write every run here")
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="symode-fit-datasets-"))
    trees = [("new", ROOT)] + ([("baseline", Path(args.baseline).resolve())] if args.baseline else [])
    rows = []
    for name in [s for s in args.sets.split(",") if s]:
        if name in SETS:
            spec, data, truth = make_set(name, out)
        elif name in SHARED and (Path(args.shared) / name / "data.csv").exists():
            spec, data = ROOT / "specs" / SHARED[name], Path(args.shared) / name / "data.csv"
            truth = json.loads((Path(args.shared) / name / "truth.json").read_text())
        else:
            print(f"skipping {name}: no data", file=sys.stderr)
            continue
        runs: dict[str, list] = {t: [] for t, _ in trees}
        for k in range(args.repeat):
            for tree, src in (trees if k % 2 == 0 else trees[::-1]):
                load0 = os.getloadavg()[0]
                fit_out = out / f"fit-{name}-{tree}-{k}"
                wall, cpu = run_cli(src, spec, data, fit_out)
                q = quality(spec, data, truth, fit_out / "fit.json")
                run = dict(case=name, tree=tree, wall=wall, cpu=cpu, load=(load0, os.getloadavg()[0]), **q)
                print(json.dumps(run, default=str), flush=True)
                runs[tree].append(run)
        for rs in runs.values():
            med = sorted(rs, key=lambda r: r["wall"])[len(rs) // 2]
            rows.append(dict(med, wall=float(np.median([r["wall"] for r in rs])),
                             cpu=float(np.median([r["cpu"] for r in rs]))))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    print("\n| data set | tree | wall [s] | CPU [s] | objective (truth's) | truths in 95% intervals | identifiable "
          "| Cramer-Rao at the truth | agree | cut short | load before/after |")
    print("|---|---|---:|---:|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['tree']} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['objective']:.2f} "
              f"({r['truth_objective']:.2f}) | {r['covered']} | {', '.join(r['identifiable']) or '-'} | "
              f"{', '.join(r['cramer_rao']) or '-'} | {'yes' if r['flags_agree'] else 'no'} | "
              f"{', '.join(r['cut_short']) or '-'} | {r['load'][0]:.1f} / {r['load'][1]:.1f} |")
    if args.baseline:
        print("\n| data set | wall: new / baseline | CPU: new / baseline |")
        print("|---|---:|---:|")
        for name in dict.fromkeys(r["case"] for r in rows):
            a = next(r for r in rows if r["case"] == name and r["tree"] == "new")
            b = next(r for r in rows if r["case"] == name and r["tree"] == "baseline")
            print(f"| {name} | {a['wall'] / b['wall']:.2f} | {a['cpu'] / b['cpu']:.2f} |")
    print(f"\n(data and fits in {out})")


if __name__ == "__main__":
    main()
