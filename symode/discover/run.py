"""Structure discovery: fit a template whose edges are prunable, remove the edges
the data do not need, refit, and select the model by an information criterion.

>>> res = discover("specs/community-2x3.yaml", "data.csv", outdir="out")          # doctest: +SKIP
>>> res.kept_edges                                                                 # doctest: +SKIP
>>> write_discovery(res, "out")   # symode.report.discover: discovery.json, pruned.yaml, report.md  # doctest: +SKIP

Strategies (pass one as ``strategy=``):

- :class:`BackwardElimination` (default): fit the full template from several symmetry-breaking starts
  (satellites are exchangeable: a start that treats them alike keeps them alike), then repeatedly rank
  the remaining edges by their knockout cost (objective increase when the edge's strength is set to 0
  without refitting, minus what the criterion saves by dropping its parameters; Wald statistics as a
  fallback) and refit candidate models without the least needed edge and without the group of edges
  whose knockout alone already pays (in parallel, warm started); accept the candidate with the lowest
  criterion (BIC by default) while it improves on the current model. A removal cached from an earlier
  model is refitted from the current one (once) unless it already beats it. Then a local search: re-add each
  pruned edge, or exchange a kept edge for a pruned one of the same kind sharing its organism or
  metabolite; after every improvement, eliminate again. When none of these warm-started moves improves,
  the model, its splits (a substrate of a satellite growing on several handed to an absent satellite)
  and each of its single removals are refitted from starts that re-initialise the satellites (X's
  parameters stay): hidden satellites can trade roles (one doing part of another's job, or two merged
  into one), a basin that traps every warm-started refit. The result is a model no single drop, add or
  swap (warm) and no refit, split or drop (cold) improves.
- :class:`ScreenRefit`: sparse screening for large templates (gLV): nested models of the edges with the
  largest effect sizes in the full fit, selected by the criterion (:mod:`symode.discover.screen`).
- :class:`ThresholdRefit`: sequential thresholding in the spirit of STLSQ: drop every edge whose Wald
  statistic is below ``threshold``, refit, repeat until nothing is dropped.

A satellite left without uptake edges cannot grow (it washes out): it is removed together with all of its
edges. Models that differ only by a permutation of exchangeable satellites share one fit, and the
selected model's satellites are renamed to a canonical order (:func:`satellite_relabelling`). Every
evaluated candidate is checkpointed in ``OUTDIR/discovery-checkpoint.json``; a rerun with
the same spec and data resumes from it.

Every budget a decision rests on is an iteration count (:mod:`symode.discover.search`), so the outcome
does not depend on the machine's speed or load, nor on the backend. A time budget (``budget`` seconds of
wall time, a safety cap) stops the search when spent: the best model so far is reported and the result says
that the budget cut the search short (``budget_exhausted``). A candidate
fit that fails (objective not finite) is retried once with multiple shooting; if it fails again it is
listed in the result's ``failed`` (and warned about on stderr), never kept. Initial states are per data
file (``x0``: "spec", "first-sample" or "estimate", as in :mod:`symode.fit.experiments`) and every file's
initial states are carried from one candidate to the next.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from symode.discover.candidates import Candidate, candidate_spec, prunable_edges
from symode.discover.labels import relabel_candidate, satellite_relabelling
from symode.discover.moves import run_backward, run_moves, run_threshold
from symode.discover.result import DiscoveryResult
from symode.discover.screen import run_screen
from symode.discover.search import Search
from symode.discover.strategies import BackwardElimination, ScreenRefit, ThresholdRefit
from symode.errors import SymodeError
from symode.fit import as_datasets, fit
from symode.fit.experiments import experiment_x0
from symode.hybrid import blas_threads
from symode.parallel import default_workers
from symode.spec import Spec, load_spec
from symode.spec.data import Dataset

__all__ = ["discover"]


def discover(spec: Spec | str | Path, datasets: Dataset | str | Path | Sequence[Any], *,
             strategy: BackwardElimination | ThresholdRefit | ScreenRefit | None = None,
             outdir: str | Path | None = None,
             workers: int | None = None, progress: bool = True, resume: bool = True, max_iter: int = 300,
             max_time: float | None = None, final_analysis: bool = True, budget: float | None = None,
             x0: str = "spec") -> DiscoveryResult:
    """Discover the edge set of a template (see the module docstring). ``outdir``: where the checkpoint
    ``discovery-checkpoint.json`` is kept (a rerun with the same spec and data resumes from it);
    :func:`symode.report.discover.write_discovery` writes discovery.json, pruned.yaml, report.md and
    the plots of the result. ``workers``: processes of the candidate pool (default: all CPUs), also the
    batch size of the search. ``max_iter``: Levenberg-Marquardt iterations of a candidate refit;
    ``max_time``: wall-time safety cap of one candidate fit (None: only the search's); ``budget``: of the
    whole search (None: none);
    ``x0``: initial states per data file (spec, first-sample, estimate).

    The outcome depends on the data, the strategy, ``max_iter`` and ``workers`` only: every budget a
    decision rests on is an iteration count, and BLAS runs single-threaded (same rounding in this process,
    the local pool and on a cluster). Wall-clock caps are a safety net; the result's notes say when one
    was hit. ``result.timings``: wall and CPU seconds per phase (:class:`symode.timing.Timings`)."""
    t0 = time.perf_counter()
    strategy = strategy or BackwardElimination()
    if strategy.criterion not in ("bic", "aicc"):
        raise SymodeError(f"unknown criterion {strategy.criterion!r} (bic, aicc)", field="criterion")
    if isinstance(strategy, ScreenRefit) and strategy.select not in ("criterion", "prediction"):
        raise SymodeError(f"unknown selection {strategy.select!r} (criterion, prediction)", field="select")
    spec = spec if isinstance(spec, Spec) else load_spec(spec)
    data = as_datasets(datasets)
    if budget is not None and not budget > 0:
        raise SymodeError(f"the time budget must be positive (got {budget})", field="max_time")
    spec, x0s = experiment_x0(spec, data, x0)
    if not prunable_edges(spec):
        raise SymodeError("the spec has no prunable edges (mark interactions with prunable: true)",
                          file=spec.source)
    out = Path(outdir) if outdir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    workers = workers or default_workers()
    with blas_threads(1), Search(spec, data, outdir=out, workers=workers, progress=progress, max_iter=max_iter,
                                 max_time=max_time, resume=resume, x0s=x0s, budget=budget) as search:
        search.criterion = strategy.criterion
        best = _search(search, strategy, prunable_edges(spec))
        res = _select(search, strategy, best, final_analysis=final_analysis, progress=progress)
    res.wall_time_s = time.perf_counter() - t0
    res.timings["total_s"] = round(res.wall_time_s, 4)
    return res


def _search(search: Search, strategy: BackwardElimination | ThresholdRefit | ScreenRefit,
            full_edges: list[str]) -> Candidate:
    """Run the strategy from the full template (or the checkpoint's last model); the best model of the path."""
    if search.path:
        current = search.path[-1]
    else:
        with search.phase("full fit"):
            current = search.evaluate_full(full_edges)
        search.accept(current)
    if isinstance(strategy, ThresholdRefit):
        current = run_threshold(search, strategy, current)
    elif isinstance(strategy, ScreenRefit):
        current = run_screen(search, strategy, current)
    elif strategy.add_back or strategy.swaps or strategy.cold_starts > 0:
        current = run_moves(search, strategy, current, full_edges)
    else:
        with search.phase("elimination"):
            current = run_backward(search, strategy, current)
    search.out_of_time()
    ok = [c for c in search.path if not c.failed] or search.path
    if isinstance(strategy, ScreenRefit) and strategy.select == "prediction":
        return ok[-1]   # the sparsest set that predicts no worse than the full one (run_screen's pick)
    return min(ok, key=lambda c: c.ic(strategy.criterion))


def _select(search: Search, strategy: BackwardElimination | ThresholdRefit | ScreenRefit, best: Candidate, *,
            final_analysis: bool, progress: bool) -> DiscoveryResult:
    """The result: satellites renamed to the canonical order, and the selected model's final fit with its
    uncertainty analysis (within what is left of the time budget)."""
    spec, data = search.spec, search.datasets
    full_edges = prunable_edges(spec)
    path, evaluated = list(search.path), list(search.order)
    failed, notes, cut = list(search.failed), list(search.notes), search.budget_spent
    if search.time_capped:
        notes.append(f"{search.time_capped} candidate fit(s) were stopped by the wall-clock safety cap "
                     f"({'the time budget' if search.max_time is None else f'{search.max_time:g} s per fit'}): "
                     "their results, and the decisions "
                     "taken on them, depend on the machine's speed and load")
        print(f"discover: WARNING: {notes[-1]}", file=sys.stderr)
    relabel = satellite_relabelling(spec, best.edges)
    if relabel and progress:
        print("discover: satellites renamed to the canonical order (by lowest-numbered substrate): "
              + ", ".join(f"{a} -> {b}" for a, b in relabel.items()))
    best = relabel_candidate(best, relabel)
    path = [relabel_candidate(c, relabel) for c in path]
    evaluated = [relabel_candidate(c, relabel) for c in evaluated]
    kept = list(best.edges)
    pruned = [e for e in full_edges if e not in kept]
    sub = candidate_spec(spec, kept)
    sub = sub.with_values({n: v for n, v in best.parameters.items() if n in sub.parameters},
                          {n: v for n, v in best.x0.items() if n in sub.states})
    final = None
    left = search.remaining()
    if best.failed:
        notes.append("every fit of the full template failed: no model was selected")
    if final_analysis and left > 0 and not best.failed:
        cap = min(search.max_time or math.inf, left)      # inf: the fit's own default time limit
        with search.phase("final analysis"):
            final = fit(sub, data, progress=progress, shooting="single", max_iter=search.max_iter,
                        max_time=None if math.isinf(cap) else max(1.0, cap), x0=best.x0s or search.x0s)
        if final.timings:
            search.timings.merge(final.timings, prefix="final analysis")
        sub = final.fitted_spec()
    elif final_analysis and cut:
        notes.append("the final fit with uncertainty analysis was skipped: the time budget is spent")
    return DiscoveryResult(spec=spec, kept_edges=kept, pruned_edges=pruned, selected=best, path=path,
                           evaluated=evaluated, pruned_spec=sub, final_fit=final, criterion=strategy.criterion,
                           relabelling=relabel, failed=failed, notes=notes, budget_exhausted=cut,
                           budget_s=None if search.deadline is None else search.budget,
                           timings=search.timings.to_dict())
