"""Reading untrusted JSON (fit results, checkpoints, params) within the limits of :mod:`symode.spec.limits`.

:func:`load_json_file` is ``json.load`` with a size limit, strict UTF-8, no control characters, a nesting
limit, no ``NaN``/``Infinity`` (symode writes strict JSON) and errors naming file and line instead of
tracebacks. :func:`load_data_file` reads JSON or, failing that, YAML (:mod:`symode.spec.yamlio`), for
files that may be either.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from symode.errors import DataError, SymodeError
from symode.spec.limits import MAX_DOCUMENT_BYTES, MAX_NESTING_DEPTH
from symode.spec.textio import read_text_file
from symode.spec.yamlio import load_yaml


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _check_depth(data: Any, file: str, error: type[SymodeError]) -> None:
    """Nesting depth, checked iteratively."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_NESTING_DEPTH:
                raise error(f"nested deeper than {MAX_NESTING_DEPTH} levels", file=file)
            items = value.values() if isinstance(value, dict) else value
            stack.extend((v, depth + 1) for v in items)


def loads_json(text: str, file: str = "<string>", *, error: type[SymodeError] = DataError) -> Any:
    """Parse JSON text (already read with :func:`~symode.spec.textio.read_text_file`)."""
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise error(f"invalid JSON: {exc.msg} (column {exc.colno})", file=file, line=exc.lineno) from None
    except RecursionError:
        raise error(f"nested deeper than {MAX_NESTING_DEPTH} levels", file=file) from None
    except ValueError as exc:  # NaN/Infinity, an integer of thousands of digits
        raise error(f"invalid JSON: {str(exc).split(':')[0][:80]}", file=file) from None
    _check_depth(data, file, error)
    return data


def load_json_file(path: str | Path, *, error: type[SymodeError] = DataError, what: str = "file") -> Any:
    """The data of a JSON file; every problem raises ``error`` (default :class:`DataError`) naming the
    file and, where it has one, the line."""
    text = read_text_file(path, max_bytes=MAX_DOCUMENT_BYTES, error=error, what=what)
    return loads_json(text, str(path), error=error)


def load_data_file(path: str | Path, *, error: type[SymodeError] = DataError, what: str = "file") -> Any:
    """The data of a JSON or YAML file (JSON first: faster; YAML for anything JSON rejects), with the
    same limits. Errors of the YAML parse are reported (they name a line)."""
    text = read_text_file(path, max_bytes=MAX_DOCUMENT_BYTES, error=error, what=what)
    try:
        return loads_json(text, str(path), error=error)
    except SymodeError:
        return load_yaml(text, str(path), error=error).data
