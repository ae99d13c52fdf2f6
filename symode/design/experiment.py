"""Experiments as objects: what is measured (:class:`Measurement`), how the dilution rate is driven
(:class:`Design`) and what keeps an experiment admissible (:class:`Constraints`).

A design is an experiment of length T with initial state x0, a piecewise-constant input
D(t) = d_k on [t_k, t_k+1), and measured quantities y_j sampled every h_j hours with noise
sigma_j^2 = absolute_j^2 + (relative_j * y_j)^2.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from symode.errors import DataError, SymodeError
from symode.spec import Spec

__all__ = ["Constraints", "Design", "Measurement", "base_measurements", "design_from_data", "design_from_json",
           "parse_budget"]


@dataclass
class Measurement:
    """A measured quantity: a state or a spec observable, its noise model and its sampling."""

    name: str
    every_h: float
    relative: float
    absolute: float
    times: np.ndarray | None = None     # explicit sample times (e.g. from a data set) instead of every_h

    def sample_times(self, duration: float) -> np.ndarray:
        if self.times is not None:
            t = np.asarray(self.times, dtype=float)
            return t[(t >= 0) & (t <= duration + 1e-9)]
        n = math.floor(duration / self.every_h + 1e-9)
        return np.arange(n + 1) * self.every_h

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "every_h": float(self.every_h),
                "noise": {"relative": float(self.relative), "absolute": float(self.absolute)}}


@dataclass(eq=False)
class Design:
    """One experiment: duration, x0, piecewise-constant D(t) (value d_values[k] from d_times[k] to the
    next change) and the measurements."""

    duration_h: float
    x0: dict[str, float]
    d_times: np.ndarray
    d_values: np.ndarray
    measurements: list[Measurement]
    input_name: str = "D"
    label: str = ""

    def d_at(self, t: np.ndarray) -> np.ndarray:
        """D at times t (the value of the segment containing t; right-continuous)."""
        k = np.searchsorted(self.d_times, np.asarray(t, dtype=float) + 1e-9, side="right") - 1
        return self.d_values[np.clip(k, 0, len(self.d_values) - 1)]

    @property
    def extras(self) -> list[str]:
        return [m.name for m in self.measurements]

    def to_json(self, predicted_rel_se: Mapping[str, float] | None = None) -> dict[str, Any]:
        """The design.json document (inf relative SE -> null)."""
        return {"duration_h": float(self.duration_h),
                "x0": {k: float(v) for k, v in self.x0.items()},
                "inputs": {self.input_name: {"times_h": [float(t) for t in self.d_times],
                                             "values": [float(v) for v in self.d_values]}},
                "observables": [m.to_dict() for m in self.measurements],
                "predicted_rel_se": {k: (float(v) if np.isfinite(v) else None)
                                     for k, v in (predicted_rel_se or {}).items()}}


def design_from_json(doc: Mapping[str, Any]) -> Design:
    """A Design from a design.json document."""
    try:
        (name, prof), = doc["inputs"].items()
        ms = [Measurement(o["name"], float(o["every_h"]), float(o["noise"].get("relative", 0.0)),
                          float(o["noise"].get("absolute", 0.0))) for o in doc["observables"]]
        return Design(float(doc["duration_h"]), {k: float(v) for k, v in doc["x0"].items()},
                      np.asarray(prof["times_h"], dtype=float), np.asarray(prof["values"], dtype=float), ms,
                      input_name=name)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"not a design document ({exc})") from None


def design_from_data(data: Any, spec: Spec, *, duration: float | None = None, label: str = "") -> Design:
    """The design of an existing experiment (a Dataset): its sample times per observable, its D(t)."""
    inp = spec.reactor.dilution or next(iter(spec.inputs))
    T = float(data.times[-1]) if duration is None else float(duration)
    ms = []
    for name, obs in spec.observables.items():
        col = data.columns.get(name)
        if col is None:
            continue
        t = data.times[np.isfinite(col)]
        step = float(np.median(np.diff(t))) if len(t) > 1 else T
        ms.append(Measurement(name, step, obs.noise.relative, obs.noise.absolute, times=t))
    x0 = {s: st.x0 for s, st in spec.states.items()}
    return Design(T, x0, np.asarray(data.times, dtype=float), np.asarray(data.columns[inp], dtype=float), ms,
                  input_name=inp, label=label)


@dataclass
class Constraints:
    """What keeps an experiment admissible (and the culture alive)."""

    d_min: float = 0.05
    d_max: float = 0.3
    max_step: float = 0.1          # max |D_k+1 - D_k| between consecutive segments (1/h)
    floor_fraction: float = 0.1    # main culture >= floor_fraction * its starting value, everywhere
    floor_state: str | None = None  # default: the spec's state with role "main"
    max_days: float = 30.0
    budget_n: int = 1              # at most budget_n extra measured quantities ...
    budget_h: float = 2.0          # ... every budget_h hours


def parse_budget(text: str) -> tuple[int, float]:
    """'1/2h' or '1/2' -> (1, 2.0): at most one extra measured quantity every 2 h; '0' -> none."""
    t = text.strip().lower().replace(" ", "")
    try:
        if t in ("0", "none"):
            return 0, 2.0
        n, h = t.split("/")
        n_i, h_f = int(n), float(h.rstrip("h"))
    except ValueError:
        raise SymodeError(f"budget {text!r}: expected N/H (N extra measured quantities every H hours, "
                          "e.g. 1/2h)", field="budget") from None
    if n_i < 0 or h_f <= 0:
        raise SymodeError(f"budget {text!r}: need N >= 0 and H > 0", field="budget")
    return n_i, h_f


def base_measurements(spec: Spec, every_h: float = 0.25) -> list[Measurement]:
    """The spec's observables, every ``every_h`` hours, with their noise models."""
    return [Measurement(n, every_h, o.noise.relative, o.noise.absolute) for n, o in spec.observables.items()]
