"""Symbolic replacement of a trained network: candidate kinetic laws fitted to its learned input-output
map (e.g. the MLP evaluated along the fitted trajectory) and ranked by AIC = n log(RSS/n) + 2k."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from symode.spec.schema import NeuralTerm


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
    return result
