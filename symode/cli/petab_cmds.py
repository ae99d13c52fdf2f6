"""``symode petab ...``: PEtab problems (an SBML model and TSV tables of conditions, observables,
measurements and parameters), the exchange format of parameter-estimation problems."""

from __future__ import annotations

import argparse

from symode.cli import petab, petab_export


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``petab`` command group and its subcommands to the ``symode`` parser."""
    p = sub.add_parser("petab", help="PEtab problems: evaluate, export (SBML + tables)",
                       description="PEtab, the exchange format of parameter-estimation problems (an SBML model "
                                   "and TSV tables of conditions, observables, measurements and parameters). "
                                   "`symode fit PROBLEM.yaml -o OUT` fits one. See docs/petab.md.")
    petab_sub = p.add_subparsers(dest="petab_command", metavar="SUBCOMMAND", required=True,
                                 help="what to do with a PEtab problem")
    petab.register_evaluate(petab_sub)
    petab_export.register(petab_sub)
