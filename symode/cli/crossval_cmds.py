"""The crossval command: leave one data file out, fit the others, predict the held-out file."""

from __future__ import annotations

import argparse
from pathlib import Path

from symode.cli.common import add_params_option, add_scheduler_option, add_spec_argument, echo, load_spec_with_params
from symode.errors import SymodeError


def run_crossval(args: argparse.Namespace) -> int:
    from symode.cli.fit_cmds import apply_penalty_options
    from symode.fit.crossval import crossval
    from symode.spec.data import read_csv

    spec = apply_penalty_options(load_spec_with_params(args.spec, args.params), args)
    if args.max_iter is not None and args.max_iter < 1:
        raise SymodeError("--max-iter must be >= 1")
    if args.max_time is not None and args.max_time <= 0:
        raise SymodeError("--max-time must be positive")
    grid = None
    if args.penalty_grid:
        try:
            grid = [float(v) for v in args.penalty_grid.split(",") if v.strip()]
        except ValueError:
            raise SymodeError(f"--penalty-grid {args.penalty_grid!r}: expected numbers M1,M2,...") from None
    if args.inner_max_iter is not None and args.inner_max_iter < 1:
        raise SymodeError("--inner-max-iter must be >= 1")
    data = [read_csv(p) for p in args.data]
    res = crossval(spec, data, args.output, x0=args.x0, init=args.init, max_iter=args.max_iter or 400,
                   max_time=args.max_time or 1800.0, shooting=args.shooting, offset=args.offset,
                   workers=args.workers, penalty_grid=grid, inner=args.inner, inner_max_iter=args.inner_max_iter,
                   progress=not args.quiet)
    width = max(len(f["stem"]) for f in res["folds"])
    echo(f"held-out {'':<{max(width - 8, 0)}} RMSE    training mean   status")
    for f in res["folds"]:
        rmse = "-" if f.get("rmse") is None else f"{f['rmse']:.3f}"
        mean = "-" if f.get("training_mean_rmse") is None else f"{f['training_mean_rmse']:.3f}"
        extra = "" if f["status"] == "ok" else f" ({f['message']})"
        if "penalty_multiplier" in f:
            inner = ", ".join(f"{m}: {'-' if v is None else f'{v:.3f}'}" for m, v in f["inner_scores"].items())
            extra += f"  penalty x{f['penalty_multiplier']:g} (inner {inner})"
        echo(f"{f['stem']:<{max(width, 8)}} {rmse:>6}  {mean:>13}   {f['status']}{extra}")
    mean = "-" if res["mean_rmse"] is None else f"{res['mean_rmse']:.3f}"
    ref = "-" if res["mean_training_mean_rmse"] is None else f"{res['mean_training_mean_rmse']:.3f}"
    both = res.get("mean_combined_rmse")
    ref += "" if both is None else f"; the model and the training mean averaged: {both:.3f}"
    echo(f"mean RMSE of log10(x + {args.offset:g}): {mean} (training-mean trajectory: {ref}); "
         f"{len(res['failures'])} failure(s) of {len(res['folds'])} folds; {res['wall_time_s']:.0f} s")
    echo(f"wrote {Path(args.output) / 'crossval.json'} and a prediction.csv per held-out file")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add crossval to the ``symode`` parser."""
    from symode.cli.fit_cmds import add_experiment_options

    p = sub.add_parser("crossval", help="leave-one-file-out cross-validation of a fit",
                       description="For every data file: fit the spec to the other files (shared parameters, "
                                   "initial states per --x0), predict the held-out file from its first sample "
                                   "with the inputs of its own file, and score the RMSE of log10(x + OFFSET) over "
                                   "its samples after the first (states observed directly). Writes "
                                   "OUT/<file stem>/prediction.csv (time + one column per state; empty after a "
                                   "blow-up), OUT/<file stem>/parameters.json and OUT/crossval.json (per-fold "
                                   "scores, the training-mean trajectory's score, failures). A prediction that "
                                   "blows up or a fit that fails is a reported failure; the folds run in "
                                   "parallel.")
    add_spec_argument(p)
    p.add_argument("--data", required=True, action="append", metavar="CSV",
                   help="data file (repeat; at least 2)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    add_params_option(p, "params file with starting values")
    add_experiment_options(p, x0="first-sample")
    p.add_argument("--max-time", type=float, default=None, metavar="S", help="time limit per fold's fit (s; 1800)")
    p.add_argument("--shooting", choices=("auto", "single", "multiple"), default="single",
                   help="as in fit (default single)")
    p.add_argument("--offset", type=float, default=1e-5, help="score offset: log10(x + OFFSET) (default 1e-5)")
    p.add_argument("--penalty-grid", metavar="M1,M2,...",
                   help="choose the penalty strength per fold: multipliers of every penalty scale (larger = weaker), "
                        "the one with the lowest mean error of an inner leave-one-file-out loop on the fold's "
                        "training files (e.g. 0.3,1,3; reported per fold)")
    p.add_argument("--inner", choices=("fit", "gradient-matching"), default="fit",
                   help="the inner loop's estimator: fit (ODE fits, as the outer folds; default) or gradient-matching "
                        "(gLV-type specs: a regression per inner fold, seconds instead of minutes)")
    p.add_argument("--inner-max-iter", type=int, metavar="N", help="iterations of an inner fit (default --max-iter)")
    p.add_argument("--workers", type=int, metavar="N", help="processes for the folds (default: all cores)")
    add_scheduler_option(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_crossval)
