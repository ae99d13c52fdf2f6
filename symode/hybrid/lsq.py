"""The least-squares problem of one hybrid-fit stage: weighted data residuals of a time window with their
exact Jacobian (discrete forward sensitivities through the integrator), the L2 penalty of the network
weights as residual rows, and rows that keep every neural uptake rate at 0 without substrate.

Also the integrator policy: explicit (Dormand-Prince) with a step budget per sample, switching a start
to the stiff integrator when its model is stiff (:func:`stiff_here`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from symode.errors import SolverError
from symode.hybrid.unknowns import Unknowns
from symode.hybrid.warmstart import mean_dilution, typical_inputs, uptake_outputs
from symode.solve.sensitivity import loss_and_gradient
from symode.spec.data import Dataset
from symode.spec.schema import NeuralTerm, Spec
from symode.symbolic.mlp import mlp_numpy_jacobian


def penalty_rows(model: Any, unk: Unknowns, prob: Any) -> tuple[np.ndarray, np.ndarray]:
    """The L2 penalty l2 ||w||^2 of every neural term as residual rows r_k = pw_k z[pk_k]: (pk, positions
    of the estimated weights in the unknowns z; pw = sqrt(2 n l2), n = number of observations, so that
    1/2 sum r_k^2 = n l2 ||w||^2 matches the per-observation loss scale)."""
    index = {name: i for i, name in enumerate(model.parameters)}
    zpos = {j: k for k, j in enumerate(unk.p_idx)}
    n = max(prob.n_observations, 1)
    rows = [(zpos[index[w]], math.sqrt(2 * n * term.l2)) for term in model.spec.neural if term.l2 > 0
            for w in term.weight_names() if index[w] in zpos]
    return np.array([k for k, _ in rows], dtype=int), np.array([w for _, w in rows])


@dataclass
class ZeroUptake:
    """Constraint rows weight * output(inputs with the substrate at 0): no uptake without substrate."""

    term: NeuralTerm
    out: int                 # output index
    X: np.ndarray            # (n, n_inputs) with the substrate's column 0
    weight: float
    p_idx: np.ndarray        # model.parameters index of every weight of the term (weight_names order)
    z_col: np.ndarray        # position in z of every weight (-1: not estimated)

    def rows(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows (n,), d rows / d weights (n, n_weights))."""
        y, J = mlp_numpy_jacobian(self.term, self.X, p[self.p_idx])
        return self.weight * y[:, self.out], self.weight * J[:, self.out, :]


#: Weight of the zero-substrate rows: an uptake rate of 1% of the mean dilution rate at zero substrate
#: costs as much as one data residual of 1 sigma (per constraint point).
ZERO_UPTAKE_WEIGHT = 100.0


def zero_uptake_rows(spec: Spec, data: Dataset, model: Any, unk: Unknowns, n_points: int = 24
                     ) -> list[ZeroUptake]:
    """Constraint blocks for every uptake output of every neural term (see :class:`ZeroUptake`): the
    substrate at 0, the other inputs spread over their observed range."""
    d_mean = mean_dilution(spec, data)
    pindex = {n: j for j, n in enumerate(model.parameters)}
    zpos = {j: k for k, j in enumerate(unk.p_idx)}
    blocks = []
    for term in spec.neural:
        sub = uptake_outputs(spec, term)
        if not sub:
            continue
        typ = typical_inputs(spec, term, data)
        names = term.weight_names()
        p_idx = np.array([pindex[w] for w in names])
        z_col = np.array([zpos.get(pindex[w], -1) for w in names])
        scale = d_mean if d_mean > 0 else max(term.output_scale.values(), default=1.0)
        grid = np.linspace(0.0, 1.0, n_points)
        for o, m in sub.items():
            X = np.column_stack([np.zeros(n_points) if n == m else typ[n][0] + grid[::(1 if k % 2 else -1)]
                                 * (typ[n][2] - typ[n][0]) for k, n in enumerate(term.inputs)])
            blocks.append(ZeroUptake(term, term.outputs.index(o), X, ZERO_UPTAKE_WEIGHT / scale, p_idx, z_col))
    return blocks


#: Integrator of :func:`fit_hybrid` (residuals and exact Jacobians alike). "explicit" (Dormand-Prince) is
#: ~10x cheaper per step for the exact Jacobians than Rodas4 and its step budget keeps trial steps out of
#: stiff regions; a start whose model turns stiff anyway switches to :data:`STIFF_SOLVER`
#: (docs/neural.md, Robustness).
SOLVER = "explicit"


#: Step budget of the integrator per sample time in training evaluations (a good model of the
#: chemostat takes ~1 step per 15-min sample; a stiff or exploding one 10-100).
STEPS_PER_SAMPLE = 8


def step_cap(n_times: int) -> int:
    """The integrator's step budget for ``n_times`` sample times."""
    return STEPS_PER_SAMPLE * n_times + 2000


#: Integrator a start of :func:`fit_hybrid` switches to when its model turns stiff under :data:`SOLVER`
#: = "explicit" (see :func:`stiff_here`); None: never switch.
STIFF_SOLVER: str | None = "auto"


#: A model counts as stiff (and worth the switch) when "auto" detects stiffness and integrates the window
#: within this many steps per sample (+ 2000): cheap for the stiff method, while an exploding or
#: oscillating model (which no integrator would make cheap) is not switched.
STIFF_STEPS_PER_SAMPLE = 3


def stiff_here(model: Any, unk: Unknowns, prob: Any, z: np.ndarray, rtol: float, atol: float) -> bool:
    """True if the model at ``z`` is stiff on the window of ``prob``: the automatic integrator switches to
    Rodas4 and then needs at most :data:`STIFF_STEPS_PER_SAMPLE` steps per sample."""
    p, x0 = unk.vectors(z)
    r = model.backend.integrate(prob.times, x0, p, prob.U, rtol=rtol, atol=atol, method="auto",
                                max_steps=STIFF_STEPS_PER_SAMPLE * len(prob.times) + 2000)
    return r.status == 0 and bool(np.all(np.isfinite(r.x))) and int(r.stats.get("n_switches", 0)) > 0


class WindowLSQ:
    """Weighted residuals (and their exact Jacobian) of a time window plus the L2 penalty rows, over the
    free subset of the unknowns (the others are held at ``z_ref``). Trial evaluations get a step budget
    (4x the steps of the last accepted point + 2000, at most :data:`STEPS_PER_SAMPLE` per sample) so that a
    step into a stiff region fails fast instead of costing minutes."""

    def __init__(self, model: Any, unk: Unknowns, prob: Any, z_ref: np.ndarray, free: np.ndarray,
                 rtol: float, atol: float, counter: dict[str, int], zero: Sequence[ZeroUptake] = (),
                 solver: str | None = None) -> None:
        self.model, self.unk, self.prob, self.free = model, unk, prob, free
        self.solver = solver or SOLVER
        self.zero = list(zero)
        self.z_ref = z_ref.copy()
        self.rtol, self.atol, self.counter = rtol, atol, counter
        self.pk, self.pw = penalty_rows(model, unk, prob)
        self.n_res = prob.n_observations + len(self.pk) + sum(len(b.X) for b in self.zero)
        self.cols = [model.backend.nx + j for j in unk.p_idx] + list(unk.x_idx)
        self.obs = prob.observed.reshape(-1)
        self.cap = step_cap(len(prob.times))
        self.budget = 4 * self.cap          # the first evaluation (a new horizon) may be stiffer
        self.last: tuple[bytes, int] | None = None
        self.failed: np.ndarray | None = None    # the last trial point that could not be simulated

    def z(self, w: np.ndarray) -> np.ndarray:
        z = self.z_ref.copy()
        z[self.free] = w
        return z

    def _simulate(self, w: np.ndarray, budget: int) -> tuple[np.ndarray | None, int]:
        p, x0 = self.unk.vectors(self.z(w))
        prob = self.prob
        r = self.model.backend.integrate(prob.times, x0, p, prob.U, rtol=self.rtol, atol=self.atol,
                                         method=self.solver, max_steps=budget)
        self.counter["solves"] = self.counter.get("solves", 0) + 1
        if r.status != 0 or not np.all(np.isfinite(r.x)):
            return None, 0
        _, rr = self.model.backend.residual_loss(prob.times, r.x, p, prob.U, prob.data, prob.sigma)
        return rr.reshape(-1)[self.obs], int(r.stats.get("n_steps", 0))

    def fun(self, w: np.ndarray) -> np.ndarray:
        r, steps = self._simulate(w, self.budget)
        if r is None or not np.all(np.isfinite(r)):
            self.failed = np.array(w, dtype=float)
            return np.full(self.n_res, np.inf)
        self.last = (np.asarray(w, dtype=float).tobytes(), steps)
        zz = self.z(w)
        return np.concatenate([r, self.pw * zz[self.pk], *self._zero_rows(zz)[0]])

    def _zero_rows(self, zz: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Zero-substrate constraint rows and their Jacobian wrt z."""
        if not self.zero:
            return [], []
        p, _ = self.unk.vectors(zz)
        rows, jacs = [], []
        for b in self.zero:
            r, Jw = b.rows(p)
            J = np.zeros((len(r), len(zz)))
            keep = b.z_col >= 0
            J[:, b.z_col[keep]] = Jw[:, keep]
            rows.append(r)
            jacs.append(J)
        return rows, jacs

    def jac(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        zz = self.z(w)
        key = np.asarray(w, dtype=float).tobytes()
        if self.last is None or self.last[0] != key:
            r, steps = self._simulate(w, self.cap)
            if r is None:
                return np.full(self.n_res, np.inf), np.zeros((self.n_res, int(self.free.sum())))
            self.last = (key, steps)
        self.budget = max(min(4 * self.last[1] + 2000, self.cap), 3 * self.last[1] // 2)
        p, x0 = self.unk.vectors(zz)
        try:
            res = loss_and_gradient(self.prob, params=p, x0=x0, method="discrete", jacobian=True,
                                    solver=self.solver, rtol=self.rtol, atol=self.atol)
        except SolverError:
            return np.full(self.n_res, np.inf), np.zeros((self.n_res, int(self.free.sum())))
        self.counter["grad"] = self.counter.get("grad", 0) + 1
        Jf = res.residual_jacobian
        assert Jf is not None and res.residuals is not None
        J = Jf[:, self.cols] * np.where(self.unk.logmask, self.unk.theta(zz), 1.0)
        Jp = np.zeros((len(self.pk), len(zz)))
        Jp[np.arange(len(self.pk)), self.pk] = self.pw
        zr, zj = self._zero_rows(zz)
        return (np.concatenate([res.residuals, self.pw * zz[self.pk], *zr]),
                np.vstack([J, Jp, *zj])[:, self.free])
