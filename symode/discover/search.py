"""The discovery search: fitted candidates cached by canonical edge set, warm and cold evaluation of
candidate sets on one executor (:mod:`symode.parallel`), and the checkpoint
``OUTDIR/discovery-checkpoint.json`` from which a rerun with the same spec and data resumes.

Budgets: the full template's multi-start fit gets ``full_time`` CPU seconds per
:data:`FULL_TIME_UNKNOWNS` unknowns; a warm refit at most :data:`REFIT_CPU_SHARE` of that; cold refits
are abandoned as hopeless only after :data:`COLD_PATIENCE` times the iterations of warm ones.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from symode.discover.candidates import Candidate, candidate_spec, effective_edges, n_unknowns, prunable_edges
from symode.discover.labels import order_mapping, relabel_candidate, rename_labels, satellites_exchangeable
from symode.discover.starts import cold_starts, full_starts
from symode.discover.strategies import information_criteria
from symode.discover.worker import fit_candidate
from symode.errors import SymodeError
from symode.io import atomic_write_json
from symode.parallel import Executor, TaskFailure, get_executor, run_tasks
from symode.progress import Bar, progress_bar
from symode.spec import Spec
from symode.spec.data import Dataset

__all__ = ["CHECKPOINT", "COLD_PATIENCE", "FULL_TIME_UNKNOWNS", "REFIT_CPU_SHARE", "Search"]

CHECKPOINT = "discovery-checkpoint.json"
FULL_TIME_UNKNOWNS = 45     # the full-template fit budget (``Search.full_time``) is per this many unknowns
COLD_PATIENCE = 3.0         # cold refits are abandoned as hopeless only after 3x the iterations of warm ones
REFIT_CPU_SHARE = 0.5       # CPU limit of one warm candidate refit, as a share of the full-template budget


def _fingerprint(spec: Spec, datasets: Sequence[Dataset]) -> str:
    h = hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True, default=str).encode())
    for d in datasets:
        h.update(np.asarray(d.times, float).tobytes())
        for k in sorted(d.columns):
            h.update(k.encode())
            h.update(np.asarray(d.columns[k], float).tobytes())
    return h.hexdigest()


class Search:
    """The state of one discovery search: the cache of fitted candidates (keyed by canonical edge set),
    the accepted path, the checkpoint, the progress bar and the executor of the candidate pool (kept
    alive across batches; use as a context manager so that it is closed)."""

    def __init__(self, spec: Spec, datasets: list[Dataset], *, outdir: Path | None, workers: int,
                 progress: bool, max_iter: int, max_time: float, resume: bool,
                 x0s: list[dict[str, float]] | None = None, budget: float | None = None) -> None:
        self.spec, self.datasets, self.outdir = spec, datasets, outdir
        self.x0s = x0s              # initial states of every data file (None: the spec's)
        self.deadline = time.monotonic() + budget if budget is not None else None
        self.budget_spent = False   # set when a move was skipped because the time budget was spent
        self.failed: list[dict[str, Any]] = []      # candidate fits that failed twice
        self.notes: list[str] = []                  # what the search did differently (fallbacks)
        self.workers, self.progress = workers, progress
        self.max_iter, self.max_time = max_iter, max_time
        self.full_time = 240.0
        self.criterion: str | None = None     # set by discover(): early abandon of hopeless candidates
        self.full_starts: list[float] = []
        self.cache: dict[frozenset[str], Candidate] = {}
        self.cold_done: set[frozenset[str]] = set()     # edge sets refitted from cold starts
        self.warm_from: set[tuple[frozenset[str], frozenset[str]]] = set()   # (edge set, start) warm fits
        self.order: list[Candidate] = []
        self.path: list[Candidate] = []
        self.fp = _fingerprint(spec, datasets) + hashlib.sha256(
            json.dumps(x0s, sort_keys=True).encode()).hexdigest()[:16]
        self.satellites = [s.name for s in spec.states.values() if s.role == "satellite"]
        self.exchangeable = satellites_exchangeable(spec)
        self.executor: Executor | None = None
        self.bar: Bar = Bar()
        if resume and outdir is not None and (outdir / CHECKPOINT).exists():
            self._resume(outdir / CHECKPOINT)

    def _resume(self, path: Path) -> None:
        """Load a checkpoint of the same spec and data (a checkpoint is untrusted input: one that does not
        parse is ignored, with a message, and the search starts afresh)."""
        try:
            ck = json.loads(path.read_text())
        except (OSError, ValueError):
            ck = {}
        if not isinstance(ck, dict) or ck.get("fingerprint") != self.fp:
            return
        try:
            for d in ck.get("evaluated", []):
                c = Candidate.from_dict(d)
                self.cache[self._canon(c.edges)[0]] = c
                self.order.append(c)
            path_ = [self.lookup(e) for e in ck.get("path", [])]
            self.path = [c for c in path_ if c is not None]
            self.cold_done = {self._canon(e)[0] for e in ck.get("cold_done", [])}
            self.warm_from = {(self._canon(a)[0], self._canon(b)[0]) for a, b in ck.get("warm_from", [])}
            self.full_starts = [float(v) for v in ck.get("full_starts", [])]
            self.failed = [dict(f) for f in ck.get("failed", [])]
            self.notes = [str(n) for n in ck.get("notes", [])]
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            print(f"discover: ignoring the unreadable checkpoint {path} ({type(exc).__name__}: {exc})")
            self.cache, self.order, self.path = {}, [], []
            self.cold_done, self.warm_from, self.full_starts = set(), set(), []
            return
        if self.order and self.progress:
            print(f"discover: resuming from {path} ({len(self.order)} fitted candidates)")

    def __enter__(self) -> Search:
        self.bar = progress_bar(desc="discover", unit="fit", enabled=self.progress)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.executor is not None:
            self.executor.close()
            self.executor = None
        self.bar.close()

    def _canon(self, edges: Sequence[str]) -> tuple[frozenset[str], dict[str, str]]:
        """(cache key, {label: canonical label}): edge sets that differ only by a permutation of
        exchangeable satellites are the same model and share one fit."""
        m = order_mapping(self.spec, edges) if self.exchangeable else {}
        return (frozenset(rename_labels(list(edges), m)) if m else frozenset(edges)), m

    def lookup(self, edges: Sequence[str]) -> Candidate | None:
        """The cached fit of ``edges`` (relabelled to the requested satellite names), or None."""
        key, m = self._canon(edges)
        c = self.cache.get(key)
        if c is None or set(c.edges) == set(edges):
            return c
        _, mc = self._canon(c.edges)
        inv = {v: k for k, v in m.items()}
        mapping = {}
        for y in self.satellites:
            target = inv.get(mc.get(y, y), mc.get(y, y))
            if target != y:
                mapping[y] = target
        return relabel_candidate(c, mapping)

    def save(self) -> None:
        if self.outdir is None:
            return
        atomic_write_json(self.outdir / CHECKPOINT, {
            "fingerprint": self.fp, "evaluated": [c.to_dict() for c in self.order],
            "path": [c.edges for c in self.path], "full_starts": self.full_starts,
            "cold_done": [sorted(k) for k in self.cold_done],
            "warm_from": [[sorted(a), sorted(b)] for a, b in self.warm_from],
            "failed": self.failed, "notes": self.notes})

    def remaining(self) -> float:
        """Seconds left of the time budget (inf without one)."""
        return math.inf if self.deadline is None else self.deadline - time.monotonic()

    def out_of_time(self) -> bool:
        """Whether the time budget is spent (then remembered: the result says the budget cut it short)."""
        if self.remaining() <= 0:
            self.budget_spent = True
        return self.budget_spent

    def note(self, text: str) -> None:
        """Record (and print) what the search did differently from its plan."""
        self.notes.append(text)
        print(f"discover: {text}", file=sys.stderr)

    def _job(self, edges: list[str], start: Candidate | None) -> dict[str, Any]:
        sub = candidate_spec(self.spec, edges)
        params = dict(start.parameters) if start is not None else {}
        x0 = dict(start.x0) if start is not None else {}
        # A warm refit of a sub-model needs far less than the cold multi-start fit of the full template: at
        # most REFIT_CPU_SHARE of that budget in CPU time (under load, a refit that neither converges nor
        # turns hopeless would otherwise run to ``max_time`` and hold up its whole batch).
        x0s = start.x0s if start is not None and start.x0s else self.x0s
        job = {"spec": sub.to_dict(), "edges": edges, "parameters": params, "x0": x0, "x0s": x0s,
               "datasets": self.datasets, "max_iter": self.max_iter,
               "max_time": max(1.0, min(self.max_time, self.remaining())), "max_cpu": self.refit_cpu}
        if start is not None and self.criterion is not None:
            # The objective below which this candidate beats ``start`` under the criterion.
            aicc, bic = information_criteria(0.0, n_unknowns(sub, len(self.datasets)), start.n_obs)
            job["target"] = 0.5 * (start.ic(self.criterion) - (bic if self.criterion == "bic" else aicc))
        return job

    @cached_property
    def refit_cpu(self) -> float:
        """CPU limit of one warm candidate refit: :data:`REFIT_CPU_SHARE` of the full template's budget."""
        return REFIT_CPU_SHARE * self.full_budget(prunable_edges(self.spec))

    def full_budget(self, edges: Sequence[str]) -> float:
        """CPU seconds of the multi-start fit of the model with ``edges``: ``full_time`` per
        :data:`FULL_TIME_UNKNOWNS` unknowns (at least ``full_time``)."""
        k = n_unknowns(candidate_spec(self.spec, list(edges)), len(self.datasets))
        return self.full_time * max(1.0, k / FULL_TIME_UNKNOWNS)

    def evaluate_full(self, edges: list[str]) -> Candidate:
        """The full model from several symmetry-breaking starting points (:func:`full_starts`): all of
        them are fitted in parallel for a quarter of ``full_time``, then the ``workers`` best continue for
        the rest (the full template has many local minima and its fits are slow); the best one wins."""
        cached = self.lookup(effective_edges(self.spec, edges))
        if cached is not None:
            return cached
        # The budget scales with the number of unknowns (per-iteration cost and iterations both grow) and
        # is CPU time (so a moderately busy machine does not stop the fit further from its optimum), with a
        # wall-clock cap of 1.25 times that (so a very busy one does not make discovery take forever).
        budget = self.full_budget(edges)
        starts = full_starts(self.spec, n_starts=max(4, self.workers))
        # Within a time budget: the screening batches get 30% of it, the continuation 40% of the rest.
        rounds = math.ceil(len(starts) / max(1, self.workers))
        jobs = []
        for params, x0 in starts:
            job = self._job(edges, None)
            job["parameters"], job["x0"] = params, x0
            job["max_cpu"] = 0.25 * budget
            job["max_time"] = max(1.0, min(1.25 * 0.25 * budget, 0.3 * self.remaining() / rounds))
            jobs.append(job)
        screened = self.fit_jobs(jobs)
        self.full_starts = [float(r["objective"]) for r in screened]
        best = sorted(screened, key=lambda r: r["objective"])[: max(1, self.workers)]
        jobs = []
        for r in best:
            job = self._job(edges, None)
            job["parameters"], job["x0"] = r["parameters"], r["x0"]
            job["max_cpu"] = 0.75 * budget
            job["max_time"] = max(1.0, min(1.25 * 0.75 * budget, 0.4 * self.remaining()))
            jobs.append(job)
        results = self.fit_jobs(jobs) if not self.out_of_time() else []
        c = Candidate.from_dict(min(results + screened, key=lambda r: r["objective"]))
        self.full_starts += [float(r["objective"]) for r in results]
        self._store([c])
        return c

    def fit_jobs(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """:func:`fit_candidate` of every job on the search's executor (created on first use, kept for
        later batches), results in job order. A job that raised stops the search with its error."""
        if self.executor is None:
            self.executor = get_executor(self.workers)
        results = self._run(jobs)
        # A failed fit (objective not finite) is retried once with multiple shooting from the same start.
        bad = [i for i, r in enumerate(results) if r.get("failed")]
        if bad and not self.out_of_time():
            retry = [{**jobs[i], "shooting": "multiple"} for i in bad]
            for i, r in zip(bad, self._run(retry), strict=True):
                if not r.get("failed") or r["objective"] < results[i]["objective"]:
                    results[i] = r
        for i in bad:
            r = results[i]
            if r.get("failed"):
                self.failed.append({"edges": list(r["edges"]), "n_edges": len(r["edges"]), "reason": r["failed"]})
                print(f"discover: WARNING: the fit of a candidate with {len(r['edges'])} edges failed twice "
                      f"(single, then multiple shooting): {r['failed']}; it is not kept", file=sys.stderr)
        return results

    def _run(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        assert self.executor is not None
        results = run_tasks(fit_candidate, jobs, executor=self.executor)
        for r in results:
            if isinstance(r, TaskFailure):
                raise SymodeError(f"a candidate fit failed: {r}")
        return results

    def _store(self, cands: list[Candidate]) -> None:
        for c in cands:
            self.cache[self._canon(c.edges)[0]] = c
            self.order.append(c)
            self.bar.update(1)
            self.bar.set_postfix_str(f"{len(c.edges)} edges, objective {c.objective:.6g}")
        self.save()

    def _pending(self, sets: Sequence[list[str]], done: Any) -> tuple[list[list[str]], list[list[str]]]:
        """(the effective edge sets of ``sets``, those whose canonical key is not in ``done``, each once)."""
        sets = [effective_edges(self.spec, s) for s in sets]
        todo, seen = [], set()
        for s in sets:
            key = self._canon(s)[0]
            if key not in done and key not in seen:
                todo.append(s)
                seen.add(key)
        return sets, todo

    def improvable(self, edges: Sequence[str], start: Candidate | None) -> bool:
        """Whether to refit the cached fit of ``edges`` warm from ``start`` although it is cached: ``edges``
        is ``start`` without one edge, it was never fitted from ``start``, and its cached fit does not beat
        ``start`` under the criterion. A removal first fitted from an earlier, worse model can sit in a
        far-off local minimum although it is a small step from ``start`` (3x3 bench: the true structure,
        fitted as a removal from a model with two satellites merged, ended at objective 5085; from the
        model one split later it refits to 3410)."""
        if start is None or self.criterion is None:
            return False
        if len(set(start.edges) - set(edges)) != 1 or not set(edges) <= set(start.edges):
            return False
        if (self._canon(edges)[0], self._canon(start.edges)[0]) in self.warm_from:
            return False
        c = self.lookup(edges)
        return c is not None and c.ic(self.criterion) >= start.ic(self.criterion)

    def evaluate(self, sets: Sequence[list[str]], start: Candidate | None) -> list[Candidate]:
        """Fit the candidate edge sets (in parallel, warm started from ``start``), cached; a cached fit is
        reused unless :meth:`improvable` asks for a refit from ``start`` (then the better fit is kept)."""
        sets, todo = self._pending(sets, self.cache)
        keys = {self._canon(s)[0] for s in todo}
        for s in sets:
            key = self._canon(s)[0]
            if key not in keys and self.improvable(s, start):
                todo.append(s)
                keys.add(key)
        if todo:
            results = [Candidate.from_dict(r) for r in self.fit_jobs([self._job(s, start) for s in todo])]
            if start is not None:
                start_key = self._canon(start.edges)[0]
                self.warm_from |= {(k, start_key) for k in keys}
            self._keep_better(results)
        out = [self.lookup(s) for s in sets]
        return [c for c in out if c is not None]

    def _keep_better(self, cands: Sequence[Candidate], rtol: float = 0.0) -> None:
        """Cache (and checkpoint) the fits that are new or lower than the cached fit of their edge set by
        more than ``rtol`` relative; checkpoint anyway (the caller's bookkeeping changed)."""
        better = [c for c in cands if (old := self.cache.get(self._canon(c.edges)[0])) is None
                  or c.objective < old.objective - rtol * abs(old.objective)]
        if better:
            self._store(better)
        else:
            self.save()

    def evaluate_cold(self, sets: Sequence[list[str]], current: Candidate, n_starts: int,
                      extra: dict[frozenset[str], list[tuple[dict[str, float], dict[str, float]]]] | None = None
                      ) -> list[Candidate]:
        """Refit the candidate edge sets from ``n_starts`` starts each that re-initialise the satellites
        (:func:`cold_starts`; X's parameters and the metabolite initial states from ``current``), plus
        the starts ``extra`` gives for a set (by its edge set), in parallel. A cold fit replaces the cached
        fit of its set when it is better; every set is cold-fitted at most once. Returns the (best) fit of
        each set."""
        extra = extra or {}
        sets, todo = self._pending(sets, self.cold_done)
        jobs, owners = [], []
        for s in todo:
            starts = (cold_starts(candidate_spec(self.spec, s), current.parameters, current.x0, n_starts)
                      + extra.get(frozenset(s), []))
            for params, x0 in starts:
                job = self._job(s, current)
                job["parameters"], job["x0"] = params, x0
                job["patience"] = COLD_PATIENCE
                jobs.append(job)
                owners.append(self._canon(s)[0])
        best: dict[frozenset[str], dict[str, Any]] = {}
        for key, r in zip(owners, self.fit_jobs(jobs) if jobs else [], strict=True):
            if key not in best or r["objective"] < best[key]["objective"]:
                best[key] = r
        if best:
            self.cold_done |= set(best)
            self._keep_better([Candidate.from_dict(r) for r in best.values()], rtol=1e-6)
        out = [self.lookup(s) for s in sets]
        return [c for c in out if c is not None]

    def rescore(self, c: Candidate) -> Candidate:
        """``c`` with its knockout statistics (checkpoints written before they existed lack them): a
        zero-iteration refit from its own values, replacing the cached entry."""
        if c.knockout or not c.edges:
            return c
        job = self._job(list(c.edges), c)
        job["max_iter"] = 0
        new = Candidate.from_dict(self.fit_jobs([job])[0])
        if new.objective > c.objective + 1e-6 * abs(c.objective) + 1e-9:
            return c
        self.cache[self._canon(new.edges)[0]] = new
        self.order = [new if x is c else x for x in self.order]
        self.path = [new if x is c else x for x in self.path]
        self.save()
        return new

    def accept(self, c: Candidate) -> None:
        if not self.path or self.path[-1] is not c:
            self.path.append(c)
            self.save()
