"""Space-filling start points in a box: a seeded Latin hypercube (:class:`scipy.stats.qmc.LatinHypercube`)."""

from __future__ import annotations

import numpy as np


def latin_hypercube(lb: np.ndarray, ub: np.ndarray, n: int, *, seed: int = 0,
                    default_halfwidth: float = 2.0, center: np.ndarray | None = None) -> np.ndarray:
    """n points, one per stratum [k/n, (k+1)/n) in every coordinate, in the box [lb, ub] (open sides:
    center +- default_halfwidth); the same points for the same seed."""
    from scipy.stats import qmc  # here: scipy.stats takes ~1 s to import, a cost every process would pay

    d = len(lb)
    c = np.zeros(d) if center is None else center
    lo = np.where(np.isfinite(lb), lb, c - default_halfwidth)
    hi = np.where(np.isfinite(ub), ub, c + default_halfwidth)
    rng = np.random.default_rng(seed)
    try:
        sampler = qmc.LatinHypercube(d, rng=rng)
    except TypeError:  # scipy < 1.15 calls it seed
        sampler = qmc.LatinHypercube(d, seed=rng)
    return lo + sampler.random(n) * (hi - lo)
