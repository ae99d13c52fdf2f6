"""Profile likelihoods: likelihood-based intervals by re-optimising all other unknowns along one.

For the negative log-likelihood loss = 1/2 sum r^2, q(v) = 2 (min_{others} loss(v, .) - loss_hat) is
asymptotically chi2(1): the 95% / 99% interval is where q stays below 3.84 / 6.63. A side that never
crosses a level is open (None): a flat profile, the quantity is not identifiable there. A side cut short by
a time budget (:class:`symode.timing.TimeLimit` from the objective; stop reason "time limit") is
*undecided*, not open: :attr:`Profile.decided` says whether the profile settles identifiability."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from symode.identifiability.fisher import CHI2_1, LEVELS, bounds_list
from symode.optim.transform import to_natural, to_transformed
from symode.progress import progress_bar
from symode.timing import TimeLimit


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

    @property
    def cut_short(self) -> list[str]:
        """The sides ("lower", "upper") a time budget stopped before they reached a decision."""
        return [side for side in ("lower", "upper") if self.stop.get(side) == "time limit"]

    @property
    def decided(self) -> bool:
        """Every side either crossed the 95% level or ended for a reason other than the time limit (so an
        open side is really flat, not just unfinished)."""
        ends = dict(zip(("lower", "upper"), self.intervals["0.95"], strict=True))
        return all(ends[side] is not None for side in self.cut_short)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "values": [float(v) for v in self.values], "q": [float(v) for v in self.q],
                "intervals": self.intervals, "flat": self.flat, "stop": self.stop, "decided": self.decided,
                "better_loss": None if self.better is None else float(self.better[0])}


def profile_likelihood(objective: Callable[[int, float, np.ndarray], tuple[float, np.ndarray]],
                       theta_hat: np.ndarray, index: int, *, names: Sequence[str], scales: Sequence[str],
                       bounds: Any = None, n_points: int = 15, threshold: float | None = None,
                       progress: bool = False, loss_hat: float | None = None, step: float | None = None,
                       max_span: float | None = None, max_evals: int | None = None,
                       refine: int = 2, sides: Sequence[str] = ("lower", "upper"),
                       trace: np.ndarray | None = None,
                       start_loss: Callable[[np.ndarray], float] | None = None,
                       covered: dict[str, Sequence[float | None]] | None = None) -> Profile:
    """Profile likelihood of parameter ``index``.

    objective(index, value_transformed, start_transformed) -> (loss, theta_opt_transformed) re-optimises
    all other parameters with parameter ``index`` fixed at ``value_transformed``, starting from
    ``start_transformed``. **All vectors passed to and returned by objective are in the transformed
    space** (log for log-scale parameters); ``theta_hat`` and ``bounds`` are natural-space values.
    ``loss`` is the negative log-likelihood (1/2 sum r^2), so 2*(loss - loss_hat) ~ chi2(1).

    Walks both ways from the optimum with adaptive steps (about n_points/2 per side) until
    2*(loss - loss_hat) exceeds ``threshold`` (default chi2(1, 0.99) = 6.63), a bound is hit, the walk
    exceeds ``max_span`` (default 25 in log / 1e3*max(|theta|, 1) linear) or ``max_evals`` per side;
    a last step that overshoots the threshold (> 1.5x) is bisected up to ``refine`` times, unless the
    interpolated crossings of both levels lie inside ``covered`` ({level: [lo, hi]} natural values, None
    open, e.g. the Wald intervals a caller unites the profile's with): there a more precise end cannot
    change the united interval, and the side is closed either way.

    Warm starts (:func:`predicted_start`): each evaluation starts from the side's re-optimised vectors
    extrapolated to the new value (the secant through the last two; from the optimum, along ``trace``,
    the profile path dz/dz_index of the quadratic approximation, e.g. Sigma[:, index] / Sigma[index, index]
    of the Fisher covariance, if given), clipped to the bounds. With ``start_loss`` (the loss at a start,
    cheaper than a re-optimisation) the better of that start and the previous vector is used. Interval ends
    interpolate sqrt(2*(loss - loss_hat)) linearly (exact for a quadratic profile); a side
    that never crosses a level is None ("flat profile"). ``sides``: walk only these (e.g. one side per
    process; :func:`merge_sides` joins the halves).
    """
    names = list(names)
    scales = list(scales)
    theta_hat = np.asarray(theta_hat, dtype=float)
    zhat = np.array([to_transformed(v, s) for v, s in zip(theta_hat, scales, strict=True)])
    scale = scales[index]
    bl = bounds_list(bounds, names)[index]
    zlo = to_transformed(bl[0], scale) if bl[0] is not None and (scale != "log" or bl[0] > 0) else -math.inf
    zhi = to_transformed(bl[1], scale) if bl[1] is not None else math.inf
    thr = CHI2_1["0.99"] if threshold is None else float(threshold)
    z0 = float(zhat[index])
    zbox = np.array([[to_transformed(lo, sc) if lo is not None and (sc != "log" or lo > 0) else -math.inf,
                      to_transformed(hi, sc) if hi is not None else math.inf]
                     for (lo, hi), sc in zip(bounds_list(bounds, names), scales, strict=True)])
    path = None if trace is None else np.asarray(trace, dtype=float)

    def start_at(znew: float, walk: list[tuple[float, np.ndarray]]) -> np.ndarray:
        guess = predicted_start(znew, walk, index, path, zbox)
        if start_loss is None or np.array_equal(guess, walk[-1][1]):
            return guess
        prev = walk[-1][1].copy()
        prev[index] = znew
        try:
            return guess if start_loss(guess) <= start_loss(prev) else walk[-1][1]
        except TimeLimit:
            raise
        except Exception:
            return walk[-1][1]

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
    bar = progress_bar(total=2 * n_side, desc=f"profile {names[index]}", enabled=progress)
    target = thr / (n_side - 1)
    for side, sign in (("lower", -1.0), ("upper", 1.0)):
        if side not in sides:
            continue
        h = step
        z = z0
        walk: list[tuple[float, np.ndarray]] = [(z0, zhat.copy())]    # this side's points, in walking order
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
                L, th = objective(index, float(znew), start_at(float(znew), walk))
            except TimeLimit:          # out of time: this side is unfinished (undecided)
                why = "time limit"
                break
            except Exception as exc:   # solver failure: stop this side, keep what we have
                why = f"error: {exc}"
                break
            evals += 1
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
            z = znew
            walk.append((float(znew), th.copy()))
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
                if 2.0 * (above[1] - loss_hat) <= 1.5 * thr or _inside(side_pts, loss_hat, z0, sign, covered, scale):
                    break
                zm = 0.5 * (below[0] + above[0])
                try:
                    L, th = objective(index, float(zm), start_at(float(zm), [(below[0], below[2]),
                                                                              (above[0], above[2])][::-1]))
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
                side_pts = sorted([*side_pts, pts[-1]], key=lambda p: sign * (p[0] - z0))
        stop[side] = why
        flat[side] = side_max_q < thr and why != "time limit"
    bar.close()
    return _assemble(pts, names[index], index, scale, float(theta_hat[index]), loss_hat, z0, stop, flat, better,
                     evals)


def _inside(side_pts: list[tuple[float, float, np.ndarray]], loss_hat: float, z0: float, sign: float,
            covered: dict[str, Sequence[float | None]] | None, scale: str) -> bool:
    """Whether this side's interpolated crossings of every level lie within ``covered`` (natural values)."""
    if not covered:
        return False
    zs = np.array([z0] + [p[0] for p in side_pts])
    qs = np.array([0.0] + [2.0 * (p[1] - loss_hat) for p in side_pts])
    for lev in LEVELS:
        iv = covered.get(lev)
        if iv is None:
            return False
        end = iv[0] if sign < 0 else iv[1]
        if end is None:                    # an open side covers every crossing
            continue
        if scale == "log" and end <= 0:
            return False
        c = _crossing(zs, qs, 0, 1, CHI2_1[lev])
        if c is None or sign * (c - to_transformed(end, scale)) > 0:
            return False
    return True


def predicted_start(znew: float, walk: Sequence[tuple[float, np.ndarray]], index: int,
                    trace: np.ndarray | None = None, box: np.ndarray | None = None) -> np.ndarray:
    """Start of the re-optimisation at ``znew`` from the re-optimised points ``walk`` [(z_index, z), ...]
    (in walking order, the last one nearest): the secant through the last two extrapolated (or, with one
    point, its move along ``trace``; else the point itself), component ``index`` set to ``znew``, clipped
    to ``box`` (n x 2 transformed bounds)."""
    zl, thl = walk[-1]
    start = np.array(thl, dtype=float)
    if len(walk) >= 2 and walk[-2][0] != zl:
        zp, thp = walk[-2]
        start = start + (start - np.asarray(thp, dtype=float)) * ((znew - zl) / (zl - zp))
    elif trace is not None and np.all(np.isfinite(trace)):
        start = start + trace * (znew - zl)
    start[index] = znew
    if box is not None:
        start = np.clip(start, box[:, 0], box[:, 1])
    return start if np.all(np.isfinite(start)) else np.array(thl, dtype=float)


def merge_sides(a: Profile, b: Profile) -> Profile:
    """One profile from two walks of the same parameter from the same optimum (e.g. its lower and upper
    side computed in different processes)."""
    pts = {float(z): (float(z), float(L), np.asarray(th)) for z, L, th in
           zip(a.values_transformed, a.losses, a.thetas, strict=True)}
    for z, L, th in zip(b.values_transformed, b.losses, b.thetas, strict=True):
        pts.setdefault(float(z), (float(z), float(L), np.asarray(th)))
    better = min((x for x in (a.better, b.better) if x is not None), key=lambda x: x[0], default=None)
    z0 = to_transformed(a.theta_hat, a.scale)
    return _assemble(list(pts.values()), a.name, a.index, a.scale, a.theta_hat, a.loss_hat, z0,
                     {**a.stop, **b.stop}, {**a.flat, **b.flat}, better, a.evaluations + b.evaluations)


def _assemble(pts: list[tuple[float, float, np.ndarray]], name: str, index: int, scale: str, theta_hat: float,
              loss_hat: float, z0: float, stop: dict[str, str], flat: dict[str, bool],
              better: tuple[float, np.ndarray] | None, evals: int) -> Profile:
    """A Profile from its evaluated points (z, loss, re-optimised vector): sorted, q, interval ends."""
    pts = sorted(pts, key=lambda p: p[0])
    zs = np.array([p[0] for p in pts])
    Ls = np.array([p[1] for p in pts])
    qs = 2.0 * (Ls - loss_hat)
    intervals: dict[str, list[float | None]] = {}
    i0 = int(np.argmin(np.abs(zs - z0)))
    for lev in LEVELS:
        c = CHI2_1[lev]
        lo = _crossing(zs, qs, i0, -1, c)
        hi = _crossing(zs, qs, i0, +1, c)
        intervals[lev] = [None if lo is None else to_natural(lo, scale),
                          None if hi is None else to_natural(hi, scale)]
    return Profile(name=name, index=index, scale=scale, theta_hat=theta_hat,
                   loss_hat=loss_hat, values=np.array([to_natural(z, scale) for z in zs]),
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
