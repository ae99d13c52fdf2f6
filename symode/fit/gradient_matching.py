"""Gradient matching: starting values for models whose per-capita growth rates are linear in the
parameters, such as the generalized Lotka-Volterra (gLV) model (Stein et al. 2013, PLoS Comput Biol
9:e1003388), from a penalised linear regression instead of ODE solves.

A state i is *matched* when it is observed directly (an observable named like the state) and its
per-capita rate is linear in the estimated parameters theta:

    (1/x_i) dx_i/dt = c_i(t, x, u) + sum_k theta_k phi_ik(t, x, u)

(for gLV: c_i = 0, phi = 1 for r_i, x_j for a_ij, u for gamma_iu). Between two consecutive positive samples
t_k < t_n of x_i in a data file, integrating gives the row

    (ln x_i(t_n) - ln x_i(t_k)) / (t_n - t_k) = mean over [t_k, t_n] of (c_i + sum_k theta_k phi_ik)

with the mean taken over the data file's sample intervals inside [t_k, t_n] (inputs piecewise constant
from one sample to the next as in the fit, states at each interval's start from the data, interpolated
log-linearly where missing). Every row is weighted by 1 / sd of its left side: sqrt(2) s / (t_n - t_k),
s the noise of ln x_i (sigma ln 10 for a ``log10`` observable with absolute noise sigma, else the
relative noise, else 1). The spec's penalties enter as their residual rows (an ``l1`` term as a ridge
term of the same scale), parameters keep their bounds (scipy's bounded linear least squares), and a
negligible anchor to the spec's values keeps unpenalised parameters without rows well-posed.

Parameters that appear in the rate of a state that is not matched keep their spec values (and are then
known terms of the matched rows). Samples at or below zero (below detection) are not used as endpoints.

>>> res = gradient_matching(spec, datasets)          # doctest: +SKIP
>>> start = with_values(spec, res.values)            # the spec with these starting values
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from symode.errors import SymodeError
from symode.fit.experiments import observed_states
from symode.parallel.threads import blas_threads
from symode.spec import Spec
from symode.spec.data import Dataset, input_matrix

#: Initialisations of a fit: the spec's values, or gradient matching.
INITS = ("spec", "gradient-matching")

#: Weight of the anchor rows (theta_k - spec value) / (|spec value| + 1), relative to a unit-weight row.
ANCHOR_WEIGHT = 1e-6


@dataclass
class GradientMatching:
    """The result of :func:`gradient_matching`."""

    values: dict[str, float]                  # estimated parameters set by the regression
    matched: list[str]                        # states whose rows were used
    unmatched: dict[str, str] = field(default_factory=dict)   # state -> why it was not matched
    rows: int = 0                             # regression rows (pairs of consecutive samples)
    rms: float = math.nan                     # RMS of the weighted data rows at the solution

    def to_dict(self) -> dict[str, Any]:
        return {"values": self.values, "matched": self.matched, "unmatched": self.unmatched, "rows": self.rows,
                "rms": self.rms}


def _state_noise(spec: Spec, state: str) -> float:
    """sd of ln x for a state observed directly (see the module docstring)."""
    obs = spec.observables[state]
    if obs.transform == "log10" and obs.noise.absolute > 0:
        return obs.noise.absolute * math.log(10.0)
    if obs.noise.relative > 0:
        return obs.noise.relative
    return 1.0


def _interpolated(times: np.ndarray, col: np.ndarray) -> np.ndarray:
    """The column with missing values filled: log-linear between positive neighbours, else linear (or the
    nearest value at the ends)."""
    col = np.asarray(col, dtype=float)
    ok = np.isfinite(col)
    if ok.all() or not ok.any():
        return np.where(ok, col, 0.0)
    pos = ok & (col > 0)
    lin = np.interp(times, times[ok], col[ok])
    if pos.sum() >= 1:
        loglin = np.exp(np.interp(times, times[pos], np.log(col[pos])))
        # log-linear where both neighbours are positive, linear otherwise
        idx = np.searchsorted(times[ok], times)
        lo = np.clip(idx - 1, 0, ok.sum() - 1)
        hi = np.clip(idx, 0, ok.sum() - 1)
        both = (col[ok][lo] > 0) & (col[ok][hi] > 0)
        lin = np.where(both, loglin, lin)
    return np.where(ok, col, lin)


def _linear_parts(rate: sp.Expr, free: list[sp.Symbol]) -> tuple[sp.Expr, dict[sp.Symbol, sp.Expr]] | str:
    """(c, {theta: phi}) with rate = c + sum theta phi, or the reason it is not of that form."""
    coef: dict[sp.Symbol, sp.Expr] = {}
    present = [p for p in free if rate.has(p)]
    for p in present:
        d = sp.diff(rate, p)
        if any(d.has(q) for q in present):
            return f"its per-capita rate is not linear in {p.name}"
        coef[p] = d
    c = rate.subs({p: 0 for p in present})
    return c, coef


@dataclass
class MatchingDesign:
    """The regression of :func:`gradient_matching`: weighted data rows per data file, the penalty and
    anchor rows, the bounds, over the parameters ``names``."""

    names: list[str]
    blocks: list[tuple[np.ndarray, np.ndarray, int, float]]   # (R, c, rows, rest) of every data file
    penalty: tuple[np.ndarray, np.ndarray]          # the spec's penalty rows (A, b)
    anchor: tuple[np.ndarray, np.ndarray]           # the anchor rows (A, b)
    lower: np.ndarray
    upper: np.ndarray
    matched: list[str]
    unmatched: dict[str, str]


def _compressed(A: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, float]:
    """(R, c, rows, rest) with ||A theta - b||^2 = ||R theta - c||^2 + rest for every theta, also after
    dropping the same columns of A and R (A = Q R, c = Q^T b, rest = |b|^2 - |c|^2): a few hundred rows
    of R instead of thousands of A in every solve."""
    if len(b) <= A.shape[1]:
        return A, b, len(b), 0.0
    with blas_threads(1):
        Q, R = np.linalg.qr(A)
        c = Q.T @ b
    return R, c, len(b), max(float(b @ b - c @ c), 0.0)


def matching_design(spec: Spec, datasets: Sequence[Dataset]) -> MatchingDesign:
    """The rows of the gradient-matching regression (see the module docstring); SymodeError when no state
    can be matched."""
    from symode.symbolic.rhs import build_symbolic

    if spec.neural_weights:
        raise SymodeError("gradient matching does not apply to a spec with neural terms")
    sym = build_symbolic(spec)
    pnames = [n for n, par in spec.parameters.items() if par.estimate]
    psym = {s.name: s for s in sym.p}
    free = [psym[n] for n in pnames]
    fixed_vals = {psym[n]: float(par.value) for n, par in spec.parameters.items() if not par.estimate}
    observed = set(observed_states(spec))
    parts: dict[str, tuple[sp.Expr, dict[sp.Symbol, sp.Expr]]] = {}
    unmatched: dict[str, str] = {}
    for xs, f in zip(sym.x, sym.f, strict=True):
        name = xs.name
        if f == 0:
            continue
        if name not in observed:
            unmatched[name] = "not observed directly"
            continue
        rate = sp.expand(f / xs)
        if any(isinstance(a, sp.Pow) and a.base == xs and a.exp.is_negative for a in sp.preorder_traversal(rate)):
            unmatched[name] = "its rate is not proportional to its abundance"
            continue
        lin = _linear_parts(rate, free)
        if isinstance(lin, str):
            unmatched[name] = lin
            continue
        parts[name] = lin
    # parameters in an unmatched state's rate keep their spec values
    held = {p for name, f in zip(sym.state_names, sym.f, strict=True) if name in unmatched for p in free if f.has(p)}
    if held:
        sub = {p: float(spec.parameters[p.name].value) for p in held}
        for name, (c, coef) in list(parts.items()):
            c = c + sum((coef[p] * v for p, v in sub.items() if p in coef), sp.Integer(0))
            parts[name] = (c, {p: e for p, e in coef.items() if p not in held})
    if not parts:
        why = "; ".join(f"{k}: {v}" for k, v in unmatched.items()) or "no state has dynamics"
        raise SymodeError(f"gradient matching needs states observed directly whose per-capita rates are linear in "
                          f"the parameters ({why})")
    cols = [p for p in free if p not in held and any(p in coef for _, coef in parts.values())]
    if not cols:
        raise SymodeError("gradient matching: no estimated parameter in the rates of the matched states")
    col_of = {p: k for k, p in enumerate(cols)}
    args = [sym.t, *sym.x, *sym.u]
    funcs = {}
    for name, (c, coef) in parts.items():
        exprs = [sp.sympify(c).subs(fixed_vals)] + [coef[p].subs(fixed_vals) for p in cols if p in coef]
        funcs[name] = (sp.lambdify(args, exprs, modules="numpy"), [col_of[p] for p in cols if p in coef])
    blocks = []
    for d in datasets:
        A_rows, b_rows = [], []
        t = np.asarray(d.times, dtype=float)
        X = np.column_stack([_interpolated(t, d.columns[s]) if s in d.columns else np.zeros(len(t))
                             for s in sym.state_names])
        U = input_matrix(spec, d, t)
        Ucols = [np.asarray(U[u], dtype=float) for u in sym.input_names]
        dt = np.diff(t)
        for name, (fn, where) in funcs.items():
            col = np.asarray(d.columns.get(name, np.full(len(t), np.nan)), dtype=float)
            good = np.flatnonzero(np.isfinite(col) & (col > 0))
            if len(good) < 2:
                continue
            vals = fn(t[:-1], *[X[:-1, j] for j in range(X.shape[1])], *[u[:-1] for u in Ucols])
            V = np.column_stack([np.broadcast_to(np.asarray(v, dtype=float), (len(t) - 1,)) for v in vals])
            s = _state_noise(spec, name)
            for k, n in itertools.pairwise(good):
                span = t[n] - t[k]
                mean = (dt[k:n, None] * V[k:n]).sum(axis=0) / span
                w = span / (math.sqrt(2.0) * s)
                row = np.zeros(len(cols))
                row[where] = mean[1:]
                A_rows.append(w * row)
                b_rows.append(w * (math.log(col[n] / col[k]) / span - mean[0]))
        A, b = np.array(A_rows).reshape(len(A_rows), len(cols)), np.array(b_rows)
        if not (np.all(np.isfinite(A)) and np.all(np.isfinite(b))):
            raise SymodeError(f"gradient matching: a rate term is not finite at the data of {d.file} (check its "
                              f"values)")
        blocks.append(_compressed(A, b))
    names = [p.name for p in cols]
    pen_A, pen_b = [np.zeros((0, len(cols)))], [np.zeros(0)]
    for pen in spec.penalties:
        for n, scale in pen.scales.items():
            if n in names:
                row = np.zeros((1, len(cols)))
                row[0, names.index(n)] = 1.0 / scale
                pen_A.append(row)
                pen_b.append(np.array([pen.center / scale]))
    values = np.array([float(spec.parameters[n].value) for n in names])
    w = ANCHOR_WEIGHT / (np.abs(values) + 1.0)
    lo = np.array([-np.inf if spec.parameters[n].lower is None else spec.parameters[n].lower for n in names])
    hi = np.array([np.inf if spec.parameters[n].upper is None else spec.parameters[n].upper for n in names])
    return MatchingDesign(names, blocks, (np.vstack(pen_A), np.concatenate(pen_b)), (np.diag(w), w * values), lo,
                          hi, sorted(parts), unmatched)


def solve_design(design: MatchingDesign, files: Sequence[int] | None = None, zero: Collection[str] = (),
                 penalty_factor: float = 1.0) -> GradientMatching:
    """Solve the regression on the rows of the data files ``files`` (indices; default all), the
    parameters ``zero`` held at 0 (e.g. pruned edges; they are in the result's values as 0), every penalty
    scale multiplied by ``penalty_factor``."""
    from scipy.optimize import lsq_linear

    files = range(len(design.blocks)) if files is None else files
    keep = np.array([n not in zero for n in design.names])
    pen_A, pen_b = design.penalty
    n_data = sum(design.blocks[e][2] for e in files)
    if n_data == 0:
        raise SymodeError("gradient matching found no pair of consecutive positive samples of a matched state")
    A_data = np.vstack([design.blocks[e][0] for e in files])[:, keep]
    b_data = np.concatenate([design.blocks[e][1] for e in files])
    rest = sum(design.blocks[e][3] for e in files)
    # the penalty and anchor rows of parameters held at 0 are all zero now: constants, harmless
    A = np.vstack([A_data, pen_A[:, keep] / penalty_factor, design.anchor[0][:, keep]])
    b = np.concatenate([b_data, pen_b / penalty_factor, design.anchor[1]])
    lo, hi = design.lower[keep], design.upper[keep]
    method = "bvls" if keep.sum() <= 400 else "trf"
    with blas_threads(1):      # a few hundred columns: threads only cost, badly so on a busy machine
        theta = np.clip(lsq_linear(A, b, bounds=(lo, hi), method=method, lsmr_tol="auto").x, lo, hi)
    r = A_data @ theta - b_data
    values = dict.fromkeys(design.names, 0.0)
    values.update({n: float(v) for n, v in zip(np.array(design.names)[keep], theta, strict=True)})
    return GradientMatching(values=values, matched=design.matched, unmatched=design.unmatched, rows=n_data,
                            rms=float(np.sqrt((r @ r + rest) / n_data)))


def gradient_matching(spec: Spec, datasets: Sequence[Dataset]) -> GradientMatching:
    """Estimated parameters of ``spec`` from ``datasets`` by penalised gradient matching (see the module
    docstring); SymodeError when no state can be matched."""
    return solve_design(matching_design(spec, datasets))


def with_values(spec: Spec, values: dict[str, float]) -> Spec:
    """A copy of ``spec`` whose parameters in ``values`` start there (inside their bounds)."""
    new = spec.copy()
    for n, v in values.items():
        par = new.parameters[n]
        lo = -math.inf if par.lower is None else par.lower
        hi = math.inf if par.upper is None else par.upper
        par.value = float(min(max(v, lo), hi))
    return new


def initial_spec(spec: Spec, datasets: Sequence[Dataset], init: str = "spec") -> Spec:
    """The spec whose values start the fit: ``init="spec"`` the spec itself, ``"gradient-matching"`` the
    spec with the values of :func:`gradient_matching` on ``datasets``."""
    if init not in INITS:
        raise SymodeError(f"unknown init {init!r} ({', '.join(INITS)})", field="init")
    if init == "spec":
        return spec
    return with_values(spec, gradient_matching(spec, datasets).values)
