"""Structure discovery: pruning and model selection over the community graph.

:func:`discover` fits a template whose edges are prunable, removes the edges the data do not need and
selects the model by an information criterion, with a strategy object (:class:`BackwardElimination`,
:class:`ThresholdRefit`, :class:`ScreenRefit`). Modules: :mod:`~symode.discover.strategies`,
:mod:`~symode.discover.candidates` (candidate models), :mod:`~symode.discover.starts` (starting points),
:mod:`~symode.discover.worker` (one candidate fit), :mod:`~symode.discover.screen` (effect-size
screening), :mod:`~symode.discover.labels` (canonical satellite labels), :mod:`~symode.discover.search`
(cache, checkpoint, executor), :mod:`~symode.discover.moves` (the search moves), :mod:`~symode.discover.run`
(:func:`discover`), :mod:`~symode.discover.synthetic` (test cases).
Files and plots: :mod:`symode.report.discover`, :mod:`symode.viz.discover`.
"""

from symode.discover.candidates import Candidate, candidate_spec, effective_edges, n_unknowns, prunable_edges
from symode.discover.labels import relabel_candidate, rename_labels, satellite_relabelling, satellites_exchangeable
from symode.discover.moves import split_moves, swap_sets
from symode.discover.result import DiscoveryResult
from symode.discover.run import discover
from symode.discover.screen import effect_sizes, screen_sizes
from symode.discover.search import CHECKPOINT, FULL_ITER, FULL_KEEP, FULL_STARTS, RIVAL_STAGE, STALL, Search
from symode.discover.starts import cold_starts, full_starts, transplant_start
from symode.discover.strategies import BackwardElimination, ScreenRefit, ThresholdRefit, information_criteria
from symode.discover.synthetic import synthetic_case
from symode.discover.worker import fit_candidate

__all__ = [
    "CHECKPOINT", "FULL_ITER", "FULL_KEEP", "FULL_STARTS", "RIVAL_STAGE", "STALL",
    "BackwardElimination", "Candidate", "DiscoveryResult", "ScreenRefit", "Search", "ThresholdRefit",
    "candidate_spec", "cold_starts", "discover", "effect_sizes", "effective_edges", "fit_candidate", "full_starts",
    "information_criteria", "n_unknowns", "prunable_edges", "relabel_candidate", "rename_labels",
    "satellite_relabelling", "satellites_exchangeable", "screen_sizes", "split_moves", "swap_sets", "synthetic_case",
    "transplant_start",
]
