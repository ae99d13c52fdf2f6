"""Validation of the ``penalties`` section: ridge (Gaussian prior) or l1 (Laplace prior) terms on
estimated parameters, named one by one, by glob patterns (``a_*``) or as the group ``@prunable`` (the
strength parameters of every prunable interaction). A name or pattern must match a parameter; the fixed
ones among those it matches are not penalised.

    penalties:
      - {name: interactions, type: ridge, parameters: ["@prunable"], scale: 0.1}
      - {type: l1, parameters: {a_A_B: 0.05, a_B_A: 0.2}}       # one scale per parameter
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

from symode.spec.checks import FieldChecker, FieldPath, describe
from symode.spec.schema import Interaction, Parameter, Penalty

PENALTY_KINDS = ("ridge", "l1")
GROUPS = ("@prunable",)


def expand_names(pattern: str, parameters: Mapping[str, Parameter], interactions: Sequence[Interaction]
                 ) -> list[str]:
    """The parameters a name, glob pattern or group (``@prunable``) stands for (fixed ones included)."""
    if pattern == "@prunable":
        names = {str(e.strength) for e in interactions if e.prunable and isinstance(e.strength, str)}
        return [n for n in parameters if n in names]
    return [n for n in parameters if fnmatch.fnmatchcase(n, pattern)]


def make_penalty(name: str, kind: str, targets: Any, scale: float | None, center: float,
                 parameters: Mapping[str, Parameter], interactions: Sequence[Interaction]) -> Penalty:
    """A Penalty from a list of names/patterns with one ``scale``, or a mapping name -> scale; raises
    ValueError with a one-line message."""
    if kind not in PENALTY_KINDS:
        raise ValueError(f"unknown penalty type {kind!r} (ridge, l1)")
    scales: dict[str, float] = {}
    if isinstance(targets, str):
        targets = [targets]
    if isinstance(targets, Mapping):
        if scale is not None:
            raise ValueError("give 'scale' or a scale per parameter, not both")
        items = list(targets.items())
    elif isinstance(targets, list):
        if scale is None:
            raise ValueError("a list of parameters needs 'scale'")
        items = [(t, scale) for t in targets]
    else:
        raise ValueError(f"'parameters' must be a list or a mapping, got {describe(targets)}")
    for pattern, s in items:
        if not isinstance(pattern, str):
            raise ValueError(f"expected a parameter name or pattern, got {describe(pattern)}")
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not s > 0 or s == float("inf"):
            raise ValueError(f"the scale of {pattern!r} must be a positive number, got {s!r}")
        names = expand_names(pattern, parameters, interactions)
        if not names:
            raise ValueError(f"{pattern!r} matches no parameter")
        for n in names:
            if parameters[n].estimate:         # a fixed parameter is not penalised
                scales[n] = float(s)
    return Penalty(name=name, kind=kind, scales=scales, center=float(center))


def validate_penalties(chk: FieldChecker, raw: Any, parameters: dict[str, Parameter],
                       interactions: list[Interaction]) -> list[Penalty]:
    """The ``penalties`` list."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise chk.err(("penalties",), f"expected a list of penalties, got {describe(raw)}")
    out = []
    for i, val in enumerate(raw):
        path: FieldPath = ("penalties", i)
        d = chk.mapping(val, path)
        chk.keys(d, path, {"name", "type", "parameters", "scale", "center"})
        kind = chk.string(d.get("type"), (*path, "type"), choices=PENALTY_KINDS)
        name = chk.string(d.get("name", f"{kind}{i + 1}"), (*path, "name"))
        scale = chk.number(d["scale"], (*path, "scale")) if "scale" in d else None
        center = chk.number(d.get("center", 0.0), (*path, "center")) or 0.0
        if "parameters" not in d:
            raise chk.err(path, "a penalty needs 'parameters' (names, patterns or @prunable)")
        try:
            out.append(make_penalty(name, kind, d["parameters"], scale, center, parameters, interactions))
        except ValueError as exc:
            raise chk.err((*path, "parameters"), str(exc)) from None
    return out
