"""Canonical satellite labels. The data see only X, S and the metabolites, so the satellites of a
template are exchangeable: models that differ by a permutation of satellite labels are one model
(:func:`order_mapping` gives the canonical permutation, :func:`satellites_exchangeable` checks that
permutations are symmetries of the template) and the selected model is reported in canonical order
(:func:`satellite_relabelling`)."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence
from typing import Any

from symode.discover.candidates import Candidate
from symode.spec import Spec

__all__ = ["order_mapping", "relabel_candidate", "rename_labels", "satellite_relabelling",
           "satellites_exchangeable"]


def rename_labels(obj: Any, mapping: dict[str, str]) -> Any:
    """``obj`` (nested dicts/lists/strings) with every whole-word occurrence of a key of ``mapping`` replaced
    simultaneously ("Y1" matches in ``a_M2_Y1`` and ``uptake:M2->Y1``, not in ``Y10``)."""
    if not mapping:
        return obj
    rx = re.compile(r"(?<![A-Za-z0-9])(" + "|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True))
                    + r")(?![A-Za-z0-9])")

    def sub(v: Any) -> Any:
        if isinstance(v, str):
            return rx.sub(lambda m: mapping[m.group(1)], v)
        if isinstance(v, dict):
            return {sub(k): sub(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [sub(x) for x in v]
        return v

    return sub(obj)


def _canonical(d: dict[str, Any]) -> str:
    d = dict(d)
    d["interactions"] = sorted(json.dumps(i, sort_keys=True, default=str) for i in d.get("interactions", []))
    d.pop("description", None)
    for sec in ("states", "parameters", "observables"):
        d[sec] = {k: {kk: vv for kk, vv in v.items() if kk != "description"} if isinstance(v, dict) else v
                  for k, v in (d.get(sec) or {}).items()}
    return json.dumps(d, sort_keys=True, default=str)


def order_mapping(spec: Spec, edges: Sequence[str]) -> dict[str, str]:
    """{old: new} (changed names only) that puts the satellites of ``edges`` in canonical order (see
    :func:`satellite_relabelling`), without checking that the permutation is a symmetry of ``spec``."""
    sats = [s.name for s in spec.states.values() if s.role == "satellite"]
    if len(sats) < 2:
        return {}
    order = {name: i for i, name in enumerate(spec.states)}
    kept = set(edges)
    sig: dict[str, dict[str, list[int]]] = {y: {"uptake": [], "production": [], "inhibition": []} for y in sats}
    for e in spec.interactions:
        if e.id not in kept:
            continue
        if e.kind == "uptake" and e.target in sig:
            sig[e.target]["uptake"].append(order[e.source])
        elif e.kind == "production" and e.source in sig:
            sig[e.source]["production"].append(order[e.target])
        elif e.kind == "inhibition" and e.target in sig:
            sig[e.target]["inhibition"].append(order[e.source])

    def key(y: str) -> tuple[Any, ...]:
        up = sorted(sig[y]["uptake"])
        return (0 if up else 1, up if up else [sats.index(y)], sorted(sig[y]["production"]),
                sorted(sig[y]["inhibition"]), sats.index(y))

    ordered = sorted(sats, key=key)
    return {old: new for old, new in zip(ordered, sats, strict=True) if old != new}


def _is_symmetry(spec: Spec, mapping: dict[str, str]) -> bool:
    d = spec.to_dict()
    return _canonical(rename_labels(d, mapping)) == _canonical(d)


def satellites_exchangeable(spec: Spec) -> bool:
    """True when every permutation of the satellite labels maps ``spec`` onto itself (adjacent
    transpositions generate all permutations)."""
    sats = [s.name for s in spec.states.values() if s.role == "satellite"]
    return len(sats) >= 2 and all(_is_symmetry(spec, {a: b, b: a}) for a, b in itertools.pairwise(sats))


def satellite_relabelling(spec: Spec, edges: Sequence[str]) -> dict[str, str]:
    """Canonical names for the satellites of a selected model: the data see only X, S and the metabolites,
    so satellites of a template are exchangeable and discovery finds a model only up to a permutation of
    their labels. Convention: satellites that remain (have an uptake edge) are numbered in order of the
    metabolites they take up (the lowest-numbered substrate first; ties by the next substrate, then by
    the metabolites they produce and are inhibited by), absent satellites take the remaining labels in
    their original order. Returns {old name: new name} (only changed names), or {} when the permutation is
    not a symmetry of ``spec`` (then labels are kept as they are)."""
    mapping = order_mapping(spec, edges)
    if not mapping or not _is_symmetry(spec, mapping):
        return {}
    return mapping


def relabel_candidate(c: Candidate, mapping: dict[str, str]) -> Candidate:
    if not mapping:
        return c
    return Candidate.from_dict(rename_labels(c.to_dict(), mapping))
