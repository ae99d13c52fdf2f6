"""``symode gradcheck``: every gradient method against central finite differences and each other.

Relative error of a gradient g against a reference r: max_k |g_k - r_k| / max_k |r_k| over the
estimated parameters and estimated initial states.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from symode.errors import SymodeError
from symode.solve.model import Model
from symode.solve.sensitivity import (
    METHODS,
    Problem,
    finite_difference_gradient,
    get_method,
    loss_and_gradient,
    time_call,
)
from symode.spec.data import Dataset

DEFAULT_METHODS = ("forward", "adjoint", "backsolve", "discrete")


def parse_window(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    try:
        a, b = (float(v) for v in text.split(":"))
    except ValueError:
        raise SymodeError(f"--window must look like T0:T1, got {text!r}", field="window") from None
    if not a < b:
        raise SymodeError(f"--window start {a} is not before its end {b}", field="window")
    return a, b


def rel_error(g: np.ndarray, ref: np.ndarray) -> float:
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    if scale == 0.0:
        return float(np.max(np.abs(g))) if g.size else 0.0
    return float(np.max(np.abs(g - ref)) / scale)


def gradcheck(model: Model, data: Dataset, *, window: tuple[float, float] | None = None,
              methods: list[str] | tuple[str, ...] | None = None, rtol: float = 1e-8,
              progress: bool = False) -> dict[str, Any]:
    """Gradients of every method (keys: estimated parameters, then ``x0.<state>`` for estimated states)."""
    problem = Problem(model, data, window=window)
    spec = model.spec
    names = list(methods or [m for m in DEFAULT_METHODS if m in METHODS])
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise SymodeError(f"unknown method(s) {', '.join(unknown)} (available: {', '.join(METHODS)})")
    est_p = [i for i, n in enumerate(model.parameters) if spec.parameters[n].estimate]
    est_x = [i for i, n in enumerate(model.states) if spec.states[n].estimate]
    keys = [model.parameters[i] for i in est_p] + [f"x0.{model.states[i]}" for i in est_x]

    def pick(full: np.ndarray) -> np.ndarray:
        nx = len(model.states)
        return np.concatenate([full[nx:][est_p], full[:nx][est_x]])

    if progress:
        print(f"finite differences: {2 * (len(model.states) + len(model.parameters))} solves at rtol 1e-12 ...")
    fd = pick(finite_difference_gradient(problem))
    atol = 1e-10
    out: dict[str, Any] = {"methods": {}, "reference": "central finite differences, rtol 1e-12",
                           "samples": len(problem.times), "observations": problem.n_observations,
                           "window": [float(problem.times[0]), float(problem.times[-1])]}
    grads: dict[str, np.ndarray] = {}
    for name in names:
        method = get_method(name)
        res = loss_and_gradient(problem, method=method, rtol=rtol, atol=atol)
        g = pick(res.gradient)
        grads[name] = g
        t = time_call(lambda method=method: loss_and_gradient(problem, method=method, rtol=rtol, atol=atol))
        out["methods"][name] = {"gradient": dict(zip(keys, map(float, g), strict=True)),
                                "rel_error_vs_fd": rel_error(g, fd), "time_ms": t * 1e3, "loss": res.loss}
    for name, g in grads.items():
        out["methods"][name]["rel_error_vs_methods"] = {other: rel_error(g, h) for other, h in grads.items()
                                                        if other != name}
    out["finite_differences"] = dict(zip(keys, map(float, fd), strict=True))
    return out


def render_table(report: dict[str, Any]) -> str:
    methods = report["methods"]
    keys = list(report["finite_differences"])
    head = ["parameter", "finite diff.", *methods]
    rows = [[k, f"{report['finite_differences'][k]:.8g}", *(f"{m['gradient'][k]:.8g}" for m in methods.values())]
            for k in keys]
    rows.append(["rel. error vs FD", "", *(f"{m['rel_error_vs_fd']:.2e}" for m in methods.values())])
    rows.append(["time per call", "", *(f"{m['time_ms']:.3f} ms" for m in methods.values())])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(head, widths, strict=True)),
             "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.append(f"({report['samples']} samples, {report['observations']} observations, window "
                 f"{report['window'][0]:g}..{report['window'][1]:g}; reference: {report['reference']})")
    return "\n".join(lines)
