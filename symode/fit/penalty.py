"""Penalties (priors) of a fit as extra least-squares residuals, so Levenberg-Marquardt and the exact
Jacobian keep working: for every penalised unknown k with q = (theta_k - center) / scale_k,

- ridge (Gaussian prior):            r = q                               (1/2 r^2 = q^2 / 2)
- l1 (Laplace prior, smoothed at 0): r = sign(q) sqrt(2 (sqrt(q^2 + d^2) - d))  (1/2 r^2 ~ |q|)

with d = :data:`L1_SMOOTHING`; and one row per ``stability`` term on the gLV interaction matrix A
(entries = the term's parameters at their positions, plus constant entries; missing entries 0), its
columns scaled by typical abundances c (default 1), B = A diag(c):

- stability: r = sqrt(weight) max(0, lambda_max(S) + margin),  S = (B + B^T) / 2

S negative definite (lambda_max(S) < 0) makes a positive equilibrium of the gLV model globally stable
(Volterra-Lyapunov with D = diag(1/c): diag(c)^-1 S diag(c)^-1 = (D A + A^T D)/2). With v the unit
eigenvector of lambda_max, d lambda_max / dB_ij = v_i v_j (for a simple eigenvalue), so dr/dtheta_k =
sqrt(weight) sum over k's positions (i, j) of v_i v_j c_j when the max is active.

The objective of a penalised fit is the data part plus these terms. Penalties come from the spec's
``penalties`` section; the command line adds ``TYPE:PATTERN=SCALE`` terms and ``stability[:...]``
(:func:`parse_penalty_option`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from symode.errors import SymodeError
from symode.spec import Spec
from symode.spec.schema import Penalty
from symode.spec.validate_penalties import make_penalty, make_stability_penalty

#: Smoothing of the l1 penalty's kink (in units of the scale).
L1_SMOOTHING = 1e-2


class PenaltyTerms:
    """The penalty residuals of the unknowns ``names`` (penalised parameters that are fixed are left out
    of ridge/l1 terms; a stability term takes the value of a fixed entry from ``fixed``, else 0)."""

    def __init__(self, penalties: Sequence[Penalty], names: Sequence[str],
                 fixed: Mapping[str, float] | None = None) -> None:
        pos = {n: k for k, n in enumerate(names)}
        idx, inv, ctr, l1 = [], [], [], []
        #: per stability term: (size, constant part of B, [(unknown, rows, cols, c[cols])], margin, sqrt(weight))
        self.stability: list[tuple[int, np.ndarray, list[tuple[int, np.ndarray, np.ndarray, np.ndarray]],
                                   float, float]] = []
        self.stability_names: list[str] = []
        for pen in penalties:
            if pen.kind == "stability":
                m = len(pen.states)
                c = np.array([pen.abundances.get(s, 1.0) for s in pen.states])
                A0 = np.zeros((m, m))
                for i, j, v in pen.constants:
                    A0[i, j] += v * c[j]
                free = []
                for n, cells in pen.positions.items():
                    rc = np.array(cells, dtype=int).reshape(-1, 2)
                    if n in pos:
                        free.append((pos[n], rc[:, 0], rc[:, 1], c[rc[:, 1]]))
                    else:
                        np.add.at(A0, (rc[:, 0], rc[:, 1]), float((fixed or {}).get(n, 0.0)) * c[rc[:, 1]])
                self.stability.append((m, A0, free, pen.margin, float(np.sqrt(pen.weight))))
                self.stability_names.append(pen.name)
                continue
            for n, s in pen.scales.items():
                if n in pos:
                    idx.append(pos[n])
                    inv.append(1.0 / s)
                    ctr.append(pen.center)
                    l1.append(pen.kind == "l1")
        self.idx = np.array(idx, dtype=int)
        self.inv = np.array(inv, dtype=float)
        self.center = np.array(ctr, dtype=float)
        self.l1 = np.array(l1, dtype=bool)
        self.n_unknowns = len(names)

    def __len__(self) -> int:
        return len(self.idx) + len(self.stability)

    def rows(self, theta: np.ndarray, dtheta_dz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(residuals, d residuals / dz) at the natural values ``theta`` of all unknowns: the ridge/l1
        rows, then one row per stability term."""
        r, J = self.prior_rows(theta, dtheta_dz)
        if not self.stability:
            return r, J
        rs, Js = zip(*(self.stability_row(k, theta, dtheta_dz) for k in range(len(self.stability))), strict=True)
        return np.concatenate([r, rs]), np.vstack([J, *Js])

    def matrix(self, k: int, theta: np.ndarray) -> np.ndarray:
        """The scaled interaction matrix B = A diag(c) of stability term ``k`` at ``theta``."""
        _, A0, free, _, _ = self.stability[k]
        A = A0.copy()
        for u, rows, cols, c in free:
            np.add.at(A, (rows, cols), theta[u] * c)
        return A

    def stability_row(self, k: int, theta: np.ndarray, dtheta_dz: np.ndarray) -> tuple[float, np.ndarray]:
        """The residual sqrt(weight) max(0, lambda_max(S) + margin) of stability term ``k`` and its row."""
        _, _, free, margin, sw = self.stability[k]
        A = self.matrix(k, theta)
        J = np.zeros((1, self.n_unknowns))
        if not np.all(np.isfinite(A)):
            return float("inf"), J
        w, V = np.linalg.eigh(0.5 * (A + A.T))
        excess = w[-1] + margin
        if excess <= 0:
            return 0.0, J
        v = V[:, -1]
        for u, rows, cols, c in free:
            J[0, u] += sw * float(np.sum(v[rows] * v[cols] * c)) * dtheta_dz[u]
        return sw * float(excess), J

    def lambda_max(self, theta: np.ndarray) -> list[float]:
        """lambda_max((A + A^T)/2) of every stability term at ``theta``."""
        return [float(np.linalg.eigvalsh(0.5 * (A + A.T))[-1])
                for A in (self.matrix(k, theta) for k in range(len(self.stability)))]

    def stability_summary(self, theta: np.ndarray) -> list[dict[str, float | str | bool]]:
        """Per stability term at ``theta``: its name, lambda_max of the symmetric part of the scaled
        interaction matrix, the margin asked for and whether lambda_max <= -margin holds (the penalty is
        then 0)."""
        out: list[dict[str, float | str | bool]] = []
        for name, lam, term in zip(self.stability_names, self.lambda_max(theta), self.stability, strict=True):
            margin = float(term[3])
            out.append({"name": name, "lambda_max": lam, "margin": margin, "satisfied": bool(lam <= -margin)})
        return out

    def prior_rows(self, theta: np.ndarray, dtheta_dz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ridge and l1 rows."""
        J = np.zeros((len(self.idx), self.n_unknowns))
        if not len(self.idx):
            return np.zeros(0), J
        q = (theta[self.idx] - self.center) * self.inv
        r, dq = q.copy(), np.ones_like(q)
        if self.l1.any():
            ql = q[self.l1]
            d = L1_SMOOTHING
            root = np.sqrt(ql * ql + d * d)
            h = root - d
            r[self.l1] = np.sign(ql) * np.sqrt(2.0 * h)
            small = h < 1e-14
            with np.errstate(divide="ignore", invalid="ignore"):
                slope = np.abs(ql) / (np.sqrt(2.0 * h) * root)
            dq[self.l1] = np.where(small, 1.0 / np.sqrt(d), slope)
        J[np.arange(len(self.idx)), self.idx] = dq * self.inv * dtheta_dz[self.idx]
        return r, J

    def value(self, theta: np.ndarray) -> float:
        """The penalty part of the objective, 1/2 sum r^2."""
        r, _ = self.rows(theta, np.ones(self.n_unknowns))
        return 0.5 * float(r @ r)


def parse_penalty_option(text: str, spec: Spec) -> Penalty:
    """A command-line penalty ``TYPE:PATTERN=SCALE[,PATTERN=SCALE...]`` (e.g. ``ridge:@prunable=0.1``,
    ``l1:a_*=0.05``); SymodeError with a one-line message if malformed."""
    kind, sep, rest = text.partition(":")
    if kind.strip() == "stability":
        return parse_stability_option(text, rest, spec)
    if not sep or not rest:
        raise SymodeError(f"--penalty {text!r}: expected TYPE:PATTERN=SCALE (e.g. ridge:@prunable=0.1)")
    targets: dict[str, float] = {}
    for part in rest.split(","):
        pattern, eq, value = part.partition("=")
        if not eq or not pattern.strip():
            raise SymodeError(f"--penalty {text!r}: expected PATTERN=SCALE, got {part!r}")
        try:
            targets[pattern.strip()] = float(value)
        except ValueError:
            raise SymodeError(f"--penalty {text!r}: the scale {value!r} is not a number") from None
    try:
        return make_penalty(f"{kind.strip()} (command line)", kind.strip(), targets, None, 0.0, spec.parameters,
                            spec.interactions)
    except ValueError as exc:
        raise SymodeError(f"--penalty {text!r}: {exc}") from None


def parse_stability_option(text: str, rest: str, spec: Spec) -> Penalty:
    """``stability[:ITEM,...]`` with items ``margin=M``, ``weight=W``, ``abundances=x0`` (the states'
    spec values as typical abundances; the gLV template writes them there) and parameter names/patterns
    (default: every glv strength)."""
    opts = {"margin": 0.0, "weight": 1.0}
    patterns: list[str] = []
    abundances = None
    for part in (p.strip() for p in rest.split(",")):
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq:
            patterns.append(part)
            continue
        if key.strip() == "abundances":
            if value.strip() != "x0":
                raise SymodeError(f"--penalty {text!r}: abundances=x0 is the only choice on the command line")
            abundances = {n: st.x0 for n, st in spec.states.items()}
            continue
        if key.strip() not in opts:
            raise SymodeError(f"--penalty {text!r}: unknown item {key.strip()!r} (margin=M, weight=W, "
                              f"abundances=x0 or a parameter pattern)")
        try:
            opts[key.strip()] = float(value)
        except ValueError:
            raise SymodeError(f"--penalty {text!r}: {key.strip()} {value!r} is not a number") from None
    try:
        pen = make_stability_penalty("stability (command line)", patterns or None, opts["margin"], opts["weight"],
                                     spec.parameters, spec.interactions)
        if abundances is not None:
            pen = make_stability_penalty(pen.name, patterns or None, pen.margin, pen.weight, spec.parameters,
                                         spec.interactions, {n: abundances[n] for n in pen.states})
        return pen
    except ValueError as exc:
        raise SymodeError(f"--penalty {text!r}: {exc}") from None


def scaled_penalties(spec: Spec, factor: float) -> Spec:
    """A copy of ``spec`` with every penalty scale multiplied by ``factor`` (> 1: a weaker penalty); a
    stability term is a constraint, not a prior, and stays as it is."""
    new = spec.copy()
    for pen in new.penalties:
        pen.scales = {n: s * factor for n, s in pen.scales.items()}
    return new
