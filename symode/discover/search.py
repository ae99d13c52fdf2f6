"""The discovery search: fitted candidates cached by canonical edge set, warm and cold evaluation of
candidate sets on one executor (:mod:`symode.parallel`), and the checkpoint
``OUTDIR/discovery-checkpoint.json`` from which a rerun with the same spec and data resumes.

Budgets are iteration counts, so that every decision (which start wins, which candidate is accepted)
depends on the data, the seeds and ``workers`` only, never on the machine's speed, its load or the
backend: the full template's multi-start fit runs :data:`FULL_STARTS` starts for ``full_iter[0]``
Levenberg-Marquardt iterations each and continues the :data:`FULL_KEEP` best for ``full_iter[1]`` more;
a candidate refit gets ``max_iter`` iterations, stops when its objective fell by less than :data:`STALL`
[1] over :data:`STALL` [0] iterations, and is abandoned as hopeless by iteration-counted rules (cold
refits only after :data:`COLD_PATIENCE` times the iterations of warm ones); rival refits (removals of which
only the best counts) run in stages of :data:`RIVAL_STAGE` iterations and stop when outpaced
(:meth:`Search.evaluate_rivals`). Wall-clock limits
(``max_time`` per fit, the search's ``budget``) are safety caps only: a fit they stop is counted
(``time_capped``) and reported, since its result then depends on the machine. ``timings`` records the
wall and worker CPU seconds of every phase of the search.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from symode.discover.candidates import Candidate, candidate_spec, effective_edges, n_unknowns
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
from symode.timing import Timings

__all__ = ["CHECKPOINT", "COLD_PATIENCE", "FULL_ITER", "FULL_KEEP", "FULL_STARTS", "RIVAL_STAGE", "STALL", "Search"]

CHECKPOINT = "discovery-checkpoint.json"
COLD_PATIENCE = 3.0         # cold refits are abandoned as hopeless only after 3x the iterations of warm ones
FULL_STARTS = 4             # symmetry-breaking starts of the full-template fit (not tied to the workers)
FULL_KEEP = 2               # of which the best continue
FULL_ITER = (100, 300)      # iterations of each start, then of each continued one
STALL = (30, 0.5)           # a candidate fit stops when its objective fell by < 0.5 over 30 iterations
RIVAL_STAGE = 100           # iterations per stage of rival refits (only the best of them matters)


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
                 progress: bool, max_iter: int, max_time: float | None, resume: bool,
                 x0s: list[dict[str, float]] | None = None, budget: float | None = None) -> None:
        self.spec, self.datasets, self.outdir = spec, datasets, outdir
        self.x0s = x0s              # initial states of every data file (None: the spec's)
        self.budget = budget        # seconds of the whole search (None: none), a safety cap
        self.deadline = time.monotonic() + budget if budget is not None else None
        self.budget_spent = False   # set when a move was skipped because the time budget was spent
        self.failed: list[dict[str, Any]] = []      # candidate fits that failed twice
        self.notes: list[str] = []                  # what the search did differently (fallbacks)
        self.workers, self.progress = workers, progress
        self.max_iter, self.max_time = max_iter, max_time
        self.full_iter: tuple[int, int] = FULL_ITER
        self.time_capped = 0        # candidate fits stopped by the wall-clock safety cap ``max_time``
        self.timings = Timings()    # wall and worker CPU seconds per phase of the search
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
        x0s = start.x0s if start is not None and start.x0s else self.x0s
        job = {"spec": sub.to_dict(), "edges": edges, "parameters": params, "x0": x0, "x0s": x0s,
               "datasets": self.datasets, "max_iter": self.max_iter, "stall": STALL,
               "max_time": max(1.0, min(self.max_time or math.inf, self.remaining()))}
        if start is not None and self.criterion is not None:
            # The objective below which this candidate beats ``start`` under the criterion.
            aicc, bic = information_criteria(0.0, n_unknowns(sub, len(self.datasets)), start.n_obs)
            job["target"] = 0.5 * (start.ic(self.criterion) - (bic if self.criterion == "bic" else aicc))
        return job

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Candidate fits run inside the block are timed under ``name`` in :attr:`timings`."""
        with self.timings.phase(name):
            yield

    def evaluate_full(self, edges: list[str]) -> Candidate:
        """The full model from :data:`FULL_STARTS` symmetry-breaking starting points (:func:`full_starts`):
        all of them are fitted in parallel for ``full_iter[0]`` iterations, then the :data:`FULL_KEEP`
        best continue for ``full_iter[1]`` more (the full template has many local minima and its fits are
        slow); the best one wins. The continued fits start near a minimum and take plain Levenberg-Marquardt
        steps: geodesic acceleration, which carries the far-off starts through curved valleys, slows the
        final descent (community-dev: 266 iterations to objective 3476.1 with it, 206 without)."""
        cached = self.lookup(effective_edges(self.spec, edges))
        if cached is not None:
            return cached
        starts = full_starts(self.spec, n_starts=FULL_STARTS)
        jobs = []
        for params, x0 in starts:
            job = self._job(edges, None)
            job["parameters"], job["x0"], job["max_iter"] = params, x0, self.full_iter[0]
            jobs.append(job)
        with self.phase("screen"):
            screened = self.fit_jobs(jobs)
        self.full_starts = [float(r["objective"]) for r in screened]
        best = sorted(screened, key=lambda r: r["objective"])[:FULL_KEEP]
        jobs = []
        for r in best:
            if r.get("stop") == "converged" or self.full_iter[1] <= 0:
                continue
            job = self._job(edges, None)
            job["parameters"], job["x0"], job["max_iter"] = r["parameters"], r["x0"], self.full_iter[1]
            job["geodesic"] = False
            jobs.append(job)
        with self.phase("continue"):
            results = self.fit_jobs(jobs) if jobs and not self.out_of_time() else []
        c = Candidate.from_dict(min(results + screened, key=lambda r: r["objective"]))
        self.full_starts += [float(r["objective"]) for r in results]
        self._store([c])
        return c

    def fit_jobs(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """:func:`fit_candidate` of every job on the search's executor (created on first use, kept for
        later batches), results in job order. A job that raised stops the search with its error."""
        if self.executor is None:
            self.executor = get_executor(self.workers)
        t0 = time.perf_counter()
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
        self.time_capped += sum(r.get("stop") == "time limit" for r in results)
        self.timings.add("candidate fits", time.perf_counter() - t0, count=len(jobs),
                         cpu=sum(float(r.get("cpu_s", 0.0)) for r in results))
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

    def _todo(self, sets: Sequence[list[str]], start: Candidate | None
              ) -> tuple[list[list[str]], list[list[str]], set[frozenset[str]]]:
        """(the effective edge sets, those to fit: not cached or :meth:`improvable`, their keys)."""
        sets, todo = self._pending(sets, self.cache)
        keys = {self._canon(s)[0] for s in todo}
        for s in sets:
            key = self._canon(s)[0]
            if key not in keys and self.improvable(s, start):
                todo.append(s)
                keys.add(key)
        return sets, todo, keys

    def _fitted(self, sets: list[list[str]], keys: set[frozenset[str]], start: Candidate | None,
                results: list[Candidate]) -> list[Candidate]:
        if results:
            if start is not None:
                start_key = self._canon(start.edges)[0]
                self.warm_from |= {(k, start_key) for k in keys}
            self._keep_better(results)
        out = [self.lookup(s) for s in sets]
        return [c for c in out if c is not None]

    def evaluate(self, sets: Sequence[list[str]], start: Candidate | None) -> list[Candidate]:
        """Fit the candidate edge sets (in parallel, warm started from ``start``), cached; a cached fit is
        reused unless :meth:`improvable` asks for a refit from ``start`` (then the better fit is kept)."""
        sets, todo, keys = self._todo(sets, start)
        results = [Candidate.from_dict(r) for r in self.fit_jobs([self._job(s, start) for s in todo])] if todo else []
        return self._fitted(sets, keys, start, results)

    def evaluate_rivals(self, sets: Sequence[list[str]], start: Candidate) -> list[Candidate]:
        """:meth:`evaluate` for rivals, sets of which only the best under the criterion matters (removals
        from ``start``: the best one is accepted if it beats ``start``). They are fitted in stages of
        :data:`RIVAL_STAGE` iterations (each stage continues from the last point). After a stage, a fit
        still running is stopped ("outpaced") when even descending at its rate of the last 30 iterations
        for the rest of its budget it would not beat the best finished rival: a wrong removal makes the
        other edges re-balance and creeps for hundreds of iterations while the right one has converged.
        Every decision counts iterations, so the outcome does not depend on the machine."""
        sets, todo, keys = self._todo(sets, start)
        crit = self.criterion or "bic"
        jobs = [self._job(s, start) for s in todo]
        done: list[dict[str, Any] | None] = [None] * len(jobs)
        last: list[dict[str, Any]] = [{} for _ in jobs]
        total = [0] * len(jobs)
        active = list(range(len(jobs)))
        while active:
            stage = [{**jobs[i], "max_iter": min(RIVAL_STAGE, self.max_iter - total[i]), "it0": total[i]}
                     for i in active]
            for i, r in zip(active, self.fit_jobs(stage), strict=True):
                if total[i]:
                    r["cpu_s"] = float(r.get("cpu_s", 0.0)) + float(last[i].get("cpu_s", 0.0))
                    r["time_s"] = float(r.get("time_s", 0.0)) + float(last[i].get("time_s", 0.0))
                total[i] += int(r["iterations"])
                r["iterations"] = total[i]
                last[i] = r
                if r.get("stop") != "iterations" or total[i] >= self.max_iter or self.out_of_time():
                    done[i] = r
            active = [i for i in active if done[i] is None]
            finished = [Candidate.from_dict(r).ic(crit) for r in done if r is not None and not r.get("failed")]
            for i in active:
                r = last[i]
                # The criterion is 2 x objective + a constant (BIC and AICc alike).
                reach = Candidate.from_dict(r).ic(crit) - 2.0 * float(r["rate"]) * (self.max_iter - total[i])
                if finished and reach >= min(finished):
                    done[i] = {**r, "stop": "outpaced"}
                else:
                    jobs[i] = {**jobs[i], "parameters": r["parameters"], "x0": r["x0"], "x0s": r["x0s"]}
            active = [i for i in active if done[i] is None]
        results = [Candidate.from_dict(r) for r in done if r is not None]
        return self._fitted(sets, keys, start, results)

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
