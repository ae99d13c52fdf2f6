"""Parameter files: JSON or YAML ``{"parameters": {...}, "constants": {...}, "x0": {...}}``.

``parameters`` and ``constants`` both set spec parameters, ``x0`` sets initial states; other keys are
ignored (e.g. a data set's ``truth.json`` or a ``fit.json`` can be passed as is).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from symode.errors import DataError
from symode.spec.jsonio import loads_json
from symode.spec.limits import MAX_DOCUMENT_BYTES
from symode.spec.schema import Spec
from symode.spec.textio import read_text_file
from symode.spec.yamlio import Located, load_yaml


@dataclass
class ParamValues:
    parameters: dict[str, float] = field(default_factory=dict)
    x0: dict[str, float] = field(default_factory=dict)


def load_params(path: str | Path, spec: Spec) -> ParamValues:
    """Read a params file and check every name and value against the spec.

    JSON (e.g. a large fit.json) is read by the fast JSON parser; the YAML parser, which knows the line
    of every key, runs on it only to locate an error."""
    file = str(path)
    text = read_text_file(path, max_bytes=MAX_DOCUMENT_BYTES, error=DataError, what="params file")
    located: Located | None = None
    try:
        data = loads_json(text, file)
    except DataError:
        located = _load_yaml_or_json(text, file)
        data = located.data

    def line(key_path: tuple[str, ...]) -> int | None:
        nonlocal located
        if located is None:
            try:
                located = _load_yaml_or_json(text, file)
            except DataError:
                located = Located(None, {}, file)
        return located.line(key_path)

    if not isinstance(data, dict):
        raise DataError("expected a mapping with 'parameters', 'constants' and/or 'x0'", file=file)
    out = ParamValues()
    for section in ("parameters", "constants", "x0"):
        block = data.get(section)
        if block is None:
            continue
        if not isinstance(block, dict):
            raise DataError("expected a mapping of names to numbers", file=file, line=line((section,)),
                            field=section)
        for name, value in block.items():
            where = dict(file=file, line=line((section, name)), field=f"{section}.{name}")
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    pass
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
                raise DataError(f"expected a finite number, got {_short(value)}", **where)
            if section == "x0":
                if name not in spec.states:
                    raise DataError(f"unknown state {name!r}", **where)
                st = spec.states[name]
                if (st.lower is not None and value < st.lower) or (st.upper is not None and value > st.upper):
                    raise DataError(f"initial value {value} outside bounds [{st.lower}, {st.upper}]", **where)
                out.x0[name] = float(value)
            else:
                if name not in spec.parameters:
                    raise DataError(f"unknown parameter {name!r}", **where)
                par = spec.parameters[name]
                if (par.lower is not None and value < par.lower) or (par.upper is not None and value > par.upper):
                    raise DataError(f"value {value} outside bounds [{par.lower}, {par.upper}]", **where)
                if par.scale == "log" and value <= 0:
                    raise DataError(f"value {value} must be positive (log-scale parameter)", **where)
                out.parameters[name] = float(value)
    return out


def _load_yaml_or_json(text: str, file: str) -> Located:
    """Located data of YAML text, or of valid JSON that YAML rejects (tab indentation): tabs in JSON are
    only whitespace outside strings (raw tabs inside strings are invalid JSON), so replacing them keeps
    the data and the line numbers."""
    try:
        return load_yaml(text, file, error=DataError)
    except DataError as exc:
        yaml_error = exc
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        raise yaml_error from None
    return load_yaml(text.replace("\t", " "), file, error=DataError)


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def apply_params(spec: Spec, path: str | Path | None) -> Spec:
    """The spec with a params file's values applied (the spec itself if path is None)."""
    if path is None:
        return spec
    values = load_params(path, spec)
    return spec.with_values(values.parameters, values.x0)
