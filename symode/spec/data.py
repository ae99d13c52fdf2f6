"""Time-series data files (CSV): a time column, input columns and observable columns.

The time column is ``time``, ``time_h`` or ``t``. Blank cells are missing values (allowed for
observables, not for inputs). Errors name the file, the line and the column.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from symode.errors import DataError
from symode.spec.limits import MAX_CSV_BYTES, MAX_CSV_CELLS, MAX_CSV_COLUMNS
from symode.spec.schema import Spec
from symode.spec.textio import read_text_file

TIME_COLUMNS = ("time", "time_h", "t")


@dataclass
class Dataset:
    """One experiment's data: sample times and named columns (NaN = missing)."""

    times: np.ndarray
    columns: dict[str, np.ndarray]
    time_column: str = "time"
    file: str = "<memory>"
    lines: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))

    def line_of(self, row: int) -> int | None:
        return int(self.lines[row]) if len(self.lines) > row else None

    def until(self, t_end: float) -> Dataset:
        """The rows with time <= t_end."""
        n = int(np.searchsorted(self.times, t_end, side="right"))
        if n < 2:
            raise DataError(f"only {n} sample(s) up to time {t_end}", file=self.file)
        return Dataset(self.times[:n], {k: v[:n] for k, v in self.columns.items()}, self.time_column,
                       self.file, self.lines[:n])


def read_csv(path: str | Path) -> Dataset:
    """Parse a CSV file into a Dataset (no spec checks yet); refuses files beyond the limits of
    :mod:`symode.spec.limits` and binary or non-UTF-8 files, naming the file and line."""
    file = str(path)
    text = read_text_file(path, max_bytes=MAX_CSV_BYTES, error=DataError, what="data file")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise DataError(f"cannot read CSV ({exc})", file=file, line=reader.line_num) from None
    numbered = [(i + 1, r) for i, r in enumerate(rows) if r and any(c.strip() for c in r)
                and not r[0].lstrip().startswith("#")]
    if not numbered:
        raise DataError("empty file", file=file)
    header_line, header = numbered[0]
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        dup = next(h for h in header if header.count(h) > 1)
        raise DataError(f"duplicate column {dup!r}", file=file, line=header_line)
    tcol = next((c for c in TIME_COLUMNS if c in header), None)
    if tcol is None:
        raise DataError(f"no time column (expected one of {', '.join(TIME_COLUMNS)})", file=file,
                        line=header_line)
    if len(header) > MAX_CSV_COLUMNS:
        raise DataError(f"{len(header)} columns; the limit is {MAX_CSV_COLUMNS}", file=file, line=header_line)
    body = numbered[1:]
    if not body:
        raise DataError("no data rows", file=file)
    if len(body) * len(header) > MAX_CSV_CELLS:
        raise DataError(f"{len(body)} rows x {len(header)} columns is over the limit of {MAX_CSV_CELLS} cells",
                        file=file)
    values = np.full((len(body), len(header)), np.nan)
    lines = np.empty(len(body), dtype=int)
    for r, (line, row) in enumerate(body):
        lines[r] = line
        if len(row) > len(header):
            raise DataError(f"{len(row)} cells but {len(header)} columns", file=file, line=line)
        for c, cell in enumerate(row):
            cell = cell.strip()
            if cell == "" or cell.lower() in ("na", "nan"):
                continue
            try:
                values[r, c] = float(cell)
            except ValueError:
                raise DataError(f"not a number: {cell!r}", file=file, line=line, field=header[c]) from None
            if math.isinf(values[r, c]):
                raise DataError("infinite value", file=file, line=line, field=header[c])
    ti = header.index(tcol)
    times = values[:, ti]
    bad = np.flatnonzero(~np.isfinite(times))
    if bad.size:
        raise DataError("missing time", file=file, line=int(lines[bad[0]]), field=tcol)
    if times[0] < 0:
        raise DataError(f"negative time {times[0]}", file=file, line=int(lines[0]), field=tcol)
    steps = np.diff(times)
    if np.any(steps <= 0):
        k = int(np.flatnonzero(steps <= 0)[0]) + 1
        what = "duplicate" if steps[k - 1] == 0 else "unsorted"
        raise DataError(f"{what} time {times[k]} (times must increase strictly)", file=file,
                        line=int(lines[k]), field=tcol)
    columns = {h: values[:, i] for i, h in enumerate(header) if i != ti}
    return Dataset(times=times, columns=columns, time_column=tcol, file=file, lines=lines)


def input_matrix(spec: Spec, data: Dataset | None, times: np.ndarray,
                 skip: set[str] | None = None) -> dict[str, np.ndarray]:
    """Input values at each time (from the data columns, else the input's default); checks NaNs."""
    out: dict[str, np.ndarray] = {}
    for name, inp in spec.inputs.items():
        if skip and name in skip:
            continue
        if data is not None and name in data.columns:
            col = data.columns[name]
            bad = np.flatnonzero(~np.isfinite(col[:-1] if inp.interpolation == "constant" else col))
            if bad.size:
                raise DataError("missing or NaN input value", file=data.file, line=data.line_of(int(bad[0])),
                                field=name)
            _check_input_bounds(spec, name, col, data)
            out[name] = col
        elif inp.default is not None and data is None:
            out[name] = np.full(len(times), inp.default)
        else:
            where = data.file if data is not None else None
            why = "" if data is not None else " (and the spec gives no default)"
            raise DataError(f"missing input column {name!r}{why}", file=where, field=name)
    return out


def _check_input_bounds(spec: Spec, name: str, col: np.ndarray, data: Dataset) -> None:
    lo, hi = spec.input_bounds(name)
    for bound, bad in ((lo, col < lo if lo is not None else None), (hi, col > hi if hi is not None else None)):
        if bad is None or not bad.any():
            continue
        r = int(np.flatnonzero(bad)[0])
        if name == spec.reactor.dilution and spec.inputs[name].lower is None and bound == 0.0:
            msg = (f"negative dilution rate {col[r]:g} ({name} is the reactor's dilution; give inputs.{name} "
                   f"bounds in the spec to allow negative values)")
        else:
            side = "below the lower" if bound is lo else "above the upper"
            msg = f"value {col[r]:g} is {side} bound {bound:g} of input {name} (spec: inputs.{name}.bounds)"
        raise DataError(msg, file=data.file, line=data.line_of(r), field=name)


def check_columns(spec: Spec, data: Dataset, *, need_observables: bool) -> None:
    """Warn about columns the spec does not use (one line each kind); optionally require every
    observable's column. Observed values far below zero are errors when fitting (``need_observables``),
    warnings otherwise (see :func:`negative_values`)."""
    known = set(spec.inputs) | set(spec.observables) | set(spec.states)
    extra = [c for c in data.columns if c not in known]
    if extra:
        warnings.warn(f"{data.file}: ignoring columns that match nothing in the spec: {', '.join(extra)}",
                      stacklevel=2)
    unobserved = [c for c in data.columns if c in spec.states and c not in spec.observables
                  and c not in spec.inputs]
    if unobserved:
        warnings.warn(f"{data.file}: ignoring column(s) {', '.join(unobserved)}: state(s) of the spec but not "
                      f"observables; to use them, add e.g. '{unobserved[0]}: {{noise: {{absolute: 0.01}}}}' "
                      f"under observables: in the spec", stacklevel=2)
    if need_observables:
        missing = [o for o in spec.observables if o not in data.columns]
        if missing:
            raise DataError(f"missing observable column(s) {', '.join(missing)}", file=data.file)
    problem = negative_values(spec, data)
    if problem is not None:
        if need_observables:
            raise problem
        warnings.warn(str(problem), stacklevel=2)


def negative_values(spec: Spec, data: Dataset) -> DataError | None:
    """The first observed value more than 5 absolute noise levels below zero, as a located error.

    Observables measure concentrations, densities and the like. The noise model is Gaussian with
    sigma^2 = absolute^2 + (relative * y)^2 around a true value y >= 0, so a value below
    -5 * absolute has probability < 3e-7 (and any negative value is impossible when absolute = 0):
    such a value is a data error (a sign, a unit, a baseline subtraction), not noise."""
    for name, obs in spec.observables.items():
        if name not in data.columns:
            continue
        col = data.columns[name]
        floor = -5 * obs.noise.absolute
        bad = np.flatnonzero(col < floor)
        if bad.size:
            r = int(bad[0])
            if obs.noise.absolute > 0:
                why = f"more than 5 x noise.absolute ({obs.noise.absolute:g}) below zero"
            else:
                why = "negative with noise.absolute 0 (relative noise allows no negative values)"
            return DataError(f"negative value {col[r]:g} {why}: impossible under the spec's noise model; fix "
                             f"the data or raise observables.{name}.noise.absolute",
                             file=data.file, line=data.line_of(r), field=name)
    return None
