"""Simulation: integrate a built model over sample times with known inputs.

Inputs are piecewise constant between samples by default (interval [t_i, t_i+1) uses the value at t_i)
or linear when the spec says so. The compiled integrator restarts at every sample time, so input jumps
are handled exactly. Methods: ``"auto"`` (Dormand-Prince 5(4) that switches to the Rosenbrock method
Rodas4 when it detects stiffness), ``"explicit"`` or ``"stiff"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from symode.errors import SolverError, SymodeError
from symode.io import atomic_write_text
from symode.solve.model import Model
from symode.spec.data import Dataset, input_matrix

DEFAULT_RTOL = 1e-8
DEFAULT_ATOL = 1e-10


@dataclass
class Trajectory:
    """Simulated states at the sample times."""

    times: np.ndarray
    x: np.ndarray                      # (nt, nx)
    states: list[str]
    time_column: str = "time"
    stats: dict[str, Any] = field(default_factory=dict)
    observables: dict[str, np.ndarray] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self.states:
            return self.x[:, self.states.index(name)]
        return self.observables[name]

    def to_csv_text(self) -> str:
        lines = [",".join([self.time_column, *self.states])]
        for t, row in zip(self.times, self.x, strict=True):
            lines.append(",".join([_fmt(t), *(_fmt(v) for v in row)]))
        return "\n".join(lines) + "\n"

    def to_csv(self, path: str | Path) -> None:
        """Write time + states as CSV, atomically."""
        atomic_write_text(path, self.to_csv_text())


def _fmt(v: float) -> str:
    return repr(float(v)) if np.isfinite(v) else ""


def interval_inputs(model: Model, times: np.ndarray, values: dict[str, np.ndarray]) -> np.ndarray:
    """Per-interval input vectors U (nt-1, nU): values at interval starts, then slopes and start times
    when some inputs are linear (see :mod:`symode.codegen`)."""
    layout = model.layout
    nt = len(times)
    n = max(nt - 1, 0)
    U = np.zeros((n, layout.nu_interval))
    for k, name in enumerate(layout.inputs):
        U[:, k] = np.asarray(values[name], dtype=np.float64)[:n]
    if layout.linear_inputs:
        dt = np.diff(times)
        for j, name in enumerate(layout.linear_inputs):
            v = np.asarray(values[name], dtype=np.float64)
            U[:, len(layout.inputs) + j] = np.diff(v) / dt
        U[:, -1] = times[:-1]
    return U


def simulate(model: Model, times: np.ndarray | None = None, *, data: Dataset | None = None,
             inputs: dict[str, np.ndarray | float] | None = None, params: dict[str, float] | None = None,
             x0: dict[str, float] | None = None, method: str = "auto", rtol: float = DEFAULT_RTOL,
             atol: float = DEFAULT_ATOL, max_steps: int = 0, observables: bool = True) -> Trajectory:
    """Simulate ``model`` and return the states at ``times`` (default: the data's sample times).

    inputs: name -> value per time (or a constant); missing inputs come from ``data`` columns, then
    from the spec's defaults. params / x0 override the spec's values by name.
    """
    if method not in ("auto", "explicit", "stiff"):
        raise SymodeError(f"unknown method {method!r} (auto, explicit, stiff)", field="method")
    if times is None:
        if data is None:
            raise SymodeError("give sample times or a data set")
        times = data.times
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or len(times) < 1 or not np.all(np.isfinite(times)):
        raise SymodeError("times must be a non-empty 1-D array of finite numbers", field="times")
    if np.any(np.diff(times) <= 0):
        raise SymodeError("times must increase strictly", field="times")
    inputs = dict(inputs or {})
    unknown = [k for k in inputs if k not in model.inputs]
    if unknown:
        raise SymodeError(f"unknown input(s) {', '.join(unknown)}", field="inputs")
    from_data = data if data is not None and np.array_equal(data.times, times) else None
    values = input_matrix(model.spec, from_data, times, skip=set(inputs))
    for name, v in inputs.items():
        arr = np.full(len(times), float(v)) if np.ndim(v) == 0 else np.asarray(v, dtype=np.float64)
        if arr.shape != times.shape:
            raise SymodeError(f"input {name!r} has {arr.size} values for {len(times)} times", field=name)
        if not np.all(np.isfinite(arr[:-1])):
            raise SymodeError(f"input {name!r} has NaN values", field=name)
        values[name] = arr
    U = interval_inputs(model, times, values)
    p = model.parameter_vector(params)
    x0v = model.x0_vector(x0)
    res = model.backend.integrate(times, x0v, p, U, rtol=rtol, atol=atol, method=method, max_steps=max_steps)
    if res.status != 0:
        i = res.stats.get("fail_interval", -1)
        where = f" in interval [{times[i]:g}, {times[i + 1]:g}]" if 0 <= i < len(times) - 1 else ""
        hint = " (try method='stiff' or check the parameter values)" if method != "stiff" else ""
        raise SolverError(f"ODE solver failed{where} at t={res.stats.get('fail_t', float('nan')):g}: "
                          f"{res.message}{hint}")
    traj = Trajectory(times=times, x=res.x, states=list(model.states),
                      time_column=data.time_column if data is not None else "time", stats=res.stats)
    if observables and model.observables:
        traj.observables = observe(model, traj, p, U)
    return traj


def observe(model: Model, traj: Trajectory, p: np.ndarray, U: np.ndarray) -> dict[str, np.ndarray]:
    """Observable values h(t, x, p, u) along a trajectory (sample i uses the inputs of interval i)."""
    ys = model.backend.observe(traj.times, traj.x, p, U)
    return {name: ys[:, k] for k, name in enumerate(model.observables)}
