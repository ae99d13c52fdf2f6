"""Vectors of a PEtab problem (a condition's model parameters or states, a measurement row's observable and
noise parameters) as functions of theta, the parameter table's values: theta entries, constants, or linear
combinations of theta entries."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Mapping:
    """Values of a vector as theta entries (index >= 0) or constants (index -1); an entry with ``linear``
    terms is value + sum of coefficient * theta[i] (a PEtab v2 condition value that is a linear expression
    of parameter-table entries)."""

    index: np.ndarray    # int (n,)
    value: np.ndarray    # float (n,)
    linear: dict[int, list[tuple[int, float]]] = field(default_factory=dict)   # entry -> [(theta index, coef)]

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        idx = self.index
        # theta[-1] at the constant entries is discarded by the mask (a theta without entries: constants only)
        out = np.where(idx >= 0, theta[idx], self.value) if len(theta) else self.value.copy()
        for row, terms in self.linear.items():
            out[row] += sum(c * theta[i] for i, c in terms)
        return out

    def jacobian(self, n_theta: int) -> np.ndarray:
        """d(values)/d theta, (n, n_theta)."""
        J = np.zeros((len(self.index), n_theta))
        rows = np.nonzero(self.index >= 0)[0]
        J[rows, self.index[rows]] = 1.0
        for row, terms in self.linear.items():
            for i, c in terms:
                J[row, i] += c
        return J

    def key(self) -> tuple:
        """A hashable value equal for two mappings exactly when they give the same values and the same
        derivatives at every theta."""
        return (self.index.tobytes(), self.value.tobytes(),
                tuple(sorted((row, tuple(terms)) for row, terms in self.linear.items())))

    def theta_indices(self) -> set[int]:
        """The theta entries the values depend on."""
        return {int(i) for i in self.index if i >= 0} | {i for terms in self.linear.values() for i, _ in terms}
