"""The ``symode`` command line: a thin layer over the Python API.

The top-level parser collects the command families listed in :data:`COMMAND_MODULES`; each is a module
with ``register(subparsers)`` (see :mod:`symode.cli.common`). To add a family, write such a module and
add its name here. User errors (bad spec, data, params or options) print one located line and exit
with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from symode import __version__
from symode.cli.common import run_command

#: Command families, in the order their commands appear in ``symode --help``.
COMMAND_MODULES: tuple[str, ...] = (
    "symode.cli.model_cmds",     # validate, graph, template, simulate, gradcheck, codegen
    "symode.cli.data_cmds",      # convert
    "symode.cli.fit_cmds",       # fit, profile, train
    "symode.cli.crossval_cmds",  # crossval
    "symode.cli.design_cmds",    # design
    "symode.cli.discover_cmds",  # discover
    "symode.cli.petab_cmds",     # petab evaluate, petab export
    "symode.cli.example",        # example
    "symode.cli.demo",           # demo
)


def build_parser() -> argparse.ArgumentParser:
    """The ``symode`` parser with every command family registered."""
    parser = argparse.ArgumentParser(
        prog="symode",
        description="Build, fit and simplify ODE models of microbial communities. Specs are YAML files; "
                    "`symode example --list` shows example data sets with their specs, `symode demo` runs one "
                    "end to end.",
        epilog="User errors exit with status 2 and one line naming the file, line and field. "
               "`symode COMMAND --help` describes each command.")
    parser.add_argument("--version", action="version", version=f"symode {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``symode`` with ``argv`` (default: the process arguments); returns the exit status."""
    from symode.cli import petab

    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 2 and argv[0] == "fit" and petab.is_petab_problem(argv[1]):
        return petab.fit_main(argv[1:])  # `symode fit PROBLEM.yaml`: a PEtab problem
    args = build_parser().parse_args(argv)
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
