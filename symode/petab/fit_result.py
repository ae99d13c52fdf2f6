"""The results of a PEtab fit (:func:`symode.petab.fit.fit_petab`): every start's outcome, the best
optimum with its Fisher analysis, their JSON form (``fit.json``) and the Markdown report."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from symode.identifiability import FisherResult


@dataclass
class StartResult:
    """One local optimisation."""

    start: list[float]          # z at the start (scaled)
    z: list[float]              # z at the end
    llh: float
    converged: bool
    iterations: int
    message: str
    time_s: float
    error: str | None = None
    cpu_s: float = 0.0          # CPU time of the start's process (wall time on a loaded machine is larger)
    log_prior: float = 0.0      # the log-prior at z (0 when the fit ignores priors)

    @property
    def objective(self) -> float:
        """What the fit maximised: llh, plus the log-prior with priors."""
        return self.llh + self.log_prior


@dataclass
class PetabFitResult:
    """The best optimum of a multistart fit and every start's outcome."""

    problem: str
    parameter_ids: list[str]                 # estimated, in parameter-table order
    scales: list[str]
    z: np.ndarray                            # best point on the parameter scales
    parameters: dict[str, float]             # best point, linear scale
    llh: float
    chi2: float
    starts: list[StartResult]
    method: str
    wall_time_s: float
    fisher: FisherResult | None = None
    n_measurements: int = 0
    warnings: list[str] = field(default_factory=list)
    log_prior: float | None = None           # at the best point, when the fit maximised the posterior

    @property
    def objective(self) -> float:
        """What the fit maximised at the best point: the llh, or the unnormalised log-posterior."""
        return self.llh + (self.log_prior or 0.0)

    def n_reaching(self, value: float, tol: float = 0.0) -> int:
        """How many starts ended with an objective (the llh without priors) >= ``value - tol``."""
        return sum(1 for s in self.starts if s.error is None and s.objective >= value - tol)

    def to_json(self) -> dict[str, Any]:
        def num(v: float) -> float | None:
            return float(v) if math.isfinite(v) else None

        doc: dict[str, Any] = {
            "problem": self.problem, "method": self.method, "llh": num(self.llh), "chi2": num(self.chi2),
            "n_measurements": self.n_measurements, "wall_time_s": self.wall_time_s,
            "objective": "likelihood" if self.log_prior is None else "posterior",
            "parameters": {k: {"value": v, "scale": s, "scaled": float(z)}
                           for (k, v), s, z in zip(self.parameters.items(), self.scales, self.z, strict=True)},
            "starts": [{"llh": num(s.llh), "converged": s.converged, "iterations": s.iterations,
                        "message": s.message, "time_s": s.time_s, "cpu_s": s.cpu_s, "start": s.start, "end": s.z,
                        **({"error": s.error} if s.error else {})} for s in self.starts],
            "n_starts": len(self.starts),
            "n_within_0.1_of_best": self.n_reaching(self.objective, 0.1),
        }
        if self.log_prior is not None:
            doc["log_prior"] = num(self.log_prior)
            doc["unnorm_log_posterior"] = num(self.llh + self.log_prior)
            for d, s in zip(doc["starts"], self.starts, strict=True):
                d["log_prior"] = num(s.log_prior)
        if self.fisher is not None:
            doc["identifiability"] = self.fisher.to_dict()
        if self.warnings:
            doc["warnings"] = list(self.warnings)
        return doc


def render_report(res: PetabFitResult) -> str:
    """A short Markdown report: the best optimum, the starts (waterfall) and the Fisher analysis."""
    prior = ([f"- maximised: the unnormalised log-posterior **{res.llh + res.log_prior:.6f}** (log-prior "
              f"{res.log_prior:.6f})"] if res.log_prior is not None else [])
    lines = [f"# Fit of {Path(res.problem).name}", "", *prior,
             f"- best llh: **{res.llh:.6f}** (chi2 {res.chi2:.6g}, {res.n_measurements} measurements)",
             f"- starts: {len(res.starts)} ({res.method}); within 0.1 of the best: "
             f"{res.n_reaching(res.objective, 0.1)}; failed: {sum(s.error is not None for s in res.starts)}",
             f"- wall time: {res.wall_time_s:.1f} s", "", "## Parameters", "",
             "| parameter | value | scale | 95% interval | identifiable |", "|---|---|---|---|---|"]
    fisher = res.fisher
    for pid, scale in zip(res.parameter_ids, res.scales, strict=True):
        iv = fisher.intervals[pid]["0.95"] if fisher is not None else [None, None]
        ident = ("yes" if fisher.identifiable[pid] else f"no ({fisher.reasons.get(pid, '')})") if fisher else "?"
        lo, hi = (f"{v:.4g}" if v is not None else "open" for v in iv)
        lines.append(f"| {pid} | {res.parameters[pid]:.6g} | {scale} | [{lo}, {hi}] | {ident} |")
    lines += ["", f"## Starts (sorted by {'log-posterior' if prior else 'llh'})", "",
              "| llh | converged | iterations | time (s) | message |", "|---|---|---|---|---|"]
    for s in sorted(res.starts, key=lambda s: -s.objective if math.isfinite(s.objective) else math.inf):
        lines.append(f"| {s.llh:.6f} | {s.converged} | {s.iterations} | {s.time_s:.1f} | {s.error or s.message} |")
    return "\n".join(lines) + "\n"
