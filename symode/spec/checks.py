"""Primitive field checks shared by the section validators: each returns the checked value or raises a
:class:`~symode.errors.SpecError` located at the field (file, line, dotted path)."""

from __future__ import annotations

import keyword
import math
from collections.abc import Mapping
from typing import Any

from symode.errors import SpecError
from symode.spec.vocabulary import NAME_RE, RESERVED
from symode.spec.yamlio import Located

FieldPath = tuple[Any, ...]


def describe(value: Any) -> str:
    """A short description of a value for error messages ("a mapping", "the string 'x'", ...)."""
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: f"the string {value!r}", bool: f"{value}"}.get(
        type(value), type(value).__name__)


class FieldChecker:
    """Checks of single fields of located YAML data, raising located SpecErrors."""

    def __init__(self, located: Located) -> None:
        self.loc = located

    def err(self, path: FieldPath, msg: str) -> SpecError:
        return self.loc.error(path, msg)

    # -- primitive checks ----------------------------------------------------------------------------
    def mapping(self, value: Any, path: FieldPath, what: str = "a mapping") -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.err(path, f"expected {what}, got {describe(value)}")
        return value

    def keys(self, d: dict[str, Any], path: FieldPath, allowed: set[str]) -> None:
        for k in d:
            if k not in allowed:
                close = ", ".join(sorted(allowed))
                raise self.err((*path, k), f"unknown field {k!r} (allowed: {close})")

    def number(self, value: Any, path: FieldPath, *, allow_none: bool = False,
               allow_inf: bool = False) -> float | None:
        if value is None and allow_none:
            return None
        if isinstance(value, bool) or value is None:
            raise self.err(path, f"expected a number, got {describe(value)}")
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise self.err(path, f"expected a number, got {value!r}") from None
        if not isinstance(value, (int, float)):
            raise self.err(path, f"expected a number, got {describe(value)}")
        try:
            value = float(value)
        except OverflowError:  # an integer too large for a float
            raise self.err(path, "expected a finite number, got an integer too large for a float") from None
        if math.isnan(value) or (math.isinf(value) and not allow_inf):
            raise self.err(path, f"expected a finite number, got {value}")
        return value

    def string(self, value: Any, path: FieldPath, *, choices: tuple[str, ...] | None = None) -> str:
        if not isinstance(value, str):
            raise self.err(path, f"expected a string, got {describe(value)}")
        if choices is not None and value not in choices:
            raise self.err(path, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def boolean(self, value: Any, path: FieldPath) -> bool:
        if not isinstance(value, bool):
            raise self.err(path, f"expected true or false, got {describe(value)}")
        return value

    def name(self, value: Any, path: FieldPath) -> str:
        if not isinstance(value, str) or not NAME_RE.match(value):
            raise self.err(path, f"{value!r} is not a valid name (letters, digits, _; starting with a letter)")
        if value in RESERVED or keyword.iskeyword(value):
            raise self.err(path, f"{value!r} is a reserved name")
        return value

    def bounds(self, value: Any, path: FieldPath) -> tuple[float | None, float | None]:
        if value is None:
            return None, None
        if not isinstance(value, list) or len(value) != 2:
            raise self.err(path, "bounds must be a list [lower, upper] (null for an open side)")
        lo = self.number(value[0], (*path, 0), allow_none=True, allow_inf=True)
        hi = self.number(value[1], (*path, 1), allow_none=True, allow_inf=True)
        lo = None if lo is not None and lo == -math.inf else lo
        hi = None if hi is not None and hi == math.inf else hi
        if lo is not None and hi is not None and lo >= hi:
            raise self.err(path, f"lower bound {lo} is not below upper bound {hi}")
        return lo, hi

    def ref(self, value: Any, path: FieldPath, parameters: Mapping[str, Any]) -> str | float:
        """A role value: a parameter name or a number."""
        if isinstance(value, str):
            if value in parameters:
                return value
            try:
                float(value)
            except ValueError:
                raise self.err(path, f"unknown parameter {value!r}") from None
        num = self.number(value, path)
        assert num is not None
        return num

    def name_list(self, raw: Any, path: FieldPath, what: str) -> list[str]:
        if not isinstance(raw, list) or not raw:
            raise self.err(path, f"expected a non-empty list of {what}, got {describe(raw)}")
        names = [self.name(v, (*path, j)) for j, v in enumerate(raw)]
        for j, n in enumerate(names):
            if n in names[:j]:
                raise self.err((*path, j), f"duplicate name {n!r}")
        return names

    def stoich(self, raw: Any, path: FieldPath, states: Mapping[str, Any], *, positive: bool,
               allow_empty: bool = False) -> dict[str, float]:
        d = self.mapping(raw, path, "a mapping {state: coefficient}")
        out: dict[str, float] = {}
        for k, v in d.items():
            if k not in states:
                raise self.err((*path, k), f"undefined state {k!r}")
            c = self.number(v, (*path, k))
            assert c is not None
            if positive and c <= 0:
                raise self.err((*path, k), "coefficients must be positive")
            out[k] = c
        return out
