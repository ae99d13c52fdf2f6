"""The transform of estimated quantities between their natural values theta and the optimiser's z.

Every estimator (fits, hybrid training, identifiability analyses) works in one *transformed* space:

    z = log(theta)   for log-scale unknowns (positive quantities spanning orders of magnitude),
    z = theta        otherwise,

so dtheta/dz = theta on log coordinates and 1 elsewhere, and a natural-space bound [lo, hi] maps to
[log lo, log hi] (an open or non-positive side is -inf / +inf). :class:`Transform` holds that map for a
vector of named unknowns; :func:`to_transformed` / :func:`to_natural` are the scalar versions used for
intervals. :func:`parameter_scale` and :func:`state_scale` are the rules that choose a log scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from symode.errors import SolverError

__all__ = ["Transform", "parameter_scale", "state_scale", "to_natural", "to_transformed"]

#: Smallest positive value taken to log (log of 0 would be -inf).
TINY = 1e-300


def parameter_scale(scale: str, value: float) -> str:
    """A parameter's transform: "log" when its spec scale is log and its value positive, else "lin"."""
    return "log" if scale == "log" and value > 0 else "lin"


def state_scale(x0: float, lower: float | None) -> str:
    """An initial state's transform: "log" when positive and bounded below by >= 0, else "lin"."""
    return "log" if x0 > 0 and lower is not None and lower >= 0 else "lin"


def to_transformed(value: float, scale: str) -> float:
    """Scalar z of a natural value (log(v); -inf for v <= 0 on a log scale)."""
    if scale == "log":
        return math.log(value) if value > 0 else -math.inf
    return value


def to_natural(z: float, scale: str) -> float:
    """Scalar natural value of z (exp(z) on a log scale, inf / 0 beyond the float range)."""
    if scale == "log":
        if z > 700:
            return math.inf
        return math.exp(z) if z > -745 else 0.0
    return z


def _z_bound(b: float | None, log: bool, default: float) -> float:
    if b is None:
        return default
    if log:
        return math.log(b) if b > 0 else default
    return float(b)


class Transform:
    """The log/linear map of named unknowns with natural-space bounds (None: open side).

    ``lb``, ``ub``: the bounds in z (+-inf where open); ``log``: boolean mask of log coordinates."""

    def __init__(self, names: Sequence[str], scales: Sequence[str], lower: Sequence[float | None],
                 upper: Sequence[float | None]) -> None:
        if not (len(names) == len(scales) == len(lower) == len(upper)):
            raise ValueError("names, scales and bounds disagree in length")
        self.names = list(names)
        self.scales = list(scales)
        self.lower = list(lower)
        self.upper = list(upper)
        self.log = np.array([s == "log" for s in self.scales], dtype=bool)
        self.lb = np.array([_z_bound(lo, lg, -math.inf) for lo, lg in zip(self.lower, self.log, strict=True)],
                           dtype=float)
        self.ub = np.array([_z_bound(hi, lg, math.inf) for hi, lg in zip(self.upper, self.log, strict=True)],
                           dtype=float)

    def __len__(self) -> int:
        return len(self.names)

    def to_z(self, theta: np.ndarray | Sequence[float]) -> np.ndarray:
        """z of natural values (log(max(theta, 1e-300)) on log coordinates)."""
        theta = np.asarray(theta, dtype=float)
        return np.where(self.log, np.log(np.maximum(np.where(self.log, theta, 1.0), TINY)), theta)

    def to_theta(self, z: np.ndarray) -> np.ndarray:
        """Natural values exp(z) / z, as they come (an overflow is inf; no clipping to the bounds)."""
        with np.errstate(over="ignore"):
            return np.where(self.log, np.exp(np.where(self.log, z, 0.0)), z)

    def natural(self, z: np.ndarray) -> np.ndarray:
        """Natural values kept inside the natural bounds (exp(log(b)) can round past b). A log-scale value
        beyond the float range (a wild trial step on an unbounded unknown) is a SolverError naming it."""
        out = np.asarray(z, dtype=np.float64).copy()
        with np.errstate(over="ignore"):
            out[self.log] = np.exp(out[self.log])
        if not np.all(np.isfinite(out)):
            bad = [n for n, v in zip(self.names, out, strict=True) if not math.isfinite(v)]
            raise SolverError(f"{', '.join(bad)}: not a finite number (a log-scale step past the floating-point "
                              "range)")
        for k, (lo, hi) in enumerate(zip(self.lower, self.upper, strict=True)):
            if lo is not None and out[k] < lo:
                out[k] = lo
            if hi is not None and out[k] > hi:
                out[k] = hi
        return out

    def dtheta_dz(self, z: np.ndarray) -> np.ndarray:
        """The diagonal of dtheta/dz: theta on log coordinates, 1 elsewhere (chain rule for Jacobians)."""
        with np.errstate(over="ignore"):
            return np.where(self.log, np.exp(np.where(self.log, z, 0.0)), 1.0)

    def clip(self, z: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """z inside the z-bounds, ``margin`` x the width of a finite box away from its sides."""
        if margin:
            span = np.where(np.isfinite(self.ub - self.lb), margin * (self.ub - self.lb), 0.0)
            return np.clip(z, self.lb + span, self.ub - span)
        return np.clip(z, self.lb, self.ub)

    def scipy_bounds(self) -> list[tuple[float | None, float | None]]:
        """The z-bounds as scipy.optimize.minimize wants them (None: open side)."""
        return [(float(a) if np.isfinite(a) else None, float(b) if np.isfinite(b) else None)
                for a, b in zip(self.lb, self.ub, strict=True)]
