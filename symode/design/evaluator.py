"""Many design evaluations at once, as parallel jobs of :mod:`symode.parallel` (local processes or a
Dask cluster): the screening of starts, the exact evaluation of the best candidates, the random
designs and the robustness samples are independent Fisher-information evaluations.

A job ships the design problem's definition (the spec at its nominal values, the constraints, the
candidate measurements and the solver settings) with the design; a worker builds the problem once per
process (:func:`~symode.parallel.process_memo`, keyed by a hash of that definition) and evaluates. The
results come back in request order, so the outcome is the one of evaluating them one after the other.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from symode.design.experiment import Design
from symode.design.problem import DesignProblem, Evaluation
from symode.errors import SymodeError
from symode.parallel import Executor, TaskFailure, get_executor, process_memo, run_tasks

__all__ = ["Evaluator"]


class Evaluator:
    """Evaluates lists of designs of ``problem`` on an executor (``workers`` local processes, default all
    CPUs, or the scheduler of :func:`symode.parallel.use_scheduler`), created on first use and kept until
    :meth:`close`. ``workers=1`` evaluates in this process with ``problem`` itself."""

    def __init__(self, problem: DesignProblem, *, workers: int | None = None) -> None:
        self.problem = problem
        self.workers = workers
        self.executor: Executor | None = None
        self._definition: dict[str, Any] | None = None

    def definition(self) -> dict[str, Any]:
        """What a worker needs to rebuild the problem, with its content hash (``key``)."""
        if self._definition is None:
            p = self.problem
            args = dict(spec=p.spec, constraints=p.constraints, candidates=list(p.candidates), prior_se=p.prior_se,
                        rtol=p.rtol, atol=p.atol, methods=list(p.methods))
            key = hashlib.sha256(pickle.dumps(args, protocol=4)).hexdigest()
            self._definition = dict(args=args, key=key)
        return self._definition

    def evaluate(self, requests: Sequence[tuple[Design, Mapping[str, Any]]],
                 on_result: Callable[[int, Evaluation], None] | None = None) -> list[Evaluation]:
        """``problem.evaluate(design, **options)`` for every ``(design, options)``, in request order;
        ``on_result(index, evaluation)`` as each arrives."""
        if not requests:
            return []
        if self.workers == 1 and self.executor is None:
            out = []
            for k, (design, options) in enumerate(requests):
                out.append(self.problem.evaluate(design, **options))
                if on_result is not None:
                    on_result(k, out[-1])
            return out
        if self.executor is None:
            self.executor = get_executor(self.workers)
        problem = self.definition()
        jobs = [dict(problem=problem, design=design, options=dict(options)) for design, options in requests]
        results = run_tasks(evaluate_worker, jobs, executor=self.executor, on_result=on_result)
        for r in results:
            if isinstance(r, TaskFailure):
                raise SymodeError(f"a design evaluation failed: {r}")
        self.problem.n_evaluations += len(results)
        return results

    def close(self) -> None:
        if self.executor is not None:
            self.executor.close()
            self.executor = None

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def evaluate_worker(job: dict[str, Any]) -> Evaluation:
    """One design evaluation in a worker (the problem built once per process)."""
    definition = job["problem"]
    problem = process_memo(("design-problem", definition["key"]), lambda: DesignProblem(**definition["args"]))
    return problem.evaluate(job["design"], **job["options"])
