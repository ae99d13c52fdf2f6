"""Optimal experiment design: what to measure and how to drive the dilution rate D(t).

A *design* is an experiment (:mod:`~symode.design.experiment`): its length, the initial state, the
designed input (the reactor's dilution rate) as a piecewise-constant profile, and the measured
quantities with their noise models and sampling intervals. Its value is judged by the Fisher
information of the unknowns at nominal values (:mod:`~symode.design.problem`: criteria D, A, E and
target on the subspace free of persistent symmetries). :mod:`~symode.design.optimise` searches the
admissible designs, :mod:`~symode.design.robustness` re-evaluates one at parameter samples,
:mod:`~symode.design.explain` says why parameters stay undetermined, :mod:`~symode.design.run` is the
whole ``symode design`` computation. Files and plots: :mod:`symode.report.design`,
:mod:`symode.viz.design`.

Conventions in ``design.json``: an infinite (undetermined) relative standard error is written as
``null``.
"""

from symode.design.experiment import (
    Constraints,
    Design,
    Measurement,
    base_measurements,
    design_from_data,
    design_from_json,
    parse_budget,
)
from symode.design.explain import undetermined_explanations
from symode.design.nominal import check_nominal, load_nominal
from symode.design.optimise import (
    FAILED_SCORE,
    DesignResult,
    measurement_options,
    no_information_message,
    optimise_design,
    option_label,
    piecewise_design,
    project_levels,
    random_baseline,
    random_design_levels,
    structured_starts,
)
from symode.design.problem import (
    CRITERIA,
    FLOOR_DT,
    GOOD_REL_SE,
    METHODS,
    PRIOR_SE,
    DesignProblem,
    Evaluation,
    failed_criteria,
)
from symode.design.robustness import Robustness, intervals_spread, robustness
from symode.design.run import DesignRun, run_design
from symode.design.synthetic import simulate_design_data

__all__ = [
    "CRITERIA", "FAILED_SCORE", "FLOOR_DT", "GOOD_REL_SE", "METHODS", "PRIOR_SE", "Constraints", "Design",
    "DesignProblem", "DesignResult", "DesignRun", "Evaluation", "Measurement", "Robustness",
    "base_measurements", "check_nominal", "design_from_data", "design_from_json", "failed_criteria",
    "intervals_spread", "load_nominal", "measurement_options", "no_information_message", "optimise_design",
    "option_label", "parse_budget", "piecewise_design", "project_levels", "random_baseline",
    "random_design_levels", "robustness", "run_design", "simulate_design_data", "structured_starts",
    "undetermined_explanations",
]
