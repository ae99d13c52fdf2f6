"""``symode petab ...`` and ``symode fit PROBLEM.yaml``: PEtab problems on the command line.

User errors (a malformed table, an unsupported SBML construct, a solver failure) print one located line
and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from symode.cli.common import add_scheduler_option, run_command
from symode.errors import SymodeError


def register_evaluate(sub: argparse._SubParsersAction) -> None:
    """Add ``evaluate`` to the ``symode petab`` command group."""
    e = sub.add_parser("evaluate", help="llh, chi2 (and gradient) of a PEtab problem",
                       description="Evaluate the PEtab log-likelihood (with the normalisation constants), chi2 and, "
                                   "with --gradient, d llh / d parameter on each estimated parameter's parameterScale, "
                                   "at the parameter table's nominal values (or at those of --parameters). With "
                                   "prior distributions (PEtab v2) also the log-prior and the unnormalised "
                                   "log-posterior.")
    e.add_argument("problem", help="PEtab problem YAML file (format_version 1 or 2.0.0)")
    e.add_argument("--parameters", metavar="TSV", help="PEtab parameter table (parameterId, nominalValue on the "
                                                       "linear scale) whose values override the problem's")
    e.add_argument("--gradient", action="store_true", help="also the gradient (compiled discrete adjoint)")
    e.add_argument("--json", metavar="OUT.json", help="write {llh, chi2, n_measurements, gradient, timings_s} "
                                                      "(with priors also log_prior, log_prior_terms, "
                                                      "unnorm_log_posterior, log_prior_gradient)")
    e.add_argument("--simulations", metavar="OUT.tsv", help="write the PEtab simulation table (the measurement "
                                                            "table's rows with a 'simulation' column)")
    e.add_argument("--no-validate", action="store_true", help="skip PEtab's linter")
    e.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from symode.io import atomic_write_json, atomic_write_text
    from symode.petab.objective import PetabObjective
    from symode.petab.problem import read_parameter_values

    t0 = time.perf_counter()
    obj = PetabObjective.from_yaml(args.problem, validate=not args.no_validate)
    build = time.perf_counter() - t0
    problem = obj.problem
    for w in problem.warnings:
        print(f"symode: warning: {w}", file=sys.stderr)
    theta = problem.theta(read_parameter_values(args.parameters, problem) if args.parameters else None)
    t1 = time.perf_counter()
    ev = obj.evaluate(theta)
    simulate = time.perf_counter() - t1
    gradient = None
    t_grad = None
    prior_gradient = None
    if args.gradient:
        t2 = time.perf_counter()
        ev_grad = obj.evaluate(theta, gradient=True)
        gradient, prior_gradient = ev_grad.gradient, ev_grad.log_prior_gradient
        t_grad = time.perf_counter() - t2
    n_exp, n_sim = len(problem.experiments), len(obj.experiments)
    runs = f"{n_exp} experiment{'s' * (n_exp != 1)}" + (f" solved as {n_sim} simulations" if n_sim < n_exp else "")
    print(f"{args.problem}: llh = {ev.llh:.10g}, chi2 = {ev.chi2:.10g}, {ev.n_measurements} measurements, {runs} "
          f"(build {build:.2f} s, simulate {simulate:.4f} s"
          + (f", gradient {t_grad:.4f} s)" if t_grad is not None else ")"), file=sys.stderr)
    if ev.log_prior is not None:
        print(f"  log-prior = {ev.log_prior:.10g}, unnormalised log-posterior = {ev.unnorm_log_posterior:.10g}",
              file=sys.stderr)
    if args.json:
        doc: dict = {"llh": _finite(ev.llh), "chi2": _finite(ev.chi2), "n_measurements": ev.n_measurements}
        if gradient is not None:
            doc["gradient"] = {k: _finite(float(v)) for k, v in zip(problem.estimated_ids, gradient, strict=True)}
        if ev.log_prior_terms is not None:
            doc["log_prior"] = _finite(float(ev.log_prior))
            doc["unnorm_log_posterior"] = _finite(float(ev.unnorm_log_posterior))
            doc["log_prior_terms"] = {k: _finite(v) for k, v in ev.log_prior_terms.items()}
            if prior_gradient is not None:
                doc["log_prior_gradient"] = {k: _finite(float(v)) for k, v in
                                             zip(problem.estimated_ids, prior_gradient, strict=True)}
        doc["timings_s"] = {"build": build, "simulate": simulate, "gradient": t_grad}
        atomic_write_json(args.json, doc)
        print(f"wrote {args.json}", file=sys.stderr)
    if args.simulations:
        atomic_write_text(args.simulations, obj.simulation_table(ev).to_csv(sep="\t", index=False))
        print(f"wrote {args.simulations}", file=sys.stderr)
    if gradient is None and not args.json:
        print(json.dumps({"llh": _finite(ev.llh), "chi2": _finite(ev.chi2), "n_measurements": ev.n_measurements}))
    return 0


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def is_petab_problem(path: str) -> bool:
    """Whether ``path`` is a PEtab problem file: a YAML file with ``format_version`` and ``problems`` (v1) or
    ``parameter_files`` (v2)."""
    p = Path(path)
    if p.suffix.lower() not in (".yaml", ".yml") or not p.is_file():
        return False
    try:
        from symode.spec import load_data_file

        doc = load_data_file(p)
    except Exception:   # not readable as data: not a PEtab problem (the spec loader will say why)
        return False
    return isinstance(doc, dict) and "format_version" in doc and ("problems" in doc or "parameter_files" in doc)


def fit_main(argv: Sequence[str]) -> int:
    """``symode fit PROBLEM.yaml -o OUT``: multistart fit of a PEtab problem."""
    parser = argparse.ArgumentParser(
        prog="symode fit", description="Fit a PEtab problem: multistart local fits (Latin hypercube in the "
                                       "parameter table's bounds, on the parameter scales), then the Fisher "
                                       "information at the best optimum (intervals, identifiability). Writes "
                                       "OUT/fit.json, OUT/parameters.tsv (a PEtab parameter table at the "
                                       "optimum), OUT/simulations.tsv and OUT/report.md. See docs/petab.md.")
    parser.add_argument("problem", help="PEtab problem YAML file")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--starts", type=int, default=20, metavar="N", help="number of starts (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the start design (default 0)")
    parser.add_argument("--method", choices=("scoring", "lm", "trf", "lbfgs"), default=None,
                        help="local method: scoring (Fisher scoring with Levenberg-Marquardt damping on the llh; "
                             "default), lm / trf (least squares with the noise term as residuals), lbfgs "
                             "(L-BFGS-B with adjoint gradients; default with Laplace noise)")
    parser.add_argument("--no-hierarchical", action="store_true",
                        help="optimise pure noise parameters numerically instead of analytically")
    parser.add_argument("--no-priors", action="store_true",
                        help="maximise the likelihood alone (by default a problem with prior distributions, "
                             "PEtab v2 or v1 objective priors, is fitted by its unnormalised log-posterior)")
    parser.add_argument("--escape-bounds", type=int, default=8, metavar="N",
                        help="a start whose optimum has parameters on bounds gets up to N more local fits with "
                             "those parameters moved to the other side of their box (default 8; 0: off)")
    parser.add_argument("--workers", type=int, default=None, metavar="N", help="processes (default: all CPUs)")
    add_scheduler_option(parser)
    parser.add_argument("--max-iter", type=int, default=300, help="iterations per local fit (default 300)")
    parser.add_argument("--max-time", type=float, default=600.0, help="seconds per local fit (default 600)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    args = parser.parse_args(list(argv))
    args.func = _fit
    return run_command(args)     # the starts on --scheduler / $SYMODE_SCHEDULER; user errors: one line, exit 2


def _fit(args: argparse.Namespace) -> int:
    from symode.io import atomic_write_json, atomic_write_text
    from symode.petab.fit import fit_petab
    from symode.petab.fit_result import render_report
    from symode.petab.objective import PetabObjective

    if args.starts < 1:
        raise SymodeError("--starts must be >= 1")
    obj = PetabObjective.from_yaml(args.problem)
    for w in obj.problem.warnings:
        print(f"symode: warning: {w}", file=sys.stderr)
    res = fit_petab(obj, n_starts=args.starts, seed=args.seed, method=args.method, workers=args.workers,
                    max_iter=args.max_iter, max_time=args.max_time, hierarchical=not args.no_hierarchical,
                    escape_bounds=args.escape_bounds, progress=not args.quiet, priors=not args.no_priors)
    out = Path(args.output)
    atomic_write_json(out / "fit.json", res.to_json())
    table = obj.problem.petab.parameter_df.copy()
    for pid, value in res.parameters.items():
        table.loc[pid, "nominalValue"] = value
    atomic_write_text(out / "parameters.tsv", table.to_csv(sep="\t"))
    ev = obj.evaluate(obj.problem.from_scaled(res.z))
    atomic_write_text(out / "simulations.tsv", obj.simulation_table(ev).to_csv(sep="\t", index=False))
    atomic_write_text(out / "report.md", render_report(res))
    n_best = res.n_reaching(res.objective, 0.1)
    posterior = f"log-posterior {res.objective:.6f}, " if res.log_prior is not None else ""
    print(f"fit: best {posterior}llh {res.llh:.6f} (chi2 {res.chi2:.6g}, {res.n_measurements} measurements); "
          f"{n_best} of {len(res.starts)} starts within 0.1 of it; {res.wall_time_s:.1f} s", file=sys.stderr)
    print(f"wrote {out / 'fit.json'}, {out / 'parameters.tsv'}, {out / 'simulations.tsv'}, {out / 'report.md'}",
          file=sys.stderr)
    return 0
