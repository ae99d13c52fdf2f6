"""Exact scaling (Lie point) symmetries of the symbolic model.

:func:`scaling_symmetries` finds exponents a (states) and b (free parameters) such that
x_i -> l**a_i x_i, p_j -> l**b_j p_j maps solutions to solutions and leaves every observable unchanged.
The infinitesimal conditions

    sum_k a_k x_k df_i/dx_k + sum_j b_j p_j df_i/dp_j = a_i f_i        (every state equation i)
    sum_k a_k x_k dh/dx_k   + sum_j b_j p_j dh/dp_j   = 0              (every observable h)

are linear in (a, b); evaluated at random points they give a matrix whose null space (SVD) holds all
scaling symmetries. A basis is brought to reduced row-echelon form, rationalised to small integers and
verified symbolically (substitute x -> l**a x, p -> l**b p and simplify f(l) - l**a f). A symmetry
moving a hidden state's initial value means that state (and the parameters it scales) cannot be
learnt from the observables, whatever the data; only the invariant monomials
(:func:`invariant_combinations`) can. :func:`symmetry_directions` gives the generators as columns in the
transformed (log) coordinates of named unknowns.

Names: model parameters by name, initial states as ``"x0.<state>"`` (per-experiment copies
``"x0.<state>[k]"`` or ``"x0.<state>@label"`` match a symmetry's ``"x0.<state>"`` exponent)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from symode.spec import Spec, load_spec
from symode.symbolic.rhs import SymbolicModel, build_symbolic


@dataclass
class Symmetry:
    """One exact one-parameter scaling symmetry of the model with its observables."""

    exponents: dict[str, float]        # name -> k: name -> l**k * name leaves every observable unchanged
    description: str                   # e.g. "Y -> l*Y, gA -> gA/l, gB -> gB/l"
    invariants: list[str]              # monomials invariant under it, e.g. ["gA*Y(0)", "gB*Y(0)"]
    states: list[str] = field(default_factory=list)   # (hidden) states it rescales
    verified: str = "symbolic"         # "symbolic" or "numeric" (sympy could not simplify to 0)

    def exponent(self, name: str) -> float:
        """The exponent of ``name``; per-experiment initial states ("x0.Y[2]", "x0.Y@run2") match "x0.Y"."""
        if name in self.exponents:
            return self.exponents[name]
        for key, k in self.exponents.items():
            if _matches(key, name):
                return k
        return 0.0

    def moves(self, name: str) -> bool:
        return self.exponent(name) != 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"exponents": dict(self.exponents), "description": self.description,
                "invariants": list(self.invariants), "states": list(self.states), "verified": self.verified}


def _matches(key: str, name: str) -> bool:
    """``name`` is ``key`` or a per-experiment copy of the initial state ``key`` ("x0.Y[2]", "x0.Y@b")."""
    return name == key or (key.startswith("x0.") and name.startswith(key) and len(name) > len(key)
                           and name[len(key)] in "[@#:/ ")


def display_name(name: str, taken: set[str] | None = None) -> str:
    """'x0.Y' -> 'Y(0)' (not 'Y0': that may be a parameter, e.g. the feed S0); parameters unchanged."""
    return f"{name[3:]}(0)" if name.startswith("x0.") else name


def _fmt_exp(k: float) -> str:
    fr = Fraction(k).limit_denominator(1000)
    if abs(float(fr) - k) < 1e-12:
        return str(fr.numerator) if fr.denominator == 1 else f"({fr.numerator}/{fr.denominator})"
    return f"{k:.4g}"


def _describe(exponents: Mapping[str, float], taken: set[str]) -> str:
    parts = []
    for name, k in exponents.items():
        d = name[3:] if name.startswith("x0.") else name
        if k == 1:
            parts.append(f"{d} -> l*{d}")
        elif k == -1:
            parts.append(f"{d} -> {d}/l")
        elif k > 0:
            parts.append(f"{d} -> l^{_fmt_exp(k)}*{d}")
        else:
            parts.append(f"{d} -> {d}/l^{_fmt_exp(-k)}")
    return ", ".join(parts)


def _monomial(powers: Mapping[str, float], taken: set[str]) -> str:
    """'gA*Y(0)', 'vA/A(0)', 'KA^2/IA' from name -> power."""
    num, den = [], []
    for name, k in powers.items():
        if k == 0:
            continue
        d = display_name(name, taken)
        mag = abs(k)
        term = d if mag == 1 else f"{d}^{_fmt_exp(mag)}"
        (num if k > 0 else den).append(term)
    text = "*".join(num) if num else "1"
    if den:
        text += "/" + (den[0] if len(den) == 1 else "(" + "*".join(den) + ")")
    return text


def _pair_invariants(exponents: Mapping[str, float], taken: set[str]) -> list[str]:
    """Monomials invariant under one symmetry: every moved name combined with a reference name."""
    names = list(exponents)
    if len(names) < 2:
        return []
    states = [n for n in names if n.startswith("x0.")]
    ref = states[0] if states else names[0]
    kr = exponents[ref]
    out = []
    for n in names:
        if n == ref:
            continue
        kn = exponents[n]
        fr = Fraction(kn / kr).limit_denominator(1000)   # n * ref^(-kn/kr) is invariant
        pn, pr = fr.denominator, -fr.numerator
        out.append(_monomial({n: pn, ref: pr}, taken))
    return out


def _rref(M: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """Reduced row-echelon form of a (k x n) matrix with full row rank (pivots in column order)."""
    A = M.astype(float).copy()
    k, n = A.shape
    row = 0
    for col in range(n):
        if row >= k:
            break
        piv = row + int(np.argmax(np.abs(A[row:, col])))
        if abs(A[piv, col]) < tol:
            continue
        A[[row, piv]] = A[[piv, row]]
        A[row] /= A[row, col]
        for r in range(k):
            if r != row:
                A[r] -= A[r, col] * A[row]
        row += 1
    A[np.abs(A) < tol] = 0.0
    return A[:row]


def _integerise(v: np.ndarray, max_den: int = 12, tol: float = 1e-6) -> np.ndarray | None:
    """Scale a vector to small coprime integers (first nonzero entry positive), or None."""
    fr = []
    for x in v:
        f = Fraction(float(x)).limit_denominator(max_den)
        if abs(float(f) - x) > tol * max(1.0, abs(x)):
            return None
        fr.append(f)
    lcm = 1
    for f in fr:
        lcm = lcm * f.denominator // math.gcd(lcm, f.denominator)
    ints = [int(f * lcm) for f in fr]
    g = 0
    for i in ints:
        g = math.gcd(g, abs(i))
    if g == 0:
        return None
    out = np.array(ints, dtype=float) / g
    nz = np.flatnonzero(out)
    if out[nz[0]] < 0:
        out = -out
    return out


def _symbolic_model(spec: Spec | str | Path | Any) -> Any:
    if isinstance(spec, SymbolicModel):
        return spec
    if hasattr(spec, "symbolic") and hasattr(spec, "backend"):   # a built Model
        return spec.symbolic
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    return build_symbolic(spec)


def scaling_symmetries(spec: Spec | str | Path | Any, *, free: Sequence[str] | None = None,
                       n_points: int | None = None, seed: int = 0) -> list[Symmetry]:
    """Exact scaling (Lie point) symmetries of a spec's model with its observables.

    ``spec``: a Spec, a spec path, a built Model or a SymbolicModel. ``free``: names allowed to scale;
    default the estimated parameters. States: by default every state whose initial value is estimated
    (or fixed at 0) may scale — observed states are then excluded by the observable conditions; if
    ``free`` names any ``"x0.<state>"`` only those states may scale. Inputs and the other parameters
    never scale (time does not scale either).

    Returns a basis of the symmetry group in reduced row-echelon form with small-integer exponents, each
    verified symbolically (``verified == "symbolic"``) or, if sympy cannot simplify, at random points
    (``"numeric"``). An empty list means no scaling symmetry (not that the model is identifiable).
    """
    sym = _symbolic_model(spec)
    model_spec: Spec = sym.spec
    state_names = sym.state_names
    par_names = sym.parameter_names
    if free is None:
        free_pars = list(model_spec.estimated_parameters)
        free_states = [s for s, st in model_spec.states.items() if st.estimate or st.x0 == 0.0]
    else:
        free = list(free)
        unknown = [n for n in free if n not in par_names and not (n.startswith("x0.") and n[3:] in state_names)]
        if unknown:
            raise ValueError(f"unknown name(s) in free: {', '.join(unknown)}")
        free_pars = [n for n in par_names if n in free]
        xs = [n[3:] for n in free if n.startswith("x0.")]
        free_states = [s for s in state_names if s in xs] if xs else \
            [s for s, st in model_spec.states.items() if st.estimate or st.x0 == 0.0]
    unknowns = [f"x0.{s}" for s in free_states] + free_pars
    n_unk = len(unknowns)
    if n_unk == 0:
        return []
    xi = [state_names.index(s) for s in free_states]
    pj = [par_names.index(p) for p in free_pars]
    nx = len(state_names)
    fs, hs = sym.f, sym.h
    nh = hs.shape[0] if len(hs) else 0
    psyms = [sym.p[j] for j in pj]
    args = [sym.t, *sym.x, *sym.p, *sym.u]
    fun = sp.lambdify(args, [fs, fs.jacobian(sym.x), fs.jacobian(psyms) if psyms else sp.zeros(nx, 0),
                             hs if nh else sp.zeros(0, 1),
                             hs.jacobian(sym.x) if nh else sp.zeros(0, nx),
                             hs.jacobian(psyms) if (nh and psyms) else sp.zeros(nh, len(psyms))],
                      modules="numpy")
    rng = np.random.default_rng(seed)
    pvals = np.array([model_spec.parameters[n].value for n in par_names], dtype=float)
    uvals = np.array([model_spec.inputs[n].default if model_spec.inputs[n].default is not None else 1.0
                      for n in sym.input_names], dtype=float)
    x0vals = np.array([model_spec.states[n].x0 for n in state_names], dtype=float)
    n_eq = nx + nh
    if n_points is None:
        n_points = max(12, 3 * n_unk // max(n_eq, 1) + 8)
    rows = []
    for _ in range(n_points):
        x = np.where(x0vals > 0, x0vals, 1.0) * np.exp(rng.normal(0.0, 1.0, nx))
        p = np.where(pvals != 0, pvals, 1.0) * np.exp(rng.normal(0.0, 0.7, len(pvals)))
        u = np.where(uvals != 0, uvals, 1.0) * np.exp(rng.normal(0.0, 0.3, len(uvals)))
        t = float(rng.uniform(0.0, 10.0))
        with np.errstate(all="ignore"):
            f, fx, fp, _h, hx, hp = (np.atleast_2d(np.asarray(v, dtype=float)) for v in fun(t, *x, *p, *u))
        f = f.reshape(-1)
        block = np.zeros((n_eq, n_unk))
        for c, i in enumerate(xi):
            block[:nx, c] = fx.reshape(nx, nx)[:, i] * x[i]
            block[i, c] -= f[i]
            if nh:
                block[nx:, c] = hx.reshape(nh, nx)[:, i] * x[i]
        for c, j in enumerate(pj):
            block[:nx, len(xi) + c] = fp.reshape(nx, len(pj))[:, c] * p[j]
            if nh:
                block[nx:, len(xi) + c] = hp.reshape(nh, len(pj))[:, c] * p[j]
        if not np.all(np.isfinite(block)):
            continue
        rows.append(block)
    if not rows:
        raise ValueError("could not evaluate the model at random points (singular everywhere?)")
    M = np.vstack(rows)
    norms = np.max(np.abs(M), axis=1)
    M = M[norms > 0] / norms[norms > 0, None]
    if M.shape[0] == 0:
        basis = np.eye(n_unk)
    else:
        _, s, vt = np.linalg.svd(M, full_matrices=True)
        smax = s[0] if len(s) else 0.0
        rank = int(np.sum(s > 1e-9 * max(smax, 1e-300)))
        basis = vt[rank:]
    if basis.shape[0] == 0:
        return []
    R = _rref(basis)
    taken = set(par_names)
    out: list[Symmetry] = []
    for r in R:
        v = _integerise(r)
        exact = v is not None
        if v is None:
            v = r / r[np.flatnonzero(np.abs(r) > 1e-8)[0]]
        exps = {unknowns[c]: float(v[c]) for c in range(n_unk)
                if abs(v[c]) > 1e-9}
        verified = _verify(sym, exps, exact, rng)
        if verified is None:
            continue
        out.append(Symmetry(exponents=exps, description=_describe(exps, taken),
                            invariants=_pair_invariants(exps, taken),
                            states=[n[3:] for n in exps if n.startswith("x0.")], verified=verified))
    return out


def _verify(sym: Any, exps: Mapping[str, float], exact: bool, rng: np.random.Generator) -> str | None:
    """'symbolic' if f(l) = l**a f and h(l) = h simplify exactly, 'numeric' if they hold at random
    points only, None if they fail."""
    lam = sp.Symbol("lambda_", positive=True)

    def power(k: float) -> sp.Expr:
        return lam ** (sp.Rational(Fraction(k).limit_denominator(1000)) if exact else sp.Float(k))

    subs = {}
    for name, k in exps.items():
        s = sym.x[sym.state_names.index(name[3:])] if name.startswith("x0.") else \
            sym.p[sym.parameter_names.index(name)]
        subs[s] = power(k) * s
    exprs = []
    for i, s in enumerate(sym.x):
        k = exps.get(f"x0.{s.name}", 0.0)
        exprs.append(sym.f[i].xreplace(subs) - power(k) * sym.f[i])
    exprs += [hk.xreplace(subs) - hk for hk in (sym.h if len(sym.h) else [])]
    if exact:
        try:
            if all(sp.cancel(sp.together(e)) == 0 or sp.simplify(e) == 0 for e in exprs):
                return "symbolic"
        except Exception:  # pragma: no cover - sympy failure: fall back to numbers
            pass
    args = [lam, sym.t, *sym.x, *sym.p, *sym.u]
    fn = sp.lambdify(args, exprs, modules="numpy")
    ref = sp.lambdify(args[1:], list(sym.f) + list(sym.h if len(sym.h) else []), modules="numpy")
    spec = sym.spec
    for _ in range(5):
        x = np.exp(rng.normal(0, 1, len(sym.x)))
        p = np.array([spec.parameters[n].value or 1.0 for n in sym.parameter_names]) * \
            np.exp(rng.normal(0, 0.5, len(sym.p)))
        u = np.exp(rng.normal(0, 0.3, len(sym.u)))
        t = float(rng.uniform(0, 10))
        with np.errstate(all="ignore"):
            d = np.abs(np.asarray(fn(1.7, t, *x, *p, *u), dtype=float))
            scale = np.abs(np.asarray(ref(t, *x, *p, *u), dtype=float)) + 1e-300
        if not np.all(d <= 1e-8 * np.maximum(scale, 1e-12) + 1e-12):
            return None
    return "numeric"


def invariant_combinations(symmetries: Sequence[Symmetry], names: Sequence[str] | None = None,
                           *, taken: set[str] | None = None) -> list[str]:
    """A basis of the monomials (over the moved names) invariant under *all* the symmetries: the
    combinations the data can at best determine (e.g. "gA*Y(0)/A(0)")."""
    moved = []
    for s in symmetries:
        for n in s.exponents:
            if n not in moved and (names is None or n in names):
                moved.append(n)
    moved.sort(key=lambda n: not n.startswith("x0."))   # states become pivots: one parameter per monomial
    if not moved:
        return []
    E = sp.Matrix([[sp.Rational(Fraction(s.exponents.get(n, 0.0)).limit_denominator(1000)) for n in moved]
                   for s in symmetries])
    taken = taken if taken is not None else {n for n in moved if not n.startswith("x0.")}
    out = []
    for v in E.nullspace():
        den = sp.ilcm(*[sp.fraction(c)[1] for c in v]) if len(v) else 1
        w = [int(c * den) for c in v]
        g = 0
        for c in w:
            g = math.gcd(g, abs(c))
        w = [c // g for c in w] if g else w
        # prefer a positive power of a parameter (not an initial state) in front
        lead = next((c for n, c in zip(moved, w, strict=True) if c and not n.startswith("x0.")), 1)
        if lead < 0:
            w = [-c for c in w]
        powers = {n: c for n, c in zip(moved, w, strict=True) if c}
        order = sorted(powers, key=lambda n: (n.startswith("x0."), moved.index(n)))
        out.append(_monomial({n: powers[n] for n in order}, taken))
    return out


def symmetry_directions(symmetries: Sequence[Symmetry], names: Sequence[str]) -> np.ndarray:
    """(n_names x n_sym) generators in relative/log coordinates (column k: d log theta / d log l).

    A symmetry that moves a name *not* in ``names`` (a quantity held fixed) is not a symmetry of this
    estimation problem and gets a zero column."""
    cols = []
    for s in symmetries:
        covered = all(any(_matches(key, n) for n in names) for key in s.exponents)
        cols.append(np.array([s.exponent(n) for n in names], dtype=float) if covered else np.zeros(len(names)))
    return np.array(cols, dtype=float).T if cols else np.zeros((len(names), 0))
