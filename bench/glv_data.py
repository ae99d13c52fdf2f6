"""Convert a wide lab table of community time series into one long CSV per subject.

The wide format (as labs export it, e.g. the MDSINE diet experiment): the first row is ``id`` followed
by the subject of every column, the second row ``time`` followed by the sample time of every column,
then one row per taxon (its name, then its value in every column). Events (perturbations) come as a
second table ``ID,eventID,startDay,endDay``. The long format is symode's data format: a ``time``
column, one column per taxon, and one input column per event type holding 1 on [startDay, endDay) and
0 elsewhere. Inputs are piecewise constant between samples (the value at t_i holds on [t_i, t_i+1)),
so a row is inserted at every event start or end that is not a sample time (taxa blank = missing):
the input then switches at the right time.

Zeros are kept as zeros (in such tables they are values below the detection limit, not absences);
:func:`zero_report` counts them per taxon.

>>> tables = wide_to_long("diet.csv", "diet-events.csv", inputs={"Low fiber diet": "diet"})  # doctest: +SKIP
>>> write_long(tables, "data/")                                                              # doctest: +SKIP
"""

from __future__ import annotations

import csv
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class ConvertError(ValueError):
    """A malformed wide table or event table; the message names file:line."""


@dataclass
class LongTable:
    """One subject's series: times, taxon values (rows = times) and input columns."""

    subject: str
    times: np.ndarray
    taxa: list[str]
    values: np.ndarray                     # (n_times, n_taxa), NaN = missing
    inputs: dict[str, np.ndarray] = field(default_factory=dict)

    def column(self, name: str) -> np.ndarray:
        return self.inputs[name] if name in self.inputs else self.values[:, self.taxa.index(name)]

    def to_csv_text(self, time_column: str = "time") -> str:
        header = [time_column, *self.inputs, *self.taxa]
        lines = [",".join(header)]
        for k, t in enumerate(self.times):
            cells = [_fmt(t)] + [_fmt(v[k]) for v in self.inputs.values()] + [_fmt(v) for v in self.values[k]]
            lines.append(",".join(cells))
        return "\n".join(lines) + "\n"


def _fmt(v: float) -> str:
    return format(float(v), ".12g") if np.isfinite(v) else ""


def _rows(path: str | Path) -> list[tuple[int, list[str]]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return [(i + 1, [c.strip() for c in r]) for i, r in enumerate(csv.reader(fh))
                if r and any(c.strip() for c in r) and not r[0].lstrip().startswith("#")]


def _number(cell: str, where: str) -> float:
    try:
        v = float(cell)
    except ValueError:
        raise ConvertError(f"{where}: not a number: {cell!r}") from None
    if not np.isfinite(v):
        raise ConvertError(f"{where}: not a finite number: {cell!r}")
    return v


def read_wide(path: str | Path) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """(subject of each column, time of each column, taxon names, values (taxa x columns, NaN = blank))."""
    rows = _rows(path)
    if len(rows) < 3:
        raise ConvertError(f"{path}: needs an id row, a time row and at least one taxon row")
    (lid, rid), (lt, rt) = rows[0], rows[1]
    if rid[0].lower() not in ("id", "subject") or rt[0].lower() not in ("time", "day", "days", "t"):
        raise ConvertError(f"{path}:{lid}: the first two rows must be 'id,...' and 'time,...' "
                           f"(got {rid[0]!r}, {rt[0]!r})")
    n = len(rid) - 1
    if len(rt) - 1 != n:
        raise ConvertError(f"{path}:{lt}: {len(rt) - 1} times for {n} columns")
    subjects = rid[1:]
    times = np.array([_number(c, f"{path}:{lt}: time") for c in rt[1:]])
    taxa, vals = [], []
    for line, r in rows[2:]:
        if len(r) - 1 != n:
            raise ConvertError(f"{path}:{line}: {r[0]}: {len(r) - 1} values for {n} columns")
        if r[0] in taxa:
            raise ConvertError(f"{path}:{line}: duplicate taxon {r[0]!r}")
        taxa.append(r[0])
        vals.append([np.nan if c == "" or c.lower() in ("na", "nan") else _number(c, f"{path}:{line}: {r[0]}")
                     for c in r[1:]])
    values = np.array(vals)
    if np.any(values < 0):
        i, j = np.argwhere(values < 0)[0]
        raise ConvertError(f"{path}: {taxa[i]}: negative value {values[i, j]} (subject {subjects[j]}, "
                           f"time {times[j]})")
    return subjects, times, taxa, values


def read_events(path: str | Path) -> list[tuple[str, str, float, float]]:
    """(subject, event, start, end) rows of an ``ID,eventID,startDay,endDay`` table."""
    rows = _rows(path)
    if not rows:
        raise ConvertError(f"{path}: empty event table")
    line, head = rows[0]
    want = ["id", "eventid", "startday", "endday"]
    if [h.lower() for h in head[:4]] != want:
        raise ConvertError(f"{path}:{line}: expected the header ID,eventID,startDay,endDay, got {','.join(head)}")
    out = []
    for line, r in rows[1:]:
        if len(r) < 4:
            raise ConvertError(f"{path}:{line}: expected 4 cells")
        start, end = _number(r[2], f"{path}:{line}: startDay"), _number(r[3], f"{path}:{line}: endDay")
        if end <= start:
            raise ConvertError(f"{path}:{line}: endDay {end} is not after startDay {start}")
        out.append((r[0], r[1], start, end))
    return out


def input_name(event: str) -> str:
    """A valid spec name for an event type: 'Low fiber diet' -> 'low_fiber_diet'."""
    name = re.sub(r"[^A-Za-z0-9]+", "_", event).strip("_").lower()
    return name if name and name[0].isalpha() else f"u_{name}"


def wide_to_long(wide: str | Path, events: str | Path | None = None, *,
                 inputs: dict[str, str] | None = None) -> dict[str, LongTable]:
    """One :class:`LongTable` per subject (in order of first appearance), sorted by time.

    inputs: event type -> input column name (default :func:`input_name` of the event type). Every
    subject gets every input column (0 where it has no such event)."""
    subjects, times, taxa, values = read_wide(wide)
    ev = read_events(events) if events is not None else []
    names = dict(inputs or {})
    for _, e, _, _ in ev:
        names.setdefault(e, input_name(e))
    unknown = set(ev and [s for s, *_ in ev]) - set(subjects)
    if unknown:
        raise ConvertError(f"{events}: events for unknown subject(s) {', '.join(sorted(unknown))}")
    out: dict[str, LongTable] = {}
    for s in dict.fromkeys(subjects):
        cols = [j for j, x in enumerate(subjects) if x == s]
        t = times[cols]
        order = np.argsort(t, kind="stable")
        t, v = t[order], values[:, cols][:, order].T
        if np.any(np.diff(t) == 0):
            k = int(np.flatnonzero(np.diff(t) == 0)[0])
            raise ConvertError(f"{wide}: subject {s}: two samples at time {t[k]}")
        mine = [(e, a, b) for sub, e, a, b in ev if sub == s]
        extra = sorted({x for _, a, b in mine for x in (a, b) if t[0] <= x <= t[-1]} - set(t.tolist()))
        if extra:
            t = np.concatenate([t, extra])
            v = np.vstack([v, np.full((len(extra), len(taxa)), np.nan)])
            order = np.argsort(t, kind="stable")
            t, v = t[order], v[order]
        u = {col: np.zeros(len(t)) for col in dict.fromkeys(names.values())}
        for e, a, b in mine:
            u[names[e]][(t >= a) & (t < b)] = 1.0
        out[s] = LongTable(s, t, list(taxa), v, u)
    return out


def zero_report(tables: dict[str, LongTable]) -> dict[str, list[tuple[str, float]]]:
    """Taxon -> [(subject, time)] of every zero (below detection) value."""
    rep: dict[str, list[tuple[str, float]]] = {}
    for tab in tables.values():
        for k, i in np.argwhere(tab.values == 0):
            rep.setdefault(tab.taxa[i], []).append((tab.subject, float(tab.times[k])))
    return rep


def write_long(tables: dict[str, LongTable], outdir: str | Path, *, prefix: str = "subject") -> list[Path]:
    """Write ``outdir/<prefix><subject>.csv`` for every subject (atomically); returns the paths."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for s, tab in tables.items():
        path = out / f"{prefix}{s}.csv"
        fd, tmp = tempfile.mkstemp(dir=out, prefix=".tmp-", suffix=".csv")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(tab.to_csv_text())
        os.replace(tmp, path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="wide lab table (+ event table) -> one long CSV per subject")
    ap.add_argument("wide")
    ap.add_argument("--events")
    ap.add_argument("--input", action="append", default=[], metavar="EVENT=NAME",
                    help="input column name for an event type (default: a slug of the event)")
    ap.add_argument("-o", "--outdir", required=True)
    args = ap.parse_args(argv)
    names = dict(x.split("=", 1) for x in args.input)
    tables = wide_to_long(args.wide, args.events, inputs=names)
    for p in write_long(tables, args.outdir):
        print(p)
    for taxon, where in zero_report(tables).items():
        print(f"{taxon}: {len(where)} zero(s) (below detection): "
              + ", ".join(f"{s}@{t:g}" for s, t in where))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
