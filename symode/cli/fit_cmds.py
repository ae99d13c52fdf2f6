"""Commands that estimate parameters from data: fit, profile, train."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from symode.cli.common import (
    EXIT_INTERRUPTED,
    add_params_option,
    add_scheduler_option,
    add_spec_argument,
    build,
    echo,
    fmt_bound,
    load_spec_with_params,
    parse_names,
    read_data,
)
from symode.errors import SymodeError

CHECKPOINT_EVERY_S = 20.0  # a provisional fit.json of the best point so far, at most this often
SUMMARY_MAX_ROWS = 30      # more estimated parameters than this: a compact summary instead of the table


def apply_penalty_options(spec: Any, args: argparse.Namespace) -> Any:
    """The spec with ``--no-penalties`` / ``--penalty`` applied (a copy when changed)."""
    from symode.fit.penalty import parse_penalty_option

    if not args.no_penalties and not args.penalty:
        return spec
    spec = spec.copy()
    if args.no_penalties:
        spec.penalties = []
    spec.penalties += [parse_penalty_option(text, spec) for text in args.penalty or []]
    return spec


def _fit(args: argparse.Namespace, *, profile: bool) -> int:
    started = time.perf_counter()       # --max-time counts from here: reading the data and the build too
    from symode.fit import check_data, fit, provisional_result
    from symode.fit.experiments import experiment_x0
    from symode.report.fit import write_fit_json, write_outputs

    spec = apply_penalty_options(load_spec_with_params(args.spec, args.params), args)
    datasets = read_data(args.data, spec, check=check_data)
    if args.t_end is not None:
        datasets = [d.until(args.t_end) for d in datasets]
    if args.multistart < 0:
        raise SymodeError("--multistart must be >= 0")
    if args.max_iter is not None and args.max_iter < 1:
        raise SymodeError("--max-iter must be >= 1")
    if args.init != "spec":
        from symode.fit.gradient_matching import initial_spec

        spec = initial_spec(spec, datasets, args.init)
    spec, x0 = experiment_x0(spec, datasets, args.x0)
    out = Path(args.output)
    model = build(spec)
    last = [time.perf_counter()]

    def checkpoint(info) -> None:
        if time.perf_counter() - last[0] > CHECKPOINT_EVERY_S and info.stage == "single shooting":
            last[0] = time.perf_counter()
            write_fit_json(provisional_result(model, datasets, info, fixed=fixed), out / "fit.json")

    fixed = parse_names(args.fix)
    neural = set(spec.neural_weights)
    if neural and profile:
        echo("symode: warning: no profile likelihoods for a model with neural terms (--profile ignored)")
        profile = False
    if profile and args.analysis == "none":
        raise SymodeError("--profile needs the uncertainty analysis (not --analysis none)")
    extra = {} if args.max_iter is None else {"max_iter": args.max_iter}
    result = fit(model, datasets, method=args.method, multistart=args.multistart, shooting=args.shooting,
                 progress=not args.quiet, fixed=fixed, profile=profile, workers=args.workers,
                 seed=args.seed, max_time=args.max_time, callback=checkpoint, x0=x0, analysis=args.analysis,
                 started=started, **extra)
    files = write_outputs(result, out, report=not args.no_report)
    ident = result.identifiable
    n_id = sum(ident[n] for n in result.estimated_parameters)
    state = "converged" if result.converged else ("interrupted" if result.interrupted else "not converged")
    pen = f" (penalties {result.penalty:.6g})" if spec.penalties else ""
    echo(f"fit {state}: objective {result.objective:.6g}{pen} ({result.n_obs} observations), {result.iterations} "
         f"iterations, {result.wall_time_s:.1f} s; {n_id} of {len(result.estimated_parameters)} parameters "
         f"identifiable")
    shown = [n for n in result.estimated_parameters if n not in neural]
    if len(shown) < len(result.estimated_parameters):
        echo(f"  ({len(result.estimated_parameters) - len(shown)} neural-network weights not listed; see fit.json)")
    if len(shown) > SUMMARY_MAX_ROWS:
        for line in compact_summary(result, shown):
            echo(line)
    else:
        for n in shown:
            lo, hi = result.intervals[n]["0.95"]
            echo(f"  {n:>8s} = {result.parameters[n]:<12.5g} 95% [{fmt_bound(lo)}, {fmt_bound(hi)}]"
                 f"{'' if ident[n] else '  (not identifiable)'}")
    echo("wrote " + ", ".join(str(f) for f in files.values()))
    return EXIT_INTERRUPTED if result.interrupted else 0


def compact_summary(result: Any, names: list[str], top: int = 10) -> list[str]:
    """Counts and the top items of a large fit (the full table is in report.md and fit.json)."""
    spec = result.spec
    at_bound, zero = [], []
    for n in names:
        v, par = result.parameters[n], spec.parameters[n]
        tol = 1e-6 * max(1.0, abs(v))
        if (par.lower is not None and v - par.lower <= tol) or (par.upper is not None and par.upper - v <= tol):
            at_bound.append(n)
        if v == 0.0:
            zero.append(n)
    ident = [n for n in names if result.identifiable[n]]
    lines = [f"  {len(names)} parameters: {len(ident)} identifiable, {len(at_bound)} at a bound, "
             f"{len(zero)} exactly 0 (full table: report.md)"]
    if ident:
        lines.append(f"  identifiable: {', '.join(ident[:top])}{' ...' if len(ident) > top else ''}")
    if at_bound:
        lines.append(f"  at a bound: {', '.join(at_bound[:top])}{' ...' if len(at_bound) > top else ''}")
    strengths = {str(e.strength) for e in spec.interactions if e.prunable and isinstance(e.strength, str)}
    edges = sorted((n for n in names if n in strengths), key=lambda n: -abs(result.parameters[n]))
    if edges:
        lines.append(f"  largest of {len(edges)} prunable edge strengths: "
                     + ", ".join(f"{n} = {result.parameters[n]:.3g}" for n in edges[:top]))
    return lines


def run_fit(args: argparse.Namespace) -> int:
    return _fit(args, profile=args.profile)


def run_profile(args: argparse.Namespace) -> int:
    return _fit(args, profile=True)


def run_train(args: argparse.Namespace) -> int:
    from symode.hybrid import fit_hybrid, train, write_training

    spec = load_spec_with_params(args.spec, args.params)
    data = read_data(args.data, spec)[0]
    if args.optimizer == "lm":
        result = fit_hybrid(spec, data, holdout=args.holdout, time_limit=args.time_limit,
                            polish=max(args.polish, 1), log=echo)
    else:
        result = train(spec, data, holdout=args.holdout, optimizer=args.optimizer, max_iter=args.max_iter,
                       time_limit=args.time_limit, polish=args.polish, seed=args.seed, log=echo)
    path = write_training(result, args.output)
    echo(f"wrote {path} and {Path(args.output) / 'train.json'}")
    return 0


def _add_fit_arguments(p: argparse.ArgumentParser) -> None:
    add_spec_argument(p, "model spec (YAML); its values are the starting point")
    p.add_argument("--data", required=True, action="append", metavar="CSV",
                   help="data file (repeat for several experiments sharing the parameters)")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="output directory (fit.json, fitted.yaml, report.md, plots)")
    add_params_option(p, "params file with starting values (e.g. a previous fit.json)")
    p.add_argument("--t-end", type=float, metavar="T",
                   help="fit only the samples up to time T of every data file (a shorter window)")
    p.add_argument("--multistart", type=int, default=0, metavar="N",
                   help="N extra Latin-hypercube starts in the transformed box, in parallel (default 0)")
    p.add_argument("--method", choices=("lm", "trf", "lbfgs"), default="lm",
                   help="lm: Levenberg-Marquardt with geodesic acceleration and exact sensitivities (default); "
                        "trf: scipy's trust-region reflective; lbfgs: L-BFGS-B with adjoint gradients")
    p.add_argument("--shooting", choices=("auto", "single", "multiple"), default="auto",
                   help="auto: multiple shooting only if single shooting fails or stalls (default)")
    p.add_argument("--fix", metavar="NAMES", help="comma-separated parameters to hold at their values")
    p.add_argument("--workers", type=int, metavar="N",
                   help="processes for multi-start and profiles (default: all cores)")
    add_scheduler_option(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the multi-start design (default 0)")
    p.add_argument("--max-time", type=float, default=None, metavar="S",
                   help="time limit of the whole fit in seconds (default 600): the local fit and multi-start get up "
                        "to 3/4 of it, the uncertainty analysis the rest; checks that run out of time are "
                        "abandoned and listed in fit.json ('cut_short') and report.md. For a spec with neural terms "
                        "the limit of the whole training (default 600)")
    p.add_argument("--analysis", choices=("full", "fisher", "none"), default="full",
                   help="full: Fisher intervals and flags plus profile checks of doubtful Wald intervals "
                        "(default); fisher: Wald intervals only; none: no uncertainty analysis")
    p.add_argument("--no-report", action="store_true", help="skip report.md and the plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_experiment_options(p)


def add_experiment_options(p: argparse.ArgumentParser, *, x0: str = "spec") -> None:
    """--x0, --init, --max-iter, --penalty and --no-penalties of fit-like commands."""
    p.add_argument("--x0", choices=("spec", "first-sample", "estimate"), default=x0,
                   help=f"initial states per data file: spec (the spec's x0), first-sample (each observed state at "
                        f"its file's first sample, fixed) or estimate (from the first sample, estimated); default "
                        f"{x0}")
    p.add_argument("--init", choices=("spec", "gradient-matching"), default="spec",
                   help="starting values: spec (the spec's values, default) or gradient-matching (a penalised "
                        "regression of the data's log-differences on the per-capita rate terms, for gLV-type "
                        "models: docs/communities.md)")
    p.add_argument("--max-iter", type=int, default=None, metavar="N",
                   help="iterations per local fit (default 400)")
    p.add_argument("--penalty", action="append", metavar="TYPE:PATTERN=SCALE",
                   help="add a penalty on estimated parameters: ridge (Gaussian prior, sd SCALE) or l1 (Laplace, "
                        "scale SCALE); PATTERN: a name, a glob (a_*) or @prunable; e.g. ridge:@prunable=0.1; "
                        "or stability[:margin=M,weight=W,PATTERN...] on the glv interaction matrix "
                        "(repeatable; added to the spec's penalties)")
    p.add_argument("--no-penalties", action="store_true", help="drop the spec's penalties")


def register(sub: argparse._SubParsersAction) -> None:
    """Add fit, profile and train to the ``symode`` parser."""
    p = sub.add_parser("fit", help="fit parameters to data, with intervals and identifiability",
                       description="Fit the estimated parameters and initial states of a spec to one or more data "
                                   "files (shared parameters, own initial states), from the spec's values: "
                                   "Levenberg-Marquardt with exact sensitivities, multiple shooting as fallback, "
                                   "optional multi-start; then Fisher intervals, exact symmetries and an "
                                   "identifiable flag with a reason for every parameter. Writes fit.json, "
                                   "fitted.yaml and report.md atomically; Ctrl-C keeps the best point so far. "
                                   "A spec with neural terms is trained instead (warm starts, Levenberg-Marquardt "
                                   "over growing horizons, the best start polished; --multistart adds starts, "
                                   "--max-time limits the whole run), without intervals.")
    _add_fit_arguments(p)
    p.add_argument("--profile", action="store_true", help="also compute profile likelihoods (slower)")
    p.set_defaults(func=run_fit)

    p = sub.add_parser("profile", help="fit, then profile likelihood of every estimated parameter",
                       description="As 'symode fit --profile': fit, then re-optimise along each estimated "
                                   "parameter (profile likelihood) for likelihood-based intervals.")
    _add_fit_arguments(p)
    p.set_defaults(func=run_profile)

    p = sub.add_parser("train", help="train a hybrid (neural) model with adjoint gradients",
                       description="Train every estimated parameter of a spec, neural-network weights included "
                                   "(spec section 'neural'), on one data set: L-BFGS with discrete-adjoint gradients "
                                   "over growing time horizons, then Levenberg-Marquardt with exact residual "
                                   "Jacobians, with early stopping on a held-out final time block. Writes "
                                   "OUT/fitted.yaml (the spec with trained values) and OUT/train.json.")
    add_spec_argument(p)
    p.add_argument("--data", required=True, metavar="CSV", help="data file with inputs and observables")
    add_params_option(p, "params file with starting values")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    p.add_argument("--holdout", type=float, default=0.1, help="held-out final fraction of the time span (default 0.1)")
    p.add_argument("--optimizer", choices=("lbfgs", "adam", "lm"), default="lbfgs",
                   help="lbfgs (curriculum + LM polish; default), adam (minibatches of time windows) or lm "
                        "(what `symode fit` runs: warm-started multi-start Levenberg-Marquardt curriculum)")
    p.add_argument("--max-iter", type=int, default=2000, help="iterations (lbfgs) or epochs (adam) (default 2000)")
    p.add_argument("--polish", type=int, default=100,
                   help="max iterations of the final Levenberg-Marquardt polish (default 100; 0: none)")
    p.add_argument("--time-limit", type=float, default=780.0,
                   help="seconds before returning the best point (default 780)")
    p.add_argument("--seed", type=int, default=0, help="minibatch seed (adam; default 0)")
    add_scheduler_option(p)
    p.set_defaults(func=run_train)
