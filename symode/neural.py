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
windows (:func:`train` with ``optimizer="adam"``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data import Dataset
from .errors import SolverError, SymodeError
from .spec import NeuralTerm, Spec

# ====================================================================================================
# The MLP, in CasADi (code generation) and numpy (analysis)
# ====================================================================================================


def _act_casadi(name: str, z: Any) -> Any:
    import casadi as ca

    if name == "tanh":
        return ca.tanh(z)
    if name == "softplus":
        return ca.log1p(ca.exp(z))
    if name == "sigmoid":
        return 1 / (1 + ca.exp(-z))
    if name == "relu":
        return ca.fmax(z, 0)
    return z  # linear


def _act_numpy(name: str, z: np.ndarray) -> np.ndarray:
    if name == "tanh":
        return np.tanh(z)
    if name == "softplus":
        return np.logaddexp(0.0, z)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if name == "relu":
        return np.maximum(z, 0)
    return z


def mlp_casadi(term: NeuralTerm, inputs: Sequence[Any], weight: Callable[[str], Any]) -> list[Any]:
    """The outputs of ``term`` as CasADi SX expressions of ``inputs`` (one SX per input name) and of the
    weights (``weight(name)`` returns the SX of a weight parameter)."""
    import casadi as ca

    h = ca.vertcat(*[inp / term.input_scale.get(n, 1.0) for n, inp in zip(term.inputs, inputs, strict=True)])
    layers = term.layers()
    for k, (W, b) in enumerate(layers):
        Wm = ca.vertcat(*[ca.horzcat(*[weight(n) for n in row]) for row in W])
        bv = ca.vertcat(*[weight(n) for n in b])
        z = ca.mtimes(Wm, h) + bv
        h = _act_casadi(term.activation if k < len(layers) - 1 else term.output_activation, z)
    return [h[i] * term.output_scale.get(o, 1.0) for i, o in enumerate(term.outputs)]


def mlp_numpy(term: NeuralTerm, inputs: Mapping[str, np.ndarray] | np.ndarray,
              weights: Mapping[str, float]) -> np.ndarray:
    """Outputs (n, n_outputs) of ``term`` for inputs (n, n_inputs) or {input name: values}."""
    if isinstance(inputs, Mapping):
        X = np.column_stack([np.asarray(inputs[n], dtype=float).reshape(-1) for n in term.inputs])
    else:
        X = np.atleast_2d(np.asarray(inputs, dtype=float))
    h = X / np.array([term.input_scale.get(n, 1.0) for n in term.inputs])
    layers = term.layers()
    for k, (W, b) in enumerate(layers):
        Wm = np.array([[weights[n] for n in row] for row in W])
        bv = np.array([weights[n] for n in b])
        h = _act_numpy(term.activation if k < len(layers) - 1 else term.output_activation, h @ Wm.T + bv)
    return h * np.array([term.output_scale.get(o, 1.0) for o in term.outputs])


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


# ====================================================================================================
# Training
# ====================================================================================================

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

    from .gradient import Problem, loss_and_gradient
    from .model import build_model

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
    from .gradient import Problem

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
    from .io import atomic_write_text
    from .spec import dump_spec

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    dump_spec(result.spec, out / "fitted.yaml")
    atomic_write_text(out / "train.json", json.dumps({**result.summary(), "history": result.history}, indent=1,
                                                      default=float))
    return out / "fitted.yaml"


def _lm_polish(model: Any, unk: _Unknowns, prob: Any, z: np.ndarray, *,
               losses: Callable[[np.ndarray], tuple[float, float]], best: dict[str, Any],
               history: list[dict[str, Any]], n_val: int, max_iter: int, patience: int,
               time_limit: float, t_start: float, rtol: float, atol: float, say: Callable[[str], None],
               counter: dict[str, int]) -> tuple[np.ndarray, str]:
    """Levenberg-Marquardt on the training block with exact residual Jacobians (discrete forward
    sensitivities through the explicit integrator), L2 penalties as extra residuals, early stopping on
    the held-out loss."""
    from .gradient import loss_and_gradient

    spec = model.spec
    pnames = list(model.parameters)
    index = {n: i for i, n in enumerate(pnames)}
    n = max(prob.n_observations, 1)
    pen_rows: list[tuple[int, float]] = []   # (index into z, weight sqrt(2 n l2))
    zpos = {j: k for k, j in enumerate(unk.p_idx)}
    for term in spec.neural:
        if term.l2 > 0:
            pen_rows += [(zpos[index[w]], math.sqrt(2 * n * term.l2)) for w in term.weight_names()
                         if index[w] in zpos]
    pk = np.array([k for k, _ in pen_rows], dtype=int)
    pw = np.array([w for _, w in pen_rows])

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


# ====================================================================================================
# Symbolic replacement: which kinetic law reproduces the learned map?
# ====================================================================================================

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
