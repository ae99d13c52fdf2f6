"""The identifiability section of a report (markdown): parameter table, exact symmetries, flat
directions, identifiable combinations, profiles, and what to measure next."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from symode.identifiability.fisher import FisherResult, percent
from symode.identifiability.profiles import Profile
from symode.spec import Spec
from symode.symbolic.symmetries import Symmetry, display_name


def _g(v: float | None, digits: int = 3) -> str:
    if v is None:
        return "—"
    if not np.isfinite(v):
        return "inf"
    return f"{v:.{digits}g}"


def _ival(iv: Sequence[float | None]) -> str:
    lo, hi = iv
    return f"[{'open' if lo is None else _g(lo)}, {'open' if hi is None else _g(hi)}]"


def render_markdown(fisher: FisherResult, symmetries: Sequence[Symmetry] | None = None,
                    profiles: Sequence[Profile] | None = None, *, spec: Spec | None = None,
                    state_ranges: Mapping[str, tuple[float, float]] | None = None,
                    heading: str = "##") -> str:
    """A report.md section: parameter table (value, SE, 95% interval, identifiable, reason), exact
    symmetries, identifiable combinations, profiles and what to measure next.

    spec / state_ranges (state -> (min, max) of the fitted trajectory) enable the kinetic hints
    (inhibition constants far above, or saturation constants far from, the metabolite levels)."""
    syms = list(symmetries) if symmetries is not None else list(fisher.symmetries)
    taken = {n for n in fisher.names if not n.startswith("x0.")}
    prof = {p.name: p for p in (profiles or [])}
    L: list[str] = [f"{heading} Identifiability", ""]
    n_id = sum(fisher.identifiable.values())
    L.append(f"{n_id} of {len(fisher.names)} estimated quantities are identifiable from these data "
             f"(finite standard error, relative SE within the limit, not moved by an exact symmetry). "
             f"Fisher information rank {fisher.rank} of {len(fisher.names)}; residual variance factor "
             f"s² = {_g(fisher.s2)} (≈ 1 when the noise model is right).")
    L.append("")
    head = "| parameter | value | SE (transformed) | rel. SE | 95% interval | 99% interval |"
    sep = "|---|---|---|---|---|---|"
    if prof:
        head += " profile 95% |"
        sep += "---|"
    head += " identifiable | reason |"
    sep += "---|---|"
    L += [head, sep]
    for i, nm in enumerate(fisher.names):
        sc = " (log)" if fisher.scales[i] == "log" else ""
        row = (f"| {display_name(nm, taken)} | {_g(fisher.theta[i], 4)} | {_g(fisher.se_transformed[i])}{sc} | "
               f"{percent(fisher.rel_se[i])} | {_ival(fisher.intervals[nm]['0.95'])} | "
               f"{_ival(fisher.intervals[nm]['0.99'])} |")
        if prof:
            row += f" {_ival(prof[nm].intervals['0.95']) if nm in prof else ''} |"
        reason = fisher.reasons.get(nm, fisher.notes.get(nm, ""))
        row += f" {'yes' if fisher.identifiable[nm] else '**no**'} | {reason.replace('|', '/')} |"
        L.append(row)
    L.append("")
    if syms:
        L += [f"{heading}# Exact symmetries", "",
              "Each transformation below (any l > 0) changes the parameters and hidden initial states but "
              "leaves every observable trajectory exactly unchanged, so no amount of such data can "
              "determine the quantities it moves:", ""]
        for s in syms:
            inv = ", ".join(s.invariants)
            L.append(f"- {s.description}" + (f" — invariants: {inv}" if inv else "") +
                     ("" if s.verified == "symbolic" else " (verified numerically)"))
        L.append("")
    if fisher.null_directions:
        extra = [v for v in fisher.null_directions
                 if not any(all(s.moves(k) for k in v) for s in syms)]
        if extra:
            L += [f"{heading}# Flat directions of the Fisher information", ""]
            for v in extra:
                L.append("- " + ", ".join(f"{display_name(k, taken)} {c:+.3f}" for k, c in v.items()))
            L.append("")
    if fisher.combinations:
        L += [f"{heading}# Identifiable combinations", ""]
        L += [f"- {c}" for c in fisher.combinations]
        L.append("")
    if prof:
        flat = [p.name for p in prof.values() if p.intervals["0.95"][0] is None or p.intervals["0.95"][1] is None]
        if flat:
            L.append("Flat profiles (the likelihood stays within the 95% threshold up to a bound or "
                     "indefinitely on a side): " + ", ".join(display_name(n, taken) for n in flat) + ".")
            L.append("")
        better = [p for p in prof.values() if p.better is not None]
        if better:
            L.append("Profiling found a lower objective than the reported optimum for: " +
                     ", ".join(p.name for p in better) + " — the fit had not fully converged.")
            L.append("")
    L += [f"{heading}# What to measure next", ""]
    L += [f"- {s}" for s in _advice(fisher, syms, spec, state_ranges, taken)]
    L.append("")
    return "\n".join(L)


def _advice(fisher: FisherResult, syms: Sequence[Symmetry], spec: Spec | None,
            ranges: Mapping[str, tuple[float, float]] | None, taken: set[str]) -> list[str]:
    out: list[str] = []
    for s in syms:
        params = [display_name(n, taken) for n in s.exponents if not n.startswith("x0.")]
        for st in s.states:
            out.append(f"Measure {st} (at least once, in absolute units) to fix the symmetry "
                       f"{s.description}: it determines " + ", ".join(params) + ".")
    value = dict(zip(fisher.names, fisher.theta, strict=True))
    if spec is not None:
        for e in spec.interactions:
            src = e.source
            lvl = ranges.get(src) if (ranges and src) else None
            if e.kind == "inhibition":
                for role in ("I", "Ki"):
                    ref = e.params.get(role)
                    if isinstance(ref, str) and ref in value and not fisher.identifiable.get(ref, True) and lvl:
                        hi = max(lvl)
                        if value[ref] > 10 * hi:
                            out.append(f"{ref} = {_g(value[ref])} is far above the level of {src} (at most "
                                       f"{_g(hi)}): the inhibition factor 1/(1 + {src}/{ref}) stays near 1, so the "
                                       f"data bound {ref} at most from below and its profile is flat upwards; only "
                                       f"higher {src} levels (pulses of {src}, conditions that favour its "
                                       f"production) would reveal it.")
            if e.kind == "uptake":
                ref = e.params.get("K")
                if isinstance(ref, str) and ref in value and not fisher.identifiable.get(ref, True) and lvl:
                    lo, hi = min(lvl), max(lvl)
                    if value[ref] > 10 * hi:
                        out.append(f"{ref} = {_g(value[ref])} is far above the level of {src} (at most {_g(hi)}): "
                                   f"uptake is in its linear range, only the ratio mu/{ref} is determined.")
                    elif value[ref] < 0.1 * max(lo, 1e-300):
                        out.append(f"{ref} = {_g(value[ref])} is far below the level of {src} (at least {_g(lo)}): "
                                   f"uptake is saturated; {ref} shows only when {src} is depleted.")
    weak = [n for n in fisher.names if not fisher.identifiable[n] and not any(s.moves(n) for s in syms)]
    if weak:
        out.append("Poorly determined without a symmetry (" + ", ".join(display_name(n, taken) for n in weak) +
                   "): the data carry too little information near this operating point. Excite the dynamics "
                   "— step changes or slow oscillations of the dilution rate D(t) (periods comparable to "
                   "1/D and to the satellite's growth time), a washout-and-recovery, or substrate pulses — "
                   "and measure the hidden states (metabolites, satellite) where possible.")
    if not out:
        out.append("Every estimated quantity is determined by these data.")
    return out
