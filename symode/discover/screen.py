"""Sparse screening for large templates (e.g. gLV with hundreds of interactions): rank the prunable
edges of the (penalised) full fit by their effect size, then refit the nested models keeping the k
strongest edges for a halving sequence of k, and select by the information criterion.

The effect size of an edge is the magnitude of its strength parameter times the typical size of its
source: for a gLV interaction a_ij that is |a_ij| xbar_j, the change of species i's growth rate caused
by species j at its typical abundance (xbar_j: the geometric mean of j's positive values in the data);
for an input term, |gamma| times the input's largest magnitude. Strengths of edges from unobserved
states count with a scale of 1. Backward elimination ranks edges by refits and knockouts, which costs
one ODE refit per step; the screen costs one refit per size and finds a sparse model quickly.

With ``select="prediction"`` the size is chosen by held-out prediction instead of the criterion: for the
full edge set and every nested set, the mean leave-one-file-out error of gradient matching restricted to
the set (:mod:`symode.fit.gradient_matching`; the crossval score: RMSE of log10(x + 1e-5) of each
held-out file predicted from its first sample), and the sparsest set that predicts no worse than the
full set is refitted (one ODE refit instead of one per size; gLV-type templates only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from symode.discover.candidates import Candidate
from symode.discover.search import Search
from symode.discover.strategies import ScreenRefit
from symode.fit.crossval import SCORE_OFFSET, holdout_errors
from symode.spec import Spec
from symode.spec.data import Dataset

__all__ = ["effect_sizes", "prediction_errors", "run_screen", "screen_sizes"]


def _typical(datasets: Sequence[Dataset], name: str) -> float:
    vals = [np.asarray(d.columns[name], float) for d in datasets if name in d.columns]
    v = np.concatenate(vals) if vals else np.array([])
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.exp(np.mean(np.log(v)))) if len(v) else 1.0


def _largest(datasets: Sequence[Dataset], name: str) -> float:
    vals = [np.abs(np.asarray(d.columns[name], float)) for d in datasets if name in d.columns]
    v = np.concatenate(vals) if vals else np.array([])
    v = v[np.isfinite(v)]
    return float(v.max()) if len(v) and v.max() > 0 else 1.0


def effect_sizes(spec: Spec, datasets: Sequence[Dataset], params: dict[str, float]) -> dict[str, float]:
    """edge id -> |strength| x typical size of the edge's source (see the module docstring)."""
    out = {}
    for e in spec.interactions:
        if not (e.prunable and isinstance(e.strength, str)):
            continue
        v = abs(float(params.get(e.strength, spec.parameters[e.strength].value)))
        if e.input:
            scale = _largest(datasets, str(e.input))
        elif e.source is not None:
            scale = _typical(datasets, str(e.source))
        else:
            scale = 1.0
        out[e.id] = v * scale
    return out


def screen_sizes(n: int, smallest: int = 0) -> list[int]:
    """n/2, n/4, ... down to ``smallest`` (each once, descending)."""
    sizes, k = [], n // 2
    while k > smallest:
        sizes.append(k)
        k //= 2
    sizes.append(smallest)
    return sorted(set(sizes), reverse=True)


def prediction_errors(spec: Spec, datasets: Sequence[Dataset], edge_sets: Sequence[Sequence[str]],
                      offset: float = SCORE_OFFSET) -> list[float]:
    """For every edge set (prunable edges kept; the others' strengths held at 0), the mean over the data
    files of the error of predicting that file from its first sample with gradient matching on the other
    files (see the module docstring); inf where a file cannot be scored."""
    strength = {e.id: str(e.strength) for e in spec.interactions if e.prunable and isinstance(e.strength, str)}
    variants = [({strength[e] for e in strength if e not in set(edges)}, 1.0) for edges in edge_sets]
    return [float(np.mean(errs)) for errs in holdout_errors(spec, datasets, variants, offset)]


def select_by_prediction(search: Search, strat: ScreenRefit, current: Candidate) -> Candidate:
    """Refit the sparsest nested set (strongest edges of ``current``) whose gradient-matching held-out error
    is no worse than that of ``current``'s edges; accept it if the refit succeeds."""
    eff = effect_sizes(search.spec, search.datasets, current.parameters)
    ranked = sorted(current.edges, key=lambda e: -eff.get(e, math.inf))
    sets = [ranked] + [ranked[:k] for k in screen_sizes(len(ranked), strat.smallest)]
    errors = prediction_errors(search.spec, search.datasets, sets)
    search.note("held-out prediction error (gradient matching, leave one file out) by kept edges: "
                + ", ".join(f"{len(s)}: {e:.4f}" for s, e in zip(sets, errors, strict=True)))
    ok = [k for k in range(1, len(sets)) if errors[k] <= errors[0]]
    if not ok or search.out_of_time():
        return current
    chosen = sets[max(ok, key=lambda k: (-len(sets[k]), -errors[k]))]
    cands = [c for c in search.evaluate([chosen], current) if not c.failed]
    if not cands:
        return current
    search.accept(cands[0])
    return cands[0]


def run_screen(search: Search, strat: ScreenRefit, current: Candidate) -> Candidate:
    """Refit the models keeping the k strongest edges of ``current`` (k halving; ``workers`` refits at a
    time, warm started from ``current``) while the time budget lasts; accept the best by the criterion if
    it beats ``current``. Repeat on the accepted model for ``strat.rounds`` rounds."""
    if strat.select == "prediction":
        return select_by_prediction(search, strat, current)
    crit = strat.criterion
    for _ in range(strat.rounds):
        eff = effect_sizes(search.spec, search.datasets, current.parameters)
        ranked = sorted(current.edges, key=lambda e: -eff.get(e, math.inf))
        sets = [ranked[:k] for k in screen_sizes(len(ranked), strat.smallest)]
        cands: list[Candidate] = []
        for i in range(0, len(sets), max(1, search.workers)):
            if search.out_of_time():
                break
            cands += search.evaluate(sets[i:i + max(1, search.workers)], current)
        ok = [c for c in cands if not c.failed]
        best = min(ok, key=lambda c: c.ic(crit), default=None)
        if best is None or best.ic(crit) >= current.ic(crit):
            break
        current = best
        search.accept(current)
    return current
