"""mNODE-style example (docs/neural-examples.md): predict metabolite profiles from community composition with a
neural ODE, on communities simulated from the generalized template (docs/model.md, section 4).

    python3 examples/mnode.py [--satellites 6] [--metabolites 5] [--communities 300] [--quick]

mNODE (Wang et al. 2023, Nat. Mach. Intell.) maps a sample's microbial composition (and optionally the
diet) to its metabolite profile through a neural ODE and scores the prediction by the Spearman correlation
between predicted and measured levels of each metabolite across test samples, averaged over metabolites.
Here:

* Ground truth: a sparse random community inside ``symode.template.template_spec(N, M)`` (main culture X
  on substrate S making M1..M3, satellites Y1..YN eating metabolites and making others, some inhibitions;
  ``random_truth``). A "sample" is one community: a random subset of the satellites inoculated at random
  abundances, a random dilution rate D in [0.05, 0.25] 1/h (the "diet"), simulated with symode for
  1500 h to (near) steady state. Measured: the composition (X, Y1..YN; 2% relative noise), D, and the
  metabolites M1..MM (5% relative + 0.002 g/L absolute noise, the template's noise model).
* Model (a symode spec with a ``neural:`` term, built by ``mnode_spec``): states M1..MM starting at 0 in
  a chemostat with dilution D; dM_k/dt = r_k(X, Y, D, M) - D M_k with r = MLP (softplus outputs, so
  M stays >= 0 and the network can represent production and M-dependent consumption). The measured
  composition and D are constant inputs. The model is run for T = 100 h and its M(T) is the predicted
  profile; training data are the measured profiles at t = 75 h and 100 h (the target is a steady state).
* Training: one set of network weights shared by all training communities (a multi-experiment loss:
  sum over communities of the weighted least-squares loss, gradients by symode's discrete adjoint through
  the compiled model), L-BFGS-B with early stopping on 20% of the training communities held out for
  validation, a few restarts from different weight seeds (best validation loss wins).
* Baselines: ridge regression from the features (X, Y1..YN, D) to the profile, on raw and on log features
  (regularisation chosen on the same validation split).
* Score on held-out test communities: mean over metabolites of the Spearman correlation between predicted
  and measured values across test communities (mNODE's metric), also against the noise-free truth, and
  the mean over test communities of the Spearman correlation across metabolites.
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

from scipy.optimize import minimize  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from symode import build_model  # noqa: E402
from symode.errors import SolverError  # noqa: E402
from symode.graph.template import community_truth_params, template_spec  # noqa: E402
from symode.hybrid import l2_penalty  # noqa: E402
from symode.io import atomic_write_text  # noqa: E402
from symode.solve.sensitivity import Problem, loss_and_gradient  # noqa: E402
from symode.spec import spec_from_dict  # noqa: E402
from symode.spec.data import Dataset  # noqa: E402

T_STEADY = 1500.0            # simulated time of the true communities (h)
T_MODEL = (75.0, 100.0)      # times at which the neural ODE is compared with the measured profile
NOISE_COMPOSITION = 0.02     # relative noise of the measured composition
NOISE_M = {"relative": 0.05, "absolute": 0.002}


# ====================================================================================================
# Ground truth: a sparse community inside the n x m template, simulated to steady state
# ====================================================================================================

def random_truth(n: int, m: int, seed: int = 0) -> dict[str, Any]:
    """A sparse truth in the format of community data sets' truth.json: X makes M1..M3 and is inhibited by
    two metabolites; each satellite eats one of M1..M3 (and another metabolite with probability 1/2),
    makes one metabolite it does not eat (M4.. in turn, so every metabolite has a producer), and is
    inhibited by a metabolite with probability 0.4."""
    if m < 4:
        raise ValueError("need at least 4 metabolites")
    rng = np.random.default_rng(seed)
    edges: dict[str, dict[str, float]] = {}
    for k in (1, 2, 3):
        edges[f"prod:X->M{k}"] = {"v": float(rng.uniform(0.001, 0.004))}
    for k in rng.choice(np.arange(1, m + 1), size=2, replace=False):
        edges[f"inhib:M{k}-|X"] = {"kappa": float(rng.uniform(0.2, 1.0))}
    for j in range(1, n + 1):
        food = [int(rng.integers(1, 4))]
        if rng.uniform() < 0.5:
            food.append(int(rng.choice([k for k in range(1, m + 1) if k != food[0]])))
        for k in food:
            edges[f"uptake:M{k}->Y{j}"] = {"mu": float(rng.uniform(0.4, 1.0)), "K": float(rng.uniform(0.02, 0.3)),
                                           "g": float(rng.uniform(0.5, 2.0))}
        other = [k for k in range(1, m + 1) if k not in food]
        pref = 4 + (j - 1) % (m - 3)
        k = pref if pref in other else int(rng.choice(other))
        edges[f"prod:Y{j}->M{k}"] = {"u": float(rng.uniform(0.02, 0.2))}
        if rng.uniform() < 0.4:
            k = int(rng.integers(1, m + 1))
            edges[f"inhib:M{k}-|Y{j}"] = {"kappa": float(rng.uniform(0.5, 3.0))}
    return {"satellites": n, "metabolites": m, "edges": edges}


def integrate_robust(model: Any, times: np.ndarray, x0: np.ndarray, p: np.ndarray, U: np.ndarray,
                     rtol: float = 1e-6, atol: float = 1e-9) -> np.ndarray:
    """States at ``times``; explicit first (the cheapest for these non-stiff steady-state runs), then
    auto / stiff with a step-size cap."""
    for method, hmax in (("explicit", 0.0), ("auto", 5.0), ("stiff", 5.0)):
        r = model.backend.integrate(times, x0, p, U, rtol=rtol, atol=atol, method=method, hmax=hmax)
        if r.status == 0 and np.all(np.isfinite(r.x)):
            return r.x
    raise SolverError("all integrators failed")


def make_communities(n: int, m: int, count: int, *, truth_seed: int = 0, seed: int = 1) -> dict[str, Any]:
    """Simulate ``count`` random communities to steady state; features, true and measured profiles."""
    truth = random_truth(n, m, truth_seed)
    tp = community_truth_params(truth)
    spec = template_spec(n, m).with_values({**tp["parameters"], **tp["constants"]}, tp["x0"])
    model = build_model(spec)
    p = model.parameter_vector()
    rng = np.random.default_rng(seed)
    ys = [f"Y{j}" for j in range(1, n + 1)]
    ms = [f"M{k}" for k in range(1, m + 1)]
    idx = {s: i for i, s in enumerate(model.states)}
    times = np.array([0.0, T_STEADY - 100.0, T_STEADY])
    feats, prof, present, drift = [], [], [], []
    for _ in range(count):
        pres = rng.uniform(size=n) < 0.5
        if not pres.any():
            pres[rng.integers(n)] = True
        D = float(rng.uniform(0.05, 0.25))
        x0 = model.x0_vector({y: (float(np.exp(rng.uniform(np.log(0.01), 0.0))) if pres[j] else 0.0)
                              for j, y in enumerate(ys)})
        x = integrate_robust(model, times, x0, p, np.array([D, D]))
        end = np.maximum(x[-1], 0.0)
        feats.append([end[idx["X"]], *[end[idx[y]] for y in ys], D])
        prof.append([end[idx[k]] for k in ms])
        present.append(pres)
        drift.append(float(np.max(np.abs(x[-1] - x[-2]) / (np.abs(x[-1]) + 1e-2))))
    F = np.array(feats)
    P = np.array(prof)
    F_meas = F.copy()
    F_meas[:, :-1] *= 1 + NOISE_COMPOSITION * rng.normal(size=F[:, :-1].shape)
    sigma = np.sqrt(NOISE_M["absolute"] ** 2 + (NOISE_M["relative"] * P) ** 2)
    P_meas = P + sigma * rng.normal(size=P.shape)
    return {"truth": truth, "features": F_meas, "features_true": F, "profile": P_meas, "profile_true": P,
            "present": np.array(present), "drift": np.array(drift), "feature_names": ["X", *ys, "D"],
            "metabolites": ms}


# ====================================================================================================
# Scores and baselines
# ====================================================================================================

def spearman_scores(pred: np.ndarray, meas: np.ndarray) -> dict[str, float]:
    """mNODE's score: Spearman rho per metabolite across samples, mean over metabolites (and the count
    with rho > 0.5); also the mean over samples of rho across metabolites."""
    per_met = []
    for k in range(meas.shape[1]):
        rho = spearmanr(pred[:, k], meas[:, k]).statistic if np.ptp(pred[:, k]) > 0 else 0.0
        per_met.append(float(rho))
    per_sample = [float(spearmanr(pred[i], meas[i]).statistic) for i in range(meas.shape[0])
                  if np.ptp(pred[i]) > 0 and np.ptp(meas[i]) > 0]
    return {"mean_rho_per_metabolite": float(np.mean(per_met)), "rho_per_metabolite": per_met,
            "n_rho_gt_0.5": int(sum(r > 0.5 for r in per_met)),
            "mean_rho_per_sample": float(np.nanmean(per_sample)) if per_sample else float("nan")}


def ridge_fit(F: np.ndarray, Y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mu, sd = F.mean(0), F.std(0) + 1e-12
    Z = np.column_stack([np.ones(len(F)), (F - mu) / sd])
    reg = alpha * np.eye(Z.shape[1])
    reg[0, 0] = 0.0
    W = np.linalg.solve(Z.T @ Z + reg, Z.T @ Y)
    return W, mu, sd


def ridge_predict(model: tuple[np.ndarray, np.ndarray, np.ndarray], F: np.ndarray) -> np.ndarray:
    W, mu, sd = model
    return np.column_stack([np.ones(len(F)), (F - mu) / sd]) @ W


def ridge_baseline(F_tr: np.ndarray, Y_tr: np.ndarray, F_va: np.ndarray, Y_va: np.ndarray, F_te: np.ndarray,
                   transform: str) -> np.ndarray:
    """Ridge regression (alpha chosen by the validation Spearman score), refitted on train + validation."""
    def tf(F: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(F, 0) + 1e-3) if transform == "log" else F

    best = (-math.inf, 1.0)
    for alpha in (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0):
        score = spearman_scores(ridge_predict(ridge_fit(tf(F_tr), Y_tr, alpha), tf(F_va)), Y_va)
        if score["mean_rho_per_metabolite"] > best[0]:
            best = (score["mean_rho_per_metabolite"], alpha)
    model = ridge_fit(tf(np.vstack([F_tr, F_va])), np.vstack([Y_tr, Y_va]), best[1])
    return ridge_predict(model, tf(F_te))


def mlp_baseline(F_tr: np.ndarray, Y_tr: np.ndarray, F_va: np.ndarray, Y_va: np.ndarray, F_te: np.ndarray, *,
                 hidden: int, seeds: int = 3, l2: float = 1e-5, max_iter: int = 1000) -> np.ndarray:
    """A plain MLP regression (no ODE): features / their 90% quantile -> tanh hidden layer -> softplus
    outputs times the profile's 90% quantile, the same weighted least-squares loss as the neural ODE (noise
    model of the measured metabolites) + l2 ||w||^2, L-BFGS-B (numpy gradients) with early stopping on the
    validation communities, best of ``seeds`` Glorot initialisations."""
    fs = np.array([np.quantile(F_tr[:, i], 0.9) or 1.0 for i in range(F_tr.shape[1])])
    ys = np.maximum(np.quantile(Y_tr, 0.9, axis=0), 1e-3)
    ni, no = F_tr.shape[1], Y_tr.shape[1]
    shapes = [(hidden, ni), (hidden,), (no, hidden), (no,)]
    sizes = [int(np.prod(sh)) for sh in shapes]

    def unpack(w: np.ndarray) -> list[np.ndarray]:
        out, k = [], 0
        for sh, n in zip(shapes, sizes, strict=True):
            out.append(w[k: k + n].reshape(sh))
            k += n
        return out

    def forward(w: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, tuple[Any, ...]]:
        W1, b1, W2, b2 = unpack(w)
        X = F / fs
        H = np.tanh(X @ W1.T + b1)
        Z = H @ W2.T + b2
        return np.logaddexp(0.0, Z) * ys, (X, H, Z)

    def sig(Y: np.ndarray) -> np.ndarray:
        return np.sqrt(NOISE_M["absolute"] ** 2 + (NOISE_M["relative"] * Y) ** 2)

    def objective(w: np.ndarray, F: np.ndarray, Y: np.ndarray) -> tuple[float, np.ndarray]:
        W2 = unpack(w)[2]
        P, (X, H, Z) = forward(w, F)
        R = (P - Y) / sig(Y)
        n = R.size
        dZ = (R / sig(Y)) * ys / (1 + np.exp(-Z)) / n
        dH = (dZ @ W2) * (1 - H**2)
        g = np.concatenate([(dH.T @ X).ravel(), dH.sum(0), (dZ.T @ H).ravel(), dZ.sum(0)])
        return 0.5 * float(np.sum(R**2)) / n + l2 * float(w @ w), g + 2 * l2 * w

    best = (math.inf, None)
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        w0 = np.concatenate([rng.uniform(-1, 1, size=n) * math.sqrt(6 / (sh[0] + sh[1])) if len(sh) == 2
                             else np.zeros(n) for sh, n in zip(shapes, sizes, strict=True)])
        run = {"val": math.inf, "w": w0, "it": 0, "n": 0}

        class Stop(Exception):
            pass

        def callback(wk: np.ndarray, _run: dict[str, Any] = run) -> None:
            _run["n"] += 1
            v = objective(wk, F_va, Y_va)[0]
            if v < _run["val"]:
                _run.update(val=v, w=wk.copy(), it=_run["n"])
            if _run["n"] - _run["it"] > 100:
                raise Stop

        try:
            minimize(objective, w0, args=(F_tr, Y_tr), jac=True, method="L-BFGS-B", callback=callback,
                     options={"maxiter": max_iter, "ftol": 1e-14, "gtol": 1e-10})
        except Stop:
            pass
        if run["val"] < best[0]:
            best = (run["val"], run["w"])
    assert best[1] is not None
    return forward(best[1], F_te)[0]


# ====================================================================================================
# The neural ODE (a symode spec) and its multi-experiment training
# ====================================================================================================

def mnode_spec(feature_names: list[str], metabolites: list[str], F: np.ndarray, Y: np.ndarray, *,
               hidden: list[int], seed: int = 0, l2: float = 1e-4) -> Any:
    """dM_k/dt = r_k(composition, D, M) - D M_k, r = MLP with softplus outputs; composition and D are
    constant inputs, M(0) = 0. Input scales: the 90% quantile of each training feature / profile;
    output scales: median D times the 90% quantile of each metabolite (the production that balances
    dilution at a typical level)."""
    comp = [f for f in feature_names if f != "D"]
    q = {f: float(np.quantile(F[:, i], 0.9)) or 1.0 for i, f in enumerate(feature_names)}
    qm = {mk: max(float(np.quantile(Y[:, k], 0.9)), 1e-3) for k, mk in enumerate(metabolites)}
    d_med = float(np.median(F[:, feature_names.index("D")]))
    outputs = [f"r{mk}" for mk in metabolites]
    spec = {
        "symode": 1,
        "name": "mnode",
        "description": "mNODE-style neural ODE: metabolite profile from community composition (examples/mnode.py)",
        "reactor": {"mode": "chemostat", "dilution": "D"},
        "states": {mk: {"role": "metabolite", "x0": 0.0, "bounds": [0.0, None]} for mk in metabolites},
        "inputs": {f: {"interpolation": "constant"} for f in ["D", *comp]},
        "neural": [{
            "id": "net", "inputs": [*comp, "D", *metabolites], "outputs": outputs, "hidden": hidden,
            "activation": "tanh", "output_activation": "softplus",
            "input_scale": {**q, **qm}, "output_scale": {o: d_med * qm[mk] for o, mk in zip(outputs, metabolites,
                                                                                          strict=True)},
            "seed": seed, "l2": l2}],
        "parameters": {},
        "interactions": [{"type": "custom", "id": f"make_{mk}", "rate": f"net.r{mk}", "stoichiometry": {mk: 1}}
                         for mk in metabolites],
        "observables": {mk: {"noise": dict(NOISE_M)} for mk in metabolites},
    }
    return spec_from_dict(spec, file="<mnode>")


def community_dataset(features: np.ndarray, feature_names: list[str], profile: np.ndarray | None,
                      metabolites: list[str]) -> Dataset:
    times = np.array([0.0, *T_MODEL])
    cols = {f: np.full(len(times), float(features[i])) for i, f in enumerate(feature_names)}
    for k, mk in enumerate(metabolites):
        v = np.full(len(times), np.nan)
        if profile is not None:
            v[1:] = profile[k]
        cols[mk] = v
    return Dataset(times=times, columns=cols, time_column="time", file="<community>")


class MultiExperiment:
    """Sum over communities of symode's weighted least-squares loss, with discrete-adjoint gradients, as a
    function of the network weights (the only estimated parameters)."""

    def __init__(self, model: Any, datasets: list[Dataset], rtol: float = 1e-6, atol: float = 1e-9) -> None:
        self.model = model
        self.problems = [Problem(model, d) for d in datasets]
        self.n_obs = sum(pr.n_observations for pr in self.problems)
        self.names = list(model.parameters)
        self.idx = np.array([self.names.index(w) for w in model.spec.neural_weights])
        self.p0 = model.parameter_vector()
        self.x0 = model.x0_vector()
        self.rtol, self.atol = rtol, atol
        self.n_grad = 0

    def params(self, w: np.ndarray) -> np.ndarray:
        p = self.p0.copy()
        p[self.idx] = w
        return p

    def objective(self, w: np.ndarray) -> tuple[float, np.ndarray]:
        p = self.params(w)
        total, grad = 0.0, np.zeros(len(p))
        for pr in self.problems:
            try:
                res = loss_and_gradient(pr, params=p, x0=self.x0, method="discrete", rtol=self.rtol, atol=self.atol,
                                        solver="explicit")
            except SolverError:
                return 1e20, np.zeros_like(w)
            total += res.loss
            grad += res.grad_p
        self.n_grad += 1
        if not np.isfinite(total) or not np.all(np.isfinite(grad)):
            return 1e20, np.zeros_like(w)
        pen, gpen = l2_penalty(self.model.spec, p, self.names)
        return total / self.n_obs + pen, (grad / self.n_obs + gpen)[self.idx]

    def loss(self, w: np.ndarray) -> float:
        """Mean data loss per observation (no penalty)."""
        p = self.params(w)
        total = 0.0
        for pr in self.problems:
            r = self.model.backend.integrate(pr.times, self.x0, p, pr.U, rtol=self.rtol, atol=self.atol,
                                             method="explicit")
            if r.status != 0 or not np.all(np.isfinite(r.x)):
                return math.inf
            total += self.model.backend.residual_loss(pr.times, r.x, p, pr.U, pr.data, pr.sigma)[0]
        return total / self.n_obs


def predict(model: Any, w_idx: np.ndarray, w: np.ndarray, F: np.ndarray, feature_names: list[str],
            metabolites: list[str]) -> np.ndarray:
    p = model.parameter_vector()
    p[w_idx] = w
    out = []
    for f in F:
        pr = Problem(model, community_dataset(f, feature_names, None, metabolites))
        r = model.backend.integrate(pr.times, model.x0_vector(), p, pr.U, rtol=1e-6, atol=1e-9, method="auto")
        out.append(r.x[-1] if r.status == 0 else np.full(len(metabolites), np.nan))
    return np.array(out)


def train_mnode(F_tr: np.ndarray, Y_tr: np.ndarray, F_va: np.ndarray, Y_va: np.ndarray, feature_names: list[str],
                metabolites: list[str], *, hidden: list[int], seeds: list[int], max_iter: int, patience: int,
                time_limit: float, l2: float, log: Any = print) -> dict[str, Any]:
    """L-BFGS-B on the training communities from each weight seed, early stopping on the validation
    communities; returns the best (lowest validation loss) weights."""
    best: dict[str, Any] = {"val": math.inf}
    t_start = time.perf_counter()
    n_grad = 0
    for seed in seeds:
        spec = mnode_spec(feature_names, metabolites, F_tr, Y_tr, hidden=hidden, seed=seed, l2=l2)
        model = build_model(spec)
        tr = MultiExperiment(model, [community_dataset(f, feature_names, y, metabolites)
                                     for f, y in zip(F_tr, Y_tr, strict=True)])
        va = MultiExperiment(model, [community_dataset(f, feature_names, y, metabolites)
                                     for f, y in zip(F_va, Y_va, strict=True)])
        w0 = tr.p0[tr.idx]
        run = {"val": va.loss(w0), "w": w0.copy(), "it": 0, "n": 0}

        class Stop(Exception):
            pass

        def callback(wk: np.ndarray, _run: dict[str, Any] = run, _va: MultiExperiment = va,
                     _seed: int = seed) -> None:
            _run["n"] += 1
            v = _va.loss(wk)
            if v < _run["val"]:
                _run.update(val=v, w=wk.copy(), it=_run["n"])
            if _run["n"] % 50 == 0:
                log(f"  seed {_seed} iter {_run['n']}: validation rms {math.sqrt(2 * v):.3f} "
                    f"(best {math.sqrt(2 * _run['val']):.3f}, {time.perf_counter() - t_start:.0f} s)")
            if _run["n"] - _run["it"] > patience or time.perf_counter() - t_start > time_limit * (
                    seeds.index(_seed) + 1) / len(seeds):
                raise Stop

        try:
            minimize(tr.objective, w0, jac=True, method="L-BFGS-B", callback=callback,
                     options={"maxiter": max_iter, "maxcor": 20, "ftol": 1e-12, "gtol": 1e-9})
        except Stop:
            pass
        n_grad += tr.n_grad
        log(f"seed {seed}: best validation rms {math.sqrt(2 * run['val']):.3f} at iteration {run['it']} "
            f"({tr.n_grad} gradients, {time.perf_counter() - t_start:.0f} s)")
        if run["val"] < best["val"]:
            best = {"val": run["val"], "w": run["w"], "model": model, "w_idx": tr.idx, "seed": seed,
                    "train_rms": math.sqrt(2 * tr.loss(run["w"]))}
    best["n_gradients"] = n_grad
    best["seconds"] = time.perf_counter() - t_start
    best["n_weights"] = len(best["w"])
    return best


# ====================================================================================================

def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--satellites", type=int, default=6)
    ap.add_argument("--metabolites", type=int, default=5)
    ap.add_argument("--communities", type=int, default=300, help="total communities (60%% train, 15%% validation, "
                    "25%% test)")
    ap.add_argument("--hidden", type=int, nargs="*", default=[16])
    ap.add_argument("--seeds", type=int, default=2, help="weight initialisations (restarts)")
    ap.add_argument("--max-iter", type=int, default=1000)
    ap.add_argument("--patience", type=int, default=100)
    ap.add_argument("--l2", type=float, default=1e-5)
    ap.add_argument("--time-limit", type=float, default=600.0, help="training wall-clock limit (s)")
    ap.add_argument("--truth-seed", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1, help="seed of the communities and noise")
    ap.add_argument("--quick", action="store_true",
                    help="small run for tests (4 x 4, 100 communities, 100 iterations; ~20 s CPU)")
    ap.add_argument("-o", "--output", help="write the results as JSON here")
    args = ap.parse_args(argv)
    if args.quick:
        args.satellites, args.metabolites, args.communities, args.hidden, args.seeds = 4, 4, 100, [8], 1
        args.max_iter, args.time_limit = 100, 600.0   # stopped by iterations (deterministic), not by time
    t0 = time.perf_counter()
    d = make_communities(args.satellites, args.metabolites, args.communities, truth_seed=args.truth_seed,
                         seed=args.seed)
    n = args.communities
    n_tr, n_va = int(0.6 * n), int(0.15 * n)
    tr, va, te = slice(0, n_tr), slice(n_tr, n_tr + n_va), slice(n_tr + n_va, n)
    F, Y, Yt = d["features"], d["profile"], d["profile_true"]
    names, ms = d["feature_names"], d["metabolites"]
    print(f"{n} communities ({n_tr} train, {n_va} validation, {n - n_tr - n_va} test), "
          f"{args.satellites} satellites x {args.metabolites} metabolites; simulated in "
          f"{time.perf_counter() - t0:.1f} s; drift over the last 100 h > 1%: {np.mean(d['drift'] > 0.01):.0%}")
    preds: dict[str, np.ndarray] = {
        "ridge (raw features)": ridge_baseline(F[tr], Y[tr], F[va], Y[va], F[te], "raw"),
        "ridge (log features)": ridge_baseline(F[tr], Y[tr], F[va], Y[va], F[te], "log"),
        f"MLP regression, no ODE ({len(names)}-{args.hidden[0]}-{len(ms)}, numpy)":
            mlp_baseline(F[tr], Y[tr], F[va], Y[va], F[te], hidden=args.hidden[0], l2=args.l2),
    }
    res = train_mnode(F[tr], Y[tr], F[va], Y[va], names, ms, hidden=args.hidden,
                      seeds=list(range(args.seeds)), max_iter=args.max_iter, patience=args.patience,
                      time_limit=args.time_limit, l2=args.l2)
    label = f"symode neural ODE ({'-'.join(map(str, [len(names) + len(ms), *args.hidden, len(ms)]))})"
    preds[label] = predict(res["model"], res["w_idx"], res["w"], F[te], names, ms)
    rows = {}
    for name, pr in preds.items():
        s_meas, s_true = spearman_scores(pr, Y[te]), spearman_scores(pr, Yt[te])
        rows[name] = {"measured": s_meas, "truth": s_true}
    print()
    print("| model | mean Spearman per metabolite (vs measured) | (vs noise-free) | metabolites with rho > 0.5 | "
          "mean Spearman per community (vs measured) | per-metabolite rho (vs measured) |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        m_, t_ = r["measured"], r["truth"]
        per = " ".join(f"{v:.2f}" for v in m_["rho_per_metabolite"])
        print(f"| {name} | {m_['mean_rho_per_metabolite']:.3f} | {t_['mean_rho_per_metabolite']:.3f} | "
              f"{m_['n_rho_gt_0.5']}/{len(ms)} | {m_['mean_rho_per_sample']:.3f} | {per} |")
    summary = {"args": vars(args), "rows": rows, "train_seconds": res["seconds"], "n_gradients": res["n_gradients"],
               "n_weights": res["n_weights"], "best_seed": res["seed"], "validation_rms": math.sqrt(2 * res["val"]),
               "train_rms": res["train_rms"], "seconds": time.perf_counter() - t0, "neural_label": label}
    print(f"\nneural ODE: {res['n_weights']} weights, {res['n_gradients']} multi-community gradients, training "
          f"{res['seconds']:.0f} s, train rms {res['train_rms']:.3f}, validation rms {summary['validation_rms']:.3f} "
          f"(1.0 = noise level); total {summary['seconds']:.0f} s")
    if args.output:
        atomic_write_text(args.output, json.dumps(summary, indent=1, default=float))
    return summary


if __name__ == "__main__":
    main()
