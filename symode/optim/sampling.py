"""Space-filling start points in a box."""

from __future__ import annotations

import numpy as np


def latin_hypercube(lb: np.ndarray, ub: np.ndarray, n: int, *, seed: int = 0,
                    default_halfwidth: float = 2.0, center: np.ndarray | None = None) -> np.ndarray:
    """n points, one per stratum in every coordinate, in the box [lb, ub] (open sides: center +-
    default_halfwidth)."""
    rng = np.random.default_rng(seed)
    d = len(lb)
    c = np.zeros(d) if center is None else center
    lo = np.where(np.isfinite(lb), lb, c - default_halfwidth)
    hi = np.where(np.isfinite(ub), ub, c + default_halfwidth)
    u = (np.argsort(rng.random((n, d)), axis=0) + rng.random((n, d))) / n
    return lo + u * (hi - lo)
