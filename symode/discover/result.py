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
            "wall_time_s": self.wall_time_s,
            "n_candidates_evaluated": len(self.evaluated),
            "satellite_relabelling": dict(self.relabelling),
        }
        if self.final_fit is not None:
            out["identifiable"] = {n: bool(v) for n, v in self.final_fit.identifiable.items()}
        return out
