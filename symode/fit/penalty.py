"""Penalties (priors) of a fit as extra least-squares residuals, so Levenberg-Marquardt and the exact
Jacobian keep working: for every penalised unknown k with q = (theta_k - center) / scale_k,

- ridge (Gaussian prior):            r = q                               (1/2 r^2 = q^2 / 2)
- l1 (Laplace prior, smoothed at 0): r = sign(q) sqrt(2 (sqrt(q^2 + d^2) - d))  (1/2 r^2 ~ |q|)

with d = :data:`L1_SMOOTHING`. The objective of a penalised fit is the data part plus these terms.
Penalties come from the spec's ``penalties`` section; the command line adds ``TYPE:PATTERN=SCALE``
terms (:func:`parse_penalty_option`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from symode.errors import SymodeError
from symode.spec import Spec
from symode.spec.schema import Penalty
from symode.spec.validate_penalties import make_penalty

#: Smoothing of the l1 penalty's kink (in units of the scale).
L1_SMOOTHING = 1e-2


class PenaltyTerms:
    """The penalty residuals of the unknowns ``names`` (penalised parameters that are fixed are left out)."""

    def __init__(self, penalties: Sequence[Penalty], names: Sequence[str]) -> None:
        pos = {n: k for k, n in enumerate(names)}
        idx, inv, ctr, l1 = [], [], [], []
        for pen in penalties:
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
        return len(self.idx)

    def rows(self, theta: np.ndarray, dtheta_dz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(residuals, d residuals / dz) at the natural values ``theta`` of all unknowns."""
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


def scaled_penalties(spec: Spec, factor: float) -> Spec:
    """A copy of ``spec`` with every penalty scale multiplied by ``factor`` (> 1: a weaker penalty)."""
    new = spec.copy()
    for pen in new.penalties:
        pen.scales = {n: s * factor for n, s in pen.scales.items()}
    return new
