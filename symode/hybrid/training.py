"""Training a (hybrid) model's estimated parameters, network weights included, on one data set:
L-BFGS-B over a curriculum of growing horizons with early stopping on a held-out block, then a
Levenberg-Marquardt polish; or Adam over minibatches of time windows. :func:`write_training` writes the
result (fitted.yaml, train.json)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize

from symode.errors import SolverError, SymodeError
from symode.hybrid.lsq import penalty_rows
from symode.hybrid.unknowns import Unknowns
from symode.io import atomic_write_text
from symode.solve.model import build_model
from symode.solve.sensitivity import Problem, loss_and_gradient
from symode.spec import Spec, dump_spec
from symode.spec.data import Dataset


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
    t_start = time.perf_counter()
    say = log or (lambda s: None)
    model = build_model(spec) if not hasattr(spec, "backend") else spec  # type: ignore[union-attr]
    spec = model.spec
    unk = Unknowns(model, estimate_x0=estimate_x0)
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


def _adam(model: Any, data: Dataset, unk: Unknowns, objective: Callable[..., tuple[float, np.ndarray]],
          losses: Callable[[np.ndarray], tuple[float, float]], best: dict[str, Any], history: list[dict[str, Any]],
          *, t_split: float, window: float, batch: int, lr: float, seed: int, max_epochs: int, patience: int,
          time_limit: float, t_start: float, say: Callable[[str], None], n_train: int, n_val: int
          ) -> tuple[np.ndarray, str]:
    """Adam over minibatches of time windows (initial states of a window from the full simulation)."""
    rng = np.random.default_rng(seed)
    z = unk.z0()
    m1, m2 = np.zeros_like(z), np.zeros_like(z)
    b1, b2, eps, step = 0.9, 0.999, 1e-8, 0
    lo = unk.lo.copy()
    hi = unk.hi.copy()
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
                    zz[unk.npz + k] = math.log(max(xs[xi], 1e-300)) if unk.logmask[unk.npz + k] else xs[xi]
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
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    dump_spec(result.spec, out / "fitted.yaml")
    atomic_write_text(out / "train.json", json.dumps({**result.summary(), "history": result.history}, indent=1,
                                                      default=float))
    return out / "fitted.yaml"


def _lm_polish(model: Any, unk: Unknowns, prob: Any, z: np.ndarray, *,
               losses: Callable[[np.ndarray], tuple[float, float]], best: dict[str, Any],
               history: list[dict[str, Any]], n_val: int, max_iter: int, patience: int,
               time_limit: float, t_start: float, rtol: float, atol: float, say: Callable[[str], None],
               counter: dict[str, int]) -> tuple[np.ndarray, str]:
    """Levenberg-Marquardt on the training block with exact residual Jacobians (discrete forward
    sensitivities through the explicit integrator), L2 penalties as extra residuals, early stopping on
    the held-out loss."""
    n = max(prob.n_observations, 1)
    pk, pw = penalty_rows(model, unk, prob)

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

    lo = unk.lo.copy()
    hi = unk.hi.copy()
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
