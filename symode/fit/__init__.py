"""Parameter estimation: weighted least squares with exact sensitivities, multiple shooting, multi-start
and an honest identifiability analysis at the optimum.

Modules, in the order a fit uses them: :mod:`~symode.fit.problem` (FitProblem: unknowns, residuals,
Jacobians, gauge), :mod:`~symode.fit.shooting` (multiple shooting), :mod:`~symode.fit.local` (local
fits: LM / TRF / L-BFGS-B), :mod:`~symode.fit.multistart`, :mod:`~symode.fit.uncertainty` (Fisher,
profile checks), :mod:`~symode.fit.result` (FitResult), :mod:`~symode.fit.neural` (specs with neural
terms) and :mod:`~symode.fit.api` (:func:`fit`, the entry point)."""

from symode.fit.api import as_datasets, as_model, fit, provisional_result
from symode.fit.local import FitInterrupted, Progress, Tracker, local_fit
from symode.fit.problem import FAIL_RESIDUAL, FitProblem, Unknown, check_data, find_symmetries
from symode.fit.result import CHI2_1_99, REL_SE_MAX, FitResult
from symode.fit.shooting import MultipleShooting

__all__ = [
    "CHI2_1_99", "FAIL_RESIDUAL", "REL_SE_MAX", "FitInterrupted", "FitProblem", "FitResult", "MultipleShooting",
    "Progress", "Tracker", "Unknown", "as_datasets", "as_model", "check_data", "find_symmetries", "fit",
    "local_fit", "provisional_result",
]
