"""Experiments as sequences of periods: (start time, condition) pairs.

A PEtab v1 experiment is a simulation condition starting at t = 0, optionally preceded by a
pre-equilibration condition (a period at t = -inf: the steady state under that condition). A PEtab v2
experiment may have further periods: at each period's start its condition's changes apply at once,
every value computed from the state and parameters just before the change:

- parameters take the condition's values from then on (the other parameters keep theirs);
- states that the condition names are re-initialised, to numbers, parameter-table entries or
  expressions of the states and parameters just before the change (:class:`StateExpressions`).

Measurements at a period's start see the state after its changes. The simulation then goes on with the
new parameters (:mod:`symode.petab.timeline`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from symode.petab.problem import Condition


@dataclass
class StateExpressions:
    """States that a condition sets to expressions: state index -> sympy expression in the model's
    symbols (states and parameters just before the change, time) and ``theta`` symbols."""

    values: dict[int, Any]
    theta: dict[Any, int] = field(default_factory=dict)   # symbol of a parameter-table entry -> theta index


@dataclass
class Period:
    """One period of an experiment: its start time (-inf: pre-equilibration) and condition."""

    start: float
    condition: Condition


@dataclass
class Experiment:
    """A sequence of periods and the measurement rows taken during it."""

    periods: list[Period]
    times: np.ndarray                # sorted unique finite measurement times
    rows: np.ndarray                 # measurement rows of this experiment
    time_index: np.ndarray           # per row: index into times, or -1 for t = inf
    simple: bool = field(init=False)  # one period from t = 0 (after an optional pre-equilibration)
    main: list[Period] = field(init=False)        # the periods after the pre-equilibration
    preeq: Condition | None = field(init=False)   # the pre-equilibration condition, or None
    sim: Condition = field(init=False)            # the condition of the first period after it
    label: str = field(init=False)                # "preeq->sim" or "sim"
    has_inf: bool = field(init=False)             # some row measures the steady state (t = inf)

    def __post_init__(self) -> None:
        """Derived attributes (again after ``periods`` change)."""
        self.main = [p for p in self.periods if p.start > -math.inf]
        self.preeq = self.periods[0].condition if self.periods[0].start == -math.inf else None
        self.sim = self.main[0].condition
        self.label = f"{self.preeq.id}->{self.sim.id}" if self.preeq else self.sim.id
        self.simple = (len(self.main) == 1 and self.main[0].start == 0.0 and self.main[0].condition.x_expr is None)
        self.has_inf = bool(np.any(self.time_index < 0))

    @classmethod
    def of(cls, sim: Condition, preeq: Condition | None, times: np.ndarray, rows: np.ndarray,
           time_index: np.ndarray) -> Experiment:
        """A v1 experiment: ``sim`` from t = 0, after the steady state of ``preeq`` if given."""
        periods = ([Period(-math.inf, preeq)] if preeq is not None else []) + [Period(0.0, sim)]
        return cls(periods, times, rows, time_index)

    @property
    def t0(self) -> float:
        return self.main[0].start

    def row_conditions(self) -> list[str]:
        """Per measurement row, the id of the condition in force at its time (at a period's start: that
        period's; t = inf: the last one's)."""
        main = self.main
        if len(main) == 1:
            return [main[0].condition.id] * len(self.rows)
        starts = np.array([p.start for p in main])
        out = []
        for k in self.time_index:
            t = math.inf if k < 0 else float(self.times[k])
            out.append(main[max(int(np.searchsorted(starts, t, side="right")) - 1, 0)].condition.id)
        return out


def condition_key(cond: Condition | None) -> tuple | None:
    """Equal for two conditions that set up the same initial value problem at every theta: the same
    parameter mapping and the same state overrides (None: no condition)."""
    if cond is None:
        return None
    return cond.p.key(), cond.x_states.tobytes(), cond.x.key(), cond.x_expr is None


def shared_simulations(experiments: list[Experiment]) -> list[Experiment]:
    """The experiments with those that pose the same initial value problem merged into one: one period
    from t = 0, the same pre-equilibration and simulation conditions up to their ids (the same parameter
    mappings and state overrides, :func:`condition_key`). A merged experiment measures the union of their
    times and holds all their rows, so the problem is solved once, and its adjoint once with the summed
    weights. Benchmark problems often list one condition per data set, with the same values (Bachmann's 36
    conditions are 12 simulations). Experiments with periods or state expressions are kept as they are."""
    groups: dict[tuple, list[Experiment]] = {}
    out: list[Experiment | tuple] = []
    for exp in experiments:
        if not exp.simple or (exp.preeq is not None and exp.preeq.x_expr is not None):
            out.append(exp)
            continue
        key = (condition_key(exp.preeq), condition_key(exp.sim))
        if key not in groups:
            groups[key] = []
            out.append(key)
        groups[key].append(exp)
    merged = []
    for item in out:
        if isinstance(item, Experiment):
            merged.append(item)
            continue
        group = groups[item]
        if len(group) == 1:
            merged.append(group[0])
            continue
        times = np.unique(np.concatenate([e.times for e in group]))
        rows = np.concatenate([e.rows for e in group])
        index = np.concatenate([np.where(e.time_index >= 0, np.searchsorted(times, e.times[e.time_index]), -1)
                                if len(e.times) else e.time_index for e in group])
        merged.append(Experiment(list(group[0].periods), times, rows, index))
    return merged


def add_periods(problem: Any, schedule: dict[str, list[tuple[float, str]]],
                expressions: dict[str, dict[str, str]]) -> None:
    """Put back what a PEtab v2 problem's v1 form (:func:`symode.petab.v2.downgrade`) cannot hold: the
    periods of its experiments (by the id of their first period's condition) and the condition values
    that are expressions (by condition id and target; whitelist-parsed, :mod:`symode.petab.math`)."""
    from symode.errors import SymodeError
    from symode.petab.math import parse_petab_math
    from symode.petab.problem import PetabError, resolve_model_name

    sbml = problem.sbml
    state_ids = list(sbml.states)
    theta_index = {pid: i for i, pid in enumerate(problem.parameter_ids)}
    for cid, values in expressions.items():
        cond = problem.conditions.get(cid)
        if cond is None:
            continue
        extra: dict[str, Any] = {}
        resolve = functools.partial(resolve_model_name, sbml, theta_index=theta_index, extra=extra)
        exprs = {}
        for target, text in values.items():
            where = f"PEtab v2: condition {cid!r} sets {target!r} to {text!r}"
            try:
                expr = parse_petab_math(text, resolve)
            except SymodeError as exc:
                raise PetabError(f"{where}: {exc.message}", file=str(problem.path), field="targetValue") from None
            if target in sbml.states:
                exprs[state_ids.index(target)] = expr
            elif target in sbml.parameters:
                set_linear(cond.p, list(sbml.parameters).index(target), expr,
                           {sym: theta_index[name] for name, sym in extra.items()}, where, str(problem.path))
            else:
                raise PetabError(f"{where}: not a state or parameter of the model", file=str(problem.path),
                                 field="targetValue")
        if exprs:
            cond.x_expr = StateExpressions(exprs, {sym: theta_index[name] for name, sym in extra.items()})
    for exp in problem.experiments:
        periods = schedule.get(exp.sim.id)
        if periods:
            exp.periods = [p for p in exp.periods if p.start == -math.inf] + [
                Period(t, problem.conditions[c]) for t, c in periods]
        exp.__post_init__()


def check_experiments(problem: Any) -> None:
    """Refuse what the simulation of periods and events (:mod:`symode.petab.timeline`) does not do, with a
    message naming the experiment."""
    from symode.petab.problem import PetabError

    sbml = problem.sbml
    events = sbml.events

    def err(msg: str) -> PetabError:
        return PetabError(msg, file=str(problem.path))

    assigned = {v: ev.id for ev in events for v in ev.assignments if sbml.states[v].kind != "species"}
    for pid in problem.parameter_ids:
        if pid in assigned:
            raise err(f"parameter {pid!r} of the parameter table is assigned by the SBML event {assigned[pid]!r}: "
                      "not supported")
    param_ids = list(sbml.parameters)
    names = {sbml.symbols[q]: q for q in param_ids}
    used = {names[s]: ev.id for ev in events for s in ev.time.free_symbols if s in names}
    for exp in problem.experiments:
        if exp.simple and not events:
            continue
        what = "SBML events" if events else "several periods or a start other than t = 0"
        if events and exp.preeq is not None:
            raise err(f"experiment {exp.label!r}: pre-equilibration in a model with SBML events is not supported")
        if np.any(exp.time_index < 0):
            raise err(f"experiment {exp.label!r}: measurements at t = inf with {what} are not supported")
        if exp.preeq is not None and exp.preeq.x_expr is not None:
            raise err(f"experiment {exp.label!r}: expressions in a pre-equilibration condition are not supported")
        if len(exp.times) and exp.times[0] < exp.t0:
            raise err(f"experiment {exp.label!r}: a measurement at t = {exp.times[0]:g}, before the experiment "
                      f"starts (t = {exp.t0:g})")
        first = exp.main[0].condition.p
        for per in exp.main[1:]:
            for q, ev_id in used.items():
                k = param_ids.index(q)
                if (per.condition.p.index[k], per.condition.p.value[k], per.condition.p.linear.get(k)) != \
                        (first.index[k], first.value[k], first.linear.get(k)):
                    raise err(f"experiment {exp.label!r}: the period at t = {per.start:g} changes {q!r}, which the "
                              f"trigger of event {ev_id!r} uses: not supported")


def set_linear(mapping: Any, row: int, expr: Any, theta_symbols: dict[Any, int], where: str, path: str) -> None:
    """Entry ``row`` of a condition's parameter mapping becomes the expression ``expr``, which must be
    linear in parameter-table entries (their ``theta_symbols``) with numeric coefficients: c0 + sum c_i
    theta_i (PEtab v2 condition values such as ``offset_1 + offset_2`` or ``0.5 * k``)."""
    import sympy as sp

    from symode.petab.problem import PetabError

    syms = list(theta_symbols)
    other = expr.free_symbols - set(syms)
    linear = expr.is_polynomial(*syms) and sp.Poly(expr, *syms).total_degree() <= 1 if syms else True
    if other or not linear:
        why = f"it depends on {sorted(map(str, other))[0]!r} of the model" if other else "it is not linear"
        raise PetabError(f"{where}: a parameter set to an expression of parameter-table entries is supported when "
                         f"the expression is linear in them ({why})", file=path, field="targetValue")
    const = float(expr.subs({s: 0 for s in syms}))
    terms = [(theta_symbols[s], float(expr.diff(s))) for s in syms if expr.diff(s) != 0]
    mapping.index[row] = -1
    mapping.value[row] = const
    mapping.linear[row] = terms
