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
for linear ones) so that the rank decision does not depend on units; for log parameters the two agree."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symode.spec.schema import Spec
from symode.symbolic.symmetries import Symmetry, display_name, invariant_combinations, symmetry_directions

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


def relative_generators(W: np.ndarray, theta: np.ndarray, scales: Sequence[str]) -> np.ndarray:
    """Symmetry generators (d log theta) in relative coordinates (d theta / |theta| for linear ones)."""
    sign = np.array([1.0 if s == "log" or t >= 0 else -1.0 for t, s in zip(theta, scales, strict=True)])
    return W * sign[:, None]


def relative_factors(theta: np.ndarray, scales: Sequence[str]) -> np.ndarray:
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
    rf = relative_factors(theta, scales)
    W = symmetry_directions(symmetries or [], names)
    d = _decompose(np.asarray(J, dtype=float) * rf, relative_generators(W, theta, scales), rcond, abs_floor)
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
    rf = relative_factors(theta, scales)
    d = _decompose(J * rf, relative_generators(W, theta, scales), rcond, abs_floor)

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
                why.append(f"correlated with {display_name(names[j], taken)} (rho={corr[i, j]:+.3f})")
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
            terms = [f"{display_name(names[i], taken)}^{w[i]:.2g}" for i in sorted(sig, key=lambda i: -abs(w[i]))]
            out.append(" * ".join(terms) + f" (relative SE {_pct(se_lead)})")
        else:
            terms = [f"{w[i]:+.3g}*{'log ' if scales[i] == 'log' else ''}{display_name(names[i], taken)}"
                     for i in sorted(sig, key=lambda i: -abs(w[i]))]
            out.append(" ".join(terms) + f" (relative coordinates; SE {se_lead:.3g})")
    return out


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
        row = (f"| {display_name(nm, taken)} | {_g(fisher.theta[i], 4)} | {_g(fisher.se_transformed[i])}{sc} | "
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
                L.append("- " + ", ".join(f"{display_name(k, taken)} {c:+.3f}" for k, c in v.items()))
            L.append("")
    if fisher.combinations:
        L += [f"{heading}# Identifiable combinations", ""]
        L += [f"- {c}" for c in fisher.combinations]
        L.append("")
    if prof:
        flat = [p.name for p in prof.values() if p.intervals["0.95"][0] is None or p.intervals["0.95"][1] is None]
        if flat:
            L.append("Flat profiles (the likelihood stays within the 95% threshold up to a bound or "
                     "indefinitely on a side): " + ", ".join(display_name(n, taken) for n in flat) + ".")
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
        params = [display_name(n, taken) for n in s.exponents if not n.startswith("x0.")]
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
        out.append("Poorly determined without a symmetry (" + ", ".join(display_name(n, taken) for n in weak) +
                   "): the data carry too little information near this operating point. Excite the dynamics "
                   "— step changes or slow oscillations of the dilution rate D(t) (periods comparable to "
                   "1/D and to the satellite's growth time), a washout-and-recovery, or substrate pulses — "
                   "and measure the hidden states (metabolites, satellite) where possible.")
    if not out:
        out.append("Every estimated quantity is determined by these data.")
    return out
