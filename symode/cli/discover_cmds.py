"""The structure-discovery command: discover."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from symode.cli.common import add_params_option, add_scheduler_option, load_spec_with_params, read_data


def run_discover(args: argparse.Namespace) -> int:
    from symode.discover import BackwardElimination, ScreenRefit, ThresholdRefit, discover
    from symode.errors import SymodeError
    from symode.report.discover import write_discovery

    spec = load_spec_with_params(args.spec, args.params)
    if args.strategy == "threshold":
        strategy: BackwardElimination | ThresholdRefit | ScreenRefit = ThresholdRefit(threshold=args.threshold,
                                                                                      criterion=args.criterion)
    elif args.strategy == "screen":
        grid = _grid(args.penalty_grid) if args.penalty_grid else (1.0,)
        if args.penalty_grid and args.select == "criterion":
            raise SymodeError("--penalty-grid needs --select prediction or one-se")
        strategy = ScreenRefit(criterion=args.criterion, select="criterion" if args.select == "criterion" else
                               "prediction", rule="one-se" if args.select == "one-se" else "no-worse",
                               penalty_grid=grid)
    elif args.select != "criterion" or args.penalty_grid:
        what = f"--select {args.select}" if args.select != "criterion" else "--penalty-grid"
        raise SymodeError(f"{what} needs --strategy screen")
    else:
        strategy = BackwardElimination(criterion=args.criterion)
    data = read_data(args.data, spec)
    if args.t_end is not None:
        data = [d.until(args.t_end) for d in data]
    if not args.max_time > 0:
        raise SymodeError(f"--max-time must be positive (got {args.max_time})")
    if args.max_iter is not None and args.max_iter < 1:
        raise SymodeError(f"--max-iter must be at least 1 (got {args.max_iter})")
    t0 = time.perf_counter()
    res = discover(spec, data, strategy=strategy, outdir=args.output, workers=args.workers,
                   progress=not args.quiet, resume=not args.restart, budget=args.max_time, x0=args.x0,
                   max_iter=args.max_iter or 300, final_analysis=not args.no_analysis)
    write_discovery(res, args.output)
    out = Path(args.output)
    print(f"discover: kept {len(res.kept_edges)} edge(s), pruned {len(res.pruned_edges)} "
          f"({len(res.evaluated)} candidate fits, {time.perf_counter() - t0:.0f} s)")
    print("  kept: " + ", ".join(res.kept_edges))
    if res.budget_exhausted:
        print(f"discover: the time budget ({args.max_time:.0f} s) cut the search short: this is the best model "
              "so far", file=sys.stderr)
    if res.failed:
        print(f"discover: WARNING: {len(res.failed)} candidate fit(s) failed and were not kept (see "
              f"{out / 'report.md'})", file=sys.stderr)
    print(f"  wrote {out / 'discovery.json'}, {out / 'pruned.yaml'}, {out / 'report.md'}")
    return 0


def _grid(text: str) -> tuple[float, ...]:
    from symode.errors import SymodeError

    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise SymodeError(f"--penalty-grid {text!r}: expected numbers M1,M2,...") from None


def register(sub: argparse._SubParsersAction) -> None:
    """Add discover to the ``symode`` parser."""
    p = sub.add_parser("discover", help="fit a template with prunable edges and prune the edges the data do not need",
                       description="Structure discovery: fit the full community template (edges marked prunable, "
                                   "e.g. from `symode template`), remove insignificant edges by backward "
                                   "elimination (or thresholding), refit, and select the model by BIC/AICc. Writes "
                                   "OUTDIR/discovery.json, pruned.yaml, report.md; resumes from "
                                   "OUTDIR/discovery-checkpoint.json.")
    p.add_argument("spec", help="template spec (edges marked prunable)")
    p.add_argument("--data", required=True, action="append", metavar="CSV",
                   help="data file (repeat for several experiments sharing the parameters)")
    add_params_option(p, "parameter values overriding the spec's")
    p.add_argument("--t-end", type=float, metavar="T",
                   help="use only the samples up to time T of every data file (a shorter window)")
    p.add_argument("-o", "--output", default="discover-out", metavar="DIR", help="output directory")
    p.add_argument("--strategy", choices=("backward", "threshold", "screen"), default="backward",
                   help="backward elimination (default), sequential thresholding, or screen (for large templates "
                        "such as gLV: nested models of the edges with the largest effect sizes, n/2, n/4, ... kept)")
    p.add_argument("--criterion", choices=("bic", "aicc"), default="bic", help="selection criterion (default bic)")
    p.add_argument("--select", choices=("criterion", "prediction", "one-se"), default="criterion",
                   help="how --strategy screen picks the number of kept edges: criterion (BIC/AICc of a refit per "
                        "size; default), prediction (gLV-type templates: the sparsest set whose leave-one-file-out "
                        "prediction error by gradient matching is no worse than the full set's; one refit) or "
                        "one-se (the sparsest set within one standard error of the best set's error)")
    p.add_argument("--penalty-grid", metavar="M1,M2,...",
                   help="with --select prediction/one-se: score every set with each multiplier of the penalty "
                        "scales (larger = weaker) and count its best (e.g. 0.3,1,3)")
    p.add_argument("--threshold", type=float, default=3.0, help="Wald threshold of --strategy threshold (default 3)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="parallel candidate fits (default: all cores)")
    add_scheduler_option(p)
    p.add_argument("--max-time", type=float, default=3600.0, metavar="S",
                   help="time budget of the whole search in seconds (default 3600); when spent, the best model so "
                        "far is reported and marked as cut short")
    p.add_argument("--max-iter", type=int, default=None, metavar="N",
                   help="iterations per candidate fit (default 300)")
    p.add_argument("--x0", choices=("spec", "first-sample", "estimate"), default="spec",
                   help="initial states per data file: spec, first-sample (each observed state at its file's "
                        "first sample, fixed) or estimate (from there); default spec")
    p.add_argument("--no-analysis", action="store_true",
                   help="skip the final fit with uncertainty analysis of the selected model")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_discover)
