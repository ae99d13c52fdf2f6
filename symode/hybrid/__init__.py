"""Hybrid mechanistic/neural models: training (:func:`train`), warm starts (:func:`warm_start`,
:func:`balanced_rates`), the robust hybrid fit (:func:`fit_hybrid`) and the symbolic replacement of a
trained network (:func:`propose_replacement`).

A spec's ``neural:`` list declares MLPs (docs/spec-format.md, "neural") whose outputs stand for rates;
the network algebra is in :mod:`symode.symbolic.mlp`, so every gradient method works unchanged and the
weights are ordinary (linear-scale) spec parameters ``<id>__W<l>_<i>_<j>`` and ``<id>__b<l>_<i>``."""

from symode.hybrid.fit import HYBRID_HORIZONS, HYBRID_TIME_LIMIT, MECH_SHARE, default_starts, fit_hybrid
from symode.hybrid.lsq import SOLVER, STIFF_SOLVER, stiff_here
from symode.hybrid.replacement import propose_replacement
from symode.hybrid.training import TrainResult, l2_penalty, train, write_training
from symode.hybrid.unknowns import Unknowns
from symode.hybrid.warmstart import balanced_rates, warm_start
from symode.parallel.threads import blas_threads

__all__ = [
    "HYBRID_HORIZONS", "HYBRID_TIME_LIMIT", "MECH_SHARE", "SOLVER", "STIFF_SOLVER", "TrainResult", "Unknowns",
    "balanced_rates", "blas_threads", "default_starts", "fit_hybrid", "l2_penalty", "propose_replacement",
    "stiff_here", "train", "warm_start", "write_training",
]
