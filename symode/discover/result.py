"""The result of structure discovery."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from symode.discover.candidates import Candidate
from symode.spec import Spec

__all__ = ["DiscoveryResult"]


@dataclass
class DiscoveryResult:
    """The outcome of :func:`symode.discover.discover`: kept and pruned edges, the selection path, every
    evaluated candidate and the selected model (with its final fit when asked)."""

    spec: Spec                       # the input template
    kept_edges: list[str]
    pruned_edges: list[str]
    selected: Candidate
    path: list[Candidate]            # accepted models, full template first
    evaluated: list[Candidate]
    pruned_spec: Spec                # the selected model with its fitted values
    final_fit: Any = None            # FitResult of the selected model (uncertainty analysis)
    criterion: str = "bic"
    wall_time_s: float = 0.0
    relabelling: dict[str, str] = field(default_factory=dict)   # search label -> reported label
    failed: list[dict[str, Any]] = field(default_factory=list)  # candidate fits that failed twice
    notes: list[str] = field(default_factory=list)              # fallbacks the search took
    budget_exhausted: bool = False   # the time budget stopped the search: the best model so far
    budget_s: float | None = None    # the time budget (s), None: none
    timings: dict[str, Any] = field(default_factory=dict)   # seconds per phase (:meth:`Timings.to_dict`)

    def to_json(self) -> dict[str, Any]:
        """The discovery.json document."""
        params = dict(self.final_fit.parameters) if self.final_fit is not None else dict(self.selected.parameters)
        out: dict[str, Any] = {
            "kept_edges": list(self.kept_edges),
            "pruned_edges": list(self.pruned_edges),
            "parameters": {n: float(v) for n, v in params.items()},
            "path": [{"edges": list(c.edges), "objective": c.objective, "aicc": c.aicc, "bic": c.bic}
                     for c in self.path],
            "criterion": self.criterion,
            "x0": dict(self.final_fit.x0[0]) if self.final_fit is not None else dict(self.selected.x0),
            "x0_per_file": ([dict(x) for x in self.final_fit.x0] if self.final_fit is not None
                            else [dict(x) for x in self.selected.x0s]),
            "wall_time_s": self.wall_time_s,
            "n_candidates_evaluated": len(self.evaluated),
            "satellite_relabelling": dict(self.relabelling),
            "failed": [dict(f) for f in self.failed],
            "notes": list(self.notes),
            "budget_s": self.budget_s,
            "budget_exhausted": self.budget_exhausted,
            "timings": self.timings,
        }
        if self.final_fit is not None:
            out["identifiable"] = {n: bool(v) for n, v in self.final_fit.identifiable.items()}
        return out
