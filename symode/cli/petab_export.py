"""``symode petab export``: write a spec and its data files as a PEtab v1 problem."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``export`` command to the subparsers of ``symode petab``."""
    p = subparsers.add_parser(
        "export", help="write a spec and its data as a PEtab v1 problem (SBML + tables)",
        description="Write a PEtab v1 problem for a spec and one or more data files: SBML Level 3 (states as "
                    "species with rate rules, inputs such as D(t) as piecewise functions of time with the data's "
                    "values), one condition per data file with its initial states, the spec's observables with "
                    "their noise model, every finite measurement, and the parameter table (scales, bounds, "
                    "estimate flags, nominal values). Files are written atomically into DIR: model.xml, "
                    "conditions.tsv, observables.tsv, measurements.tsv, parameters.tsv, problem.yaml. "
                    "Needs python-libsbml (pip install 'symode[petab]').")
    p.add_argument("spec", help="model spec (YAML)")
    p.add_argument("--data", required=True, action="append", metavar="CSV",
                   help="data file (repeat for several experiments: one PEtab condition each)")
    p.add_argument("--params", metavar="FILE", help="params file whose values become the nominal values")
    p.add_argument("--t-end", type=float, metavar="T", help="only use the rows with time <= T of each data file")
    p.add_argument("--noise", choices=("model", "data"), default="model",
                   help="model (default): sigma = sqrt(absolute^2 + (relative*y)^2) at the model value y, as a "
                        "noise formula; data: sigma at the measured value, per measurement, as symode's loss")
    p.add_argument("--finite-bounds", type=float, metavar="F",
                   help="close the open bounds of estimated parameters (for tools that need finite bounds): "
                        "value/F..value*F on log scale, value -+ F*max(1,|value|) on linear scale "
                        "(default: open bounds as -inf/inf with an initialization prior)")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="output directory (created; a previous export there is replaced)")
    p.set_defaults(func=cmd_petab_export)
    return p


def cmd_petab_export(args: argparse.Namespace) -> int:
    from symode.errors import SymodeError

    try:
        from symode.petab.export import export_petab
    except ImportError as exc:  # libsbml missing
        raise SymodeError(f"PEtab export needs python-libsbml ({exc}); pip install 'symode[petab]'") from None
    from symode.spec import load_spec
    from symode.spec.data import check_columns, read_csv
    from symode.spec.params import apply_params

    spec = apply_params(load_spec(args.spec), args.params)
    datasets = []
    for path in args.data:
        data = read_csv(path)
        check_columns(spec, data, need_observables=False)
        if args.t_end is not None:
            data = data.until(args.t_end)
        datasets.append(data)
    out = export_petab(spec, datasets, args.output, noise=args.noise, finite_bounds=args.finite_bounds)
    print(f"wrote {out.directory}: {len(out.conditions)} condition(s), {len(out.observables)} observable(s), "
          f"{out.n_measurements} measurements, {len(out.estimated)} estimated parameters; problem "
          f"{out.problem.name}", file=sys.stderr)
    return 0
