"""Bound-flip refits of a multistart start (symode.petab.fit._escape_bounds) on synthetic landscapes."""

from __future__ import annotations

import numpy as np

from symode.errors import SolverError
from symode.petab.fit import _escape_bounds


def _local_from(basins):
    """A fake local method: the first basin whose predicate holds at the start decides the optimum."""
    calls = []

    def local(z):
        calls.append(np.array(z, dtype=float))
        for pred, zopt, llh in basins:
            if pred(z):
                return np.array(zopt, dtype=float), True, 1, "converged", llh
        raise AssertionError("no basin")

    return local, calls


def test_a_parameter_stuck_on_a_bound_is_flipped_to_the_other_side():
    lb, ub = np.array([-5.0, -5.0]), np.array([5.0, 5.0])
    # x0 > 0: the optimum (5, 1) on the upper bound, llh -10; x0 < 0: the better interior optimum (-2, 1)
    local, calls = _local_from([(lambda z: z[0] > 0, [5.0, 1.0], -10.0), (lambda z: z[0] <= 0, [-2.0, 1.0], -1.0)])
    # the local method stopped just short of the bound (a flat plateau): still a bound parameter
    z, llh, refits = _escape_bounds(local, np.array([4.95, 1.0]), -10.0, lb, ub, set(), budget=8)
    assert llh == -1.0 and np.allclose(z, [-2.0, 1.0]) and refits == 1
    assert np.allclose(calls[0], [-4.0, 1.0])    # 10% of the box inside the opposite bound, the rest kept


def test_worse_optima_on_the_way_are_explored_and_the_budget_holds():
    lb, ub = np.zeros(2), np.full(2, 10.0)
    # A (x0 at 10) -> flip x0 -> B, worse, with x1 at 0 -> flip x1 -> C, the best
    basins = [(lambda z: z[0] > 5, [10.0, 5.0], -5.0),
              (lambda z: z[1] > 8, [2.0, 9.0], -1.0),
              (lambda z: True, [2.0, 0.0], -7.0)]
    local, _ = _local_from(basins)
    z, llh, refits = _escape_bounds(local, np.array([10.0, 5.0]), -5.0, lb, ub, set(), budget=8)
    assert llh == -1.0 and np.allclose(z, [2.0, 9.0])
    local, _ = _local_from(basins)
    z, llh, refits = _escape_bounds(local, np.array([10.0, 5.0]), -5.0, lb, ub, set(), budget=1)
    assert refits == 1 and llh == -5.0           # B is worse: the start keeps A


def test_fixed_and_unbounded_parameters_are_not_flipped_and_failures_are_skipped():
    lb, ub = np.array([0.0, -np.inf, 0.0]), np.array([1.0, np.inf, 1.0])

    def local(z):
        raise SolverError("integration failed")

    z0 = np.array([1.0, 3.0, 0.0])
    z, llh, refits = _escape_bounds(local, z0, -3.0, lb, ub, {2}, budget=8)
    assert refits == 1 and llh == -3.0 and np.array_equal(z, z0)   # only parameter 0 was tried
