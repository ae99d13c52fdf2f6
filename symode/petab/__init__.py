"""PEtab (v1) problems and SBML models in symode: import, the PEtab log-likelihood and its gradient,
fitting (docs/petab.md). Needs the optional dependencies ``petab`` and ``python-libsbml``.

- :func:`import_sbml` — an SBML model as sympy expressions and a :class:`~symode.spec.Spec`;
- :func:`load_petab` — a PEtab problem (tables, the imported model, parameter mappings);
- :class:`PetabObjective` — llh, chi2, simulations and gradients of a problem (compiled model);
- :func:`fit_petab` — multistart fit;
- :func:`symode.petab.export.export_petab` — a symode spec and its data as a PEtab problem.
"""

from symode.petab.fit import fit_petab
from symode.petab.fit_result import PetabFitResult
from symode.petab.objective import Evaluation, PetabObjective
from symode.petab.problem import PetabError, PetabProblem, load_petab
from symode.petab.sbml import ImportedModel, import_sbml
from symode.petab.sbml_math import UnsupportedSBML
from symode.petab.simulate import SolverOptions

__all__ = ["Evaluation", "ImportedModel", "PetabError", "PetabFitResult", "PetabObjective", "PetabProblem",
           "SolverOptions", "UnsupportedSBML", "fit_petab", "import_sbml", "load_petab"]
