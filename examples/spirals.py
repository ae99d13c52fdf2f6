"""Spirals example (docs/neural-examples.md): the bi-directional 2-D spiral task of Chen et al. (2018), Table 2,
with symode's neural ODEs (specs/spiral-neural.yaml: dx/dt = MLP(x), 2-16-16-2, tanh).

    python3 examples/spirals.py [--train 100] [--test 50] [--obs 30 50 100] [--quick] [--per-spiral]

Data as in the latent-ODE example of torchdiffeq: two Archimedean spirals (clockwise around (-5, 0),
counter-clockwise around (5, 0)), 500 points over 6 pi; a sample is a window of 200 consecutive points
(time step 0.1) starting at a random point, direction chosen at random. The model sees n = 30/50/100
irregularly sampled points (a random subset) of the first 100, with Gaussian noise sd 0.1, and predicts
the next 100 (extrapolation); the score is the RMSE of the prediction against the noise-free spiral
(mean over test spirals). Paper (Latent ODE): 0.1642 / 0.1502 / 0.1346; RNN: 0.3937 / 0.3202 / 0.1813.

Default ("shared"): one neural vector field for all spirals, as the paper's latent ODE shares one latent
dynamics over 1000 spirals. Training data: ``--train`` other spirals (own noise and subsets), each seen
only through n noisy points of a 100-point window starting uniformly in [0, 400) of the 500, so that the
training windows cover the whole curve as in torchdiffeq's example (``--train-start-max 250`` restricts
them to the test spirals' observation windows; the test spirals' extrapolated parts then reach beyond
anything seen in training). Training: a multi-experiment fit of the shared weights together with every
training spiral's own initial state (its position at its first observation), summed weighted
least-squares loss, gradients by symode's discrete adjoint, L-BFGS-B over a curriculum of growing
horizons, ended by iteration counts (deterministic). Test: the weights are frozen; only the test
spiral's initial state is estimated from its n observed points (Gauss-Newton with exact sensitivities,
started at its first observation), then the model is simulated over the 200 points. The two directions
need no latent coordinate here because the spirals turn around different centres, so one autonomous 2-D
field can hold both.

``--per-spiral``: the earlier approach, one network trained per test spiral (symode.neural.train).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scipy.optimize import least_squares, minimize  # noqa: E402

from symode import build_model, load_spec, simulate  # noqa: E402
from symode.errors import SolverError  # noqa: E402
from symode.hybrid import l2_penalty, train  # noqa: E402
from symode.io import atomic_write_text  # noqa: E402
from symode.solve.sensitivity import Problem, loss_and_gradient  # noqa: E402
from symode.solve.synth import make_dataset  # noqa: E402
from symode.spec.data import Dataset  # noqa: E402

PAPER = {30: (0.1642, 0.3937), 50: (0.1502, 0.3202), 100: (0.1346, 0.1813)}
NOISE = 0.1
N_WINDOW = 200       # points per sample: the first 100 hold the observations, the next 100 are predicted
DT = 0.1


def spiral(cw: bool, start: float, n: int = N_WINDOW, a: float = 0.0, b: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """n consecutive points of the clockwise or counter-clockwise spiral from point ``int(start)`` of 500
    over 6 pi; times 0, 0.1, ..."""
    ts = np.linspace(0, 6 * np.pi, 500)
    i0 = int(start)
    z = ts[i0: i0 + n] if len(ts[i0: i0 + n]) == n else ts[-n:]
    if cw:
        zc = 6 * np.pi + 1.0 - z
        r = a + b * 50.0 / zc
        xy = np.column_stack([r * np.cos(zc) - 5.0, r * np.sin(zc)])
    else:
        zc = z + 1.0
        r = a + b * zc
        xy = np.column_stack([r * np.cos(zc) + 5.0, r * np.sin(zc)])
    return np.arange(n) * DT, xy


def sample(rng: np.random.Generator, n_obs: int, start_max: float = 250.0, window: int = N_WINDOW
           ) -> dict[str, Any]:
    """One sample: direction, ``window`` noise-free points from a start point uniform in [0, start_max) of the
    500 (start_max + window <= 500), and n_obs noisy observations among the first 100."""
    cw = bool(rng.uniform() < 0.5)
    start = rng.uniform(0, start_max)
    t, truth = spiral(cw, start, n=window)
    noisy = truth + NOISE * rng.normal(size=truth.shape)
    keep = np.sort(rng.choice(100, size=n_obs, replace=False))
    return {"cw": cw, "start": int(start), "t": t, "truth": truth, "keep": keep, "obs": noisy[keep]}


def observed_dataset(s: dict[str, Any]) -> Dataset:
    t = s["t"][s["keep"]]
    return make_dataset(t, {}, {"x1": s["obs"][:, 0].copy(), "x2": s["obs"][:, 1].copy()}, time_column="time")


def rmse_future(x_pred: np.ndarray, truth: np.ndarray) -> float:
    err = x_pred[100:] - truth[100:]
    return float(np.sqrt(np.mean(err**2)))


# ====================================================================================================
# Shared vector field: multi-experiment training, per-spiral initial states
# ====================================================================================================

class SharedField:
    """Unknowns z = [network weights (shared), x0 of spiral 1, x0 of spiral 2, ...]; objective = mean over
    observations of the weighted least-squares loss of all training spirals + the L2 penalty."""

    def __init__(self, model: Any, samples: list[dict[str, Any]]) -> None:
        self.model = model
        self.samples = samples
        self.data = [observed_dataset(s) for s in samples]
        self.names = list(model.parameters)
        self.idx = np.array([self.names.index(w) for w in model.spec.neural_weights])
        self.nw = len(self.idx)
        self.p0 = model.parameter_vector()
        self.n_grad = 0

    def z0(self) -> np.ndarray:
        return np.concatenate([self.p0[self.idx], *[s["obs"][0] for s in self.samples]])

    def split(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self.p0.copy()
        p[self.idx] = z[: self.nw]
        return p, z[self.nw:].reshape(-1, 2)

    def problems(self, horizon: float | None) -> list[Problem]:
        out = []
        for d in self.data:
            if horizon is None:
                out.append(Problem(self.model, d))
            else:
                t0 = float(d.times[0])
                hi = max(t0 + horizon, float(d.times[min(2, len(d.times) - 1)]))
                out.append(Problem(self.model, d, window=(t0, hi)))
        return out

    def objective(self, z: np.ndarray, problems: list[Problem]) -> tuple[float, np.ndarray]:
        p, X0 = self.split(z)
        total, gp, gx = 0.0, np.zeros(len(p)), np.zeros_like(X0)
        n_obs = 0
        for i, pr in enumerate(problems):
            try:
                res = loss_and_gradient(pr, params=p, x0=X0[i], method="discrete", rtol=1e-6, atol=1e-8,
                                        solver="explicit")
            except SolverError:
                return 1e20, np.zeros_like(z)
            total += res.loss
            gp += res.grad_p
            gx[i] = res.grad_x0
            n_obs += pr.n_observations
        self.n_grad += 1
        if not np.isfinite(total):
            return 1e20, np.zeros_like(z)
        pen, gpen = l2_penalty(self.model.spec, p, self.names)
        g = np.concatenate([(gp / n_obs + gpen)[self.idx], gx.reshape(-1) / n_obs])
        return total / n_obs + pen, g

    def residuals(self, z: np.ndarray, problems: list[Problem], jacobian: bool
                  ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Stacked weighted residuals of all spirals plus the L2 rows sqrt(2 n l2) w (so that 1/2 |r|^2 =
        n * objective) and, with ``jacobian``, their exact Jacobian wrt z (discrete forward sensitivities)."""
        p, X0 = self.split(z)
        term = self.model.spec.neural[0]
        n_obs = sum(pr.n_observations for pr in problems)
        rows, blocks = [], []
        nx = self.model.backend.nx
        for i, pr in enumerate(problems):
            if jacobian:
                try:
                    res = loss_and_gradient(pr, params=p, x0=X0[i], method="discrete", jacobian=True, rtol=1e-6,
                                            atol=1e-8, solver="explicit")
                except SolverError:
                    return None, None
                rows.append(res.residuals)
                J = np.zeros((len(res.residuals), len(z)))
                J[:, : self.nw] = res.residual_jacobian[:, nx + self.idx]
                J[:, self.nw + 2 * i: self.nw + 2 * i + 2] = res.residual_jacobian[:, :nx]
                blocks.append(J)
            else:
                r = self.model.backend.integrate(pr.times, X0[i], p, pr.U, rtol=1e-6, atol=1e-8, method="explicit")
                if r.status != 0 or not np.all(np.isfinite(r.x)):
                    return None, None
                _, rr = self.model.backend.residual_loss(pr.times, r.x, p, pr.U, pr.data, pr.sigma)
                rows.append(rr.reshape(-1)[pr.observed.reshape(-1)])
        wpen = math.sqrt(2 * n_obs * term.l2)
        rows.append(wpen * z[: self.nw])
        if not jacobian:
            return np.concatenate(rows), None
        Jp = np.zeros((self.nw, len(z)))
        Jp[np.arange(self.nw), np.arange(self.nw)] = wpen
        self.n_grad += 1
        return np.concatenate(rows), np.vstack([*blocks, Jp])

    def levenberg_marquardt(self, z: np.ndarray, problems: list[Problem], max_iter: int, t_end: float,
                            log: Any = print) -> np.ndarray:
        """Levenberg-Marquardt (Marquardt scaling) on the stacked residuals, until ``max_iter`` iterations,
        a relative decrease below 1e-6 or the wall-clock time ``t_end``."""
        r, J = self.residuals(z, problems, True)
        if r is None:
            return z
        lam = 1e-3
        for _ in range(max_iter):
            assert J is not None
            g, A = J.T @ r, J.T @ J
            d = np.maximum(np.diag(A), 1e-12 * max(float(np.max(np.diag(A))), 1e-300))
            cost = 0.5 * float(r @ r)
            for _ in range(10):
                zn = z + np.linalg.solve(A + lam * np.diag(d), -g)
                rn, _ = self.residuals(zn, problems, False)
                if rn is not None and 0.5 * float(rn @ rn) < cost:
                    break
                lam *= 10
            else:
                return z
            rel = (cost - 0.5 * float(rn @ rn)) / cost
            z, lam = zn, max(lam / 5, 1e-9)
            r, J = self.residuals(z, problems, True)
            if r is None or rel < 1e-6 or time.perf_counter() > t_end:
                break
        return z

    def fit(self, *, horizons: list[float], stage_iter: int, final_iter: int, time_limit: float,
            lm_iter: int = 0, log: Any = print) -> np.ndarray:
        z = self.z0()
        t_start = time.perf_counter()

        class Stop(Exception):
            pass

        best = {"z": z, "f": math.inf}
        for k, h in enumerate([*horizons, None]):
            probs = self.problems(h)
            final = h is None
            best = {"z": z, "f": math.inf}

            def fun(zz: np.ndarray, _probs: list[Problem] = probs, _best: dict[str, Any] = best) -> tuple[float,
                                                                                                       np.ndarray]:
                f, g = self.objective(zz, _probs)
                if f < _best["f"]:
                    _best.update(z=zz.copy(), f=f)
                if time.perf_counter() - t_start > time_limit:
                    raise Stop
                return f, g

            try:
                res = minimize(fun, z, jac=True, method="L-BFGS-B",
                               options={"maxiter": final_iter if final else stage_iter, "maxcor": 20,
                                        "ftol": 1e-13, "gtol": 1e-10})
                z = res.x
            except Stop:
                z = best["z"]
            f = best["f"]
            if final and lm_iter and time.perf_counter() - t_start < time_limit:
                z = self.levenberg_marquardt(z, probs, lm_iter, t_start + time_limit)
                f, _ = self.objective(z, probs)
            log(f"  stage {k} (horizon {'all' if final else h}): objective {f:.4f} "
                f"(rms {math.sqrt(2 * f):.3f}), {self.n_grad} gradients, {time.perf_counter() - t_start:.0f} s")
            if time.perf_counter() - t_start > time_limit:
                break
        return z


def fit_x0(model: Any, p: np.ndarray, s: dict[str, Any]) -> np.ndarray:
    """The initial state (at the first observation) of one spiral, weights fixed: Gauss-Newton (exact
    discrete forward sensitivities) from the first observation, then from a few perturbed starts unless
    the residuals are already at the noise level."""
    pr = Problem(model, observed_dataset(s))

    def resid(x0: np.ndarray) -> np.ndarray:
        try:
            res = loss_and_gradient(pr, params=p, x0=x0, method="discrete", jacobian=True, rtol=1e-6, atol=1e-8,
                                    solver="explicit")
        except SolverError:
            return np.full(pr.n_observations, 1e3)
        return res.residuals

    def jac(x0: np.ndarray) -> np.ndarray:
        res = loss_and_gradient(pr, params=p, x0=x0, method="discrete", jacobian=True, rtol=1e-6, atol=1e-8,
                                solver="explicit")
        return res.residual_jacobian[:, :2]

    best, best_cost = s["obs"][0], math.inf
    first = s["obs"][0]
    for d in ((0, 0), (0.15, 0), (-0.15, 0), (0, 0.15), (0, -0.15)):
        try:
            r = least_squares(resid, first + np.array(d), jac=jac, method="lm", max_nfev=50)
        except (SolverError, ValueError):
            continue
        if r.cost < best_cost:
            best, best_cost = r.x, r.cost
        if math.sqrt(2 * best_cost / pr.n_observations) < 1.5:   # residuals at the noise level: done
            break
    return best


def predict(model: Any, p: np.ndarray, x0: np.ndarray, s: dict[str, Any]) -> np.ndarray:
    """States at all 200 times (nan before the first observation is not needed: we start there)."""
    first = s["keep"][0]
    t = s["t"][first:]
    r = model.backend.integrate(t, x0, p, np.zeros((len(t) - 1) * model.backend.nU), rtol=1e-6, atol=1e-8,
                                method="auto")
    out = np.full((len(s["t"]), 2), np.nan)
    if r.status == 0:
        out[first:] = r.x
    return out


def run_shared(args: argparse.Namespace, base: Any) -> dict[int, dict[str, Any]]:
    model = build_model(base)
    results: dict[int, dict[str, Any]] = {}
    for n_obs in args.obs:
        rng, rng_test = np.random.default_rng(1000 + n_obs), np.random.default_rng(2000 + n_obs)
        train_s = [sample(rng, n_obs, args.train_start_max, window=100) for _ in range(args.train)]
        test_s = [sample(rng_test, n_obs) for _ in range(args.test)]
        t0 = time.perf_counter()
        print(f"n = {n_obs}: training one field on {args.train} spirals", flush=True)
        sf = SharedField(model, train_s)
        z = sf.fit(horizons=args.horizons, stage_iter=args.stage_iter, final_iter=args.max_iter,
                   time_limit=args.time_limit, lm_iter=args.lm_iter)
        train_s_ = time.perf_counter() - t0
        p, _ = sf.split(z)
        rmses, rmse_obs = [], []
        t1 = time.perf_counter()
        for s in test_s:
            x0 = fit_x0(model, p, s)
            xp = predict(model, p, x0, s)
            rmses.append(rmse_future(xp, s["truth"]) if np.all(np.isfinite(xp[100:])) else math.inf)
            seen = np.arange(s["keep"][0], 100)
            rmse_obs.append(float(np.sqrt(np.mean((xp[seen] - s["truth"][seen]) ** 2))))
        rm = np.array(rmses)
        trivial = [rmse_future(np.tile(s["obs"].mean(0), (N_WINDOW, 1)), s["truth"]) for s in test_s]
        results[n_obs] = {"mean": float(np.mean(rm)), "median": float(np.median(rm)),
                          "rmse_observed_part": float(np.mean(rmse_obs)), "n_test": len(rm), "n_train": args.train,
                          "trivial_mean": float(np.mean(trivial)),
                          "train_seconds": train_s_, "test_seconds": time.perf_counter() - t1,
                          "n_gradients": sf.n_grad, "failed": int(np.sum(~np.isfinite(rm))),
                          "rmse_per_spiral": rmses, "cw": [s["cw"] for s in test_s],
                          "start": [s["start"] for s in test_s],
                          "weights": {n: float(p[j]) for j, n in enumerate(model.parameters)}}
        print(f"n = {n_obs}: extrapolation RMSE mean {results[n_obs]['mean']:.4f}, median "
              f"{results[n_obs]['median']:.4f} over {len(rm)} test spirals (observed part "
              f"{results[n_obs]['rmse_observed_part']:.4f}); train {train_s_:.0f} s, test "
              f"{results[n_obs]['test_seconds']:.0f} s", flush=True)
    return results


def run_per_spiral(args: argparse.Namespace, base: Any) -> dict[int, dict[str, Any]]:
    """The earlier approach: one network per test spiral, trained on its n observations only."""
    results: dict[int, dict[str, Any]] = {}
    for n_obs in args.obs:
        rng_test = np.random.default_rng(2000 + n_obs)
        rm = []
        t0 = time.perf_counter()
        for s in [sample(rng_test, n_obs) for _ in range(args.test)]:
            first = s["keep"][0]
            spec = base.with_values(x0={"x1": float(s["obs"][0, 0]), "x2": float(s["obs"][0, 1])})
            res = train(spec, observed_dataset(s), holdout=0.0, horizons=[2.0, 5.0], max_iter=500, polish=30,
                        time_limit=args.time_limit / max(args.test, 1), log=None)
            pred = simulate(build_model(res.spec), s["t"][first:], method="auto", observables=False)
            xp = np.full((len(s["t"]), 2), np.nan)
            xp[first:] = pred.x
            rm.append(rmse_future(xp, s["truth"]))
        results[n_obs] = {"mean": float(np.mean(rm)), "median": float(np.median(rm)), "n_test": len(rm),
                          "train_seconds": time.perf_counter() - t0}
        print(f"n = {n_obs}: per-spiral networks, RMSE mean {np.mean(rm):.4f}, median {np.median(rm):.4f}",
              flush=True)
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=int, default=100, help="training spirals (shared field)")
    ap.add_argument("--test", type=int, default=50, help="test spirals")
    ap.add_argument("--obs", type=int, nargs="+", default=[30, 50, 100], help="observations out of the first 100")
    ap.add_argument("--train-start-max", type=float, default=400.0,
                    help="training windows start uniformly in [0, this) of the 500 points; 250 = as the test "
                    "spirals (their extrapolated part then partly lies beyond every training observation), 400 = "
                    "the training observations cover the whole range the test spirals extrapolate into")
    ap.add_argument("--horizons", type=float, nargs="*", default=[2.0, 5.0], help="curriculum (time units)")
    ap.add_argument("--stage-iter", type=int, default=100)
    ap.add_argument("--max-iter", type=int, default=800, help="L-BFGS iterations on the whole windows")
    ap.add_argument("--lm-iter", type=int, default=0, help="Levenberg-Marquardt iterations after L-BFGS")
    ap.add_argument("--time-limit", type=float, default=3600.0,
                    help="training seconds per n (a safety net: by default training ends by iteration counts, "
                    "so results do not depend on the machine's load)")
    ap.add_argument("--per-spiral", action="store_true", help="one network per test spiral (the earlier approach)")
    ap.add_argument("--quick", action="store_true", help="small run for tests")
    ap.add_argument("-o", "--output", help="write the results as JSON here")
    args = ap.parse_args(argv)
    if args.quick:
        args.train, args.test, args.obs = 16, 8, [50]
        args.stage_iter, args.max_iter, args.time_limit = 30, 100, 600.0  # stopped by iterations (deterministic)
    base = load_spec(ROOT / "specs" / "spiral-neural.yaml")
    t0 = time.perf_counter()
    results = run_per_spiral(args, base) if args.per_spiral else run_shared(args, base)
    label = "per-spiral network" if args.per_spiral else f"symode shared neural ODE ({args.train} training spirals)"
    print()
    print(f"| observations | {label}: mean RMSE (median) | Latent ODE (paper) | RNN (paper) | mean of the "
          "observed points |")
    print("|---|---|---|---|---|")
    for n, r in results.items():
        latent, rnn = PAPER.get(n, ("-", "-"))
        print(f"| {n}/100 | {r['mean']:.4f} ({r['median']:.4f}) | {latent} | {rnn} | "
              f"{r.get('trivial_mean', float('nan')):.4f} |")
    out = {"args": vars(args), "results": results, "seconds": time.perf_counter() - t0}
    print(f"\ntotal {out['seconds']:.0f} s")
    if args.output:
        atomic_write_text(args.output, json.dumps(out, indent=1, default=float))
    return out


if __name__ == "__main__":
    main()
