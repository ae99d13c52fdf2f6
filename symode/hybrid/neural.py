"""Neural terms: small MLPs inside f (hybrid mechanistic/neural models), their training with adjoint
gradients, and the search for a symbolic kinetic law that reproduces a trained network.

A spec's ``neural:`` list declares MLPs (see docs/spec-format.md, "neural"); their outputs
``<id>.<output>`` stand for rates in uptake/production laws ``neural`` and in custom rates. The MLP is
built as a CasADi SX expression (:func:`mlp_casadi`), so f, df/dx, df/dp and the second-order products
of the compiled library come from CasADi's AD and every gradient method of :mod:`symode.gradient`
works unchanged; the weights are ordinary (linear-scale) spec parameters ``<id>__W<l>_<i>_<j>`` and
``<id>__b<l>_<i>``.

Training (:func:`train`): L-BFGS-B on the weighted least-squares loss plus the terms' L2 penalties, with
discrete-adjoint gradients (cost nearly independent of the number of weights), a curriculum of growing
time horizons, and early stopping on a held-out final time block; or Adam over minibatches of time
windows (:func:`train` with ``optimizer="adam"``)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from symode.errors import SolverError, SymodeError
from symode.spec.data import Dataset
from symode.spec.schema import NeuralTerm, Spec
from symode.symbolic.mlp import mlp_numpy, mlp_numpy_jacobian


def l2_penalty(spec: Spec, p: np.ndarray, parameter_names: Sequence[str]) -> tuple[float, np.ndarray]:
    """Sum over neural terms of l2 * ||weights||^2 (biases included) and its gradient wrt p."""
    grad = np.zeros(len(p))
    value = 0.0
    index = {n: i for i, n in enumerate(parameter_names)}
    for term in spec.neural:
        if term.l2 <= 0:
            continue
        idx = np.array([index[w] for w in term.weight_names()])
        value += term.l2 * float(p[idx] @ p[idx])
        grad[idx] += 2 * term.l2 * p[idx]
    return value, grad


@dataclass
class TrainResult:
    """Outcome of :func:`train`: the spec with trained values, losses and the optimisation history."""

    spec: Spec
    loss: float                      # data loss (1/2 sum r^2) on the training block at the returned values
    val_loss: float                  # data loss on the held-out block (simulated from t=0)
    penalty: float                   # L2 penalty at the returned values (objective units, see train)
    n_train: int                     # observed values in the training block
    n_val: int                       # observed values in the held-out block
    t_split: float                   # training block = t <= t_split
    stopped: str                     # why training ended
    seconds: float
    n_gradients: int
    history: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"loss": self.loss, "val_loss": self.val_loss, "penalty": self.penalty, "n_train": self.n_train,
                "n_val": self.n_val, "rms_train": math.sqrt(2 * self.loss / max(self.n_train, 1)),
                "rms_val": math.sqrt(2 * self.val_loss / max(self.n_val, 1)) if self.n_val else None,
                "t_split": self.t_split, "stopped": self.stopped, "seconds": self.seconds,
                "n_gradients": self.n_gradients}


class _Unknowns:
    """Estimated parameters and initial states in a transformed space (log for log-scale parameters and
    positive states, linear for weights and other parameters), with bounds."""

    def __init__(self, model: Any, estimate_x0: bool = True) -> None:
        spec = model.spec
        self.model = model
        self.p0 = model.parameter_vector()
        self.x00 = model.x0_vector()
        self.p_idx: list[int] = []
        self.x_idx: list[int] = []
        self.log: list[bool] = []
        bounds: list[tuple[float | None, float | None]] = []
        self.names: list[str] = []
        for j, name in enumerate(model.parameters):
            par = spec.parameters[name]
            if not par.estimate:
                continue
            log = par.scale == "log" and par.value > 0
            self.p_idx.append(j)
            self.log.append(log)
            self.names.append(name)
            bounds.append(_zbounds(par.lower, par.upper, log))
        for i, name in enumerate(model.states):
            st = spec.states[name]
            if not (estimate_x0 and st.estimate):
                continue
            log = st.x0 > 0 and st.lower is not None and st.lower >= 0
            self.x_idx.append(i)
            self.log.append(log)
            self.names.append(f"x0.{name}")
            bounds.append(_zbounds(st.lower, st.upper, log))
        self.bounds = bounds
        self.logmask = np.array(self.log, dtype=bool)
        self.npz = len(self.p_idx)

    def z0(self) -> np.ndarray:
        theta = np.concatenate([self.p0[self.p_idx], self.x00[self.x_idx]])
        z = np.where(self.logmask, np.log(np.maximum(theta, 1e-300)), theta)
        lo = np.array([b[0] if b[0] is not None else -np.inf for b in self.bounds])
        hi = np.array([b[1] if b[1] is not None else np.inf for b in self.bounds])
        return np.clip(z, lo, hi)

    def theta(self, z: np.ndarray) -> np.ndarray:
        return np.where(self.logmask, np.exp(np.where(self.logmask, z, 0.0)), z)

    def vectors(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        th = self.theta(z)
        p, x0 = self.p0.copy(), self.x00.copy()
        p[self.p_idx] = th[: self.npz]
        x0[self.x_idx] = th[self.npz:]
        return p, x0

    def chain(self, z: np.ndarray, grad_x0: np.ndarray, grad_p: np.ndarray) -> np.ndarray:
        g = np.concatenate([grad_p[self.p_idx], grad_x0[self.x_idx]])
        return g * np.where(self.logmask, self.theta(z), 1.0)

    def spec_at(self, z: np.ndarray) -> Spec:
        p, x0 = self.vectors(z)
        m = self.model
        return m.spec.with_values({n: float(p[j]) for j, n in enumerate(m.parameters) if j in set(self.p_idx)},
                                  {n: float(x0[i]) for i, n in enumerate(m.states) if i in set(self.x_idx)})


def _zbounds(lo: float | None, hi: float | None, log: bool) -> tuple[float | None, float | None]:
    if log:
        return (math.log(lo) if lo is not None and lo > 0 else None,
                math.log(hi) if hi is not None and hi > 0 else None)
    return lo, hi


class _Stop(Exception):
    pass


def train(spec: Spec | str | Path, data: Dataset, *, holdout: float = 0.1, horizons: Sequence[float] | None = None,
          optimizer: str = "lbfgs", max_iter: int = 2000, stage_iter: int = 300, patience: int = 100,
          time_limit: float = 780.0, rtol: float = 1e-6, atol: float = 1e-9, window: float = 48.0,
          batch: int = 8, lr: float = 1e-2, seed: int = 0, estimate_x0: bool = True, polish: int = 100,
          log: Callable[[str], None] | None = print) -> TrainResult:
    """Train a (hybrid) model's estimated parameters, neural weights included, on one data set.

    Objective: J(z) = L(theta)/n + sum_terms l2_term ||w_term||^2, with L = 1/2 sum r^2 the weighted
    least-squares loss of the training block (t <= t_split, the first 1 - ``holdout`` of the time span),
    n its number of observed values, and z the transformed unknowns (log for log-scale parameters and
    positive initial states, linear for weights). Gradients by the discrete adjoint.

    optimizer "lbfgs": L-BFGS-B over a curriculum of growing horizons (``horizons``, default 24 h, 72 h,
    10 and 30 days, then the whole training block), ``stage_iter`` iterations per early stage and up to
    ``max_iter`` on the full block, where the held-out loss (simulated from t = 0 over all the data) is
    tracked every iteration: training stops after ``patience`` iterations without improvement and returns
    the best point. "adam": Adam over minibatches of ``batch`` random windows of ``window`` hours whose
    initial states come from a simulation of the whole trajectory at the current values (refreshed every
    epoch), with the same early stopping per epoch.
    """
    from scipy.optimize import minimize

    from symode.solve.model import build_model
    from symode.solve.sensitivity import Problem, loss_and_gradient

    t_start = time.perf_counter()
    say = log or (lambda s: None)
    model = build_model(spec) if not hasattr(spec, "backend") else spec  # type: ignore[union-attr]
    spec = model.spec
    unk = _Unknowns(model, estimate_x0=estimate_x0)
    times = data.times
    t_split = float(times[0] + (1 - holdout) * (times[-1] - times[0])) if holdout > 0 else float(times[-1])
    full = Problem(model, data)
    val_rows = full.times > t_split
    n_val = int(full.observed[val_rows].sum())
    train_prob = Problem(model, data, window=(float(times[0]), t_split))
    n_train = train_prob.n_observations
    pnames = list(model.parameters)
    counter = {"grad": 0}
    history: list[dict[str, Any]] = []

    def objective(z: np.ndarray, prob: Problem) -> tuple[float, np.ndarray]:
        p, x0 = unk.vectors(z)
        try:
            res = loss_and_gradient(prob, params=p, x0=x0, method="discrete", rtol=rtol, atol=atol)
        except SolverError:
            return 1e20, np.zeros_like(z)
        counter["grad"] += 1
        if not np.isfinite(res.loss) or not np.all(np.isfinite(res.gradient)):
            return 1e20, np.zeros_like(z)
        pen, gpen = l2_penalty(spec, p, pnames)
        n = max(prob.n_observations, 1)
        g = unk.chain(z, res.grad_x0 / n, res.grad_p / n + gpen)
        return res.loss / n + pen, g

    def losses(z: np.ndarray) -> tuple[float, float]:
        """(training-block data loss, held-out data loss), simulating over all the data."""
        p, x0 = unk.vectors(z)
        r = model.backend.integrate(full.times, x0, p, full.U, rtol=rtol, atol=atol, method="auto")
        if r.status != 0 or not np.all(np.isfinite(r.x)):
            return math.inf, math.inf
        _, res = model.backend.residual_loss(full.times, r.x, p, full.U, full.data, full.sigma)
        res = np.where(full.observed, res, 0.0)
        return 0.5 * float(np.sum(res[~val_rows] ** 2)), 0.5 * float(np.sum(res[val_rows] ** 2))

    z = unk.z0()
    best = {"z": z.copy(), "val": math.inf, "it": 0}
    stopped = "converged"
    if horizons is None:
        horizons = [h for h in (24.0, 72.0, 240.0, 720.0) if times[0] + h < t_split]
    stages = [*(float(times[0]) + h for h in horizons), t_split]

    if optimizer == "lbfgs":
        for k, t_end in enumerate(stages):
            final = k == len(stages) - 1
            prob = train_prob if final else Problem(model, data, window=(float(times[0]), t_end))
            it = {"n": 0}

            def callback(zk: np.ndarray, _final: bool = final, _it: dict[str, int] = it, _t: float = t_end) -> None:
                _it["n"] += 1
                elapsed = time.perf_counter() - t_start
                if _final and n_val:
                    tr, va = losses(zk)
                    history.append({"stage": _t, "iter": _it["n"], "train": tr, "val": va, "seconds": elapsed})
                    if va < best["val"]:
                        best.update(z=zk.copy(), val=va, it=_it["n"])
                    if _it["n"] % 25 == 0:
                        say(f"  iter {_it['n']}: train rms {math.sqrt(2 * tr / n_train):.4f}, held-out rms "
                            f"{math.sqrt(2 * va / n_val):.4f} ({elapsed:.0f} s)")
                    if _it["n"] - best["it"] > patience:
                        raise _Stop("early stopping (held-out loss)")
                if elapsed > time_limit:
                    raise _Stop("time limit")

            try:
                res = minimize(lambda zz, _p=prob: objective(zz, _p), z, jac=True, method="L-BFGS-B",
                               bounds=unk.bounds, callback=callback,
                               options={"maxiter": max_iter if final else stage_iter, "maxcor": 20,
                                        "ftol": 1e-12, "gtol": 1e-9})
                z = res.x
                stopped = str(res.message)
            except _Stop as exc:
                stopped = str(exc)
                z = best["z"] if final and np.isfinite(best["val"]) else z
            if not final:
                value, _ = objective(z, prob)
                say(f"stage horizon {t_end - times[0]:g} h: objective {value:.4g} ({counter['grad']} gradients, "
                    f"{time.perf_counter() - t_start:.0f} s)")
            if stopped == "time limit":
                break
        if polish and stopped != "time limit":
            best.update(it=0)
            z, stopped = _lm_polish(model, unk, train_prob, z, losses=losses, best=best, history=history,
                                    n_val=n_val, max_iter=polish, patience=max(patience // 10, 5),
                                    time_limit=time_limit, t_start=t_start, rtol=rtol, atol=atol, say=say,
                                    counter=counter)
    elif optimizer == "adam":
        z, stopped = _adam(model, data, unk, objective, losses, best, history, t_split=t_split, window=window,
                           batch=batch, lr=lr, seed=seed, max_epochs=max_iter, patience=patience,
                           time_limit=time_limit, t_start=t_start, say=say, n_train=n_train, n_val=n_val)
    else:
        raise SymodeError(f"unknown optimizer {optimizer!r} (lbfgs, adam)")
    if n_val and np.isfinite(best["val"]):
        _, va_z = losses(z)
        if best["val"] < va_z:
            z = best["z"]
    tr, va = losses(z)
    p, _ = unk.vectors(z)
    pen, _ = l2_penalty(spec, p, pnames)
    out = TrainResult(spec=unk.spec_at(z), loss=tr, val_loss=va if n_val else 0.0, penalty=pen, n_train=n_train,
                      n_val=n_val, t_split=t_split, stopped=stopped, seconds=time.perf_counter() - t_start,
                      n_gradients=counter["grad"], history=history)
    say(f"done ({stopped}): train rms {math.sqrt(2 * tr / max(n_train, 1)):.4f}"
        + (f", held-out rms {math.sqrt(2 * va / n_val):.4f}" if n_val else "")
        + f", {out.n_gradients} gradients, {out.seconds:.0f} s")
    return out


def _adam(model: Any, data: Dataset, unk: _Unknowns, objective: Callable[..., tuple[float, np.ndarray]],
          losses: Callable[[np.ndarray], tuple[float, float]], best: dict[str, Any], history: list[dict[str, Any]],
          *, t_split: float, window: float, batch: int, lr: float, seed: int, max_epochs: int, patience: int,
          time_limit: float, t_start: float, say: Callable[[str], None], n_train: int, n_val: int
          ) -> tuple[np.ndarray, str]:
    """Adam over minibatches of time windows (initial states of a window from the full simulation)."""
    from symode.solve.sensitivity import Problem

    rng = np.random.default_rng(seed)
    z = unk.z0()
    m1, m2 = np.zeros_like(z), np.zeros_like(z)
    b1, b2, eps, step = 0.9, 0.999, 1e-8, 0
    lo = np.array([b[0] if b[0] is not None else -np.inf for b in unk.bounds])
    hi = np.array([b[1] if b[1] is not None else np.inf for b in unk.bounds])
    t0 = float(data.times[0])
    starts = data.times[(data.times <= t_split - window)]
    full_times = data.times
    windows_per_epoch = max(1, int((t_split - t0) / window))
    for epoch in range(max_epochs):
        p, x0 = unk.vectors(z)
        U = Problem(model, data).U
        traj = model.backend.integrate(full_times, x0, p, U, rtol=1e-6, atol=1e-9, method="auto")
        if traj.status != 0:
            return best["z"], "solver failure"
        for _ in range(max(1, windows_per_epoch // batch)):
            g_sum = np.zeros_like(z)
            for s in rng.choice(starts, size=batch, replace=True):
                i = int(np.searchsorted(full_times, s))
                prob = Problem(model, data, window=(float(full_times[i]), float(full_times[i]) + window))
                # the window starts from the simulated state; x0 unknowns get gradient only for t0 windows
                zz = z.copy()
                xs = traj.x[i]
                for k, xi in enumerate(unk.x_idx):
                    zz[unk.npz + k] = math.log(max(xs[xi], 1e-300)) if unk.log[unk.npz + k] else xs[xi]
                _, g = objective(zz, prob)
                if i != 0:
                    g[unk.npz:] = 0.0
                g_sum += g
            step += 1
            g = g_sum / batch
            m1 = b1 * m1 + (1 - b1) * g
            m2 = b2 * m2 + (1 - b2) * g * g
            z = np.clip(z - lr * (m1 / (1 - b1**step)) / (np.sqrt(m2 / (1 - b2**step)) + eps), lo, hi)
        tr, va = losses(z)
        elapsed = time.perf_counter() - t_start
        history.append({"epoch": epoch, "train": tr, "val": va, "seconds": elapsed})
        say(f"  epoch {epoch}: train rms {math.sqrt(2 * tr / max(n_train, 1)):.4f}"
            + (f", held-out rms {math.sqrt(2 * va / n_val):.4f}" if n_val else ""))
        score = va if n_val else tr
        if score < best["val"]:
            best.update(z=z.copy(), val=score, it=epoch)
        if epoch - best["it"] > patience:
            return best["z"], "early stopping (held-out loss)"
        if elapsed > time_limit:
            return best["z"], "time limit"
    return z, "epochs done"


def write_training(result: TrainResult, outdir: str | Path) -> Path:
    """Write ``fitted.yaml`` (the spec with trained values) and ``train.json`` (losses, history)."""
    from symode.io import atomic_write_text
    from symode.spec import dump_spec

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    dump_spec(result.spec, out / "fitted.yaml")
    atomic_write_text(out / "train.json", json.dumps({**result.summary(), "history": result.history}, indent=1,
                                                      default=float))
    return out / "fitted.yaml"


def _penalty_rows(model: Any, unk: _Unknowns, prob: Any) -> tuple[np.ndarray, np.ndarray]:
    """The L2 penalty l2 ||w||^2 of every neural term as residual rows r_k = pw_k z[pk_k]: (pk, positions
    of the estimated weights in the unknowns z; pw = sqrt(2 n l2), n = number of observations, so that
    1/2 sum r_k^2 = n l2 ||w||^2 matches the per-observation loss scale)."""
    index = {name: i for i, name in enumerate(model.parameters)}
    zpos = {j: k for k, j in enumerate(unk.p_idx)}
    n = max(prob.n_observations, 1)
    rows = [(zpos[index[w]], math.sqrt(2 * n * term.l2)) for term in model.spec.neural if term.l2 > 0
            for w in term.weight_names() if index[w] in zpos]
    return np.array([k for k, _ in rows], dtype=int), np.array([w for _, w in rows])


def _lm_polish(model: Any, unk: _Unknowns, prob: Any, z: np.ndarray, *,
               losses: Callable[[np.ndarray], tuple[float, float]], best: dict[str, Any],
               history: list[dict[str, Any]], n_val: int, max_iter: int, patience: int,
               time_limit: float, t_start: float, rtol: float, atol: float, say: Callable[[str], None],
               counter: dict[str, int]) -> tuple[np.ndarray, str]:
    """Levenberg-Marquardt on the training block with exact residual Jacobians (discrete forward
    sensitivities through the explicit integrator), L2 penalties as extra residuals, early stopping on
    the held-out loss."""
    from symode.solve.sensitivity import loss_and_gradient

    n = max(prob.n_observations, 1)
    pk, pw = _penalty_rows(model, unk, prob)

    def residuals(zz: np.ndarray, jac: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
        p, x0 = unk.vectors(zz)
        if jac:
            try:
                res = loss_and_gradient(prob, params=p, x0=x0, method="discrete", jacobian=True, solver="explicit",
                                        rtol=rtol, atol=atol)
            except SolverError:
                return None, None
            counter["grad"] += 1
            Jfull = res.residual_jacobian
            assert Jfull is not None and res.residuals is not None
            J = np.concatenate([Jfull[:, [model.backend.nx + j for j in unk.p_idx]], Jfull[:, unk.x_idx]], axis=1)
            J = J * np.where(unk.logmask, unk.theta(zz), 1.0)
            Jp = np.zeros((len(pk), len(zz)))
            Jp[np.arange(len(pk)), pk] = pw
            return np.concatenate([res.residuals, pw * zz[pk]]), np.vstack([J, Jp])
        r = model.backend.integrate(prob.times, x0, p, prob.U, rtol=rtol, atol=atol, method="explicit")
        if r.status != 0 or not np.all(np.isfinite(r.x)):
            return None, None
        _, rr = model.backend.residual_loss(prob.times, r.x, p, prob.U, prob.data, prob.sigma)
        return np.concatenate([rr.reshape(-1)[prob.observed.reshape(-1)], pw * zz[pk]]), None

    lo = np.array([b[0] if b[0] is not None else -np.inf for b in unk.bounds])
    hi = np.array([b[1] if b[1] is not None else np.inf for b in unk.bounds])
    r, J = residuals(z, True)
    if r is None:
        return z, "LM: solver failure at the start"
    lam = 1e-3
    it = 0
    stopped = "LM: max iterations"
    while it < max_iter:
        it += 1
        assert J is not None
        g = J.T @ r
        A = J.T @ J
        d = np.maximum(np.diag(A), 1e-12 * max(np.max(np.diag(A)), 1e-300))
        cost = 0.5 * float(r @ r)
        accepted = False
        for _ in range(12):
            try:
                step = np.linalg.solve(A + lam * np.diag(d), -g)
            except np.linalg.LinAlgError:
                lam *= 10
                continue
            zn = np.clip(z + step, lo, hi)
            rn, _ = residuals(zn, False)
            if rn is not None and 0.5 * float(rn @ rn) < cost:
                accepted = True
                break
            lam *= 10
        if not accepted:
            stopped = "LM: no further decrease"
            break
        rel = (cost - 0.5 * float(rn @ rn)) / cost
        z = zn
        lam = max(lam / 5, 1e-9)
        r, J = residuals(z, True)
        if r is None:
            stopped = "LM: solver failure"
            break
        elapsed = time.perf_counter() - t_start
        if n_val:
            tr, va = losses(z)
            history.append({"stage": "lm", "iter": it, "train": tr, "val": va, "seconds": elapsed})
            if va < best["val"]:
                best.update(z=z.copy(), val=va, it=it)
            say(f"  LM iter {it}: objective {0.5 * float(r @ r) / n:.6f}, held-out rms {math.sqrt(2 * va / n_val):.4f}"
                f" (lambda {lam:.1e}, {elapsed:.0f} s)")
            if it - best["it"] > patience:
                stopped = "LM: early stopping (held-out loss)"
                break
        if rel < 1e-7:
            stopped = "LM: converged"
            break
        if elapsed > time_limit:
            stopped = "LM: time limit"
            break
    return z, stopped


#: Default wall-clock limit (s) of :func:`fit_hybrid` (symode fit on a neural spec).
HYBRID_TIME_LIMIT = 600.0


#: Horizons (h from the first sample) of the curriculum; the whole training block comes last.
HYBRID_HORIZONS = (24.0, 48.0, 96.0, 192.0, 384.0, 768.0)


def _typical_inputs(spec: Spec, term: NeuralTerm, data: Dataset) -> dict[str, tuple[float, float, float]]:
    """(low, typical, high) of each network input: from the data where observed, else from x0 and the
    term's input scale."""
    out: dict[str, tuple[float, float, float]] = {}
    for n in term.inputs:
        col = data.columns.get(n)
        vals = col[np.isfinite(col)] if col is not None else np.zeros(0)
        if vals.size >= 3:
            lo, mid, hi = (float(v) for v in np.percentile(vals, [1, 50, 99]))
        else:
            s = float(term.input_scale.get(n, 1.0))
            x0 = float(spec.states[n].x0) if n in spec.states else s
            lo, mid, hi = 0.0, max(abs(x0), s), 3 * max(abs(x0), s)
        out[n] = (lo, mid if mid > 0 else max(hi, 1e-3) / 2, hi)
    return out


def _mean_dilution(spec: Spec, data: Dataset) -> float:
    """Mean dilution rate over the data (the input's default without a column; 0 for batch)."""
    dil = spec.reactor.dilution
    d_col = data.columns.get(dil) if dil else None
    if d_col is not None and np.isfinite(d_col).any():
        return float(np.nanmean(d_col))
    if dil and dil in spec.inputs and spec.inputs[dil].default is not None:
        return float(spec.inputs[dil].default or 0.0)
    return 0.0


def _uptake_outputs(spec: Spec, term: NeuralTerm) -> dict[str, str]:
    """{output: substrate} for the outputs of ``term`` used as the rate of an uptake (law ``neural``) of a
    substrate that is one of the term's inputs."""
    sub: dict[str, str] = {}
    for e in spec.interactions:
        if e.kind == "uptake" and e.law == "neural" and e.rate and e.rate.startswith(term.id + "."):
            o = e.rate.split(".", 1)[1]
            if e.source in term.inputs:
                sub[o] = e.source
    return sub


@dataclass
class _ZeroUptake:
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


def _zero_uptake_rows(spec: Spec, data: Dataset, model: Any, unk: _Unknowns, n_points: int = 24
                      ) -> list[_ZeroUptake]:
    """Constraint blocks for every uptake output of every neural term (see :class:`_ZeroUptake`): the
    substrate at 0, the other inputs spread over their observed range."""
    d_mean = _mean_dilution(spec, data)
    pindex = {n: j for j, n in enumerate(model.parameters)}
    zpos = {j: k for k, j in enumerate(unk.p_idx)}
    blocks = []
    for term in spec.neural:
        sub = _uptake_outputs(spec, term)
        if not sub:
            continue
        typ = _typical_inputs(spec, term, data)
        names = term.weight_names()
        p_idx = np.array([pindex[w] for w in names])
        z_col = np.array([zpos.get(pindex[w], -1) for w in names])
        scale = d_mean if d_mean > 0 else max(term.output_scale.values(), default=1.0)
        grid = np.linspace(0.0, 1.0, n_points)
        for o, m in sub.items():
            X = np.column_stack([np.zeros(n_points) if n == m else typ[n][0] + grid[::(1 if k % 2 else -1)]
                                 * (typ[n][2] - typ[n][0]) for k, n in enumerate(term.inputs)])
            blocks.append(_ZeroUptake(term, term.outputs.index(o), X, ZERO_UPTAKE_WEIGHT / scale, p_idx, z_col))
    return blocks


def warm_start(spec: Spec, data: Dataset, *, emphasis: int | None = None, k_factor: float = 1.0,
               seed_shift: int = 0, n_points: int = 400) -> dict[str, float]:
    """Weights that make every neural term mimic a Monod-type law before training (a warm start).

    An output used as the rate of an ``uptake`` interaction (law ``neural``) of consumer C on substrate M
    becomes ``mu_o (M/K_M) / (1 + sum_j M_j/K_j)`` (the shared-saturation form of model (1); sum over the
    term's substrate inputs), K_M = ``k_factor`` x the median observed M, and the mu_o chosen so that the
    consumer's total specific growth at the median inputs equals the mean dilution rate (a chemostat
    consumer that neither washes out nor explodes). ``emphasis`` = k gives 80% of that growth to the k-th
    uptake output (None: equal shares). Other outputs keep the network's current map. The weights are
    fitted by least squares (scipy, ``n_points`` random inputs over the observed range, widened by half on
    each side) from the spec's weights, or from the Glorot weights of seed ``seed + seed_shift``.
    """
    with blas_threads(1):
        return _warm_start(spec, data, emphasis=emphasis, k_factor=k_factor, seed_shift=seed_shift,
                           n_points=n_points)


def _warm_start(spec: Spec, data: Dataset, *, emphasis: int | None, k_factor: float, seed_shift: int,
                n_points: int) -> dict[str, float]:
    import dataclasses

    from scipy.optimize import least_squares

    d_mean = _mean_dilution(spec, data)
    out: dict[str, float] = {}
    for t_index, term in enumerate(spec.neural):
        names = term.weight_names()
        w0 = {w: spec.parameters[w].value for w in names}
        if seed_shift:
            w0 = dataclasses.replace(term, seed=term.seed + seed_shift).initial_weights()
        sub = _uptake_outputs(spec, term)
        if not sub or d_mean <= 0:
            out.update(w0)
            continue
        rng = np.random.default_rng(1009 * (t_index + 1) + seed_shift)
        typ = _typical_inputs(spec, term, data)
        Xin = np.column_stack([rng.uniform(max(0.0, lo - 0.5 * (hi - lo)), hi + 0.5 * (hi - lo), n_points)
                               for lo, _, hi in (typ[n] for n in term.inputs)])
        target = mlp_numpy(term, Xin, w0)
        K = {m: k_factor * typ[m][1] for m in sub.values()}
        den = 1 + sum(Xin[:, term.inputs.index(m)] / K[m] for m in set(sub.values()))
        den_typ = 1 + sum(typ[m][1] / K[m] for m in set(sub.values()))
        outs = [o for o in term.outputs if o in sub]
        shares = np.full(len(outs), 1.0 / len(outs))
        if emphasis is not None and len(outs) > 1:
            shares = np.full(len(outs), 0.2 / (len(outs) - 1))
            shares[emphasis % len(outs)] = 0.8
        for o, share in zip(outs, shares, strict=True):
            m = sub[o]
            mu = share * d_mean * den_typ / (typ[m][1] / K[m])
            target[:, term.outputs.index(o)] = mu * (Xin[:, term.inputs.index(m)] / K[m]) / den
        scale = np.array([term.output_scale.get(o, 1.0) for o in term.outputs])

        def res(w: np.ndarray, _t: NeuralTerm = term, _X: np.ndarray = Xin, _y: np.ndarray = target,
                _s: np.ndarray = scale) -> np.ndarray:
            return ((mlp_numpy_jacobian(_t, _X, w)[0] - _y) / _s).ravel()

        def jac(w: np.ndarray, _t: NeuralTerm = term, _X: np.ndarray = Xin, _s: np.ndarray = scale) -> np.ndarray:
            J = mlp_numpy_jacobian(_t, _X, w)[1]
            return (J / _s[None, :, None]).reshape(-1, J.shape[2])

        fitted = least_squares(res, np.array([w0[n] for n in names]), jac=jac, method="trf", max_nfev=300,
                               x_scale="jac")
        out.update(dict(zip(names, (float(v) for v in fitted.x), strict=True)))
    return out


def _spec_weights(spec: Spec) -> dict[str, float]:
    """The network weights' values in ``spec``."""
    return {n: spec.parameters[n].value for n in spec.neural_weights}


#: Share of a metabolite's turnover that :func:`balanced_rates` assigns to its consumption (the rest leaves
#: with the outflow).
CONSUMPTION_SHARE = 0.5


def balanced_rates(spec: Spec, data: Dataset, weights: Mapping[str, float],
                   share: float = CONSUMPTION_SHARE) -> dict[str, float]:
    """Starting values of the turnover of every metabolite fed by a network's uptake: the production rates
    ``v`` (law non_growth, rate v P) and the uptake yields of the ``neural`` uptakes, balanced with the data.

    At the observed median levels the production of M (by observed producers) equals the outflow
    D_mean M / (1 - ``share``) and the consumption by the network's uptakes (yield x rate x consumer, the
    rate from the network with ``weights`` at the typical inputs, the consumer from the data or its x0)
    takes ``share`` of it (metabolites without such a production are left alone). Production and
    consumption of a metabolite observed only at its quasi-steady level are nearly interchangeable for the
    fit (only transients tell their sum apart); starting them orders of magnitude too high gives a futile
    cycle with a fast, stiff turnover that the optimiser keeps and that is wrong in every transient.
    Parameters that are not estimated, not found or not positive are left out of the result."""
    d_mean = _mean_dilution(spec, data)
    if d_mean <= 0:
        return {}

    def median(name: str) -> float | None:
        col = data.columns.get(name)
        if col is not None and np.isfinite(col).sum() >= 3:
            return float(np.nanmedian(col))
        return None

    def estimated(par: Any) -> str | None:
        return par if isinstance(par, str) and par in spec.parameters and spec.parameters[par].estimate else None

    out: dict[str, float] = {}
    for term in spec.neural:
        sub = _uptake_outputs(spec, term)
        if not sub:
            continue
        typ = _typical_inputs(spec, term, data)
        rates = mlp_numpy(term, np.array([[typ[n][1] for n in term.inputs]]), weights)[0]
        for m in set(sub.values()):
            level = median(m)
            if level is None or level <= 0:
                continue
            flux = d_mean * level / (1 - share)        # production = outflow + consumption
            prod = [e for e in spec.interactions if e.kind == "production" and e.law == "non_growth"
                    and e.target == m and e.source and median(e.source)]
            if not prod:       # a fed substrate, or produced by a hidden state: no turnover to balance
                continue
            for e in prod:
                v = estimated(e.params.get("v"))
                if v:
                    out[v] = flux / len(prod) / float(median(e.source) or 1.0)
            ups = [e for e in spec.interactions if e.kind == "uptake" and e.law == "neural" and e.source == m
                   and e.rate and e.rate.startswith(term.id + ".")]
            for e in ups:
                g = estimated(e.params.get("yield"))
                cons = median(e.target or "") or (spec.states[e.target].x0 if e.target in spec.states else 0.0)
                r = float(rates[term.outputs.index(e.rate.split(".", 1)[1])])
                if g and cons > 0 and r > 0:
                    out[g] = share * flux / len(ups) / (r * cons)
    return {k: v for k, v in out.items() if math.isfinite(v) and v > 0}


@contextmanager
def blas_threads(n: int = 1) -> Iterator[None]:
    """Limit the OpenBLAS thread pools loaded in this process (numpy's, scipy's) to ``n`` threads inside
    the block (and ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS`` for processes started inside it).

    Multi-threaded BLAS on the small dense problems of training (a few hundred columns) is slower than
    one thread, and catastrophically so on a machine shared with other jobs (threads spin waiting for
    each other: a 1200 x 114 SVD took 0.2 s instead of 0.01 s). Best effort: silently does nothing for
    BLAS libraries it does not know."""
    import ctypes
    import os

    setters: list[tuple[Any, int]] = []
    try:
        with open("/proc/self/maps") as fh:
            libs = sorted({line.split()[-1] for line in fh if "openblas" in line.lower() and ".so" in line})
    except OSError:
        libs = []
    for lib in libs:
        try:
            dll = ctypes.CDLL(lib)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", "_64_", ""):
                setter = getattr(dll, f"{prefix}_set_num_threads{suffix}", None)
                getter = getattr(dll, f"{prefix}_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    try:
                        setters.append((setter, int(getter())))
                        setter(ctypes.c_int(n))
                    except Exception:  # pragma: no cover - exotic builds
                        pass
                    break
            else:
                continue
            break
    env = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update({k: str(n) for k in env})
    try:
        yield
    finally:
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for setter, old in setters:
            try:
                setter(ctypes.c_int(old))
            except Exception:  # pragma: no cover
                pass


#: Integrator of :func:`fit_hybrid` (residuals and exact Jacobians alike). "explicit" (Dormand-Prince) is
#: ~10x cheaper per step for the exact Jacobians than Rodas4 and its step budget keeps trial steps out of
#: stiff regions; a start whose model turns stiff anyway switches to :data:`STIFF_SOLVER`
#: (docs/neural.md, Robustness).
SOLVER = "explicit"


#: Step budget of the integrator per sample time in training evaluations (a good model of the
#: chemostat takes ~1 step per 15-min sample; a stiff or exploding one 10-100).
STEPS_PER_SAMPLE = 8


def _step_cap(n_times: int) -> int:
    return STEPS_PER_SAMPLE * n_times + 2000


#: Integrator a start of :func:`fit_hybrid` switches to when its model turns stiff under :data:`SOLVER`
#: = "explicit" (see :func:`_stiff_here`); None: never switch.
STIFF_SOLVER: str | None = "auto"


#: A model counts as stiff (and worth the switch) when "auto" detects stiffness and integrates the window
#: within this many steps per sample (+ 2000): cheap for the stiff method, while an exploding or
#: oscillating model (which no integrator would make cheap) is not switched.
STIFF_STEPS_PER_SAMPLE = 3


def _stiff_here(model: Any, unk: _Unknowns, prob: Any, z: np.ndarray, rtol: float, atol: float) -> bool:
    """True if the model at ``z`` is stiff on the window of ``prob``: the automatic integrator switches to
    Rodas4 and then needs at most :data:`STIFF_STEPS_PER_SAMPLE` steps per sample."""
    p, x0 = unk.vectors(z)
    r = model.backend.integrate(prob.times, x0, p, prob.U, rtol=rtol, atol=atol, method="auto",
                                max_steps=STIFF_STEPS_PER_SAMPLE * len(prob.times) + 2000)
    return r.status == 0 and bool(np.all(np.isfinite(r.x))) and int(r.stats.get("n_switches", 0)) > 0


class _LSQ:
    """Weighted residuals (and their exact Jacobian) of a time window plus the L2 penalty rows, over the
    free subset of the unknowns (the others are held at ``z_ref``). Trial evaluations get a step budget
    (4x the steps of the last accepted point + 2000, at most :data:`STEPS_PER_SAMPLE` per sample) so that a
    step into a stiff region fails fast instead of costing minutes."""

    def __init__(self, model: Any, unk: _Unknowns, prob: Any, z_ref: np.ndarray, free: np.ndarray,
                 rtol: float, atol: float, counter: dict[str, int], zero: Sequence[_ZeroUptake] = (),
                 solver: str | None = None) -> None:
        self.model, self.unk, self.prob, self.free = model, unk, prob, free
        self.solver = solver or SOLVER
        self.zero = list(zero)
        self.z_ref = z_ref.copy()
        self.rtol, self.atol, self.counter = rtol, atol, counter
        self.pk, self.pw = _penalty_rows(model, unk, prob)
        self.n_res = prob.n_observations + len(self.pk) + sum(len(b.X) for b in self.zero)
        self.cols = [model.backend.nx + j for j in unk.p_idx] + list(unk.x_idx)
        self.obs = prob.observed.reshape(-1)
        self.cap = _step_cap(len(prob.times))
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
        from symode.solve.sensitivity import loss_and_gradient

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


@dataclass
class _Setup:
    """What every stage of :func:`fit_hybrid` needs (rebuilt in worker processes)."""

    model: Any
    unk: _Unknowns
    data: Dataset
    t_split: float
    full: Any
    val_rows: np.ndarray
    n_val: int
    is_weight: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    rtol: float
    atol: float
    zero: list[_ZeroUptake] = field(default_factory=list)
    solver: str = "explicit"

    @classmethod
    def build(cls, spec: Spec, data: Dataset, holdout: float, rtol: float, atol: float,
              zero_uptake: bool = True, solver: str | None = None) -> _Setup:
        from symode.solve.model import build_model
        from symode.solve.sensitivity import Problem

        model = build_model(spec)
        unk = _Unknowns(model)
        times = data.times
        t_split = float(times[0] + (1 - holdout) * (times[-1] - times[0])) if holdout > 0 else float(times[-1])
        full = Problem(model, data)
        val_rows = full.times > t_split
        weights = set(spec.neural_weights)
        lo = np.array([b[0] if b[0] is not None else -np.inf for b in unk.bounds])
        hi = np.array([b[1] if b[1] is not None else np.inf for b in unk.bounds])
        z0 = unk.z0()
        x0_log = np.zeros(len(z0), dtype=bool)
        x0_log[unk.npz:] = unk.logmask[unk.npz:]
        lo = np.where(x0_log, np.maximum(lo, z0 - math.log(1e3)), lo)   # initial states: within 1000x
        hi = np.where(x0_log, np.minimum(hi, z0 + math.log(1e3)), hi)
        return cls(model=model, unk=unk, data=data, t_split=t_split, full=full, val_rows=val_rows,
                   n_val=int(full.observed[val_rows].sum()),
                   is_weight=np.array([n in weights for n in unk.names], dtype=bool), lo=lo, hi=hi,
                   rtol=rtol, atol=atol, zero=_zero_uptake_rows(spec, data, model, unk) if zero_uptake else [],
                   solver=solver or SOLVER)

    def problem(self, horizon: float | None) -> Any:
        from symode.solve.sensitivity import Problem

        t0 = float(self.data.times[0])
        t_end = self.t_split if horizon is None else min(t0 + horizon, self.t_split)
        return Problem(self.model, self.data, window=(t0, t_end))

    def losses(self, z: np.ndarray, max_steps: int = 0) -> tuple[float, float]:
        """(training-block, held-out) data loss 1/2 sum r^2, simulating from t0 over all the data."""
        p, x0 = self.unk.vectors(z)
        full = self.full
        r = self.model.backend.integrate(full.times, x0, p, full.U, rtol=self.rtol, atol=self.atol,
                                         method=self.solver, max_steps=max_steps or 4 * _step_cap(len(full.times)))
        if r.status != 0 or not np.all(np.isfinite(r.x)):
            return math.inf, math.inf
        _, res = self.model.backend.residual_loss(full.times, r.x, p, full.U, full.data, full.sigma)
        res = np.where(full.observed, res, 0.0)
        return 0.5 * float(np.sum(res[~self.val_rows] ** 2)), 0.5 * float(np.sum(res[self.val_rows] ** 2))


def _lm_stage(st: _Setup, z: np.ndarray, horizon: float | None, free: np.ndarray, max_iter: int,
              deadline: float, counter: dict[str, int]) -> tuple[np.ndarray, dict[str, Any]]:
    """Levenberg-Marquardt (:func:`symode.fit.levenberg_marquardt`, exact Jacobians) over the free
    unknowns on the window [t0, t0 + horizon] (None: the training block), until ``deadline`` (epoch s).
    With the explicit integrator, a stage whose start cannot be simulated, or whose LM stalls on trial
    steps that cannot be, switches ``st`` (the whole start from then on) to :data:`STIFF_SOLVER` if the
    model there is stiff (:func:`_stiff_here`) and goes on."""
    from symode.optim.lm import levenberg_marquardt

    t = time.time()
    prob = st.problem(horizon)

    def make_lsq(zz: np.ndarray) -> _LSQ:      # with the start's current solver
        return _LSQ(st.model, st.unk, prob, zz, free, st.rtol, st.atol, counter, st.zero, st.solver)

    lsq = make_lsq(z)
    r0 = lsq.fun(z[free])
    n_obs = prob.n_observations
    info: dict[str, Any] = {"horizon": horizon if horizon is not None else "training block",
                            "free": int(free.sum()), "start_rms": math.sqrt(float(np.mean(r0[:n_obs] ** 2)))}

    def switch(zz: np.ndarray) -> bool:
        """Switch this start to :data:`STIFF_SOLVER` if the explicit integrator failed on a stiff model."""
        if st.solver != "explicit" or not STIFF_SOLVER or not _stiff_here(st.model, st.unk, prob, zz, st.rtol,
                                                                          st.atol):
            return False
        st.solver = STIFF_SOLVER
        info["solver"] = f"switched to {STIFF_SOLVER} (stiff)"
        return True

    if not np.all(np.isfinite(r0)) and switch(z):
        lsq = make_lsq(z)
        r0 = lsq.fun(z[free])
    if not np.all(np.isfinite(r0)) or deadline - t <= 0:
        info.update(iterations=0, message="skipped (solver failure or time limit)", seconds=time.time() - t)
        return z, info
    its = 0
    for _attempt in range(2):
        try:
            res = levenberg_marquardt(lsq.fun, lsq.jac, z[free], st.lo[free], st.hi[free], max_iter=max_iter - its,
                                      max_time=max(deadline - time.time(), 0.0), stall_window=15, stall_tol=0.5)
        except (ValueError, np.linalg.LinAlgError, SolverError) as exc:   # non-finite Jacobian at the start
            info.update(iterations=its, message=f"failed: {exc}", seconds=time.time() - t)
            return z, info
        z = lsq.z(res.z)
        its += res.iterations
        # stalled because trial steps could not be simulated explicitly: go on with the stiff integrator
        # if the model there is stiff (the data may want a stiff model: fast uptake of a metabolite)
        if not (res.message.startswith("stalled") and lsq.failed is not None and its < max_iter
                and time.time() < deadline and switch(lsq.z(lsq.failed))):
            break
        lsq = make_lsq(z)
        if not np.all(np.isfinite(lsq.fun(z[free]))):
            break
    r = lsq.fun(z[free])[:prob.n_observations]
    info.update(iterations=its, message=res.message, rms=math.sqrt(float(np.mean(r**2))),
                seconds=round(time.time() - t, 2))
    return z, info


#: Longest share of a start's time one network-frozen ("mech") stage of :func:`fit_hybrid` may take.
MECH_SHARE = 0.15


def _hybrid_worker(job: dict[str, Any]) -> dict[str, Any]:
    """One candidate of :func:`fit_hybrid` (runs in a worker process or inline): the stages of
    ``job["plan"]`` (horizon, "mech" | "all", max iterations) from ``job["z"]`` or from a warm start."""
    t = time.time()
    deadline = min(job["deadline"], t + job.get("budget", math.inf))
    st = _Setup.build(job["spec"], job["data"], job["holdout"], job["rtol"], job["atol"], job.get("zero_uptake", True),
                      job.get("solver"))
    counter: dict[str, int] = {}
    if job.get("z") is not None:
        z = np.asarray(job["z"], dtype=float)
    else:
        z = st.unk.z0()
        if job.get("warm") is not None:
            warm = dict(job["warm"])
            balance = bool(warm.pop("balance", False))
            values = warm_start(st.model.spec, st.data, **warm)
            if balance:
                values.update(balanced_rates(st.model.spec, st.data, {**_spec_weights(st.model.spec), **values}))
            index = {n: k for k, n in enumerate(st.unk.names)}
            for n, v in values.items():
                if n in index:
                    k = index[n]
                    z[k] = math.log(v) if st.unk.logmask[k] else v
            z = np.clip(z, st.lo, st.hi)
    stages = []
    span = st.t_split - float(st.data.times[0])
    last_ok = job.get("from_horizon")      # longest horizon trained on so far
    queue = list(job["plan"])
    retries = 0
    while queue:
        horizon, which, its = queue.pop(0)
        if time.time() > deadline:
            break
        free = ~st.is_weight if which == "mech" else np.ones(len(z), dtype=bool)
        if not free.any():
            continue
        # the network-frozen stages are a warm-up: at most MECH_SHARE of the start's time each
        stage_deadline = min(deadline, time.time() + MECH_SHARE * (deadline - t)) if which == "mech" else deadline
        z, info = _lm_stage(st, z, horizon, free, its, stage_deadline, counter)
        stages.append(info)
        h = span if horizon is None else min(horizon, span)
        if info["message"].startswith("skipped (solver"):
            # the model trained up to last_ok fails on the longer window: extend the horizon more gently
            if which == "all" and last_ok is not None and h - last_ok > 0.05 * last_ok and retries < 6:
                retries += 1
                queue[:0] = [(last_ok + (h - last_ok) / 3, which, its), (horizon, which, its)]
            continue
        if which == "all":
            last_ok = max(h, last_ok or 0.0)
    tr, va = st.losses(z)
    n_tr = max(int(st.full.observed[~st.val_rows].sum()), 1)
    score = va / st.n_val if st.n_val else tr / n_tr
    return {"name": job["name"], "z": z.tolist(), "score": score, "objective": tr + va, "stages": stages,
            "seconds": time.time() - t, "n_gradients": counter.get("grad", 0), "horizon": last_ok,
            "solver": st.solver}


def _run_jobs(jobs: list[dict[str, Any]], workers: int, say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Run candidate jobs in ``workers`` processes (inline if 1); a failed job scores inf."""
    out: list[dict[str, Any]] = []

    def report(r: dict[str, Any]) -> None:
        last = r["stages"][-1] if r.get("stages") else {}
        say(f"  start {r['name']}: score {r['score']:.4g} (rms of last stage {last.get('rms', float('nan')):.4f}, "
            f"{r.get('seconds', 0):.0f} s)" + (f": {r['error']}" if r.get("error") else ""))

    if workers <= 1 or len(jobs) == 1:
        for job in jobs:
            try:
                r = _hybrid_worker(job)
            except (SolverError, np.linalg.LinAlgError, FloatingPointError) as exc:
                r = {"name": job["name"], "z": job.get("z"), "score": math.inf, "error": str(exc), "stages": []}
            report(r)
            out.append(r)
        return out
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ex = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=mp.get_context("spawn"))
    futs = {ex.submit(_hybrid_worker, job): job for job in jobs}
    try:
        for fut in as_completed(futs):
            job = futs[fut]
            try:
                r = fut.result()
            except Exception as exc:   # a failed start is reported, not fatal
                r = {"name": job["name"], "z": job.get("z"), "score": math.inf, "error": str(exc), "stages": []}
            report(r)
            out.append(r)
    except BaseException:
        ex.shutdown(wait=False, cancel_futures=True)
        for proc in list(getattr(ex, "_processes", {}).values()):
            proc.terminate()
        raise
    ex.shutdown(wait=True)
    order = [j["name"] for j in jobs]
    return sorted(out, key=lambda r: order.index(r["name"]))


def default_starts(spec: Spec, extra: int = 0) -> list[tuple[str, dict[str, Any] | None]]:
    """The starting points of :func:`fit_hybrid`: (name, :func:`warm_start` keyword arguments or None for
    the spec's own weights; ``balance``: True also starts the production rates and uptake yields from
    :func:`balanced_rates`). Warm starts with the emphasis on each uptake output, with the spec's and with
    balanced turnover, with equal shares, the spec's weights, then ``extra`` warm starts from other weight
    seeds and saturation constants.

    Both turnovers are needed: on the original author's parameters (fast uptake of B) only the balanced
    starts avoid a stiff futile cycle, on chemostat-dev-hplc only the spec's starting values lead to the
    right basin (docs/neural.md, Robustness)."""
    n_out = max((sum(1 for e in spec.interactions if e.kind == "uptake" and e.law == "neural"
                     and e.rate and e.rate.startswith(t.id + ".")) for t in spec.neural), default=0)
    starts: list[tuple[str, dict[str, Any] | None]] = []
    for k in reversed(range(n_out if n_out > 1 else 0)):
        starts += [(f"warm-emphasis-{k}", {"emphasis": k}), (f"warm-emphasis-{k}-balanced", {"emphasis": k,
                                                                                             "balance": True})]
    if n_out <= 1:
        starts += [("warm-balanced", {"balance": True}), ("warm-K/3", {"k_factor": 1 / 3}),
                   ("warm-K*3", {"k_factor": 3.0})]
    starts += [("warm", {}), ("spec", None)]
    for k in range(extra):
        starts.append((f"warm-seed-{k + 1}", {"seed_shift": k + 1, "k_factor": (0.5, 2.0)[k % 2],
                                              "emphasis": (k % n_out) if n_out > 1 else None}))
    return starts


def fit_hybrid(spec: Spec | str | Path, data: Dataset, *, time_limit: float = HYBRID_TIME_LIMIT,
               workers: int | None = None, extra_starts: int = 0, holdout: float = 0.0,
               horizons: Sequence[float] = HYBRID_HORIZONS, stage_iter: int = 25, refine: int = 2,
               polish: int = 150, rtol: float = 1e-6, atol: float = 1e-9,
               log: Callable[[str], None] | None = print) -> TrainResult:
    """Fit a hybrid (neural) model robustly: several starts, Levenberg-Marquardt with exact Jacobians
    over a curriculum of horizons, and the best start polished on all the training data.

    1. Starts (:func:`default_starts`): warm starts whose networks mimic a Monod-type law sized from the
       data (:func:`warm_start`), with different shares between the outputs, and whose production rates
       and uptake yields balance the observed metabolite levels (:func:`balanced_rates`); and the spec's
       own values.
    2. Each start (in parallel, ``workers`` processes, default all cores; all but the last ``workers``
       starts get their fair share of half the time limit, the last ones what is left of that half): the
       non-network parameters and initial states with the network frozen (LM on 24 h, then 48 h, each at
       most :data:`MECH_SHARE` of the start's time), then everything on the horizons ``horizons`` (LM,
       ``stage_iter`` iterations each); scored by the loss over all the data (the held-out block's if
       ``holdout`` > 0, simulated from t0).
    3. The ``refine`` best starts (in parallel; beyond the best only if within 1.5x of its score): LM on
       the whole training block, up to ``polish`` iterations; the best by the same score is returned.

    LM residuals are the weighted data residuals plus sqrt(2 n l2) w per network weight (the objective of
    :func:`train`) plus, for every network output used as an uptake rate of substrate M, rows that keep that
    rate at 0 when M = 0 (no uptake without substrate; without them the network keeps consuming at M = 0 and
    an unobserved metabolite goes negative between samples). Jacobians are exact (discrete forward
    sensitivities through the integrator, :data:`SOLVER`). A start whose explicit integration fails (the
    first evaluation of a stage, or every trial step of a stalled LM) on a model that is stiff there
    (:func:`_stiff_here`) continues with :data:`STIFF_SOLVER`.
    Past ``time_limit`` seconds every stage stops and the best point so far is returned.
    """
    with blas_threads(1):
        return _fit_hybrid(spec, data, time_limit=time_limit, workers=workers, extra_starts=extra_starts,
                           holdout=holdout, horizons=horizons, stage_iter=stage_iter, refine=refine, polish=polish,
                           rtol=rtol, atol=atol, log=log)


def _fit_hybrid(spec: Spec | str | Path, data: Dataset, *, time_limit: float, workers: int | None,
                extra_starts: int, holdout: float, horizons: Sequence[float], stage_iter: int, refine: int,
                polish: int, rtol: float, atol: float, log: Callable[[str], None] | None) -> TrainResult:
    import os

    from symode.solve.model import build_model

    t_start = time.time()
    say = log or (lambda s: None)
    model = build_model(spec) if not hasattr(spec, "backend") else spec  # type: ignore[union-attr]
    spec = model.spec
    workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    deadline_explore = t_start + 0.5 * time_limit
    deadline = t_start + time_limit
    times = data.times
    t_split = float(times[0] + (1 - holdout) * (times[-1] - times[0])) if holdout > 0 else float(times[-1])
    kept: list[float | None] = [float(h) for h in horizons if times[0] + h < t_split]
    early = [(h, "mech", 20) for h in (kept[:2] or [None])] + [(h, "all", stage_iter) for h in (kept or [None])]
    base = dict(spec=spec, data=data, holdout=holdout, rtol=rtol, atol=atol, solver=SOLVER)
    starts = default_starts(spec, extra_starts)
    if not balanced_rates(spec, data, _spec_weights(spec)):     # nothing to balance: the balanced starts are duplicates
        starts = [(n, w) for n, w in starts if not (w or {}).get("balance")]
    n_par = min(workers, len(starts))
    share = 0.5 * time_limit * n_par / len(starts)   # fair share of the explore phase
    # all but the last n_par starts get their fair share; the last ones may use what is left of the explore
    # phase (the time of starts that ended early), so that no start is starved by the ones before it
    jobs = [dict(base, name=name, warm=warm, z=None, plan=early, deadline=deadline_explore,
                 budget=share if k < len(starts) - n_par else math.inf) for k, (name, warm) in enumerate(starts)]
    say(f"fit_hybrid: {len(jobs)} starts on {min(workers, len(jobs))} processes, curriculum "
        + ", ".join(f"{h:g} h" for h in kept if h is not None) + f", time limit {time_limit:.0f} s")
    explored = _run_jobs(jobs, workers, say)
    ranked = sorted((r for r in explored if r.get("z") is not None and np.isfinite(r["score"])),
                    key=lambda r: r["score"])
    if not ranked:
        raise SolverError("every start failed (see the messages above)")
    chosen = [r for r in ranked[:max(refine, 1)] if r["score"] <= 1.5 * ranked[0]["score"]]
    say(f"refining {len(chosen)} best start(s) on the training block ({time.time() - t_start:.0f} s so far)")
    jobs = [dict(base, name=r["name"], z=r["z"], plan=[(None, "all", polish)], deadline=deadline,
                 from_horizon=r.get("horizon"), solver=r.get("solver", SOLVER)) for r in chosen]
    refined = _run_jobs(jobs, workers, say)
    candidates = [r for r in refined if r.get("z") is not None and np.isfinite(r["score"])] or ranked[:1]
    best = min(candidates, key=lambda r: r["score"])
    st = _Setup.build(spec, data, holdout, rtol, atol, solver=best.get("solver", SOLVER))
    z = np.asarray(best["z"], dtype=float)
    tr, va = st.losses(z)
    p, _ = st.unk.vectors(z)
    pen, _ = l2_penalty(spec, p, list(model.parameters))
    n_train = int(st.full.observed[~st.val_rows].sum())
    history = [{"phase": "explore", **{k: v for k, v in r.items() if k != "z"}} for r in explored]
    history += [{"phase": "refine", **{k: v for k, v in r.items() if k != "z"}} for r in refined]
    elapsed = time.time() - t_start
    stopped = f"best of {len(explored)} starts: {best['name']}" + (" (time limit)" if elapsed > time_limit else "")
    out = TrainResult(spec=st.unk.spec_at(z), loss=tr, val_loss=va if st.n_val else 0.0, penalty=pen,
                      n_train=n_train, n_val=st.n_val, t_split=st.t_split, stopped=stopped, seconds=elapsed,
                      n_gradients=sum(r.get("n_gradients", 0) for r in explored + refined), history=history)
    say(f"done ({stopped}): train rms {math.sqrt(2 * tr / max(n_train, 1)):.4f}"
        + (f", held-out rms {math.sqrt(2 * va / st.n_val):.4f}" if st.n_val else "")
        + f", {out.n_gradients} Jacobians, {elapsed:.0f} s")
    return out


def _candidates(inputs: list[str]) -> list[tuple[str, str, list[str], Callable[..., np.ndarray], str]]:
    """Single-output candidate laws: (law, formula, parameter names, f(X dict, *params), driving input)."""
    out: list[tuple[str, str, list[str], Callable[..., np.ndarray], str]] = []
    for M in inputs:
        out.append(("linear", f"k*{M}", ["k"], lambda X, k, M=M: k * X[M], M))
        out.append(("monod", f"mu*{M}/(K + {M})", ["mu", "K"], lambda X, mu, K, M=M: mu * X[M] / (K + X[M]), M))
        out.append(("haldane", f"mu*{M}/(K + {M} + {M}**2/Ki)", ["mu", "K", "Ki"],
                    lambda X, mu, K, Ki, M=M: mu * X[M] / (K + X[M] + X[M] ** 2 / Ki), M))
        for N in inputs:
            if N != M:
                out.append(("monod_inhibited", f"mu*{M}/(K + {M}) * I/(I + {N})", ["mu", "K", "I"],
                            lambda X, mu, K, I, M=M, N=N: mu * X[M] / (K + X[M]) * I / (I + X[N]), M))  # noqa: E741
    return out


def _fit_positive(fun: Callable[[np.ndarray], np.ndarray], y: np.ndarray, n: int, scale: float,
                  xscale: float) -> tuple[np.ndarray, float]:
    """Least squares over positive parameters (log space), a few starts; returns (params, rss)."""
    from scipy.optimize import least_squares

    best_p, best_rss = np.full(n, np.nan), math.inf
    starts = [np.log(np.full(n, v)) for v in (scale, xscale)]
    starts += [np.log(np.array([scale] + [xscale * f for f in (0.1, 10.0, 1.0)[: n - 1]]))]
    for z0 in starts:
        z0 = z0[:n] if len(z0) >= n else np.concatenate([z0, np.zeros(n - len(z0))])
        try:
            r = least_squares(lambda z: fun(np.exp(z)) - y, z0, method="lm" if len(y) > n else "trf",
                              max_nfev=2000)
        except (ValueError, FloatingPointError):
            continue
        rss = float(np.sum(r.fun**2))
        if np.isfinite(rss) and rss < best_rss:
            best_p, best_rss = np.exp(r.x), rss
    return best_p, best_rss


def propose_replacement(term: NeuralTerm, inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]
                        ) -> dict[str, list[dict[str, Any]]]:
    """Fit candidate kinetic laws to a learned input-output map (e.g. the MLP evaluated along the fitted
    trajectory, over the visited range) and rank them by AIC.

    Per output: ``linear`` k M, ``monod`` mu M/(K+M), ``haldane`` and ``monod_inhibited`` mu M/(K+M)
    I/(I+N) for every input M (and other input N). When the term has as many outputs as inputs, also the
    joint ``shared_monod`` law of model (1) under the key ``"joint"``: output_i = mu_i (M_i/K_i) /
    (1 + sum_j M_j/K_j) with one shared denominator. Entries: law, formula, params, rms (absolute),
    rel_rms (relative to the output's RMS), aic.
    """
    X = {n: np.asarray(inputs[n], dtype=float).reshape(-1) for n in term.inputs}
    n_pts = len(next(iter(X.values())))
    xscale = {n: float(np.median(np.abs(v))) or 1.0 for n, v in X.items()}
    result: dict[str, list[dict[str, Any]]] = {}

    def entry(law: str, formula: str, names: list[str], p: np.ndarray, rss: float, y: np.ndarray) -> dict[str, Any]:
        rms = math.sqrt(rss / y.size)
        return {"law": law, "formula": formula, "params": {k: float(v) for k, v in zip(names, p, strict=True)},
                "rms": rms, "rel_rms": rms / (math.sqrt(float(np.mean(y**2))) or 1.0),
                "aic": y.size * math.log(max(rss / y.size, 1e-300)) + 2 * len(names)}

    for o in term.outputs:
        y = np.asarray(outputs[o], dtype=float).reshape(-1)
        ys = float(np.max(np.abs(y))) or 1.0
        rows = []
        for law, formula, names, f, M in _candidates(term.inputs):
            p, rss = _fit_positive(lambda q, f=f: f(X, *q), y, len(names), ys, xscale[M])
            if np.isfinite(rss):
                rows.append(entry(law, formula, names, p, rss, y))
        result[o] = sorted(rows, key=lambda r: r["aic"])
    if len(term.outputs) == len(term.inputs) >= 2:
        Y = np.concatenate([np.asarray(outputs[o], dtype=float).reshape(-1) for o in term.outputs])
        k = len(term.inputs)

        def shared(q: np.ndarray) -> np.ndarray:
            mu, K = q[:k], q[k:]
            den = 1 + sum(X[m] / K[j] for j, m in enumerate(term.inputs))
            return np.concatenate([mu[j] * (X[m] / K[j]) / den for j, m in enumerate(term.inputs)])

        ys = float(np.max(np.abs(Y))) or 1.0
        from scipy.optimize import least_squares

        best: tuple[np.ndarray, float] = (np.zeros(2 * k), math.inf)
        for f in (0.1, 1.0, 10.0):
            z0 = np.log(np.concatenate([np.full(k, ys), [xscale[m] * f for m in term.inputs]]))
            r = least_squares(lambda z: shared(np.exp(z)) - Y, z0, method="lm", max_nfev=4000)
            rss = float(np.sum(r.fun**2))
            if rss < best[1]:
                best = (np.exp(r.x), rss)
        names = [f"mu_{o}" for o in term.outputs] + [f"K_{m}" for m in term.inputs]
        den = " + ".join(f"{m}/K_{m}" for m in term.inputs)
        formula = "; ".join(f"{o} = mu_{o}*({m}/K_{m})/(1 + {den})" for o, m in zip(term.outputs, term.inputs,
                                                                                  strict=True))
        result["joint"] = [entry("shared_monod", formula, names, best[0], best[1], Y)]
    _ = n_pts
    return result
