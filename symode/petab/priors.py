"""Prior distributions of PEtab parameter tables: the log-prior of the estimated parameters and its
gradient (PEtab v2; the objective priors of v1 tables are read into the same distributions by
:func:`parse_v1_prior`).

Every estimated parameter has a prior (PEtab v2): its ``priorDistribution`` with ``priorParameters``, or,
without one, the uniform distribution on [lowerBound, upperBound]. A prior is truncated to the bounds:

    log pi(x) = log f(x) - log(F(ub) - F(lb))      (-inf outside [lb, ub] or the support)

with f and F the density and distribution function on the linear scale. The distributions and their
parameters (as the PEtab v2 specification and its test suite define them):

| distribution | parameters | log f(x) |
|---|---|---|
| uniform | a; b | -log(b - a) on [a, b] |
| normal | mu; sigma | -log(sigma sqrt(2 pi)) - (x - mu)^2 / (2 sigma^2) |
| laplace | mu; b | -log(2 b) - abs(x - mu) / b |
| cauchy | x0; gamma | -log(pi gamma (1 + ((x - x0) / gamma)^2)) |
| exponential | s | -log s - x / s  (x >= 0) |
| gamma | k; theta | (k - 1) log x - x / theta - lgamma(k) - k log theta |
| chisquare | k | the gamma distribution with k / 2; 2 |
| rayleigh | s | log x - 2 log s - x^2 / (2 s^2) |
| log-normal | mu; sigma | normal(log x; mu, sigma) - log x |
| log-laplace | mu; b | laplace(log x; mu, b) - log x |
| log-uniform | a; b | -log x - log(log(b / a)) on [a, b] |

The unnormalised log-posterior is llh + sum of the log-priors. Derivatives are taken on the linear scale
(d log f / dx; the truncation constant does not depend on x) and mapped to the parameter scale by the
caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from scipy import stats

#: Distribution name -> number of parameters.
DISTRIBUTIONS = {"uniform": 2, "normal": 2, "laplace": 2, "cauchy": 2, "exponential": 1, "gamma": 2,
                 "chisquare": 1, "rayleigh": 1, "log-normal": 2, "log-laplace": 2, "log-uniform": 2}


def _frozen(kind: str, a: float, b: float) -> Any:
    """The scipy distribution of x (log-laplace: of log x, handled by the caller)."""
    if kind == "uniform":
        return stats.uniform(loc=a, scale=b - a)
    if kind == "normal":
        return stats.norm(loc=a, scale=b)
    if kind in ("laplace", "log-laplace"):
        return stats.laplace(loc=a, scale=b)
    if kind == "cauchy":
        return stats.cauchy(loc=a, scale=b)
    if kind == "exponential":
        return stats.expon(scale=a)
    if kind == "gamma":
        return stats.gamma(a, scale=b)
    if kind == "chisquare":
        return stats.chi2(a)
    if kind == "rayleigh":
        return stats.rayleigh(scale=a)
    if kind == "log-normal":
        return stats.lognorm(s=b, scale=math.exp(a))
    if kind == "log-uniform":
        return stats.loguniform(a, b)
    raise ValueError(f"unknown prior distribution {kind!r}")


@dataclass(frozen=True)
class Prior:
    """The (truncated) prior of one estimated parameter, index ``index`` into theta."""

    parameter: str
    index: int
    kind: str
    a: float
    b: float
    lower: float
    upper: float

    @cached_property
    def _dist(self) -> Any:
        """The scipy distribution of x (log-laplace: of log x)."""
        return _frozen(self.kind, self.a, self.b)

    @cached_property
    def _log_mass(self) -> float:
        """log(F(ub) - F(lb)): the truncation to the bounds, the same at every x (-inf: no mass there)."""
        mass = self._cdf(self.upper) - self._cdf(self.lower)
        return math.log(mass) if mass > 0 else -math.inf

    def _cdf(self, x: float) -> float:
        if self.kind == "log-laplace":
            return float(self._dist.cdf(math.log(x))) if x > 0 else 0.0
        return float(self._dist.cdf(x))

    def log_density(self, x: float) -> float:
        """log f(x) - log(F(ub) - F(lb)) (see the module docstring); -inf outside the bounds or support."""
        if not (self.lower <= x <= self.upper) or self._log_mass == -math.inf:
            return -math.inf
        if self.kind == "log-laplace":
            logf = float(self._dist.logpdf(math.log(x))) - math.log(x) if x > 0 else -math.inf
        else:
            logf = float(self._dist.logpdf(x))
        return logf - self._log_mass

    def derivative(self, x: float) -> float:
        """d log f / dx on the linear scale (0 where the density is flat; nan outside the support)."""
        a, b = self.a, self.b
        k = self.kind
        if k == "uniform":
            return 0.0
        if k == "normal":
            return -(x - a) / b**2
        if k == "laplace":
            return -float(np.sign(x - a)) / b
        if k == "cauchy":
            return -2.0 * (x - a) / (b**2 + (x - a) ** 2)
        if x <= 0:
            return math.nan
        if k == "exponential":
            return -1.0 / a
        if k == "gamma":
            return (a - 1.0) / x - 1.0 / b
        if k == "chisquare":
            return (a / 2.0 - 1.0) / x - 0.5
        if k == "rayleigh":
            return 1.0 / x - x / a**2
        if k == "log-normal":
            return -1.0 / x - (math.log(x) - a) / (b**2 * x)
        if k == "log-laplace":
            return -1.0 / x - float(np.sign(math.log(x) - a)) / (b * x)
        if k == "log-uniform":
            return -1.0 / x
        raise ValueError(f"unknown prior distribution {k!r}")

    def second_derivative(self, x: float) -> float:
        """d^2 log f / dx^2 on the linear scale (0 where log f is piecewise linear; nan outside the support)."""
        a, b = self.a, self.b
        k = self.kind
        if k in ("uniform", "laplace"):
            return 0.0
        if k == "normal":
            return -1.0 / b**2
        if k == "cauchy":
            u2 = (x - a) ** 2
            return -2.0 * (b**2 - u2) / (b**2 + u2) ** 2
        if x <= 0:
            return math.nan
        if k == "exponential":
            return 0.0
        if k == "gamma":
            return -(a - 1.0) / x**2
        if k == "chisquare":
            return -(a / 2.0 - 1.0) / x**2
        if k == "rayleigh":
            return -1.0 / x**2 - 1.0 / a**2
        if k == "log-normal":
            return (1.0 - (1.0 - (math.log(x) - a)) / b**2) / x**2
        if k == "log-laplace":
            return (1.0 + float(np.sign(math.log(x) - a)) / b) / x**2
        if k == "log-uniform":
            return 1.0 / x**2
        raise ValueError(f"unknown prior distribution {k!r}")


def parse_prior(parameter: str, index: int, kind: str, text: str, lower: float, upper: float) -> Prior:
    """A prior from the table's ``priorDistribution`` and ``priorParameters`` (``a;b``); ValueError with a
    one-line reason if malformed. A blank distribution is the uniform prior on the bounds."""
    kind = kind.strip()
    if not kind:
        return Prior(parameter, index, "uniform", lower, upper, lower, upper)
    if kind not in DISTRIBUTIONS:
        raise ValueError(f"prior distribution {kind!r} of {parameter!r} is not supported ({', '.join(DISTRIBUTIONS)})")
    parts = [s.strip() for s in text.split(";") if s.strip()]
    try:
        values = [float(s) for s in parts]
    except ValueError:
        raise ValueError(f"priorParameters {text!r} of {parameter!r} are not numbers") from None
    if len(values) != DISTRIBUTIONS[kind]:
        raise ValueError(f"a {kind} prior takes {DISTRIBUTIONS[kind]} parameter(s); {parameter!r} has {text!r}")
    a, b = values[0], values[1] if len(values) > 1 else math.nan
    positive = {"normal": [b], "laplace": [b], "cauchy": [b], "exponential": [a], "gamma": [a, b],
                "chisquare": [a], "rayleigh": [a], "log-normal": [b], "log-laplace": [b]}.get(kind, [])
    if any(not (v > 0) for v in positive) or (kind in ("uniform", "log-uniform") and not (a < b)) or \
            (kind == "log-uniform" and not (a > 0)):
        raise ValueError(f"the {kind} prior of {parameter!r} has invalid parameters {text!r}")
    return Prior(parameter, index, kind, a, b, lower, upper)


#: PEtab v1 ``objectivePriorType`` values (:func:`parse_v1_prior`).
V1_TYPES = ("uniform", "normal", "laplace", "logNormal", "logLaplace", "parameterScaleUniform",
            "parameterScaleNormal", "parameterScaleLaplace")


def parse_v1_prior(parameter: str, index: int, type_: str, text: str, scale: str, lower: float,
                   upper: float) -> Prior:
    """A PEtab v1 objective prior (``objectivePriorType``, ``objectivePriorParameters`` ``a;b``) as the
    distribution of the linear-scale value that the petab library gives it (``petab.v1.priors.Prior``),
    truncated to the bounds like a v2 prior. The ``parameterScale*`` types are distributions of z, the value
    on the parameter scale: on lin they are uniform, normal and Laplace; on log and log10 (z = c ln x, c = 1
    or 1 / ln 10) parameterScaleUniform(a, b) is log-uniform(e^(a/c), e^(b/c)), parameterScaleNormal(mu, s)
    log-normal(mu / c, s / c) and parameterScaleLaplace(mu, b) log-Laplace(mu / c, b / c). ValueError with
    a one-line reason if malformed or unknown."""
    type_ = type_.strip()
    if type_ not in V1_TYPES:
        raise ValueError(f"objective prior {type_!r} of {parameter!r} is not a PEtab v1 prior ({', '.join(V1_TYPES)})")
    parts = [p.strip() for p in text.split(";")]
    try:
        a, b = (float(v) for v in parts)
    except ValueError:
        raise ValueError(f"objectivePriorParameters {text!r} of {parameter!r} are not two numbers a;b") from None
    kind = {"logNormal": "log-normal", "logLaplace": "log-laplace"}.get(type_, type_)
    if type_.startswith("parameterScale"):
        kind = type_[len("parameterScale"):].lower()
        if scale != "lin":
            c = 1.0 if scale == "log" else math.log(10.0)   # ln x = c z
            if kind == "uniform":
                kind, a, b = "log-uniform", math.exp(c * a), math.exp(c * b)
            else:
                kind, a, b = f"log-{kind}", c * a, c * b
    return parse_prior(parameter, index, kind, f"{a!r};{b!r}", lower, upper)


class Priors:
    """The log-prior of theta (sum over the estimated parameters) and its gradient."""

    def __init__(self, priors: list[Prior]) -> None:
        self.priors = priors

    def __bool__(self) -> bool:
        return bool(self.priors)

    def terms(self, theta: np.ndarray) -> dict[str, float]:
        """log pi_k(theta_k) by parameter id."""
        return {p.parameter: p.log_density(float(theta[p.index])) for p in self.priors}

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        """d log-prior / d theta (linear scale), one entry per theta."""
        g = np.zeros(len(theta))
        for p in self.priors:
            g[p.index] += p.derivative(float(theta[p.index]))
        return g

    @property
    def informative_indices(self) -> set[int]:
        """The theta indices whose prior is not the uniform one (which is constant inside the bounds)."""
        return {p.index for p in self.priors if p.kind != "uniform"}

    @property
    def informative(self) -> bool:
        """Whether some prior is not uniform."""
        return bool(self.informative_indices)

    def on_scale(self, theta: np.ndarray, estimated: np.ndarray, scales: list[str]
                 ) -> tuple[float, np.ndarray, np.ndarray]:
        """The log-prior of theta and, for the estimated parameters on their scales z (theta = z, e^z or
        10^z), its gradient d/dz = (log f)' theta'(z) and its curvature information
        max(0, -d^2/dz^2) = max(0, -((log f)'' theta'^2 + (log f)' theta'')) (a Fisher-scoring term: the
        negative Hessian where it is positive)."""
        index = {int(k): i for i, k in enumerate(np.nonzero(estimated)[0])}
        g, info = np.zeros(len(index)), np.zeros(len(index))
        total = 0.0
        for p in self.priors:
            x = float(theta[p.index])
            total += p.log_density(x)
            i = index[p.index]
            scale = scales[p.index]
            c = math.log(10.0) if scale == "log10" else 1.0
            d1 = c * x if scale != "lin" else 1.0          # theta'(z)
            d2 = c * d1 if scale != "lin" else 0.0         # theta''(z)
            f1, f2 = p.derivative(x), p.second_derivative(x)
            g[i] = f1 * d1
            info[i] = max(0.0, -(f2 * d1 * d1 + f1 * d2))
        return total, g, info
