"""The example command: write an example data set (spec, data, truth, hidden states)."""

from __future__ import annotations

import argparse

from symode.cli.common import echo
from symode.errors import SymodeError


def _write_spec(name: str, output: str | None) -> int:
    import sys

    from symode.examples import spec_path
    from symode.io import atomic_write_text

    text = spec_path(name).read_text()
    if output in (None, "-"):
        sys.stdout.write(text)
    else:
        atomic_write_text(output, text)
        echo(f"wrote {output}")
    return 0


def run_example(args: argparse.Namespace) -> int:
    from symode.examples import spec_names, spec_path
    from symode.examples.datasets import EXAMPLES, write_example

    if args.list:
        print("example data sets (symode example NAME -o DIR):")
        for ex in EXAMPLES.values():
            print(f"  {ex.name:<16} {ex.description}")
        print("shipped specs (symode example --spec NAME [-o FILE]):")
        for name in spec_names():
            print(f"  {name:<16} {spec_path(name)}")
        return 0
    if args.spec is not None:
        if args.name is not None:
            raise SymodeError("give an example name or --spec, not both")
        return _write_spec(args.spec, args.output)
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
                                   "With --spec, write one of the shipped specs instead. "
                                   f"Examples: {listing}.")
    p.add_argument("name", nargs="?", choices=list(EXAMPLES), metavar="NAME",
                   help=f"example data set: {', '.join(EXAMPLES)}")
    p.add_argument("-o", "--output", metavar="DIR", help="output directory (created)")
    p.add_argument("--days", type=float, metavar="D",
                   help="keep only the first D days of the experiment (default: all of it)")
    p.add_argument("--spec", metavar="SPEC",
                   help="instead: write the shipped spec SPEC (e.g. chemostat-neural; see --list) to -o FILE or "
                        "standard output")
    p.add_argument("--list", action="store_true", help="list the example data sets and the shipped specs, and exit")
    p.set_defaults(func=run_example)
