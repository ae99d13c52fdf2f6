"""The example command: write an example data set (spec, data, truth, hidden states)."""

from __future__ import annotations

import argparse

from symode.cli.common import echo
from symode.errors import SymodeError


def run_example(args: argparse.Namespace) -> int:
    from symode.examples.datasets import EXAMPLES, write_example

    if args.list:
        for ex in EXAMPLES.values():
            print(f"{ex.name:<16} {ex.description}")
        return 0
    if args.name is None:
        raise SymodeError(f"give an example name ({', '.join(EXAMPLES)}) or --list")
    if args.output is None:
        raise SymodeError("give the output directory with -o DIR")
    files = write_example(args.name, args.output, days=args.days)
    echo(f"wrote {', '.join(str(p) for p in files.values())}")
    echo(f"  e.g. symode simulate {files['spec']} --data {files['data']} --params {files['truth']} "
         f"-o traj.csv   # reproduces {files['states'].name}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add example to the ``symode`` parser."""
    from symode.examples.datasets import EXAMPLES

    listing = "; ".join(f"{e.name}: {e.description}" for e in EXAMPLES.values())
    p = sub.add_parser("example", help="write an example data set (spec, data, true parameters, hidden states)",
                       description="Simulate an example cultivation experiment with symode's own solver from a "
                                   "shipped spec and a fixed seed, and write DIR/spec.yaml (the model at its "
                                   "starting values), DIR/data.csv (time_h, the dilution rate D and the noisy "
                                   "observables), DIR/truth.json (true parameters, constants and initial states; "
                                   "usable as --params) and DIR/truth_states.csv (the exact hidden states). "
                                   f"Examples: {listing}.")
    p.add_argument("name", nargs="?", choices=list(EXAMPLES), metavar="NAME",
                   help=f"example data set: {', '.join(EXAMPLES)}")
    p.add_argument("-o", "--output", metavar="DIR", help="output directory (created)")
    p.add_argument("--days", type=float, metavar="D",
                   help="keep only the first D days of the experiment (default: all of it)")
    p.add_argument("--list", action="store_true", help="list the example data sets and exit")
    p.set_defaults(func=run_example)
