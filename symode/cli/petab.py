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

from symode.errors import SymodeError

EXIT_USAGE = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``symode petab`` (with ``evaluate``) to the top-level subcommands."""
    p = subparsers.add_parser("petab", help="PEtab problems (SBML model + tables): evaluate",
                              description="Read PEtab v1 problems (an SBML model and TSV tables of conditions, "
                                          "measurements, observables and parameters) and evaluate their "
                                          "log-likelihood with symode's compiled model. `symode fit PROBLEM.yaml` "
                                          "fits one. See docs/petab.md.")
    sub = p.add_subparsers(dest="petab_command", metavar="COMMAND", required=True)
    e = sub.add_parser("evaluate", help="llh, chi2 (and gradient) of a PEtab problem",
                       description="Evaluate the PEtab log-likelihood (with the normalisation constants), chi2 and, "
                                   "with --gradient, d llh / d parameter on each estimated parameter's parameterScale, "
                                   "at the parameter table's nominal values (or at those of --parameters).")
    e.add_argument("problem", help="PEtab problem YAML file (format_version 1)")
    e.add_argument("--parameters", metavar="TSV", help="PEtab parameter table (parameterId, nominalValue on the "
                                                       "linear scale) whose values override the problem's")
    e.add_argument("--gradient", action="store_true", help="also the gradient (compiled discrete adjoint)")
    e.add_argument("--json", metavar="OUT.json", help="write {llh, chi2, n_measurements, gradient, timings_s}")
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
    if args.gradient:
        t2 = time.perf_counter()
        gradient = obj.evaluate(theta, gradient=True).gradient
        t_grad = time.perf_counter() - t2
    print(f"{args.problem}: llh = {ev.llh:.10g}, chi2 = {ev.chi2:.10g}, {ev.n_measurements} measurements "
          f"(build {build:.2f} s, simulate {simulate:.4f} s"
          + (f", gradient {t_grad:.4f} s)" if t_grad is not None else ")"), file=sys.stderr)
    if args.json:
        doc: dict = {"llh": _finite(ev.llh), "chi2": _finite(ev.chi2), "n_measurements": ev.n_measurements}
        if gradient is not None:
            doc["gradient"] = {k: _finite(float(v)) for k, v in zip(problem.estimated_ids, gradient, strict=True)}
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
    """Whether ``path`` is a PEtab problem file (a YAML file with ``format_version`` and ``problems``)."""
    p = Path(path)
    if p.suffix.lower() not in (".yaml", ".yml") or not p.is_file():
        return False
    try:
        import yaml

        doc = yaml.safe_load(p.read_text())
    except Exception:  # noqa: BLE001 - not readable: not a PEtab problem (the spec loader reports it)
        return False
    return isinstance(doc, dict) and "problems" in doc and "format_version" in doc


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``symode petab`` command line (for tests and ``python -m``)."""
    parser = argparse.ArgumentParser(prog="symode")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SymodeError as exc:
        print(f"symode: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
