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
full edge set and every nested set, the leave-one-file-out errors e_sf of gradient matching restricted to
the set (:mod:`symode.fit.gradient_matching`; the crossval score: RMSE of log10(x + 1e-5) of each
held-out file f predicted from its first sample), with the spec's penalty scales multiplied by each
multiplier of ``penalty_grid`` (a set's error is that of its best multiplier: a sparser set may need a
weaker penalty). The chosen set is refitted (one ODE refit instead of one per size; gLV-type templates
only):

- ``rule="no-worse"``: the sparsest set whose mean error is at most the full set's;
- ``rule="one-se"`` (the one-standard-error rule, Hastie, Tibshirani & Friedman, *Elements of Statistical
  Learning*, section 7.10): the sparsest set whose mean error is at most E* + SE*, with E* the lowest
  mean error of any set and SE* = sd_f(e_*f) / sqrt(n_files) the standard error of that mean.
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

__all__ = ["RULES", "choose_by_prediction", "effect_sizes", "prediction_error_table", "prediction_errors", "run_screen",
           "screen_sizes"]

#: How ``select="prediction"`` picks the set (see the module docstring).
RULES = ("no-worse", "one-se")


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


def prediction_error_table(spec: Spec, datasets: Sequence[Dataset], edge_sets: Sequence[Sequence[str]],
                           penalty_grid: Sequence[float] = (1.0,), offset: float = SCORE_OFFSET) -> np.ndarray:
    """(sets, multipliers, files) errors of predicting each file from its first sample with gradient matching
    on the other files, the prunable edges of the set kept (the others' strengths held at 0) and the penalty
    scales multiplied by the multiplier; inf where a file cannot be scored."""
    strength = {e.id: str(e.strength) for e in spec.interactions if e.prunable and isinstance(e.strength, str)}
    variants = [({strength[e] for e in strength if e not in set(edges)}, float(m))
                for edges in edge_sets for m in penalty_grid]
    errs = np.array(holdout_errors(spec, datasets, variants, offset), dtype=float)
    return errs.reshape(len(edge_sets), len(penalty_grid), len(datasets))


def prediction_errors(spec: Spec, datasets: Sequence[Dataset], edge_sets: Sequence[Sequence[str]],
                      offset: float = SCORE_OFFSET) -> list[float]:
    """For every edge set (prunable edges kept; the others' strengths held at 0), the mean over the data
    files of the error of predicting that file from its first sample with gradient matching on the other
    files (see the module docstring); inf where a file cannot be scored."""
    return [float(v) for v in prediction_error_table(spec, datasets, edge_sets, (1.0,), offset)[:, 0].mean(axis=1)]


def choose_by_prediction(table: np.ndarray, sizes: Sequence[int], rule: str = "no-worse") -> tuple[int, int] | None:
    """(set index, multiplier index) chosen from a :func:`prediction_error_table` of sets of ``sizes`` kept
    edges (the first set the full one) by ``rule`` (see the module docstring), or None when no set other
    than the first qualifies or no error is finite."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r} ({', '.join(RULES)})")
    means = table.mean(axis=2)                       # (sets, multipliers); inf if a file was not scored
    best_m = means.argmin(axis=1)
    best = means[np.arange(len(means)), best_m]
    if not np.isfinite(best).any():
        return None
    if rule == "no-worse":
        limit = best[0]
    else:
        k = int(np.argmin(best))
        e = table[k, best_m[k]]
        limit = best[k] + (float(np.std(e, ddof=1) / math.sqrt(len(e))) if len(e) > 1 else 0.0)
    ok = [k for k in range(1, len(best)) if np.isfinite(best[k]) and best[k] <= limit]
    if not ok:
        return None
    k = min(ok, key=lambda k: (sizes[k], best[k]))
    return k, int(best_m[k])


def select_by_prediction(search: Search, strat: ScreenRefit, current: Candidate) -> Candidate:
    """Refit the nested set (strongest edges of ``current``) chosen by held-out prediction under
    ``strat.rule`` (:func:`choose_by_prediction`); accept it if the refit succeeds."""
    eff = effect_sizes(search.spec, search.datasets, current.parameters)
    ranked = sorted(current.edges, key=lambda e: -eff.get(e, math.inf))
    sets = [ranked] + [ranked[:k] for k in screen_sizes(len(ranked), strat.smallest)]
    grid = [float(m) for m in strat.penalty_grid]
    table = prediction_error_table(search.spec, search.datasets, sets, grid)
    means = table.mean(axis=2)
    shown = [f"{len(s)}: {means[k].min():.4f}" + (f" (penalty x{grid[int(means[k].argmin())]:g})"
                                                  if len(grid) > 1 else "") for k, s in enumerate(sets)]
    search.note("held-out prediction error (gradient matching, leave one file out) by kept edges: "
                + ", ".join(shown))
    pick = choose_by_prediction(table, [len(s) for s in sets], strat.rule)
    if strat.rule == "one-se":
        k = int(np.argmin(means.min(axis=1)))
        e = table[k, int(means[k].argmin())]
        se = float(np.std(e, ddof=1) / math.sqrt(len(e))) if len(e) > 1 else 0.0
        search.note(f"one-standard-error rule: lowest mean error {means[k].min():.4f} ({len(sets[k])} edges), "
                    f"standard error {se:.4f}; chosen: "
                    + ("the full set" if pick is None else f"{len(sets[pick[0]])} edges"
                       + (f" (its best penalty multiplier x{grid[pick[1]]:g})" if len(grid) > 1 else "")))
    if pick is None or search.out_of_time():
        return current
    cands = [c for c in search.evaluate([sets[pick[0]]], current) if not c.failed]
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
