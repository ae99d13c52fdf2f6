"""Validation of the ``penalties`` section: ridge (Gaussian prior) or l1 (Laplace prior) terms on
estimated parameters, named one by one, by glob patterns (``a_*``) or as the group ``@prunable`` (the
strength parameters of every prunable interaction). A name or pattern must match a parameter; the fixed
ones among those it matches are not penalised. A ``stability`` term acts on the interaction matrix of the
``glv`` edges (A[i, j] = strength of the edge j -> i); its parameters (default: every glv strength) must
be glv strengths, and every state of the matrix needs its self-interaction.

    penalties:
      - {name: interactions, type: ridge, parameters: ["@prunable"], scale: 0.1}
      - {type: l1, parameters: {a_A_B: 0.05, a_B_A: 0.2}}       # one scale per parameter
      - {name: stable, type: stability, margin: 0.01, weight: 100}
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

from symode.spec.checks import FieldChecker, FieldPath, describe
from symode.spec.schema import Interaction, Parameter, Penalty

PENALTY_KINDS = ("ridge", "l1", "stability")
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
        raise ValueError(f"unknown penalty type {kind!r} (ridge, l1, stability)")
    if kind == "stability":
        raise ValueError("a stability term is made by make_stability_penalty")
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


def make_stability_penalty(name: str, targets: Any, margin: float, weight: float,
                           parameters: Mapping[str, Parameter], interactions: Sequence[Interaction],
                           abundances: Any = None) -> Penalty:
    """A stability term on the interaction matrix of the ``glv`` edges: ``targets`` None (every glv
    strength) or names/patterns/``@prunable`` that must all be glv strengths; ``abundances`` None or a
    mapping state of the matrix -> typical abundance (> 0); raises ValueError with a one-line message."""
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < float("inf"):
        raise ValueError(f"'margin' must be a non-negative number, got {margin!r}")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight < float("inf"):
        raise ValueError(f"'weight' must be a positive number, got {weight!r}")
    glv = [e for e in interactions if e.kind == "glv" and e.target and e.source]
    if not glv:
        raise ValueError("a stability term needs an interaction matrix: 'glv' edges (e.g. symode template --glv)")
    where: dict[str, list[tuple[str, str]]] = {}
    for e in glv:
        if isinstance(e.strength, str):
            where.setdefault(e.strength, []).append((e.target, e.source))  # type: ignore[arg-type]
    if targets is None:
        chosen = [n for n in parameters if n in where]
    else:
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, list):
            raise ValueError(f"'parameters' of a stability term must be a list of names, got {describe(targets)}")
        chosen = []
        for pattern in targets:
            if not isinstance(pattern, str):
                raise ValueError(f"expected a parameter name or pattern, got {describe(pattern)}")
            names = expand_names(pattern, parameters, interactions)
            if not names:
                raise ValueError(f"{pattern!r} matches no parameter")
            bad = [n for n in names if n not in where]
            if bad:
                which = "" if bad == [pattern] else f"{pattern!r} matches "
                raise ValueError(f"{which}{', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''} is not the "
                                 f"strength of a glv edge (an interaction-matrix entry)")
            chosen += [n for n in names if n not in chosen]
    consts = [(e.target, e.source, float(e.strength)) for e in glv if not isinstance(e.strength, str)]
    cells = [c for n in chosen for c in where[n]] + [(i, j) for i, j, _ in consts]
    states: list[str] = []
    for s in (s for cell in cells for s in cell):
        if s not in states:
            states.append(s)
    diag = {i for i, j in cells if i == j}
    missing = [s for s in states if s not in diag]
    if missing:
        raise ValueError(f"the matrix has no self-interaction (glv edge {missing[0]}->{missing[0]}) of "
                         f"{', '.join(missing)}: its symmetric part cannot be negative definite")
    abundances = {} if abundances is None else abundances
    if not isinstance(abundances, Mapping):
        raise ValueError(f"'abundances' must be a mapping state -> typical abundance, got {describe(abundances)}")
    for s, c in abundances.items():
        if s not in states:
            raise ValueError(f"'abundances': {s!r} is not a state of the interaction matrix")
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0 < c < float("inf"):
            raise ValueError(f"'abundances': the typical abundance of {s!r} must be a positive number, got {c!r}")
    pos = {s: k for k, s in enumerate(states)}
    return Penalty(name=name, kind="stability", scales={}, states=states,
                   positions={n: [(pos[i], pos[j]) for i, j in where[n]] for n in chosen},
                   constants=[(pos[i], pos[j], v) for i, j, v in consts], margin=float(margin),
                   weight=float(weight), abundances={s: float(c) for s, c in abundances.items()})


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
        kind = chk.string(d.get("type"), (*path, "type"), choices=PENALTY_KINDS)
        name = chk.string(d.get("name", f"{kind}{i + 1}"), (*path, "name"))
        if kind == "stability":
            chk.keys(d, path, {"name", "type", "parameters", "margin", "weight", "abundances"})
            margin = chk.number(d.get("margin", 0.0), (*path, "margin"))
            weight = chk.number(d.get("weight", 1.0), (*path, "weight"))
            try:
                out.append(make_stability_penalty(name, d.get("parameters"), margin, weight, parameters,
                                                  interactions, d.get("abundances")))
            except ValueError as exc:
                field = next((k for k in ("margin", "weight", "abundances") if f"'{k}'" in str(exc)), "parameters")
                raise chk.err((*path, field), str(exc)) from None
            continue
        chk.keys(d, path, {"name", "type", "parameters", "scale", "center"})
        scale = chk.number(d["scale"], (*path, "scale")) if "scale" in d else None
        center = chk.number(d.get("center", 0.0), (*path, "center")) or 0.0
        if "parameters" not in d:
            raise chk.err(path, "a penalty needs 'parameters' (names, patterns or @prunable)")
        try:
            out.append(make_penalty(name, kind, d["parameters"], scale, center, parameters, interactions))
        except ValueError as exc:
            raise chk.err((*path, "parameters"), str(exc)) from None
    return out
