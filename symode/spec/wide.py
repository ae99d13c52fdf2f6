"""Wide lab tables of community time series -> one long data file per subject.

The wide format (as labs export it, e.g. the MDSINE data sets): the first row is ``id`` followed by the
subject of every column, the second row ``time`` followed by the sample time of every column, then one
row per taxon (its name, then its value in every column; blank or ``NA`` = missing). Events
(perturbations) come as a second table ``ID,eventID,startDay,endDay``. The long format is symode's data
format: a ``time`` column, one column per input (1 on [startDay, endDay) of an event of that type, else
0), one column per taxon. Inputs are piecewise constant from one sample to the next, so a row (taxa
blank) is inserted at every event start or end that is not a sample time. Zeros are kept (values below
detection). Taxon names that are not valid spec names are turned into valid ones ("B. fragilis" ->
"B_fragilis").

>>> tables = wide_to_long("diet.csv", "diet-events.csv", inputs={"Low fiber diet": "diet"})  # doctest: +SKIP
>>> write_long(tables, "data")                                                              # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from symode.errors import DataError
from symode.spec.limits import MAX_CSV_BYTES, MAX_CSV_CELLS
from symode.spec.textio import read_text_file
from symode.spec.vocabulary import NAME_RE, RESERVED


@dataclass
class LongTable:
    """One subject's series: times, taxon values (rows = times, NaN = missing) and input columns."""

    subject: str
    times: np.ndarray
    taxa: list[str]
    values: np.ndarray
    inputs: dict[str, np.ndarray] = field(default_factory=dict)

    def to_csv_text(self) -> str:
        lines = [",".join(["time", *self.inputs, *self.taxa])]
        for k, t in enumerate(self.times):
            cells = [_fmt(t)] + [_fmt(v[k]) for v in self.inputs.values()] + [_fmt(v) for v in self.values[k]]
            lines.append(",".join(cells))
        return "\n".join(lines) + "\n"


def _fmt(v: float) -> str:
    return format(float(v), ".12g") if np.isfinite(v) else ""


def spec_name(text: str, prefix: str = "x") -> str:
    """A valid spec name for a label: non-alphanumeric runs -> '_' ('Low fiber diet' -> 'Low_fiber_diet');
    a leading digit or a reserved name gets ``prefix`` + '_'."""
    name = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")
    if not name or not name[0].isalpha() or name in RESERVED or not NAME_RE.match(name):
        name = f"{prefix}_{name}" if name else prefix
    return name


def _rows(path: str | Path) -> list[tuple[int, list[str]]]:
    text = read_text_file(path, max_bytes=MAX_CSV_BYTES, error=DataError, what="table")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise DataError(f"cannot read CSV ({exc})", file=str(path), line=reader.line_num) from None
    if sum(len(r) for r in rows) > MAX_CSV_CELLS:
        raise DataError(f"over the limit of {MAX_CSV_CELLS} cells", file=str(path))
    return [(i + 1, [c.strip() for c in r]) for i, r in enumerate(rows)
            if r and any(c.strip() for c in r) and not r[0].lstrip().startswith("#")]


def _number(cell: str, file: str, line: int, what: str) -> float:
    try:
        v = float(cell)
    except ValueError:
        raise DataError(f"{what}: not a number: {cell[:40]!r}", file=file, line=line) from None
    if not np.isfinite(v):
        raise DataError(f"{what}: not a finite number: {cell!r}", file=file, line=line)
    return v


def read_wide(path: str | Path) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """(subject of each column, time of each column, taxon labels, values (taxa x columns, NaN = blank))."""
    file = str(path)
    rows = _rows(path)
    if len(rows) < 3:
        raise DataError("a wide table needs an id row, a time row and at least one taxon row", file=file)
    (lid, rid), (lt, rt) = rows[0], rows[1]
    if rid[0].lower() not in ("id", "subject") or rt[0].lower() not in ("time", "day", "days", "t"):
        raise DataError(f"the first two rows must be 'id,...' and 'time,...' (got {rid[0][:40]!r}, "
                        f"{rt[0][:40]!r})", file=file, line=lid)
    n = len(rid) - 1
    if n < 1 or len(rt) - 1 != n:
        raise DataError(f"{len(rt) - 1} times for {n} columns", file=file, line=lt)
    times = np.array([_number(c, file, lt, "time") for c in rt[1:]])
    taxa, vals = [], []
    for line, r in rows[2:]:
        if len(r) - 1 != n:
            raise DataError(f"{r[0][:40]}: {len(r) - 1} values for {n} columns", file=file, line=line)
        if r[0] in taxa:
            raise DataError(f"duplicate taxon {r[0][:40]!r}", file=file, line=line)
        row = [np.nan if c == "" or c.lower() in ("na", "nan") else _number(c, file, line, r[0][:40]) for c in r[1:]]
        if any(v < 0 for v in row):
            raise DataError(f"{r[0][:40]}: negative value", file=file, line=line)
        taxa.append(r[0])
        vals.append(row)
    return rid[1:], times, taxa, np.array(vals)


def read_events(path: str | Path) -> list[tuple[str, str, float, float]]:
    """(subject, event type, start, end) rows of an ``ID,eventID,startDay,endDay`` table."""
    file = str(path)
    rows = _rows(path)
    if not rows:
        raise DataError("empty event table", file=file)
    line, head = rows[0]
    if [h.lower() for h in head[:4]] != ["id", "eventid", "startday", "endday"]:
        raise DataError("expected the header ID,eventID,startDay,endDay", file=file, line=line)
    out = []
    for line, r in rows[1:]:
        if len(r) < 4:
            raise DataError("expected 4 cells", file=file, line=line)
        start, end = _number(r[2], file, line, "startDay"), _number(r[3], file, line, "endDay")
        if end <= start:
            raise DataError(f"endDay {end:g} is not after startDay {start:g}", file=file, line=line)
        out.append((r[0], r[1], start, end))
    return out


def wide_to_long(wide: str | Path, events: str | Path | None = None, *,
                 inputs: dict[str, str] | None = None, t_end: float | None = None,
                 drop: tuple[str, ...] | list[str] = ()) -> dict[str, LongTable]:
    """One :class:`LongTable` per subject (in order of first appearance), sorted by time. ``inputs``: event
    type -> input column name (default: :func:`spec_name` of the event type); every subject gets every
    input column. ``t_end``: only the samples (and event boundaries) at or before this time; ``drop``: taxa
    left out (by their label or converted name; an unknown one is an error)."""
    subjects, times, labels, values = read_wide(wide)
    taxa = [spec_name(t) for t in labels]
    dup = sorted({t for t in taxa if taxa.count(t) > 1})
    if dup:
        raise DataError(f"taxon labels that give the same name: {', '.join(dup)}", file=str(wide))
    unknown_drop = [d for d in drop if d not in taxa and d not in labels]
    if unknown_drop:
        raise DataError(f"taxa to drop that are not in the table: {', '.join(map(repr, unknown_drop))} "
                        f"(taxa: {', '.join(taxa)})", file=str(wide))
    keep = [i for i, (t, lab) in enumerate(zip(taxa, labels, strict=True)) if t not in drop and lab not in drop]
    if not keep:
        raise DataError("dropping these taxa leaves none", file=str(wide))
    taxa, values = [taxa[i] for i in keep], values[keep]
    if t_end is not None:
        if not np.isfinite(t_end):
            raise DataError(f"end time {t_end}: not a finite time", file=str(wide))
        inside = times <= t_end
        subjects = [s for s, k in zip(subjects, inside, strict=True) if k]
        times, values = times[inside], values[:, inside]
        if not len(times):
            raise DataError(f"no sample at or before time {t_end:g}", file=str(wide))
    ev = read_events(events) if events is not None else []
    names = dict(inputs or {})
    for _, e, _, _ in ev:
        names.setdefault(e, spec_name(e, "u"))
    for e, n in names.items():
        if not NAME_RE.match(n) or n in RESERVED or n in taxa:
            raise DataError(f"input name {n!r} for event {e!r} is not a valid, unused name", file=str(events))
    unknown = {s for s, *_ in ev} - set(subjects)
    if unknown:
        raise DataError(f"events for unknown subject(s) {', '.join(sorted(unknown))}", file=str(events))
    out: dict[str, LongTable] = {}
    for s in dict.fromkeys(subjects):
        cols = [j for j, x in enumerate(subjects) if x == s]
        order = np.argsort(times[cols], kind="stable")
        t, v = times[cols][order], values[:, cols][:, order].T
        if np.any(np.diff(t) == 0):
            k = int(np.flatnonzero(np.diff(t) == 0)[0])
            raise DataError(f"subject {s}: two samples at time {t[k]:g}", file=str(wide))
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
    from symode.io import atomic_write_text

    out = Path(outdir)
    paths = []
    for s, tab in tables.items():
        path = out / f"{prefix}{spec_name(s, 's') if not re.fullmatch(r'[A-Za-z0-9_.-]+', s) else s}.csv"
        atomic_write_text(path, tab.to_csv_text())
        paths.append(path)
    return paths
