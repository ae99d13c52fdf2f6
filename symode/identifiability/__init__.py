"""Identifiability: Fisher information (standard errors, Wald intervals, null directions, combinations),
profile likelihoods, and their markdown rendering. Exact scaling symmetries come from
:mod:`symode.symbolic.symmetries` (re-exported here)."""

from symode.identifiability.fisher import (
    CHI2_1,
    LEVELS,
    RCOND,
    FisherResult,
    Z,
    bounds_list,
    cramer_rao,
    fisher_analysis,
    log_jacobian,
    relative_factors,
    relative_generators,
)
from symode.identifiability.profiles import Profile, predicted_start, profile_likelihood
from symode.identifiability.render import render_markdown
from symode.symbolic.symmetries import Symmetry, invariant_combinations, scaling_symmetries, symmetry_directions

__all__ = [
    "CHI2_1",
    "LEVELS",
    "RCOND",
    "FisherResult",
    "Profile",
    "Symmetry",
    "Z",
    "bounds_list",
    "cramer_rao",
    "fisher_analysis",
    "invariant_combinations",
    "log_jacobian",
    "predicted_start",
    "profile_likelihood",
    "relative_factors",
    "relative_generators",
    "render_markdown",
    "scaling_symmetries",
    "symmetry_directions",
]
