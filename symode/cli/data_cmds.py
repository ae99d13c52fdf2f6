"""Commands on data files: convert (a wide lab table -> one long data file per subject)."""

from __future__ import annotations

import argparse

from symode.cli.common import echo
from symode.errors import SymodeError


def run_convert(args: argparse.Namespace) -> int:
    from symode.spec.wide import wide_to_long, write_long, zero_report

    names = {}
    for item in args.input or []:
        event, eq, name = item.partition("=")
        if not eq or not event.strip() or not name.strip():
            raise SymodeError(f"--input {item!r}: expected EVENT=NAME")
        names[event.strip()] = name.strip()
    drop = [d.strip() for d in (args.drop or "").split(",") if d.strip()]
    tables = wide_to_long(args.wide, args.events, inputs=names, t_end=args.t_end, drop=drop)
    paths = write_long(tables, args.output, prefix=args.prefix)
    first = next(iter(tables.values()))
    echo(f"wrote {len(paths)} file(s) to {args.output}: {len(first.taxa)} taxa, input(s) "
         f"{', '.join(first.inputs) or 'none'}, {sum(len(t.times) for t in tables.values())} rows")
    for taxon, where in zero_report(tables).items():
        echo(f"  {taxon}: {len(where)} zero(s) (below detection) at "
             + ", ".join(f"{s}@{t:g}" for s, t in where[:8]) + (" ..." if len(where) > 8 else ""))
    print(",".join(first.taxa))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add convert to the ``symode`` parser."""
    p = sub.add_parser("convert", help="convert a wide lab table into one data file per subject",
                       description="Convert a wide table of community time series (row 'id': the subject of "
                                   "each column; row 'time'; then one row per taxon) and an optional event table "
                                   "(ID,eventID,startDay,endDay) into one data file per subject: time, one input "
                                   "column per event type (1 on [startDay, endDay), else 0; a row is inserted "
                                   "where an event starts or ends between samples), one column per taxon (zeros "
                                   "kept: below detection). Prints the taxon names, comma-separated, for "
                                   "`symode template --glv --species`.")
    p.add_argument("wide", help="the wide table (CSV)")
    p.add_argument("--events", metavar="CSV", help="event table ID,eventID,startDay,endDay")
    p.add_argument("--input", action="append", metavar="EVENT=NAME",
                   help="input column name of an event type (default: the event type with non-alphanumeric "
                        "runs replaced by _)")
    p.add_argument("--t-end", type=float, metavar="T",
                   help="only the samples (and event boundaries) at or before time T, e.g. the phase before a "
                        "challenge that a model started from the first sample cannot represent")
    p.add_argument("--drop", metavar="TAXA", help="taxa left out, comma-separated (labels or converted names)")
    p.add_argument("--prefix", default="subject", help="file name prefix (default subject: subject<id>.csv)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    p.set_defaults(func=run_convert)
