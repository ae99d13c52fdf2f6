"""Optimisers and sampling that depend on numpy/scipy only: the transform of unknowns between natural
values and the optimiser's log/linear coordinates, a bounded Levenberg-Marquardt with geodesic
acceleration, and seeded Latin-hypercube starts."""

from symode.optim.lm import LMResult, levenberg_marquardt
from symode.optim.sampling import latin_hypercube
from symode.optim.transform import Transform, parameter_scale, state_scale, to_natural, to_transformed

__all__ = ["LMResult", "Transform", "latin_hypercube", "levenberg_marquardt", "parameter_scale", "state_scale",
           "to_natural", "to_transformed"]
