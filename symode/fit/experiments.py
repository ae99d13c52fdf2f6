"""Initial states of several experiments (data files): from the spec, or from each file's first sample,
held fixed or estimated.

- ``spec``: every file starts from the spec's ``x0`` (states with ``estimate: true`` are estimated per
  file);
- ``first-sample``: every observed state starts at its file's first sample and is held fixed;
- ``estimate``: as ``first-sample``, but the observed states' initial values are estimated per file
  (starting from the first sample).

A state is observed when an observable carries its name (``expr`` = the state). A first sample that is
missing keeps the spec's value; one at or below zero on a ``log10`` observable with an offset starts at
offset / 10 (below detection; a gLV species at 0 would stay at 0 for ever)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from symode.errors import SymodeError
from symode.spec import Spec
from symode.spec.data import Dataset

X0_MODES = ("spec", "first-sample", "estimate")


def observed_states(spec: Spec) -> list[str]:
    """States measured directly by an observable of the same name."""
    return [s for s in spec.states if s in spec.observables and spec.observables[s].expr == s]


def first_sample_x0(spec: Spec, data: Dataset) -> dict[str, float]:
    """{state: first-sample value} for the observed states of ``data`` (see the module docstring)."""
    out: dict[str, float] = {}
    for s in observed_states(spec):
        col = np.asarray(data.columns.get(s, []), dtype=float)
        if not len(col) or not np.isfinite(col[0]):
            continue
        v = float(col[0])
        obs = spec.observables[s]
        if v <= 0 and obs.transform == "log10" and obs.offset > 0:
            v = obs.offset / 10.0
        lo, hi = spec.states[s].lower, spec.states[s].upper
        if lo is not None:
            v = max(v, lo)
        if hi is not None:
            v = min(v, hi)
        out[s] = v
    return out


def experiment_x0(spec: Spec, datasets: Sequence[Dataset], mode: str) -> tuple[Spec, list[dict[str, float]] | None]:
    """(spec with the states' ``estimate`` flags set for ``mode``, per-file initial states or None)."""
    if mode not in X0_MODES:
        raise SymodeError(f"unknown x0 mode {mode!r} ({', '.join(X0_MODES)})", field="x0")
    if mode == "spec":
        return spec, None
    observed = observed_states(spec)
    if not observed:
        raise SymodeError(f"--x0 {mode}: no state is observed directly (an observable named like the state)")
    new = spec.copy()
    for s in new.states.values():
        s.estimate = mode == "estimate" and s.name in observed
    return new, [first_sample_x0(spec, d) for d in datasets]
