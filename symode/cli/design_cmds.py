"""The experiment-design command: design."""

from __future__ import annotations

import argparse

from symode.cli.common import add_scheduler_option, add_spec_argument, echo, parse_names
from symode.errors import SymodeError


def _positive(args: argparse.Namespace) -> None:
    for name, v in (("--d-min", args.d_min), ("--d-max", args.d_max), ("--days", args.days),
                    ("--segment-h", args.segment_h), ("--every", args.every), ("--time-limit", args.time_limit)):
        if not v > 0:
            raise SymodeError(f"{name} must be positive")
    if args.d_min >= args.d_max:
        raise SymodeError("--d-min must be below --d-max")


def _extra_noise(text: str) -> tuple[float, float]:
    try:
        rel, ab = (float(v) for v in text.split(","))
    except ValueError:
        raise SymodeError(f"--extra-noise {text!r}: expected REL,ABS (e.g. 0.05,0.002)") from None
    return rel, ab


def run_design(args: argparse.Namespace) -> int:
    from symode.design import Constraints, check_nominal, design_from_data, load_nominal, parse_budget, run_design
    from symode.report.design import write_design
    from symode.spec import load_spec

    if args.fit and args.params:
        raise SymodeError("give --fit or --params, not both")
    spec = load_spec(args.spec)
    params: dict[str, float] = {}
    x0: dict[str, float] = {}
    doc = None
    source = "the spec's values"
    nominal_file = args.fit or args.params
    if nominal_file:
        params, x0, doc = load_nominal(nominal_file)
        check_nominal(spec, params, x0, nominal_file)
        source = f"{'fit' if args.fit else 'params file'} {nominal_file}"
    budget_n, budget_h = parse_budget(args.budget)
    _positive(args)
    c = Constraints(d_min=args.d_min, d_max=args.d_max, max_step=args.max_step, floor_fraction=args.floor,
                    max_days=args.max_days if args.max_days is not None else max(args.days, 30.0),
                    budget_n=budget_n, budget_h=budget_h)
    extra_noise = _extra_noise(args.extra_noise)
    candidates = parse_names(args.candidates) if args.candidates is not None else None
    targets = parse_names(args.targets) or None
    reference = None
    if args.reference_data:
        from symode.spec.data import read_csv

        reference = design_from_data(read_csv(args.reference_data), spec.with_values(params, x0),
                                     label=f"experiment {args.reference_data}")
    log = None if args.quiet else (lambda msg: echo(f"  {msg}"))
    run = run_design(spec, params=params, x0=x0, nominal_source=source, fit_doc=doc, reference=reference,
                     constraints=c, candidates=candidates, extra_noise=extra_noise, every_h=args.every,
                     days=args.days, segment_h=args.segment_h, criterion=args.criterion, targets=targets,
                     target_rel_se=args.target_rel_se, time_limit=args.time_limit, n_random=args.random_baseline,
                     n_robust=args.robustness, seed=args.seed, progress=not args.quiet, log=log,
                     workers=args.workers)
    files = write_design(run, args.output)
    P = run.proposed
    echo(f"proposed: {P.design.duration_h / 24:g} d, measure {', '.join(P.design.extras)}; "
         f"D-criterion {P.criteria['D']:.4g} (before {run.reference.criteria['D']:.4g}"
         + (f", best random {run.best_random.criteria['D']:.4g}" if run.best_random else "") + "); "
         f"{P.n_good()} parameters below 10% relative SE (before {run.reference.n_good()})")
    echo(f"wrote {files['report']}, {files['design']}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add design to the ``symode`` parser."""
    p = sub.add_parser("design", help="optimal experiment design: what to measure and how to drive D(t)",
                       description="Fisher-information experiment design at nominal values (a fit.json, a params "
                                   "file or the spec's values): optimise a piecewise-constant dilution profile and "
                                   "the extra measurements within a budget for a D-, A-, E-optimal or target "
                                   "criterion, keeping the main culture above a floor; compare with the current "
                                   "experiment and random designs; check robustness to the nominal values. Writes "
                                   "OUTDIR/report.md, OUTDIR/design.json (inf relative SE as null) and plots.")
    add_spec_argument(p)
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    p.add_argument("--fit", metavar="FIT.json", help="nominal values (and their spread) from a `symode fit` result")
    p.add_argument("--params", metavar="FILE", help="nominal values from a params file (JSON/YAML)")
    p.add_argument("--reference-data", metavar="CSV",
                   help="the current experiment to compare with (default: the spec's observables at constant D)")
    p.add_argument("--days", type=float, default=30.0, help="experiment length in days (default 30)")
    p.add_argument("--max-days", type=float, help="longest admissible experiment (default max(30, --days))")
    p.add_argument("--segment-h", type=float, default=24.0, help="length of each constant-D segment (default 24 h)")
    p.add_argument("--d-min", type=float, default=0.05, help="lowest dilution rate (default 0.05 1/h)")
    p.add_argument("--d-max", type=float, default=0.3, help="highest dilution rate (default 0.3 1/h)")
    p.add_argument("--max-step", type=float, default=0.1,
                   help="largest change of D between consecutive segments (default 0.1 1/h)")
    p.add_argument("--floor", type=float, default=0.1,
                   help="main culture never below this fraction of its starting value (default 0.1)")
    p.add_argument("--every", type=float, default=0.25, help="sampling interval of the spec's observables (h)")
    p.add_argument("--budget", default="1/2h",
                   help="extra measurements: N/H = at most N extra measured quantities every H hours "
                        "(default 1/2h; 0 = none)")
    p.add_argument("--candidates", metavar="NAMES",
                   help="comma-separated states/observables that may be measured in addition (default: the "
                        "unobserved metabolites)")
    p.add_argument("--extra-noise", default="0.05,0.002", metavar="REL,ABS",
                   help="noise of the extra measurements (default 0.05,0.002)")
    p.add_argument("--criterion", choices=("D", "A", "E", "target"), default="D",
                   help="D-optimal (default), A-, E-optimal, or target: --targets below --target-rel-se")
    p.add_argument("--targets", metavar="NAMES", help="parameters for --criterion target (default: all)")
    p.add_argument("--target-rel-se", type=float, default=0.1, help="target relative SE (default 0.1)")
    p.add_argument("--time-limit", type=float, default=180.0, help="optimiser wall time in seconds (default 180)")
    p.add_argument("--random-baseline", type=int, default=50, metavar="N",
                   help="compare with N random admissible designs (default 50; 0: skip)")
    p.add_argument("--robustness", type=int, default=20, metavar="N",
                   help="parameter samples for the robustness check (default 20; 0: skip)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--workers", type=int, metavar="N",
                   help="processes for the batches of design evaluations (default: all cores; 1: none)")
    add_scheduler_option(p)
    p.set_defaults(func=run_design)
