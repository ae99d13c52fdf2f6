"""Discovery strategies as small configuration objects, and the information criteria they select by.

- :class:`BackwardElimination` (default): rank edges by knockout cost, refit without the least needed
  ones, accept while the criterion improves; then add-back, swap and cold-start moves
  (:mod:`symode.discover.moves`).
- :class:`ScreenRefit`: rank the edges of the full fit by effect size, refit the nested models keeping
  the k strongest for k = n/2, n/4, ..., select by the criterion, or choose the size by held-out
  prediction (:mod:`symode.discover.screen`).
- :class:`ThresholdRefit`: sequential thresholding in the spirit of STLSQ: drop every edge whose Wald
  statistic is below ``threshold``, refit, repeat until nothing is dropped.

With the objective 1/2 sum r^2 = -log L + const, k unknowns and n observations:
AICc = 2 obj + 2k + 2k(k+1)/(n-k-1), BIC = 2 obj + k log n.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["BackwardElimination", "ScreenRefit", "ThresholdRefit", "information_criteria"]


@dataclass
class BackwardElimination:
    """Backward elimination by an information criterion ("bic" or "aicc")."""

    criterion: str = "bic"
    weak: float = 2.0           # |strength / SE| below this: member of the "weak group" candidate
    max_rounds: int = 200
    add_back: bool = True       # then try re-adding each pruned edge (and eliminate again if one helps)
    swaps: bool = True          # then try exchanging a kept edge for a related pruned one
    cold_starts: int = 2        # then refit the model, its splits and single removals from this many
                                # satellite re-initialising starts (:func:`cold_starts`); 0: off


@dataclass
class ThresholdRefit:
    """Sequential thresholding: drop all edges with |strength / SE| < threshold, refit, repeat."""

    threshold: float = 3.0
    criterion: str = "bic"
    max_rounds: int = 50


@dataclass
class ScreenRefit:
    """Sparse screening: nested models of the strongest edges (by effect size), selected by a criterion."""

    criterion: str = "bic"
    smallest: int = 0           # the sparsest model tried keeps this many edges
    rounds: int = 2             # screen again from the selected model this many times
    select: str = "criterion"   # or "prediction": the size by held-out prediction (gradient matching, leave
                                # one file out; one refit), under ``rule``:
    rule: str = "no-worse"      # "no-worse": the sparsest set predicting no worse than the full set;
                                # "one-se": the sparsest set within one standard error of the best set
    penalty_grid: tuple[float, ...] = (1.0,)   # penalty multipliers scored for every set (its best counts)

    def __post_init__(self) -> None:
        from symode.errors import SymodeError

        if self.rule not in ("no-worse", "one-se"):
            raise SymodeError(f"unknown selection rule {self.rule!r} (no-worse, one-se)", field="rule")
        grid = tuple(float(m) for m in self.penalty_grid)
        if not grid or not all(m > 0 and math.isfinite(m) for m in grid):
            raise SymodeError("the penalty grid's multipliers must be positive numbers", field="penalty_grid")
        self.penalty_grid = grid


def information_criteria(objective: float, k: int, n: int) -> tuple[float, float]:
    """(AICc, BIC) from the objective 1/2 sum r^2 (= -log L + const)."""
    m2ll = 2.0 * objective
    aicc = m2ll + 2 * k + (2 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else math.inf)
    bic = m2ll + k * math.log(n)
    return aicc, bic
