"""The unknowns of hybrid training: a model's estimated parameters (network weights included) and initial
states, in the transformed space of :mod:`symode.optim.transform` (log for log-scale parameters and
positive initial states, linear for weights and other parameters)."""

from __future__ import annotations

from typing import Any

import numpy as np

from symode.optim.transform import Transform, parameter_scale, state_scale
from symode.spec import Spec


class Unknowns:
    """z = (estimated parameters, then estimated initial states), transformed, with their bounds.

    ``p_idx`` / ``x_idx``: positions of the unknowns in the model's parameter / state vectors; ``npz``:
    the number of parameter unknowns; ``lo``, ``hi``: z-bounds (+-inf where open); ``bounds``: the same
    for scipy (None where open)."""

    def __init__(self, model: Any, estimate_x0: bool = True) -> None:
        spec = model.spec
        self.model = model
        self.p0 = model.parameter_vector()
        self.x00 = model.x0_vector()
        self.p_idx: list[int] = []
        self.x_idx: list[int] = []
        self.names: list[str] = []
        scales: list[str] = []
        lower: list[float | None] = []
        upper: list[float | None] = []
        for j, name in enumerate(model.parameters):
            par = spec.parameters[name]
            if not par.estimate:
                continue
            self.p_idx.append(j)
            self.names.append(name)
            scales.append(parameter_scale(par.scale, par.value))
            lower.append(par.lower)
            upper.append(par.upper)
        for i, name in enumerate(model.states):
            st = spec.states[name]
            if not (estimate_x0 and st.estimate):
                continue
            self.x_idx.append(i)
            self.names.append(f"x0.{name}")
            scales.append(state_scale(st.x0, st.lower))
            lower.append(st.lower)
            upper.append(st.upper)
        self.transform = Transform(self.names, scales, lower, upper)
        self.logmask = self.transform.log
        self.lo, self.hi = self.transform.lb, self.transform.ub
        self.bounds = self.transform.scipy_bounds()
        self.npz = len(self.p_idx)

    def z0(self) -> np.ndarray:
        """z at the model's values, inside the bounds."""
        theta = np.concatenate([self.p0[self.p_idx], self.x00[self.x_idx]])
        return self.transform.clip(self.transform.to_z(theta))

    def theta(self, z: np.ndarray) -> np.ndarray:
        """Natural values at z (exp on log coordinates)."""
        return self.transform.to_theta(z)

    def vectors(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(parameter vector, initial-state vector) of the model at z."""
        th = self.theta(z)
        p, x0 = self.p0.copy(), self.x00.copy()
        p[self.p_idx] = th[: self.npz]
        x0[self.x_idx] = th[self.npz:]
        return p, x0

    def chain(self, z: np.ndarray, grad_x0: np.ndarray, grad_p: np.ndarray) -> np.ndarray:
        """dL/dz from dL/dx0 and dL/dp (chain rule through the transform)."""
        g = np.concatenate([grad_p[self.p_idx], grad_x0[self.x_idx]])
        return g * self.transform.dtheta_dz(z)

    def spec_at(self, z: np.ndarray) -> Spec:
        """The model's spec with the values at z."""
        p, x0 = self.vectors(z)
        m = self.model
        return m.spec.with_values({n: float(p[j]) for j, n in enumerate(m.parameters) if j in set(self.p_idx)},
                                  {n: float(x0[i]) for i, n in enumerate(m.states) if i in set(self.x_idx)})
