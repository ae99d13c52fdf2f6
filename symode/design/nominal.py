"""Nominal values of a design: parameters and initial states from a fit.json or a params file."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from symode.errors import DataError, SymodeError
from symode.spec import Spec
from symode.spec.yamlio import load_yaml

__all__ = ["check_nominal", "load_nominal"]


def load_nominal(path: str | Path) -> tuple[dict[str, float], dict[str, float], dict[str, Any]]:
    """(parameters, x0, document) from a fit.json or params file (JSON/YAML). Values may be numbers or
    {"value": v}."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read ({exc.strerror})", file=str(path)) from None
    except UnicodeDecodeError:
        raise DataError("not a text file (invalid UTF-8)", file=str(path)) from None
    try:
        doc = json.loads(text)
    except RecursionError:
        raise DataError("JSON nested too deeply", file=str(path)) from None
    except json.JSONDecodeError:
        try:
            doc = load_yaml(text, str(path)).data      # the spec's safe YAML loader (and its limits)
        except SymodeError as exc:
            raise DataError(f"neither JSON nor YAML ({exc.message})", file=str(path), line=exc.line) from None
        except (yaml.YAMLError, RecursionError, ValueError) as exc:   # binary bytes, recursive aliases
            raise DataError(f"neither JSON nor YAML ({type(exc).__name__})", file=str(path)) from None
    if not isinstance(doc, dict):
        raise DataError("expected a mapping with 'parameters' and/or 'x0'", file=str(path))

    def values(block: Any, what: str) -> dict[str, float]:
        if block is None:
            return {}
        if not isinstance(block, Mapping):
            raise DataError(f"expected a mapping of names to values, got {type(block).__name__}", file=str(path),
                            field=what)
        out = {}
        for k, v in block.items():
            if isinstance(v, Mapping):
                v = v.get("value")
            try:
                fv = float(v)
            except (TypeError, ValueError, OverflowError):
                raise DataError(f"expected a number, got {repr(v)[:40]}", file=str(path),
                                field=f"{what}.{k}") from None
            if not math.isfinite(fv):
                raise DataError(f"non-finite value {v!r}", file=str(path), field=f"{what}.{k}")
            out[str(k)] = fv
        return out

    params = {**values(doc.get("constants"), "constants"), **values(doc.get("parameters"), "parameters")}
    raw_x0 = doc.get("x0")
    if isinstance(raw_x0, list):          # one block per experiment: use the first
        raw_x0 = raw_x0[0] if raw_x0 else {}
    x0 = values(raw_x0 if isinstance(raw_x0, Mapping) else {}, "x0")
    return params, x0, doc


def check_nominal(spec: Spec, params: Mapping[str, float], x0: Mapping[str, float], file: str) -> None:
    """Every name of a nominal-values file is a parameter or state of the spec (else a located error)."""
    for k in params:
        if k not in spec.parameters:
            raise DataError(f"unknown parameter {k!r}", file=file, field=f"parameters.{k}")
    for k in x0:
        if k not in spec.states:
            raise DataError(f"unknown state {k!r}", file=file, field=f"x0.{k}")
