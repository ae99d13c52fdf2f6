"""Fisher information at an optimum: standard errors, Wald intervals, null directions, identifiable
combinations, with a flag and a reason for every estimated quantity.

The Fisher information of weighted residuals r = (y - d) / sigma is F = J^T J (J = dr/dz, z the
transformed unknowns: log(theta) for ``scale == "log"``, theta otherwise; see :mod:`symode.optim.transform`).
The covariance is the pseudo-inverse of F without its exact null directions (a weak direction, eigenvalue
lambda, adds c^2 / lambda to the variance of a parameter with component c in it: what its profile shows in
the quadratic model); standard errors are sqrt(diag cov),
Wald intervals z_hat +- q sigma mapped back to natural space (asymmetric for log parameters).

F is analysed in *relative* coordinates (log for log parameters, theta / |theta_hat| for linear ones) so
that the rank decision does not depend on units; for log parameters the two agree. Exact scaling
symmetries (:func:`symode.symbolic.symmetries.scaling_symmetries`) are exact null directions.

Parameter names: model parameters by name, initial states as ``"x0.<state>"`` (per-experiment copies
as ``"x0.<state>[k]"`` or ``"x0.<state>@label"`` match a symmetry's ``"x0.<state>"`` exponent)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symode.optim.transform import to_natural, to_transformed
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


#: A parameter whose component in a (unit) exact null direction (symmetry, eigenvalue below the absolute
#: floor) exceeds this has an infinite standard error.
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
    covariance_determined: np.ndarray | None = None   # the same on the determined directions only
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


def bounds_list(bounds: Any, names: Sequence[str]) -> list[tuple[float | None, float | None]]:
    """Bounds aligned with ``names`` from a mapping name -> (lo, hi), a list, or None (all open)."""
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




def _interval(value: float, se: float, scale: str, bound: tuple[float | None, float | None],
              z: float) -> list[float | None]:
    """Wald interval in the transformed space mapped back and clipped to bounds (None: open side)."""
    lo_b, hi_b = bound
    if not np.isfinite(se):
        return [_fin(lo_b), _fin(hi_b)]
    zt = to_transformed(value, scale)
    lo = to_natural(zt - z * se, scale)
    hi = to_natural(zt + z * se, scale)
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
    cov_rel: np.ndarray          # covariance in relative coordinates: determined part + weak directions
    cov_det: np.ndarray          # its determined part (weak directions held: the quadratic model's profile path)
    null_rel: np.ndarray         # (n x k) orthonormal null basis in relative coordinates (exact, then weak)
    null_eig: list[float]        # eigenvalue per null vector (0 for exact symmetries)
    det_vecs: np.ndarray         # (n x r) determined eigenvectors
    det_eig: np.ndarray          # their eigenvalues
    eig_all: np.ndarray          # eigenvalues of the full Fisher matrix, ascending
    exact_comp: np.ndarray       # per parameter: largest |component| in an exact null direction
    flat_se: np.ndarray          # per parameter: relative SE from the weak directions alone (c^2 / lambda)
    weak_comp: np.ndarray        # per parameter: largest |component| in a weak direction
    n_exact: int = 0             # the first n_exact columns of null_rel are exact null directions


def _decompose(Jr: np.ndarray, W: np.ndarray, rcond: float, abs_floor: float) -> _Decomp:
    """Eigen-decomposition of F = Jr^T Jr in relative coordinates, split three ways: *exact* null directions
    (the symmetry generators ``W``, and eigenvalues <= ``abs_floor``: nothing known along them), *weak*
    directions (abs_floor < lambda <= rcond * lambda_max: the numerical null space reported as flat) and the
    determined rest. The covariance is the pseudo-inverse over the weak and determined directions: a
    parameter with component c in a weak direction gets its share c^2 / lambda, the variance a profile of
    that parameter shows in the quadratic model (the profile follows the weak direction by delta / c)."""
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
    exact_mask = lam <= abs_floor
    weak_mask = null_mask & ~exact_mask
    V = Q @ U if Q.shape[1] else np.zeros((n, 0))
    order = np.concatenate([np.flatnonzero(exact_mask), np.flatnonzero(weak_mask)]).astype(int)
    null_rel = np.hstack([Wn, V[:, order]])
    null_eig = [0.0] * Wn.shape[1] + [float(x) for x in lam[order]]
    n_exact = Wn.shape[1] + int(np.sum(exact_mask))
    det = ~null_mask
    Vd, ld = V[:, det], lam[det]
    Vw, lw = V[:, weak_mask], lam[weak_mask]
    cov_det = (Vd / ld) @ Vd.T if Vd.shape[1] else np.zeros((n, n))
    cov_weak = (Vw / lw) @ Vw.T if Vw.shape[1] else np.zeros((n, n))
    exact_comp = np.max(np.abs(null_rel[:, :n_exact]), axis=1) if n_exact else np.zeros(n)
    flat_se = np.sqrt(np.maximum(np.diag(cov_weak), 0.0))
    weak_comp = np.max(np.abs(Vw), axis=1) if Vw.shape[1] else np.zeros(n)
    return _Decomp(cov_det + cov_weak, cov_det, null_rel, null_eig, Vd, ld, eig_all, exact_comp, flat_se,
                   weak_comp, n_exact)


def undetermined(d: _Decomp, rel_se_max: float) -> np.ndarray:
    """Which parameters lie appreciably in a flat direction (their SE is reported infinite, their interval
    is their bounds): a component above :data:`NULL_COMPONENT` in an exact null direction, or one in a weak
    direction together with a relative SE from the weak directions alone (sqrt(sum_k c_k^2 / lambda_k))
    above ``rel_se_max``, the identifiability limit. Every other parameter keeps a finite SE that includes
    its weak share, so whether it is identifiable (total relative SE <= the limit) does not depend on where
    the numerical-rank cut falls. A component below :data:`NULL_COMPONENT` would have the direction move a
    thousand times as far as the parameter, beyond where the quadratic model (and the direction's
    flatness) holds: the share counts, but the parameter is not called flat."""
    return (d.exact_comp > NULL_COMPONENT) | ((d.weak_comp > NULL_COMPONENT) & (d.flat_se > rel_se_max))


def cramer_rao(J: np.ndarray, names: Sequence[str], scales: Sequence[str], theta: np.ndarray, *,
               symmetries: Sequence[Symmetry] | None = None, rcond: float = RCOND,
               abs_floor: float = ABS_FLOOR, rel_se_max: float = 0.5) -> np.ndarray:
    """Cramer-Rao relative standard errors at a point (e.g. the truth): J is the weighted residual
    Jacobian w.r.t. the transformed parameters there. inf where the parameter lies in a flat direction
    (exact symmetry, or as decided by :func:`undetermined` with ``rel_se_max``, the same rule as
    :func:`fisher_analysis`). For log-scale parameters this is the SE of log."""
    theta = np.asarray(theta, dtype=float)
    rf = relative_factors(theta, scales)
    W = symmetry_directions(symmetries or [], names)
    d = _decompose(np.asarray(J, dtype=float) * rf, relative_generators(W, theta, scales), rcond, abs_floor)
    rel = np.sqrt(np.maximum(np.diag(d.cov_rel), 0.0))
    rel[undetermined(d, rel_se_max)] = np.inf
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

    The covariance is the pseudo-inverse of the FIM without its exact null directions (symmetries and
    eigenvalues below ``abs_floor``): a weak direction (below ``rcond`` times the largest eigenvalue, reported
    as a null direction) adds c^2 / lambda to the variance of a parameter with component c in it. A
    parameter lies in a flat direction, with an infinite SE, if it has a component (> 1e-3) in an exact null
    direction, or one in a weak direction and the weak directions alone give it a relative SE above
    ``rel_se_max`` (:func:`undetermined`). 95%/99% Wald intervals are built in the transformed
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
    bl = bounds_list(bounds, names)
    syms = list(symmetries or [])
    W = symmetry_directions(syms, names)
    active = [s for k, s in enumerate(syms) if np.any(W[:, k] != 0)]
    rf = relative_factors(theta, scales)
    d = _decompose(J * rf, relative_generators(W, theta, scales), rcond, abs_floor)

    cov_t = d.cov_rel * np.outer(rf, rf)
    se = np.sqrt(np.maximum(np.diag(cov_t), 0.0))
    in_null = undetermined(d, rel_se_max)
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
            k = _flat_direction(d, i)
            v = d.null_rel[:, k]
            partners = sorted((j for j in range(n) if j != i and abs(v[j]) > 0.05), key=lambda j: -abs(v[j]))[:4]
            with_ = ", ".join(f"{names[j]} ({v[j] / v[i]:+.2g})" for j in partners)
            why.append(f"flat direction (eigenvalue {d.null_eig[k]:.2g})" + (f": moves with {with_}" if with_ else
                                                                             ": no effect on the observables"))
        elif rel[i] > rel_se_max:
            why.append(f"relative SE {percent(rel[i])} > {percent(rel_se_max)}")
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
                        correlation=corr, covariance=cov_t, covariance_determined=d.cov_det * np.outer(rf, rf),
                        se_natural=se_nat, s2=s2,
                        se_transformed_scaled=se * math.sqrt(s2) if np.isfinite(s2) else None,
                        rank=int(d.det_vecs.shape[1]), n_obs=int(n_obs), loss=float(loss),
                        at_bound=at_bound, symmetries=active, notes=notes)




def _flat_direction(d: _Decomp, i: int) -> int:
    """The null direction that makes parameter i undetermined: its largest exact component above
    :data:`NULL_COMPONENT`, else the weak direction with the largest share c^2 / lambda."""
    ex = np.abs(d.null_rel[i, :d.n_exact])
    if ex.size and ex.max() > NULL_COMPONENT:
        return int(np.argmax(ex))
    share = d.null_rel[i, d.n_exact:] ** 2 / np.maximum(d.null_eig[d.n_exact:], 1e-300)
    return d.n_exact + int(np.argmax(share))


def percent(x: float) -> str:
    """A fraction as a percentage with 3 significant digits ("inf" when not finite)."""
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
            out.append(" * ".join(terms) + f" (relative SE {percent(se_lead)})")
        else:
            terms = [f"{w[i]:+.3g}*{'log ' if scales[i] == 'log' else ''}{display_name(names[i], taken)}"
                     for i in sorted(sig, key=lambda i: -abs(w[i]))]
            out.append(" ".join(terms) + f" (relative coordinates; SE {se_lead:.3g})")
    return out
