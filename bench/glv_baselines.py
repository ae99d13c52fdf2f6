"""Baselines for leave-one-subject-out prediction of community time series (numpy/scipy only, no symode).

- Ridge gradient matching (Stein et al. 2013, PLoS Comput Biol 9:e1003388; MDSINE's first stage): per
  taxon i, regress the finite-difference log-derivative

      (ln x_i(t_k+1) - ln x_i(t_k)) / (t_k+1 - t_k)  ~  r_i + sum_j a_ij x_j(t_k) + gamma_i u(t_k)

  with a ridge penalty lam (||a_i||^2 + ||gamma_i||^2) (r_i unpenalised); zeros (below detection) are
  replaced by ``floor`` first. lam is chosen by an inner leave-one-subject-out loop on the training
  subjects, scoring the *simulated* prediction of each inner held-out subject (the target metric).
- The training-mean trajectory: the mean over the training subjects of log10(x + 1e-5) at each time,
  interpolated to the held-out times.

Prediction: the gLV ODE dx_i/dt = x_i (r_i + (A x)_i + gamma_i u(t)) from the held-out subject's first
sample (zeros -> floor), integrated in log coordinates (y = ln x, dy/dt = r + A e^y + gamma u) with
scipy's BDF and the analytic Jacobian, sample interval by sample interval (u piecewise constant); a state
above ``CAP`` or a failed step is a blow-up (a reported failure, scored with the capped values).

Score: RMSE of log10(x + 1e-5) over the held-out samples after the first (all taxa, zeros included).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

EPS = 1e-5            # the score's offset: log10(x + EPS)
FLOOR = 1e-6          # zeros (below detection) -> FLOOR for log-derivatives and initial states
CAP = 1e3             # a simulated abundance above CAP is a blow-up (the data stay below 1)
LAMBDAS = tuple(10.0 ** k for k in range(-6, 3))


@dataclass
class Subject:
    name: str
    times: np.ndarray        # (n,)
    x: np.ndarray            # (n, m) abundances, NaN = missing
    u: np.ndarray            # (n, q) inputs (piecewise constant: u[k] holds on [t_k, t_k+1))


def load_subjects(wide: str, events: str | None, inputs: dict[str, str] | None = None) -> tuple[list[Subject],
                                                                                                list[str]]:
    """Subjects (sorted by name, numerically when possible) and taxon names from a wide lab table."""
    from symode.spec.wide import wide_to_long

    tabs = wide_to_long(wide, events, inputs=inputs)
    keys = sorted(tabs, key=lambda s: (0, int(s)) if s.isdigit() else (1, s))
    subs = []
    for s in keys:
        t = tabs[s]
        u = np.column_stack(list(t.inputs.values())) if t.inputs else np.zeros((len(t.times), 0))
        subs.append(Subject(s, t.times, t.values, u))
    return subs, tabs[keys[0]].taxa


def log_rmse(pred: np.ndarray, obs: np.ndarray) -> float:
    """RMSE of log10(x + EPS) over the samples after the first (observed entries only)."""
    p, o = pred[1:], obs[1:]
    ok = np.isfinite(o)
    d = np.log10(np.maximum(p[ok], 0.0) + EPS) - np.log10(o[ok] + EPS)
    return float(math.sqrt(np.mean(d * d)))


def first_state(s: Subject, floor: float = FLOOR) -> np.ndarray:
    """The initial state of a prediction: the first sample, zeros (and missing values) -> floor."""
    x0 = np.array(s.x[0], dtype=float)
    return np.where(np.isfinite(x0) & (x0 > 0), x0, floor)


# -- the gLV ODE ---------------------------------------------------------------------------------------
@dataclass
class GLV:
    r: np.ndarray            # (m,)
    A: np.ndarray            # (m, m)
    G: np.ndarray            # (m, q) perturbation effects gamma

    def simulate(self, times: np.ndarray, u: np.ndarray, x0: np.ndarray, *, rtol: float = 1e-6
                 ) -> tuple[np.ndarray, bool]:
        """(x at every time, blew_up). After a blow-up the states are held at CAP."""
        m = len(self.r)
        y = np.log(np.maximum(x0, 1e-300))
        out = np.full((len(times), m), np.nan)
        out[0] = x0
        logcap = math.log(CAP)

        def cap_event(t: float, yy: np.ndarray, b: np.ndarray) -> float:
            return logcap - float(np.max(yy))

        cap_event.terminal = True  # type: ignore[attr-defined]
        for k in range(len(times) - 1):
            b = self.r + self.G @ u[k] if self.G.size else self.r.copy()
            sol = solve_ivp(lambda t, yy, b=b: b + self.A @ np.exp(yy), (times[k], times[k + 1]), y,
                            method="BDF", rtol=rtol, atol=1e-8, args=(b,),
                            jac=lambda t, yy, b: self.A * np.exp(yy)[None, :], events=cap_event)
            if sol.status != 0 or not np.all(np.isfinite(sol.y[:, -1])):
                out[k + 1:] = CAP
                return out, True
            y = sol.y[:, -1]
            out[k + 1] = np.exp(y)
        return out, False


# -- ridge gradient matching ---------------------------------------------------------------------------
def gm_rows(subjects: list[Subject], floor: float = FLOOR) -> tuple[np.ndarray, np.ndarray]:
    """Design [1, x(t_k), u(t_k)] and targets (ln x(t_k+1) - ln x(t_k))/dt over consecutive samples."""
    X, Y = [], []
    for s in subjects:
        x = np.where(np.isfinite(s.x) & (s.x > 0), s.x, floor)
        ok = np.all(np.isfinite(s.x), axis=1)
        for k in range(len(s.times) - 1):
            if not (ok[k] and ok[k + 1]):
                continue
            dt = s.times[k + 1] - s.times[k]
            X.append(np.concatenate([[1.0], x[k], s.u[k]]))
            Y.append((np.log(x[k + 1]) - np.log(x[k])) / dt)
    return np.array(X), np.array(Y)


def gm_ridge(subjects: list[Subject], lam: float, floor: float = FLOOR, mask: np.ndarray | None = None) -> GLV:
    """Ridge gradient matching: one ridge regression per taxon (all share the design). mask (m, m):
    the interactions a_ij allowed (the others are 0)."""
    X, Y = gm_rows(subjects, floor)
    m = Y.shape[1]
    pen = np.full(X.shape[1], lam)
    pen[0] = 0.0
    if mask is None:
        B = np.linalg.solve(X.T @ X + np.diag(pen), X.T @ Y)     # (1 + m + q, m)
    else:
        B = np.zeros((X.shape[1], m))
        for i in range(m):
            cols = np.concatenate([[True], mask[i], np.ones(X.shape[1] - 1 - m, dtype=bool)])
            Xi = X[:, cols]
            B[cols, i] = np.linalg.solve(Xi.T @ Xi + np.diag(pen[cols]), Xi.T @ Y[:, i])
    return GLV(B[0].copy(), B[1:1 + m].T.copy(), B[1 + m:].T.copy())


def predict(model: GLV, s: Subject, floor: float = FLOOR) -> tuple[np.ndarray, bool]:
    return model.simulate(s.times, s.u, first_state(s, floor))


def gm_choose_lambda(train: list[Subject], lambdas: tuple[float, ...] = LAMBDAS, floor: float = FLOOR
                     ) -> tuple[float, dict[float, float]]:
    """lam minimising the mean inner leave-one-subject-out score (a blow-up counts with capped values)."""
    scores = {}
    for lam in lambdas:
        errs = []
        for i, s in enumerate(train):
            mdl = gm_ridge(train[:i] + train[i + 1:], lam, floor)
            pred, _ = predict(mdl, s, floor)
            errs.append(log_rmse(pred, s.x))
        scores[lam] = float(np.mean(errs))
    best = min(scores, key=lambda k: scores[k])
    return best, scores


# -- L1 screening of interaction edges (gradient matching) ---------------------------------------------------
def _lasso_cd(Z: np.ndarray, y: np.ndarray, alpha: float, pen: np.ndarray, b: np.ndarray, sweeps: int = 200
              ) -> np.ndarray:
    """Coordinate descent for 1/(2n) ||y - Z b||^2 + alpha sum_j pen_j |b_j| (Z standardised, y centred)."""
    n = len(y)
    col2 = (Z * Z).sum(axis=0) / n
    r = y - Z @ b
    for _ in range(sweeps):
        delta = 0.0
        for j in range(Z.shape[1]):
            old = b[j]
            rho = Z[:, j] @ r / n + col2[j] * old
            new = np.sign(rho) * max(abs(rho) - alpha * pen[j], 0.0) / col2[j]
            if new != old:
                r -= Z[:, j] * (new - old)
                b[j] = new
                delta = max(delta, abs(new - old))
        if delta < 1e-8:
            break
    return b


def lasso_rank(subjects: list[Subject], taxa: list[str], floor: float = FLOOR, n_alpha: int = 40
               ) -> list[tuple[str, str, float]]:
    """Interaction edges (target i, source j, alpha at entry) along the L1 path of gradient matching,
    strongest first. Per taxon i: lasso of the standardised log-derivative on the standardised
    [x, u] with self-interaction and inputs unpenalised; edges are ranked by the penalty at which they
    enter (comparable across taxa because every target is standardised)."""
    X, Y = gm_rows(subjects, floor)
    m = len(taxa)
    Z = X[:, 1:]
    Z = (Z - Z.mean(axis=0)) / np.where(Z.std(axis=0) > 0, Z.std(axis=0), 1.0)
    out = []
    for i in range(m):
        y = Y[:, i] - Y[:, i].mean()
        y = y / (y.std() or 1.0)
        pen = np.ones(Z.shape[1])
        pen[i] = 0.0
        pen[m:] = 0.0
        free = pen == 0
        b = np.zeros(Z.shape[1])
        b[free] = np.linalg.lstsq(Z[:, free], y, rcond=None)[0]
        r0 = y - Z[:, free] @ b[free]
        amax = float(np.max(np.abs(Z[:, ~free].T @ r0)) / len(y))
        entered: dict[int, float] = {}
        for alpha in amax * np.logspace(0, -3, n_alpha):
            b = _lasso_cd(Z, y, alpha, pen, b)
            for j in np.flatnonzero((b != 0) & ~free):
                entered.setdefault(int(j), float(alpha))
        out += [(taxa[i], taxa[j], a) for j, a in entered.items()]
    return sorted(out, key=lambda e: -e[2])


def lasso_edges(subjects: list[Subject], taxa: list[str], k: int, floor: float = FLOOR) -> list[tuple[str, str]]:
    """The k strongest interaction edges (target, source) of :func:`lasso_rank`."""
    return [(i, j) for i, j, _ in lasso_rank(subjects, taxa, floor)[:k]]


# -- training mean ---------------------------------------------------------------------------------------
def training_mean(train: list[Subject], times: np.ndarray) -> np.ndarray:
    """10**(mean of log10(x + EPS) over the training subjects at each time) - EPS, at ``times``."""
    grid = np.unique(np.concatenate([s.times for s in train]))
    m = train[0].x.shape[1]
    acc, cnt = np.zeros((len(grid), m)), np.zeros((len(grid), m))
    for s in train:
        idx = np.searchsorted(grid, s.times)
        ok = np.isfinite(s.x)
        acc[idx] += np.where(ok, np.log10(np.where(ok, s.x, 0.0) + EPS), 0.0)
        cnt[idx] += ok
    have = cnt.sum(axis=1) > 0
    mean = acc[have] / np.maximum(cnt[have], 1)
    out = np.column_stack([np.interp(times, grid[have], mean[:, i]) for i in range(m)])
    return 10.0 ** out - EPS


# -- the leave-one-subject-out study ---------------------------------------------------------------------
def run(subjects: list[Subject], *, lambdas: tuple[float, ...] = LAMBDAS, floor: float = FLOOR,
        verbose: bool = True) -> list[dict]:
    rows = []
    for i, s in enumerate(subjects):
        t0 = time.perf_counter()
        train = subjects[:i] + subjects[i + 1:]
        lam, _ = gm_choose_lambda(train, lambdas, floor)
        mdl = gm_ridge(train, lam, floor)
        pred, blew = predict(mdl, s, floor)
        mean = training_mean(train, s.times)
        row = {"subject": s.name, "gm_ridge": log_rmse(pred, s.x), "gm_blowup": blew, "gm_lambda": lam,
               "train_mean": log_rmse(mean, s.x), "time_s": time.perf_counter() - t0}
        rows.append(row)
        if verbose:
            print(f"fold {s.name}: GM ridge {row['gm_ridge']:.3f} (lam {lam:g}{', BLOW-UP' if blew else ''}), "
                  f"training mean {row['train_mean']:.3f}  [{row['time_s']:.1f} s]", flush=True)
    return rows


def main() -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wide")
    ap.add_argument("--events")
    ap.add_argument("--input", action="append", default=[], metavar="EVENT=NAME")
    ap.add_argument("--floor", type=float, default=FLOOR)
    ap.add_argument("--t-end", type=float, help="only the samples up to this time")
    ap.add_argument("--drop", default="", help="taxa left out (comma-separated names as converted)")
    args = ap.parse_args()
    subs, taxa = load_subjects(args.wide, args.events, dict(x.split("=", 1) for x in args.input))
    keep = [k for k, t in enumerate(taxa) if t not in set(args.drop.split(","))]
    subs = [Subject(s.name, s.times[s.times <= (args.t_end if args.t_end is not None else np.inf)],
                    s.x[s.times <= (args.t_end if args.t_end is not None else np.inf)][:, keep],
                    s.u[s.times <= (args.t_end if args.t_end is not None else np.inf)]) for s in subs]
    rows = run(subs, floor=args.floor)
    print("\n| held-out | GM ridge (lam) | training mean |\n|---|---|---|")
    for r in rows:
        print(f"| {r['subject']} | {r['gm_ridge']:.3f} ({r['gm_lambda']:g}){' blow-up' if r['gm_blowup'] else ''} "
              f"| {r['train_mean']:.3f} |")
    print(f"| mean | {np.mean([r['gm_ridge'] for r in rows]):.3f} | {np.mean([r['train_mean'] for r in rows]):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
