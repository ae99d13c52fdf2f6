"""Nominal values of a design: parameters and initial states from a fit.json or a params file."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from symode.errors import DataError
from symode.spec.schema import Spec

__all__ = ["check_nominal", "load_nominal"]


def load_nominal(path: str | Path) -> tuple[dict[str, float], dict[str, float], dict[str, Any]]:
    """(parameters, x0, document) from a fit.json or params file (JSON/YAML). Values may be numbers or
    {"value": v}."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read ({exc.strerror})", file=str(path)) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise DataError(f"neither JSON nor YAML ({exc})", file=str(path)) from None
    if not isinstance(doc, dict):
        raise DataError("expected a mapping with 'parameters' and/or 'x0'", file=str(path))

    def values(block: Any, what: str) -> dict[str, float]:
        out = {}
        for k, v in (block or {}).items():
            if isinstance(v, Mapping):
                v = v.get("value")
            try:
                fv = float(v)
            except (TypeError, ValueError):
                raise DataError(f"expected a number, got {v!r}", file=str(path), field=f"{what}.{k}") from None
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
