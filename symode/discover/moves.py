"""The moves of the search from the current model: backward elimination (knockout-ranked single and
group removals), add-back of pruned edges, swaps of related edges, and cold refits of the model, its
splits and single removals from satellite re-initialising starts; and sequential thresholding.

A move is accepted when the candidate's information criterion (BIC or AICc) is lower than the current
model's. One parameter costs log(n)/2 (BIC) or 1 (AICc) in objective units (1/2 chi^2).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from symode.discover.candidates import Candidate, edge_parts, edge_sizes, effective_edges
from symode.discover.search import Search
from symode.discover.starts import transplant_start
from symode.discover.strategies import BackwardElimination, ThresholdRefit
from symode.spec import Spec

__all__ = ["run_backward", "run_moves", "run_threshold", "split_moves", "swap_sets"]


def _penalty(crit: str, n_obs: int) -> float:
    """Objective units (1/2 chi2) one parameter costs under the criterion."""
    return 0.5 * math.log(max(n_obs, 2)) if crit == "bic" else 1.0


def _ranked(c: Candidate, sizes: dict[str, int] | None = None, crit: str = "bic") -> list[str]:
    """Edges of a fitted candidate, least needed first: by knockout objective increase minus the
    criterion's saving of the edge's parameters when knockouts are known, else by Wald statistic."""
    if c.knockout and all(e in c.knockout for e in c.edges):
        pen = _penalty(crit, c.n_obs)
        return sorted(c.edges, key=lambda e: c.knockout[e] - pen * (sizes or {}).get(e, 1))
    return sorted(c.edges, key=lambda e: c.wald.get(e, math.inf))


def _weak_groups(c: Candidate, ranked: list[str], strat: BackwardElimination, sizes: dict[str, int]) -> list[list[str]]:
    """Groups of edges to try removing at once: those whose knockout alone (no refit) costs less than
    the criterion saves (and the weaker half of them), else those with Wald statistic below ``weak``."""
    if c.knockout and all(e in c.knockout for e in c.edges):
        pen = _penalty(strat.criterion, c.n_obs)
        weak = [e for e in ranked if c.knockout[e] < pen * sizes.get(e, 1)]
    else:
        weak = [e for e in ranked if c.wald.get(e, math.inf) < strat.weak]
    groups = [weak] if len(weak) > 1 else []
    if len(weak) >= 4:
        groups.append(weak[: len(weak) // 2])
    return groups


def run_backward(search: Search, strat: BackwardElimination, current: Candidate) -> Candidate:
    crit = strat.criterion
    sizes = edge_sizes(search.spec)
    for _ in range(strat.max_rounds):
        if not current.edges or search.out_of_time():
            break
        current = search.rescore(current)
        ranked = _ranked(current, sizes, crit)
        # Group removals first (alone: a large single-removal refit would hold up the batch), else the
        # ``workers`` least needed single edges.
        sets: list[list[str]] = [[e for e in current.edges if e not in g]
                                 for g in _weak_groups(current, ranked, strat, sizes)]
        n_groups = len(sets)
        if not sets:
            sets = [[x for x in current.edges if x != e] for e in ranked[: max(1, search.workers)]]
        cands = search.evaluate(sets, current) if n_groups else search.evaluate_rivals(sets, current)
        best = min(cands, key=lambda c: c.ic(crit))
        if best.ic(crit) < current.ic(crit):
            current = best
            search.accept(current)
            continue
        # The first candidates were not better: try the remaining edges (rank order, ``workers`` at a
        # time) until a removal improves the criterion; Wald ranks are unreliable in sloppy models.
        improved = False
        rest = ranked if n_groups else ranked[len(sets):]
        for i in range(0, len(rest), max(1, search.workers)):
            if search.out_of_time():
                break
            batch = rest[i:i + max(1, search.workers)]
            cands = search.evaluate_rivals([[x for x in current.edges if x != e] for e in batch], current)
            best = min(cands, key=lambda c: c.ic(crit))
            if best.ic(crit) < current.ic(crit):
                current, improved = best, True
                search.accept(current)
                break
        if not improved:
            break
    return current


def swap_sets(spec: Spec, current: Candidate, full_edges: Sequence[str]) -> list[list[str]]:
    """Edge sets that exchange one kept edge for a pruned edge of the same kind that shares its organism
    or its metabolite (e.g. a satellite growing on M2 instead of M1; M3 inhibiting X instead of M2)."""
    parts = edge_parts(spec)
    have = set(current.edges)
    out = []
    for e in current.edges:
        ke, oe, me = parts[e]
        for f in full_edges:
            kf, of, mf = parts[f]
            if f in have or kf != ke or (of != oe and mf != me):
                continue
            out.append([x for x in current.edges if x != e] + [f])
    return out


def _best_of_batches(search: Search, sets: list[list[str]], current: Candidate, crit: str,
                     batch: int, evaluate: Callable[[list[list[str]]], list[Candidate]] | None = None
                     ) -> Candidate | None:
    """The first batch (of ``batch`` sets) containing a candidate better than ``current``: its best one."""
    for i in range(0, len(sets), max(1, batch)):
        if search.out_of_time():
            return None
        chunk = sets[i:i + batch]
        cands = evaluate(chunk) if evaluate is not None else search.evaluate(chunk, current)
        best = min(cands, key=lambda c: c.ic(crit), default=None)
        if best is not None and best.ic(crit) < current.ic(crit):
            return best
    return None


def run_moves(search: Search, strat: BackwardElimination, current: Candidate,
               full_edges: Sequence[str]) -> Candidate:
    """Local search around the eliminated model: add back one pruned edge, or exchange a kept edge for a
    related pruned one; after every improvement, eliminate again. Stops at a model none of these moves
    improves (the backward path alone can lose a true edge after a local minimum of the full fit)."""
    crit = strat.criterion
    for _ in range(strat.max_rounds):
        with search.phase("elimination"):
            current = run_backward(search, strat, current)
        if search.out_of_time():
            break
        have = set(current.edges)
        adds = []
        for f in full_edges:
            if f not in have:
                s = effective_edges(search.spec, [*current.edges, f])
                if set(s) != have:
                    adds.append(s)
        # All additions at once (cheap warm-started refits): the best one, if it improves.
        best = None
        if strat.add_back:
            with search.phase("add-back"):
                best = _best_of_batches(search, adds, current, crit, len(adds))
        if best is None and strat.swaps:
            with search.phase("swaps"):
                best = _best_of_batches(search, swap_sets(search.spec, current, full_edges), current, crit,
                                        max(2, 2 * search.workers))
        if best is None and strat.cold_starts > 0:
            with search.phase("cold refits"):
                best = _run_cold(search, strat, current)
        if best is None:
            break
        current = best
        search.accept(current)
    return current


def split_moves(spec: Spec, current: Candidate) -> list[tuple[list[str], str, str]]:
    """Edge sets that hand one substrate of a satellite growing on several to a satellite absent from
    ``current`` (the inverse of two satellites merged into one, a local minimum of the full fit), each
    also in a compound form where every other satellite that eats that substrate stops eating it (when
    the role was spread over two satellites, neither the split nor that removal alone improves). Each
    with the donor's uptake edge and the absent satellite's new one: (edges, donor edge, new edge)."""
    parts = edge_parts(spec)
    sats = [s.name for s in spec.states.values() if s.role == "satellite"]
    ups: dict[str, list[str]] = {}
    for e in current.edges:
        kind, org, _met = parts[e]
        if kind == "uptake":
            ups.setdefault(org, []).append(e)
    absent = [y for y in sats if y not in ups]
    if not absent:
        return []
    out = []
    for edges in ups.values():
        if len(edges) < 2:
            continue
        for e in edges:
            met = parts[e][2]
            f = next((f for f, (k, o, m) in parts.items() if k == "uptake" and o == absent[0] and m == met), None)
            if f is None:
                continue
            split = [x for x in current.edges if x != e] + [f]
            out.append((split, e, f))
            others = [x for x in split if x != f and parts[x][0] == "uptake" and parts[x][2] == met
                      and len(ups[parts[x][1]]) > 1]          # not a satellite's only substrate
            if others:
                out.append(([x for x in split if x not in others], e, f))
    return out


def _run_cold(search: Search, strat: BackwardElimination, current: Candidate) -> Candidate | None:
    """Escape a local minimum of the warm-started search: refit the current model, its splits
    (:func:`split_moves`; each also from a :func:`transplant_start`) and each of its single removals
    (least needed edge first; ``workers`` sets at a time) from starts that re-initialise the satellites
    (:func:`cold_starts`). A removal that asks
    another satellite to take over a role needs the parameters to re-balance, which refits warm started
    from the current model do not do (they land in worse local minima). Returns the first batch's best
    candidate that improves the criterion, or None."""
    crit = strat.criterion
    current = search.rescore(current)
    ranked = _ranked(current, edge_sizes(search.spec), crit)
    splits = split_moves(search.spec, current)
    extra: dict[frozenset[str], list[tuple[dict[str, float], dict[str, float]]]] = {}
    for edges, donor, new in splits:
        key = frozenset(effective_edges(search.spec, edges))
        extra.setdefault(key, []).append(transplant_start(search.spec, current, donor, new))
    sets = ([list(current.edges)] + [edges for edges, _d, _n in splits]
            + [[x for x in current.edges if x != e] for e in ranked])
    return _best_of_batches(search, sets, current, crit, max(1, search.workers),
                            evaluate=lambda ss: search.evaluate_cold(ss, current, strat.cold_starts, extra))


def run_threshold(search: Search, strat: ThresholdRefit, current: Candidate) -> Candidate:
    """Drop every edge whose Wald statistic is below the threshold, refit, repeat. When the refit fails
    (objective not finite even after the retry), drop only the weaker half of those edges, and so on down
    to one edge; when even that fails, stop at the current model. Each fallback is noted."""
    for _ in range(strat.max_rounds):
        if search.out_of_time():
            break
        weak = sorted((e for e in current.edges if current.wald.get(e, math.inf) < strat.threshold),
                      key=lambda e: current.wald.get(e, math.inf))
        if not weak:
            break
        step = weak
        while True:
            (cand,) = search.evaluate([[e for e in current.edges if e not in step]], current)
            if not cand.failed and math.isfinite(cand.objective) and cand.objective < 1e300:
                break
            if len(step) == 1 or search.out_of_time():
                search.note(f"threshold: the refit without {len(step)} weak edge(s) failed ({cand.failed}); "
                            f"stopped at the model with {len(current.edges)} edges")
                return current
            half = max(1, len(step) // 2)
            search.note(f"threshold: the refit without {len(step)} weak edges at once failed ({cand.failed}); "
                        f"trying the {half} weakest")
            step = step[:half]
        current = cand
        search.accept(current)
    return current
