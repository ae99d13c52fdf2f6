"""Noise parameters computed analytically inside the fit (hierarchical optimisation, Loos et al. 2018).

An estimated parameter s that is used only as the whole noise formula of some measurements (noise
formula ``noiseParameter1_<obs>`` mapped to s in the measurement table) has, for fixed simulations, the
closed-form optimum over those rows R with a_i = g(m_i) - g(y_i):

    normal:   s^2 = mean_{i in R} a_i^2          Laplace:  s = mean_{i in R} |a_i|

(clipped to its bounds). The fit then optimises only the other parameters, on the reduced objective
max_s llh; by the envelope theorem its gradient is the partial gradient at the optimal s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from symode.petab.problem import PetabProblem


@dataclass
class NoiseGroup:
    theta_index: int
    rows: np.ndarray
    laplace: bool


def analytic_noise(problem: PetabProblem) -> list[NoiseGroup]:
    """The estimated parameters that are only ever a whole noise formula (see the module docstring)."""
    pr = problem
    other: set[int] = set()
    for cond in pr.conditions.values():
        other.update(cond.p.theta_indices())
        other.update(cond.x.theta_indices())
    obs_list = list(pr.observables.values())
    sigma_rows: dict[int, list[int]] = {}
    laplace: dict[int, set[bool]] = {}
    for r, mapping in enumerate(pr.row_phi):
        obs = obs_list[pr.row_observable[r]]
        noise = range(obs.n_observable_parameters, obs.n_observable_parameters + obs.n_noise_parameters)
        for k, i in enumerate(mapping.index):
            if i < 0:
                continue
            if k in noise and obs.sigma == obs.phi[k]:
                sigma_rows.setdefault(int(i), []).append(r)
                laplace.setdefault(int(i), set()).add(obs.distribution == "laplace")
            else:
                other.add(int(i))
    groups = []
    for i, rows in sigma_rows.items():
        if i in other or not pr.estimated[i] or len(laplace[i]) != 1:
            continue
        groups.append(NoiseGroup(i, np.array(sorted(set(rows)), dtype=int), laplace[i].pop()))
    return sorted(groups, key=lambda g: g.theta_index)


def optimal_noise(problem: PetabProblem, groups: list[NoiseGroup], a: np.ndarray) -> np.ndarray:
    """The optimal values (linear scale, within bounds) of the groups' parameters for residual numerators
    a = g(m) - g(y) per measurement row."""
    out = np.empty(len(groups))
    for k, g in enumerate(groups):
        v = float(np.mean(np.abs(a[g.rows]))) if g.laplace else float(np.sqrt(np.mean(a[g.rows] ** 2)))
        out[k] = min(max(v, problem.lower[g.theta_index]), problem.upper[g.theta_index])
    return out
