"""The structure-discovery command: discover."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from symode.cli.common import add_params_option, add_scheduler_option, load_spec_with_params, read_data


def run_discover(args: argparse.Namespace) -> int:
    from symode.discover import BackwardElimination, ThresholdRefit, discover
    from symode.report.discover import write_discovery

    spec = load_spec_with_params(args.spec, args.params)
    if args.strategy == "threshold":
        strategy: BackwardElimination | ThresholdRefit = ThresholdRefit(threshold=args.threshold,
                                                                         criterion=args.criterion)
    else:
        strategy = BackwardElimination(criterion=args.criterion)
    data = read_data(args.data, spec)
    if args.t_end is not None:
        data = [d.until(args.t_end) for d in data]
    t0 = time.perf_counter()
    res = discover(spec, data, strategy=strategy, outdir=args.output, workers=args.workers,
                   progress=not args.quiet, resume=not args.restart)
    write_discovery(res, args.output)
    out = Path(args.output)
    print(f"discover: kept {len(res.kept_edges)} edge(s), pruned {len(res.pruned_edges)} "
          f"({len(res.evaluated)} candidate fits, {time.perf_counter() - t0:.0f} s)")
    print("  kept: " + ", ".join(res.kept_edges))
    print(f"  wrote {out / 'discovery.json'}, {out / 'pruned.yaml'}, {out / 'report.md'}")
    return 0


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
    p.add_argument("--strategy", choices=("backward", "threshold"), default="backward",
                   help="backward elimination (default) or sequential thresholding")
    p.add_argument("--criterion", choices=("bic", "aicc"), default="bic", help="selection criterion (default bic)")
    p.add_argument("--threshold", type=float, default=3.0, help="Wald threshold of --strategy threshold (default 3)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="parallel candidate fits (default: all cores)")
    add_scheduler_option(p)
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_discover)
