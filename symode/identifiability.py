"""Structural and practical identifiability: exact scaling symmetries, Fisher information, profiles.

Three tools, from exact to empirical:

- :func:`scaling_symmetries` — exact scaling (Lie point) symmetries of the symbolic model: exponents
  a (states) and b (free parameters) such that x_i -> l**a_i x_i, p_j -> l**b_j p_j maps solutions to
  solutions and leaves every observable unchanged. The infinitesimal conditions

      sum_k a_k x_k df_i/dx_k + sum_j b_j p_j df_i/dp_j = a_i f_i        (every state equation i)
      sum_k a_k x_k dh/dx_k   + sum_j b_j p_j dh/dp_j   = 0              (every observable h)

  are linear in (a, b); evaluated at random points they give a matrix whose null space (SVD) holds all
  scaling symmetries. A basis is brought to reduced row-echelon form, rationalised to small integers and
  verified symbolically (substitute x -> l**a x, p -> l**b p and simplify f(l) - l**a f). A symmetry
  moving a hidden state's initial value means that state (and the parameters it scales) cannot be
  learnt from the observables, whatever the data; only the invariant monomials can.
- :func:`fisher_analysis` — the Fisher information J^T J of the weighted residuals at the optimum:
  standard errors, Wald intervals (asymmetric for log-scale parameters), null directions, correlations
  and identifiable combinations, with a flag and a reason for every parameter.
- :func:`profile_likelihood` — likelihood-based intervals by re-optimising all other parameters along
  one parameter; flat profiles give open (None) sides.

Parameter names: model parameters by name, initial states as ``"x0.<state>"`` (per-experiment copies
as ``"x0.<state>[k]"`` or ``"x0.<state>@label"`` match a symmetry's ``"x0.<state>"`` exponent).

Coordinates: "transformed" is log(theta) for ``scale == "log"`` and theta itself otherwise. Internally
the Fisher matrix is analysed in *relative* coordinates (log for log parameters, theta / |theta_hat|
for linear ones) so that the rank decision does not depend on units; for log parameters the two agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .spec import Spec, load_spec

__all__ = [
    "CHI2_1",
    "FisherResult",
    "Profile",
    "Symmetry",
    "cramer_rao",
    "fisher_analysis",
    "invariant_combinations",
    "log_jacobian",
    "profile_likelihood",
    "render_markdown",
    "scaling_symmetries",
    "symmetry_directions",
]

#: chi-square(1) quantiles: the profile-likelihood thresholds for 2 * (loss - loss_hat).
CHI2_1 = {"0.95": 3.841458820694124, "0.99": 6.634896601021214}
#: Standard-normal quantiles for two-sided Wald intervals.
Z = {"0.95": 1.959963984540054, "0.99": 2.5758293035489004}
LEVELS = ("0.95", "0.99")

#: A relative-coordinate Fisher eigenvalue below max(RCOND * largest, ABS_FLOOR) is a null direction
#: (ABS_FLOOR: a relative standard error above 1e4 along it, i.e. nothing is known).
RCOND = 1e-11
ABS_FLOOR = 1e-8
#: A parameter whose component in a (unit) null direction exceeds this has an infinite standard error.
NULL_COMPONENT = 1e-3
#: |correlation| above this is named as the reason for a large standard error.
CORR_REASON = 0.9


# ====================================================================================================
# Exact scaling symmetries
# ====================================================================================================

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


def _display(name: str, taken: set[str] | None = None) -> str:
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
        d = _display(name, taken)
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
    from .symbolic import SymbolicModel, build_symbolic

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
    import sympy as sp

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
    import sympy as sp

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
    import sympy as sp

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


# ====================================================================================================
# Fisher information
# ====================================================================================================

@dataclass
class FisherResult:
    names: list[str]
    theta: np.ndarray                    # natural-space values
    scales: list[str]
    se_transformed: np.ndarray           # SE in the transformed space (log for log params); inf: undetermined
    rel_se: np.ndarray                   # relative SE in natural space (~ SE of log for log params)
    intervals: dict[str, dict[str, list[float | None]]]   # {name: {"0.95": [lo, hi], "0.99": [lo, hi]}}
    identifiable: dict[str, bool]
    reasons: dict[str, str]              # why not identifiable (only for those)
    null_directions: list[dict[str, float]]   # unit vectors (transformed space) of the null space
    combinations: list[str]              # identifiable combinations
    eigenvalues: np.ndarray              # of the Fisher matrix in relative coordinates, ascending
    correlation: np.ndarray              # NaN rows/columns for undetermined parameters
    covariance: np.ndarray | None = None  # transformed space (pseudo-inverse; inf-SE entries unusable)
    se_natural: np.ndarray | None = None  # delta-method SE in natural space
    s2: float = float("nan")             # 2*loss/(n_obs - n_par): residual variance factor (~1 if sigma right)
    se_transformed_scaled: np.ndarray | None = None   # se_transformed * sqrt(s2)
    rank: int = 0
    n_obs: int = 0
    loss: float = float("nan")
    at_bound: dict[str, str] = field(default_factory=dict)   # name -> "lower"/"upper"
    symmetries: list[Symmetry] = field(default_factory=list)  # the symmetries that apply
    notes: dict[str, str] = field(default_factory=dict)       # remarks for identifiable parameters

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (inf/NaN become None)."""
        def num(v: float) -> float | None:
            return float(v) if np.isfinite(v) else None
        return {
            "parameters": {n: {"value": float(t), "scale": s, "se_transformed": num(se), "rel_se": num(r),
                               "intervals": self.intervals[n], "identifiable": self.identifiable[n],
                               **({"reason": self.reasons[n]} if n in self.reasons else {}),
                               **({"note": self.notes[n]} if n in self.notes else {})}
                           for n, t, s, se, r in zip(self.names, self.theta, self.scales, self.se_transformed,
                                                     self.rel_se, strict=True)},
            "null_directions": self.null_directions, "combinations": self.combinations,
            "symmetries": [s.to_dict() for s in self.symmetries],
            "eigenvalues": [float(e) for e in self.eigenvalues], "rank": self.rank, "s2": num(self.s2),
            "n_obs": self.n_obs,
        }


def log_jacobian(J: np.ndarray, theta: np.ndarray, scales: Sequence[str]) -> np.ndarray:
    """Chain rule: a Jacobian w.r.t. natural theta -> w.r.t. the transformed parameters
    (dr/dlog(theta) = dr/dtheta * theta for log-scale ones)."""
    J = np.array(J, dtype=float, copy=True)
    for i, s in enumerate(scales):
        if s == "log":
            J[:, i] *= theta[i]
    return J


def _bounds_list(bounds: Any, names: Sequence[str]) -> list[tuple[float | None, float | None]]:
    if bounds is None:
        return [(None, None)] * len(names)
    if isinstance(bounds, Mapping):
        out = []
        for n in names:
            b = bounds.get(n)
            out.append((None, None) if b is None else (b[0], b[1]))
        return out
    bl = list(bounds)
    if len(bl) != len(names):
        raise ValueError(f"{len(bl)} bounds for {len(names)} parameters")
    return [(None, None) if b is None else (b[0], b[1]) for b in bl]


def _fin(v: float | None) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def _to_natural(z: float, scale: str) -> float:
    if scale == "log":
        if z > 700:
            return math.inf
        return math.exp(z) if z > -745 else 0.0
    return z


def _to_transformed(v: float, scale: str) -> float:
    if scale == "log":
        return math.log(v) if v > 0 else -math.inf
    return v


def _interval(value: float, se: float, scale: str, bound: tuple[float | None, float | None],
              z: float) -> list[float | None]:
    """Wald interval in the transformed space mapped back and clipped to bounds (None: open side)."""
    lo_b, hi_b = bound
    if not np.isfinite(se):
        return [_fin(lo_b), _fin(hi_b)]
    zt = _to_transformed(value, scale)
    lo = _to_natural(zt - z * se, scale)
    hi = _to_natural(zt + z * se, scale)
    if lo_b is not None:
        lo = max(lo, lo_b)
    if hi_b is not None:
        hi = min(hi, hi_b)
    return [_fin(lo), _fin(hi)]


def _relative_w(W: np.ndarray, theta: np.ndarray, scales: Sequence[str]) -> np.ndarray:
    """Symmetry generators (d log theta) in relative coordinates (d theta / |theta| for linear ones)."""
    sign = np.array([1.0 if s == "log" or t >= 0 else -1.0 for t, s in zip(theta, scales, strict=True)])
    return W * sign[:, None]


def _relative_factors(theta: np.ndarray, scales: Sequence[str]) -> np.ndarray:
    """Relative coordinate u = z / f (z transformed): Jacobian columns dr/du = dr/dz * f,
    covariance cov_z = f f^T cov_u."""
    return np.array([1.0 if s == "log" else (abs(t) if t != 0 and np.isfinite(t) else 1.0)
                     for t, s in zip(theta, scales, strict=True)])


@dataclass
class _Decomp:
    cov_rel: np.ndarray          # covariance in relative coordinates (pinv on the determined part)
    null_rel: np.ndarray         # (n x k) orthonormal null basis in relative coordinates
    null_eig: list[float]        # eigenvalue per null vector (0 for exact symmetries)
    det_vecs: np.ndarray         # (n x r) determined eigenvectors
    det_eig: np.ndarray          # their eigenvalues
    eig_all: np.ndarray          # eigenvalues of the full Fisher matrix, ascending


def _decompose(Jr: np.ndarray, W: np.ndarray, rcond: float, abs_floor: float) -> _Decomp:
    n = Jr.shape[1]
    F = Jr.T @ Jr
    F = 0.5 * (F + F.T)
    eig_all = np.linalg.eigvalsh(F) if n else np.zeros(0)
    # orthonormal basis of the symmetry directions and of their complement
    if W.shape[1]:
        u, s, _ = np.linalg.svd(W, full_matrices=True)
        k = int(np.sum(s > 1e-12 * max(s[0], 1e-300)))
        Wn, Q = u[:, :k], u[:, k:]
    else:
        Wn, Q = np.zeros((n, 0)), np.eye(n)
    Fq = Q.T @ F @ Q
    lam, U = np.linalg.eigh(0.5 * (Fq + Fq.T)) if Q.shape[1] else (np.zeros(0), np.zeros((0, 0)))
    lam_max = max(float(eig_all[-1]) if n else 0.0, 0.0)
    cut = max(rcond * lam_max, abs_floor)
    null_mask = lam <= cut
    V = Q @ U if Q.shape[1] else np.zeros((n, 0))
    null_rel = np.hstack([Wn, V[:, null_mask]])
    null_eig = [0.0] * Wn.shape[1] + [float(x) for x in lam[null_mask]]
    det = ~null_mask
    Vd, ld = V[:, det], lam[det]
    cov = (Vd / ld) @ Vd.T if Vd.shape[1] else np.zeros((n, n))
    return _Decomp(cov, null_rel, null_eig, Vd, ld, eig_all)


def cramer_rao(J: np.ndarray, names: Sequence[str], scales: Sequence[str], theta: np.ndarray, *,
               symmetries: Sequence[Symmetry] | None = None, rcond: float = RCOND,
               abs_floor: float = ABS_FLOOR) -> np.ndarray:
    """Cramer-Rao relative standard errors at a point (e.g. the truth): J is the weighted residual
    Jacobian w.r.t. the transformed parameters there. inf where the parameter has a component in the
    null space (exact symmetry or flat direction). For log-scale parameters this is the SE of log."""
    theta = np.asarray(theta, dtype=float)
    rf = _relative_factors(theta, scales)
    W = symmetry_directions(symmetries or [], names)
    d = _decompose(np.asarray(J, dtype=float) * rf, _relative_w(W, theta, scales), rcond, abs_floor)
    rel = np.sqrt(np.maximum(np.diag(d.cov_rel), 0.0))
    if d.null_rel.shape[1]:
        rel[np.max(np.abs(d.null_rel), axis=1) > NULL_COMPONENT] = np.inf
    for i, s in enumerate(scales):
        if s != "log" and theta[i] == 0:
            rel[i] = np.inf
    return rel


def fisher_analysis(J: np.ndarray, names: Sequence[str], theta: np.ndarray, *, scales: Sequence[str],
                    n_obs: int, loss: float, symmetries: Sequence[Symmetry] | None = None,
                    bounds: Mapping[str, Sequence[float | None]] | Sequence[Any] | None = None,
                    rel_se_max: float = 0.5, rcond: float = RCOND, abs_floor: float = ABS_FLOOR,
                    corr_reason: float = CORR_REASON) -> FisherResult:
    """Fisher-information analysis at the optimum.

    J: Jacobian (n_obs x n_par) of the weighted residuals r = (y - d) / sigma w.r.t. the transformed
    parameters (log for ``scale == "log"``; see :func:`log_jacobian`), so FIM = J^T J (sigma known).
    theta: natural-space values. bounds: name -> (lo, hi) or a list aligned with names (natural space,
    None = open). Symmetries (from :func:`scaling_symmetries`) are treated as exact null directions.

    The covariance is the pseudo-inverse of the FIM on its determined part; parameters with a component
    (> 1e-3) in the null space get an infinite SE. 95%/99% Wald intervals are built in the transformed
    space and mapped back (asymmetric for log parameters), clipped to bounds; an undetermined parameter
    gets its bounds (None for an open side). A parameter is identifiable iff its SE is finite, its
    relative SE <= ``rel_se_max`` and no exact symmetry moves it; every other one gets a reason.
    """
    names = list(names)
    scales = list(scales)
    theta = np.asarray(theta, dtype=float)
    J = np.asarray(J, dtype=float)
    n = len(names)
    if J.ndim != 2 or J.shape[1] != n or len(theta) != n or len(scales) != n:
        raise ValueError(f"J {J.shape}, {len(names)} names, {len(theta)} values, {len(scales)} scales disagree")
    if not np.all(np.isfinite(J)):
        raise ValueError("the Jacobian has non-finite entries")
    bl = _bounds_list(bounds, names)
    syms = list(symmetries or [])
    W = symmetry_directions(syms, names)
    active = [s for k, s in enumerate(syms) if np.any(W[:, k] != 0)]
    rf = _relative_factors(theta, scales)
    d = _decompose(J * rf, _relative_w(W, theta, scales), rcond, abs_floor)

    cov_t = d.cov_rel * np.outer(rf, rf)
    se = np.sqrt(np.maximum(np.diag(cov_t), 0.0))
    null_comp = np.max(np.abs(d.null_rel), axis=1) if d.null_rel.shape[1] else np.zeros(n)
    in_null = null_comp > NULL_COMPONENT
    se[in_null] = np.inf
    rel = np.array([se[i] if scales[i] == "log" else (se[i] / abs(theta[i]) if theta[i] != 0 else np.inf)
                    for i in range(n)])
    se_nat = np.array([se[i] * theta[i] if scales[i] == "log" else se[i] for i in range(n)])
    dof = n_obs - n
    s2 = 2.0 * loss / dof if dof > 0 else float("nan")

    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(np.diag(d.cov_rel))
        corr = d.cov_rel / np.outer(sd, sd)
    corr[in_null, :] = np.nan
    corr[:, in_null] = np.nan
    corr[~np.isfinite(corr)] = np.nan
    for i in range(n):
        if not in_null[i] and sd[i] > 0:
            corr[i, i] = 1.0

    intervals = {nm: {lev: _interval(theta[i], se[i], scales[i], bl[i], Z[lev]) for lev in LEVELS}
                 for i, nm in enumerate(names)}
    at_bound: dict[str, str] = {}
    for i, (lo, hi) in enumerate(bl):
        tol = 1e-6 * max(abs(theta[i]), 1e-12)
        if lo is not None and theta[i] <= lo + tol:
            at_bound[names[i]] = "lower"
        elif hi is not None and theta[i] >= hi - tol:
            at_bound[names[i]] = "upper"

    taken = {nm for nm in names if not nm.startswith("x0.")}
    null_dirs = []
    for k in range(d.null_rel.shape[1]):
        v = d.null_rel[:, k] * rf          # back to transformed coordinates
        v = v / np.linalg.norm(v)
        big = np.argmax(np.abs(v))
        if v[big] < 0:
            v = -v
        null_dirs.append({names[i]: round(float(v[i]), 6) for i in range(n) if abs(v[i]) > NULL_COMPONENT})

    identifiable: dict[str, bool] = {}
    reasons: dict[str, str] = {}
    notes: dict[str, str] = {}
    for i, nm in enumerate(names):
        moved_by = [s for s in active if s.moves(nm)]
        why = []
        if moved_by:
            why.append("exact symmetry: " + "; ".join(s.description for s in moved_by))
        elif in_null[i]:
            k = int(np.argmax(np.abs(d.null_rel[i, :])))
            v = d.null_rel[:, k]
            partners = sorted((j for j in range(n) if j != i and abs(v[j]) > 0.05), key=lambda j: -abs(v[j]))[:4]
            with_ = ", ".join(f"{names[j]} ({v[j] / v[i]:+.2g})" for j in partners)
            why.append(f"flat direction (eigenvalue {d.null_eig[k]:.2g})" + (f": moves with {with_}" if with_ else
                                                                             ": no effect on the observables"))
        elif rel[i] > rel_se_max:
            why.append(f"relative SE {_pct(rel[i])} > {_pct(rel_se_max)}")
            row = np.where(np.arange(n) == i, 0.0, np.nan_to_num(np.abs(corr[i]), nan=0.0))
            j = int(np.argmax(row))
            if row[j] > corr_reason:
                why.append(f"correlated with {_display(names[j], taken)} (rho={corr[i, j]:+.3f})")
        if why:
            identifiable[nm] = False
            reasons[nm] = "; ".join(why)
        else:
            identifiable[nm] = True
        if nm in at_bound:
            msg = f"at the {at_bound[nm]} bound: the Wald interval is one-sided there; check the profile"
            if why:
                reasons[nm] += f"; {msg}"
            else:
                notes[nm] = msg

    combos = [f"{c} (exact invariant)" for c in invariant_combinations(active, names, taken=taken)]
    combos += _eigen_combinations(d, names, scales, identifiable, rel_se_max, taken)

    return FisherResult(names=names, theta=theta, scales=scales, se_transformed=se, rel_se=rel,
                        intervals=intervals, identifiable=identifiable, reasons=reasons,
                        null_directions=null_dirs, combinations=combos, eigenvalues=np.sort(d.eig_all),
                        correlation=corr, covariance=cov_t, se_natural=se_nat, s2=s2,
                        se_transformed_scaled=se * math.sqrt(s2) if np.isfinite(s2) else None,
                        rank=int(d.det_vecs.shape[1]), n_obs=int(n_obs), loss=float(loss),
                        at_bound=at_bound, symmetries=active, notes=notes)


def _pct(x: float) -> str:
    if not np.isfinite(x):
        return "inf"
    return f"{100 * x:.3g}%"


def _eigen_combinations(d: _Decomp, names: list[str], scales: list[str], identifiable: dict[str, bool],
                        rel_se_max: float, taken: set[str], min_comp: float = 0.1,
                        max_terms: int = 5) -> list[str]:
    """Well-determined eigen-directions that involve non-identifiable parameters, as monomials
    (log-scale parameters) or linear combinations."""
    out = []
    order = np.argsort(-d.det_eig)
    for k in order:
        lam = d.det_eig[k]
        se_dir = 1.0 / math.sqrt(lam)
        if se_dir > rel_se_max:
            continue
        v = d.det_vecs[:, k]
        sig = [i for i in range(len(names)) if abs(v[i]) >= min_comp * np.max(np.abs(v))]
        if len(sig) < 2 or len(sig) > max_terms or all(identifiable[names[i]] for i in sig):
            continue
        lead = max(sig, key=lambda i: abs(v[i]))
        w = v / v[lead]
        se_lead = se_dir / abs(v[lead])
        if all(scales[i] == "log" for i in sig):
            terms = [f"{_display(names[i], taken)}^{w[i]:.2g}" for i in sorted(sig, key=lambda i: -abs(w[i]))]
            out.append(" * ".join(terms) + f" (relative SE {_pct(se_lead)})")
        else:
            terms = [f"{w[i]:+.3g}*{'log ' if scales[i] == 'log' else ''}{_display(names[i], taken)}"
                     for i in sorted(sig, key=lambda i: -abs(w[i]))]
            out.append(" ".join(terms) + f" (relative coordinates; SE {se_lead:.3g})")
    return out


# ====================================================================================================
# Profile likelihood
# ====================================================================================================

@dataclass
class Profile:
    name: str
    index: int
    scale: str
    theta_hat: float                  # natural
    loss_hat: float
    values: np.ndarray                # natural values of the profiled parameter, sorted ascending
    values_transformed: np.ndarray
    losses: np.ndarray
    q: np.ndarray                     # 2 * (loss - loss_hat)
    thetas: list[np.ndarray]          # re-optimised full vectors (transformed space), same order
    intervals: dict[str, list[float | None]]   # {"0.95": [lo, hi], "0.99": [lo, hi]}; None = open side
    flat: dict[str, bool]             # {"lower": ..., "upper": ...}: stayed below the 99% threshold
    stop: dict[str, str]              # why each side stopped ("threshold", "bound", "max steps", "error: ...")
    better: tuple[float, np.ndarray] | None = None   # a lower loss found while profiling (loss, theta)
    evaluations: int = 0

    @property
    def identifiable(self) -> bool:
        """Both sides of the 95% likelihood interval closed."""
        lo, hi = self.intervals["0.95"]
        return lo is not None and hi is not None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "values": [float(v) for v in self.values], "q": [float(v) for v in self.q],
                "intervals": self.intervals, "flat": self.flat, "stop": self.stop,
                "better_loss": None if self.better is None else float(self.better[0])}


def profile_likelihood(objective: Callable[[int, float, np.ndarray], tuple[float, np.ndarray]],
                       theta_hat: np.ndarray, index: int, *, names: Sequence[str], scales: Sequence[str],
                       bounds: Any = None, n_points: int = 15, threshold: float | None = None,
                       progress: bool = False, loss_hat: float | None = None, step: float | None = None,
                       max_span: float | None = None, max_evals: int | None = None,
                       refine: int = 2) -> Profile:
    """Profile likelihood of parameter ``index``.

    objective(index, value_transformed, start_transformed) -> (loss, theta_opt_transformed) re-optimises
    all other parameters with parameter ``index`` fixed at ``value_transformed``, starting from
    ``start_transformed``. **All vectors passed to and returned by objective are in the transformed
    space** (log for log-scale parameters); ``theta_hat`` and ``bounds`` are natural-space values.
    ``loss`` is the negative log-likelihood (1/2 sum r^2), so 2*(loss - loss_hat) ~ chi2(1).

    Walks both ways from the optimum with adaptive steps (about n_points/2 per side) until
    2*(loss - loss_hat) exceeds ``threshold`` (default chi2(1, 0.99) = 6.63), a bound is hit, the walk
    exceeds ``max_span`` (default 25 in log / 1e3*max(|theta|, 1) linear) or ``max_evals`` per side;
    a last step that overshoots the threshold (> 1.5x) is bisected up to ``refine`` times. The side's
    previous re-optimised vector is the start of each evaluation (warm start). Interval ends
    interpolate sqrt(2*(loss - loss_hat)) linearly (exact for a quadratic profile); a side
    that never crosses a level is None ("flat profile").
    """
    names = list(names)
    scales = list(scales)
    theta_hat = np.asarray(theta_hat, dtype=float)
    zhat = np.array([_to_transformed(v, s) for v, s in zip(theta_hat, scales, strict=True)])
    scale = scales[index]
    bl = _bounds_list(bounds, names)[index]
    zlo = _to_transformed(bl[0], scale) if bl[0] is not None and (scale != "log" or bl[0] > 0) else -math.inf
    zhi = _to_transformed(bl[1], scale) if bl[1] is not None else math.inf
    thr = CHI2_1["0.99"] if threshold is None else float(threshold)
    z0 = float(zhat[index])
    if max_span is None:
        max_span = 25.0 if scale == "log" else 1e3 * max(abs(z0), 1.0)
    n_side = max(3, n_points // 2)
    if max_evals is None:
        max_evals = 4 * n_side + 10
    if step is None:
        step = 0.1 if scale == "log" else 0.1 * max(abs(z0), 1e-3)
    evals = 0
    if loss_hat is None:
        loss_hat, th = objective(index, z0, zhat.copy())
        evals += 1
        zhat = np.asarray(th, dtype=float)
    loss_hat = float(loss_hat)
    better: tuple[float, np.ndarray] | None = None
    best_loss = loss_hat
    pts: list[tuple[float, float, np.ndarray]] = [(z0, loss_hat, zhat.copy())]
    stop: dict[str, str] = {}
    flat: dict[str, bool] = {}
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=2 * n_side, desc=f"profile {names[index]}", leave=False)
        except Exception:  # pragma: no cover
            bar = None
    target = thr / (n_side - 1)
    for side, sign in (("lower", -1.0), ("upper", 1.0)):
        h = step
        z = z0
        start = zhat.copy()
        q_prev = 0.0
        side_max_q = 0.0
        why = "max steps"
        for _ in range(max_evals):
            znew = z + sign * h
            hit = False
            if sign < 0 and znew <= zlo:
                znew, hit = zlo, True
            if sign > 0 and znew >= zhi:
                znew, hit = zhi, True
            if abs(znew - z0) > max_span:
                why = "max span"
                break
            try:
                L, th = objective(index, float(znew), start)
            except Exception as exc:   # solver failure: stop this side, keep what we have
                why = f"error: {exc}"
                break
            evals += 1
            if bar is not None:
                bar.update(1)
            th = np.asarray(th, dtype=float)
            if not np.isfinite(L):
                why = "error: non-finite loss"
                break
            pts.append((float(znew), float(L), th.copy()))
            if L < best_loss - 1e-9 * max(1.0, abs(best_loss)):
                best_loss = float(L)
                better = (float(L), th.copy())
            q = 2.0 * (L - loss_hat)
            side_max_q = max(side_max_q, q)
            z, start = znew, th
            if q >= thr:
                why = "threshold"
                break
            if hit:
                why = "bound"
                break
            dq = q - q_prev
            if dq < 0.25 * target:
                h *= 2.0 if dq < 0.05 * target else 1.5
            elif dq > 2.0 * target:
                h *= 0.5
            q_prev = q
        # an overshooting last step: bisect (at most `refine` times) to place the 99% end more precisely
        if why == "threshold" and len(pts) >= 2:
            side_pts = [p for p in pts if sign * (p[0] - z0) >= 0]
            side_pts.sort(key=lambda p: sign * (p[0] - z0))
            below, above = side_pts[-2], side_pts[-1]
            for _ in range(refine):
                if 2.0 * (above[1] - loss_hat) <= 1.5 * thr:
                    break
                zm = 0.5 * (below[0] + above[0])
                try:
                    L, th = objective(index, float(zm), below[2])
                except Exception:
                    break
                evals += 1
                if not np.isfinite(L):
                    break
                th = np.asarray(th, dtype=float)
                pts.append((float(zm), float(L), th.copy()))
                if L < best_loss - 1e-9 * max(1.0, abs(best_loss)):
                    best_loss, better = float(L), (float(L), th.copy())
                if 2.0 * (L - loss_hat) >= thr:
                    above = pts[-1]
                else:
                    below = pts[-1]
        stop[side] = why
        flat[side] = side_max_q < thr
    if bar is not None:
        bar.close()
    pts.sort(key=lambda p: p[0])
    zs = np.array([p[0] for p in pts])
    Ls = np.array([p[1] for p in pts])
    qs = 2.0 * (Ls - loss_hat)
    intervals: dict[str, list[float | None]] = {}
    i0 = int(np.argmin(np.abs(zs - z0)))
    for lev in LEVELS:
        c = CHI2_1[lev]
        lo = _crossing(zs, qs, i0, -1, c)
        hi = _crossing(zs, qs, i0, +1, c)
        intervals[lev] = [None if lo is None else _to_natural(lo, scale),
                          None if hi is None else _to_natural(hi, scale)]
    return Profile(name=names[index], index=index, scale=scale, theta_hat=float(theta_hat[index]),
                   loss_hat=loss_hat, values=np.array([_to_natural(z, scale) for z in zs]),
                   values_transformed=zs, losses=Ls, q=qs, thetas=[p[2] for p in pts], intervals=intervals,
                   flat=flat, stop=stop, better=better, evaluations=evals)


def _crossing(zs: np.ndarray, qs: np.ndarray, i0: int, direction: int, level: float) -> float | None:
    """First z from the centre where q crosses ``level`` (interpolating sqrt(q) linearly)."""
    i = i0
    while 0 <= i + direction < len(zs):
        j = i + direction
        if qs[j] >= level:
            a, b = math.sqrt(max(qs[i], 0.0)), math.sqrt(qs[j])
            r = math.sqrt(level)
            w = 1.0 if b == a else min(max((r - a) / (b - a), 0.0), 1.0)
            return float(zs[i] + w * (zs[j] - zs[i]))
        i = j
    return None


# ====================================================================================================
# Report
# ====================================================================================================

def _g(v: float | None, digits: int = 3) -> str:
    if v is None:
        return "—"
    if not np.isfinite(v):
        return "inf"
    return f"{v:.{digits}g}"


def _ival(iv: Sequence[float | None]) -> str:
    lo, hi = iv
    return f"[{'open' if lo is None else _g(lo)}, {'open' if hi is None else _g(hi)}]"


def render_markdown(fisher: FisherResult, symmetries: Sequence[Symmetry] | None = None,
                    profiles: Sequence[Profile] | None = None, *, spec: Spec | None = None,
                    state_ranges: Mapping[str, tuple[float, float]] | None = None,
                    heading: str = "##") -> str:
    """A report.md section: parameter table (value, SE, 95% interval, identifiable, reason), exact
    symmetries, identifiable combinations, profiles and what to measure next.

    spec / state_ranges (state -> (min, max) of the fitted trajectory) enable the kinetic hints
    (inhibition constants far above, or saturation constants far from, the metabolite levels)."""
    syms = list(symmetries) if symmetries is not None else list(fisher.symmetries)
    taken = {n for n in fisher.names if not n.startswith("x0.")}
    prof = {p.name: p for p in (profiles or [])}
    L: list[str] = [f"{heading} Identifiability", ""]
    n_id = sum(fisher.identifiable.values())
    L.append(f"{n_id} of {len(fisher.names)} estimated quantities are identifiable from these data "
             f"(finite standard error, relative SE within the limit, not moved by an exact symmetry). "
             f"Fisher information rank {fisher.rank} of {len(fisher.names)}; residual variance factor "
             f"s² = {_g(fisher.s2)} (≈ 1 when the noise model is right).")
    L.append("")
    head = "| parameter | value | SE (transformed) | rel. SE | 95% interval | 99% interval |"
    sep = "|---|---|---|---|---|---|"
    if prof:
        head += " profile 95% |"
        sep += "---|"
    head += " identifiable | reason |"
    sep += "---|---|"
    L += [head, sep]
    for i, nm in enumerate(fisher.names):
        sc = " (log)" if fisher.scales[i] == "log" else ""
        row = (f"| {_display(nm, taken)} | {_g(fisher.theta[i], 4)} | {_g(fisher.se_transformed[i])}{sc} | "
               f"{_pct(fisher.rel_se[i])} | {_ival(fisher.intervals[nm]['0.95'])} | "
               f"{_ival(fisher.intervals[nm]['0.99'])} |")
        if prof:
            row += f" {_ival(prof[nm].intervals['0.95']) if nm in prof else ''} |"
        reason = fisher.reasons.get(nm, fisher.notes.get(nm, ""))
        row += f" {'yes' if fisher.identifiable[nm] else '**no**'} | {reason.replace('|', '/')} |"
        L.append(row)
    L.append("")
    if syms:
        L += [f"{heading}# Exact symmetries", "",
              "Each transformation below (any l > 0) changes the parameters and hidden initial states but "
              "leaves every observable trajectory exactly unchanged, so no amount of such data can "
              "determine the quantities it moves:", ""]
        for s in syms:
            inv = ", ".join(s.invariants)
            L.append(f"- {s.description}" + (f" — invariants: {inv}" if inv else "") +
                     ("" if s.verified == "symbolic" else " (verified numerically)"))
        L.append("")
    if fisher.null_directions:
        extra = [v for v in fisher.null_directions
                 if not any(all(s.moves(k) for k in v) for s in syms)]
        if extra:
            L += [f"{heading}# Flat directions of the Fisher information", ""]
            for v in extra:
                L.append("- " + ", ".join(f"{_display(k, taken)} {c:+.3f}" for k, c in v.items()))
            L.append("")
    if fisher.combinations:
        L += [f"{heading}# Identifiable combinations", ""]
        L += [f"- {c}" for c in fisher.combinations]
        L.append("")
    if prof:
        flat = [p.name for p in prof.values() if p.intervals["0.95"][0] is None or p.intervals["0.95"][1] is None]
        if flat:
            L.append("Flat profiles (the likelihood stays within the 95% threshold up to a bound or "
                     "indefinitely on a side): " + ", ".join(_display(n, taken) for n in flat) + ".")
            L.append("")
        better = [p for p in prof.values() if p.better is not None]
        if better:
            L.append("Profiling found a lower objective than the reported optimum for: " +
                     ", ".join(p.name for p in better) + " — the fit had not fully converged.")
            L.append("")
    L += [f"{heading}# What to measure next", ""]
    L += [f"- {s}" for s in _advice(fisher, syms, spec, state_ranges, taken)]
    L.append("")
    return "\n".join(L)


def _advice(fisher: FisherResult, syms: Sequence[Symmetry], spec: Spec | None,
            ranges: Mapping[str, tuple[float, float]] | None, taken: set[str]) -> list[str]:
    out: list[str] = []
    for s in syms:
        params = [_display(n, taken) for n in s.exponents if not n.startswith("x0.")]
        for st in s.states:
            out.append(f"Measure {st} (at least once, in absolute units) to fix the symmetry "
                       f"{s.description}: it determines " + ", ".join(params) + ".")
    value = dict(zip(fisher.names, fisher.theta, strict=True))
    if spec is not None:
        for e in spec.interactions:
            src = e.source
            lvl = ranges.get(src) if (ranges and src) else None
            if e.kind == "inhibition":
                for role in ("I", "Ki"):
                    ref = e.params.get(role)
                    if isinstance(ref, str) and ref in value and not fisher.identifiable.get(ref, True) and lvl:
                        hi = max(lvl)
                        if value[ref] > 10 * hi:
                            out.append(f"{ref} = {_g(value[ref])} is far above the level of {src} (at most "
                                       f"{_g(hi)}): the inhibition factor 1/(1 + {src}/{ref}) stays near 1, so the "
                                       f"data bound {ref} at most from below and its profile is flat upwards; only "
                                       f"higher {src} levels (pulses of {src}, conditions that favour its "
                                       f"production) would reveal it.")
            if e.kind == "uptake":
                ref = e.params.get("K")
                if isinstance(ref, str) and ref in value and not fisher.identifiable.get(ref, True) and lvl:
                    lo, hi = min(lvl), max(lvl)
                    if value[ref] > 10 * hi:
                        out.append(f"{ref} = {_g(value[ref])} is far above the level of {src} (at most {_g(hi)}): "
                                   f"uptake is in its linear range, only the ratio mu/{ref} is determined.")
                    elif value[ref] < 0.1 * max(lo, 1e-300):
                        out.append(f"{ref} = {_g(value[ref])} is far below the level of {src} (at least {_g(lo)}): "
                                   f"uptake is saturated; {ref} shows only when {src} is depleted.")
    weak = [n for n in fisher.names if not fisher.identifiable[n] and not any(s.moves(n) for s in syms)]
    if weak:
        out.append("Poorly determined without a symmetry (" + ", ".join(_display(n, taken) for n in weak) +
                   "): the data carry too little information near this operating point. Excite the dynamics "
                   "— step changes or slow oscillations of the dilution rate D(t) (periods comparable to "
                   "1/D and to the satellite's growth time), a washout-and-recovery, or substrate pulses — "
                   "and measure the hidden states (metabolites, satellite) where possible.")
    if not out:
        out.append("Every estimated quantity is determined by these data.")
    return out
