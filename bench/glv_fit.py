"""Fitting the gLV ODE with symode (public API: build_model, FitProblem, the LM optimiser), with the
extras the study needs that symode's ``fit`` does not offer yet:

- Gaussian priors (ridge penalties) as extra residual rows: (theta_k - mu_k) / s_k for a parameter
  group, e.g. off-diagonal interactions scaled by the typical abundance of the source taxon,
  a_ij * xbar_j / s_off (the effect of j on i's per-capita growth rate, in 1/day, at j's typical level);
- per-subject initial states fixed at the first sample (zeros -> a floor), or estimated (log scale)
  with a Gaussian prior around the first sample on the log10 scale;
- a starting point from gradient matching.

Prediction of a held-out subject: symode's compiled integrator (auto-switching to Rosenbrock when
stiff) from the first sample; a failed solve or a state above CAP is a blow-up.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from glv_baselines import CAP, FLOOR, GLV, Subject, first_state, gm_ridge, lasso_edges, log_rmse
from glv_spec import glv_spec_dict, pack, to_dataset, unpack

from symode.errors import SolverError
from symode.fit import FitProblem
from symode.optim.lm import levenberg_marquardt
from symode.solve.model import Model, build_model
from symode.solve.simulation import interval_inputs
from symode.spec import spec_from_dict


@dataclass
class Variant:
    """One way of fitting; every field is a choice the study varies."""

    name: str
    init: str = "gm"              # "gm" (OLS gradient matching on the training subjects) or "neutral"
    sigma: float = 0.3            # noise (log10 units) of the log observables
    zeros: str = "missing"        # data zeros in the fit: "missing" or "eps"
    x0: str = "fixed"             # "fixed" (first sample) or "estimate" (prior around the first sample)
    x0_prior: float = 0.5         # sd (log10 units) of that prior
    s_off: float | None = None    # prior sd of a_ij * xbar_j (1/day); None = no prior
    s_self: float | None = None   # prior sd of a_ii * xbar_i
    s_r: float | None = None      # prior sd of r_i
    s_g: float | None = None      # prior sd of gamma_i
    prior_mean: str = "zero"      # "zero" or "gm": the priors' centre (0, or the gradient-matching values)
    self_max: float | None = None  # bound a_ii xbar_i <= -self_max (1/day): every taxon self-limits
    segments: tuple[int, int] | None = None   # (every, horizon): extra series restarted at every
    #                               `every`-th sample from the observed state, `horizon` samples long
    max_iter: int = 60
    max_time: float = 240.0
    floor: float = FLOOR
    huber: float | None = None    # robust (Huber) data loss: residuals beyond this many sigmas count linearly
    noise: str = "log"            # "log" (log10(x + eps) observables) or "linear" (relative noise on x)
    edges: int | None = None      # keep only this many interaction edges (GM lasso path ranking)


class PenalisedProblem:
    """FitProblem residuals followed by prior rows w_k (theta_k - mu_k) (theta = z for lin-scale
    parameters) and, for estimated initial states, (log10 x0 - log10 first sample) / x0_prior."""

    def __init__(self, fp: FitProblem, weights: np.ndarray, centre: np.ndarray, x0_rows: list[tuple[int, float,
                                                                                                   float]],
                 huber: float | None = None):
        self.fp, self.w, self.mu, self.huber = fp, weights, centre, huber
        self.idx = np.flatnonzero(weights > 0)
        self.x0_rows = x0_rows        # (unknown index, log10 target, 1/sd); z = ln x0 for those
        self.lb, self.ub = fp.lb, fp.ub

    def _prior(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(z)
        rows = [self.w[self.idx] * (z[self.idx] - self.mu[self.idx])]
        J = np.zeros((len(self.idx) + len(self.x0_rows), n))
        J[np.arange(len(self.idx)), self.idx] = self.w[self.idx]
        xr = []
        for k, (u, target, inv) in enumerate(self.x0_rows):
            xr.append(inv * (z[u] / math.log(10.0) - target))
            J[len(self.idx) + k, u] = inv / math.log(10.0)
        rows.append(np.array(xr))
        return np.concatenate(rows), J

    def _robust(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Huber's loss as least squares: r -> sign(r) sqrt(2 c |r| - c^2) beyond c; (r', dr'/dr)."""
        c = self.huber
        if c is None:
            return r, np.ones_like(r)
        a = np.abs(r)
        big = a > c
        out, d = r.copy(), np.ones_like(r)
        out[big] = np.sign(r[big]) * np.sqrt(2.0 * c * a[big] - c * c)
        d[big] = c / np.abs(out[big])
        return out, d

    def residuals(self, z: np.ndarray) -> np.ndarray:
        return np.concatenate([self._robust(self.fp.residuals(z))[0], self._prior(z)[0]])

    def jacobian(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r, J = self.fp.jacobian(z)
        r, d = self._robust(r)
        J = J * d[:, None]
        pr, PJ = self._prior(z)
        return np.concatenate([r, pr]), np.vstack([J, PJ])

    def loss(self, z: np.ndarray) -> float:
        r = self.residuals(z)
        return 0.5 * float(r @ r)


_MODELS: dict[tuple, Model] = {}


def glv_model(taxa: list[str], inputs: list[str], sigma: float, noise: str = "log") -> Model:
    key = (tuple(taxa), tuple(inputs), sigma, noise)
    if key not in _MODELS:
        _MODELS[key] = build_model(spec_from_dict(glv_spec_dict(taxa, inputs, sigma=sigma, noise=noise),
                                                  file="<glv>"))
    return _MODELS[key]


@dataclass
class FitOutcome:
    params: dict[str, float]
    loss: float
    data_loss: float
    iterations: int
    converged: bool
    message: str
    time_s: float
    start_loss: float


def fit_glv(train: list[Subject], taxa: list[str], inputs: list[str], v: Variant) -> FitOutcome:
    """Fit the shared gLV parameters to the training subjects jointly (symode LM, exact sensitivities)."""
    t0 = time.perf_counter()
    model = glv_model(taxa, inputs, v.sigma, v.noise)
    series = list(train)
    if v.segments:
        every, horizon = v.segments
        for s in train:
            for k in range(every, len(s.times) - 2, every):
                sl = slice(k, min(k + horizon + 1, len(s.times)))
                series.append(Subject(f"{s.name}@{s.times[k]:g}", s.times[sl], s.x[sl], s.u[sl]))
    ds = [to_dataset(s.times, s.x, s.u, taxa, inputs, zeros=v.zeros, noise=v.noise,
                    name=f"subject{s.name}") for s in series]
    x0 = [dict(zip(taxa, first_state(s, v.floor), strict=True)) for s in series]
    fixed = [] if v.x0 == "estimate" else [f"x0.{t}" for t in taxa]
    mask = None
    if v.edges is not None:
        keep = set(lasso_edges(train, taxa, v.edges, v.floor))
        fixed += [f"a_{i}_{j}" for i in taxa for j in taxa if i != j and (i, j) not in keep]
        mask = np.array([[i == j or (i, j) in keep for j in taxa] for i in taxa])
    if v.x0 == "estimate":
        for t in taxa:                       # estimate: true for the states of this model instance
            model.spec.states[t].estimate = True
    try:
        fp = FitProblem(model, ds, x0=x0, fixed=fixed)
    finally:
        for t in taxa:
            model.spec.states[t].estimate = False
    xbar = np.exp(np.nanmean(np.concatenate([np.log(np.where(s.x > 0, s.x, np.nan)) for s in train]), axis=0))
    gm = gm_ridge(train, 0.0, v.floor, mask)
    if v.init == "gm":
        start = pack(gm.r, gm.A, gm.G, taxa, inputs)
    else:
        m = len(taxa)
        start = pack(np.ones(m), -np.diag(1.0 / xbar), np.zeros((m, len(inputs))), taxa, inputs)
    start = {k: float(np.clip(val, *_bounds(model, k))) for k, val in start.items()}
    z0 = fp.z_from_values(start)
    n = len(z0)
    w, mu = np.zeros(n), np.zeros(n)
    gm_vals = pack(gm.r, gm.A, gm.G, taxa, inputs)
    tix = {t: a for a, t in enumerate(taxa)}
    for k, u in enumerate(fp.unknowns):
        if u.kind != "param":
            continue
        kind, rest = u.name.split("_", 1)
        s = None
        if kind == "r":
            s = v.s_r
        elif kind == "g":
            s = v.s_g
        elif kind == "a":
            i, j = rest.split("_")
            s = (v.s_self if i == j else v.s_off)
            if s is not None:
                s = s / xbar[tix[j]]          # a_ij xbar_j ~ N(0, s^2)
        if s is not None:
            w[k] = 1.0 / s
            mu[k] = gm_vals[u.name] if v.prior_mean == "gm" else 0.0
    x0_rows = []
    if v.x0 == "estimate":
        for k, u in enumerate(fp.unknowns):
            if u.kind == "x0":
                x0_rows.append((k, math.log10(float(x0[u.experiment][taxa[u.index]])), 1.0 / v.x0_prior))
    pp = PenalisedProblem(fp, w, mu, x0_rows, v.huber)
    if v.self_max is not None:
        pp.ub = fp.ub.copy()
        for k, u in enumerate(fp.unknowns):
            if u.kind == "param" and u.name.startswith("a_") and len(set(u.name[2:].split("_"))) == 1:
                pp.ub[k] = min(pp.ub[k], -v.self_max / xbar[tix[u.name[2:].split("_")[0]]])
        z0 = np.minimum(z0, pp.ub)
    L0 = pp.loss(z0)
    try:
        res = levenberg_marquardt(pp.residuals, pp.jacobian, z0, pp.lb, pp.ub, max_iter=v.max_iter,
                                  max_time=v.max_time)
        z, it, conv, msg = res.z, res.iterations, res.converged, res.message
    except SolverError as exc:
        z, it, conv, msg = z0, 0, False, f"failed at the start: {exc}"
    theta = fp.natural(z)
    params = dict(start)
    params.update({n: 0.0 for n in fixed if not n.startswith("x0.")})
    params.update({u.name: float(theta[k]) for k, u in enumerate(fp.unknowns) if u.kind == "param"})
    return FitOutcome(params, pp.loss(z), fp.loss(z), it, conv, msg, time.perf_counter() - t0, L0)


def _bounds(model: Model, name: str) -> tuple[float, float]:
    p = model.spec.parameters[name]
    return (-math.inf if p.lower is None else p.lower, math.inf if p.upper is None else p.upper)


def predict_symode(taxa: list[str], inputs: list[str], sigma: float, params: dict[str, float], s: Subject,
                   floor: float = FLOOR) -> tuple[np.ndarray, bool]:
    """Simulate a held-out subject from its first sample with symode's integrator: (x, blew_up)."""
    model = glv_model(taxa, inputs, sigma)            # the noise model does not change the dynamics
    p = model.parameter_vector()
    for j, name in enumerate(model.parameters):
        if name in params:
            p[j] = params[name]
    x0 = first_state(s, floor)
    U = interval_inputs(model, s.times, {n: s.u[:, k] for k, n in enumerate(inputs)})
    res = model.backend.integrate(s.times, x0, p, U, rtol=1e-8, atol=1e-12, method="auto")
    x = res.x
    if res.status != 0 or not np.all(np.isfinite(x)) or np.any(x > CAP):
        bad = ~np.all(np.isfinite(x) & (x <= CAP), axis=1)
        first = int(np.argmax(bad)) if bad.any() else len(x)
        x = x.copy()
        x[first:] = CAP
        return x, True
    return x, False


def predict_scipy(taxa: list[str], inputs: list[str], params: dict[str, float], s: Subject,
                  floor: float = FLOOR) -> tuple[np.ndarray, bool]:
    """The same prediction with the baselines' independent scipy integrator (a cross-check)."""
    r, A, G = unpack(params, taxa, inputs)
    return GLV(r, A, G).simulate(s.times, s.u, first_state(s, floor))


def score(pred: np.ndarray, s: Subject) -> float:
    return log_rmse(pred, s.x)
