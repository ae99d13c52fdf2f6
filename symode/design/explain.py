"""Why parameters stay undetermined under every admissible design: exact symmetries no admissible
measurement breaks (structural), and kinetic reasons for relative SEs that stay large (practical)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from symode.design.problem import DesignProblem, Evaluation

__all__ = ["undetermined_explanations"]


def undetermined_explanations(problem: DesignProblem, evaluations: Sequence[Evaluation], *,
                              limit: float = 0.5) -> dict[str, str]:
    """Parameters undetermined under every admissible design, with the reason.

    Structural: moved by a symmetry that survives every admissible measurement (the report names the
    hidden state to measure). Practical: relative SE above ``limit`` in every evaluation given (the
    proposed design, the random designs and the design with *all* candidate measurements at once), with a
    kinetic reason where one applies (an inhibition or saturation constant far from any metabolite level
    reached by any of those designs)."""
    spec = problem.spec
    out: dict[str, str] = {}
    for s in problem.persistent:
        hidden = ", ".join(s.states) or "a hidden state"
        inv = ", ".join(s.invariants)
        for nm in s.exponents:
            if nm in problem.names:
                out[nm] = (f"exact symmetry {s.description}: no admissible measurement observes {hidden}, so "
                           f"every design leaves the observables unchanged along it; only {inv} are determined. "
                           f"Measuring {hidden} (in absolute units, at least once) breaks it.")
    evs = [e for e in evaluations if e.rel_se is not None and e.ok]
    if not evs:
        return out
    lvl: dict[str, float] = {}
    for e in evs:
        for i, s in enumerate(problem.model.states):
            lvl[s] = max(lvl.get(s, 0.0), float(np.max(e.x[:, i])))
    value = dict(zip(problem.names, problem.theta, strict=True))
    for i, nm in enumerate(problem.names):
        if nm in out:
            continue
        best = min(float(e.rel_se[i]) for e in evs)
        if best <= limit:
            continue
        why = (f"relative SE at least {('inf' if not np.isfinite(best) else f'{100 * best:.0f}%')} in every "
               f"design evaluated (admissible ones and, as an upper bound, every candidate measured at once)")
        for e in spec.interactions:
            src = e.source
            if not src or src not in lvl:
                continue
            if e.kind == "inhibition":
                for role in ("I", "Ki"):
                    if e.params.get(role) == nm and value[nm] > 10 * lvl[src]:
                        why += (f": {nm} = {value[nm]:.3g} is far above any reachable level of {src} (at most "
                                f"{lvl[src]:.3g}), so the inhibition factor 1/(1 + {src}/{nm}) stays above "
                                f"{1 / (1 + lvl[src] / value[nm]):.4f} and barely changes the dynamics")
            if e.kind == "uptake" and e.params.get("K") == nm:
                if value[nm] > 10 * lvl[src]:
                    why += (f": {nm} = {value[nm]:.3g} is far above any reachable level of {src} (at most "
                            f"{lvl[src]:.3g}): uptake stays in its linear range, only mu/{nm} is determined")
            if e.kind == "uptake" and e.params.get("mu") == nm and isinstance(e.params.get("K"), str):
                K = e.params["K"]
                if K in value and value[K] > 10 * lvl[src]:
                    why += (f": {src} stays far below {K} = {value[K]:.3g} (at most {lvl[src]:.3g}), so "
                            f"{nm} and {K} enter only as the ratio {nm}/{K}")
            if e.kind == "production" and e.target and e.params.get("v") == nm and e.target in lvl:
                why += f"; {e.target} stays at most {lvl[e.target]:.3g}"
        out[nm] = why
    return out
