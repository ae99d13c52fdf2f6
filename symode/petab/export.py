"""Export a symode spec and its data files as a PEtab v1 problem that other tools (AMICI, pyPESTO,
COPASI, Data2Dynamics, PEtab.jl, libRoadRunner for the SBML) read.

Files written into the output directory (atomically: built in a temporary sibling, then renamed):

``model.xml``
    SBML Level 3 Version 1: the states as species in one compartment of size 1 with rate rules
    d[x]/dt = f(t, x, p, u) from :func:`symode.symbolic.rhs.build_symbolic` (chemostat dilution and feed
    terms included, exactly as symode integrates them); parameters as constant SBML parameters; each
    input u(t) as a parameter with an assignment rule: a piecewise function of time with the data's
    values between its change points (``constant``: the value at t_i on [t_i, t_i+1); ``linear``:
    u_i + s_i (t - t_i)), mutually exclusive pieces. With several data files whose inputs differ, each
    file's profile is its own parameter ``<u>__<condition>`` and u = sum_c I_c u_c with indicator
    parameters I_c (1 in condition c, 0 elsewhere; exact). Neural terms become assignment rules (one per
    hidden unit and output).
``conditions.tsv``
    One condition per data file: the initial value of every state (a number, or a parameter
    ``init_<state>[_<condition>]`` when the spec estimates it), the indicators, and the file's start
    time when f depends on t and a file does not start at 0 (PEtab simulations start at t = 0, so each
    file's times are shifted to start there).
``observables.tsv``
    ``obs_<name>`` per spec observable: its formula, normal noise with
    sigma = sqrt(absolute^2 + (relative y)^2) at the model value y (``noise="model"``, the spec's noise
    model), or the per-measurement sigma computed at the data as symode's loss does
    (``noise="data"``: ``noiseParameter1_<id>`` with the values in the measurement table).
``measurements.tsv``
    Every finite observable value of every file (missing values skipped).
``parameters.tsv``
    Every spec parameter and initial-state parameter: ``log`` -> ``log10`` / ``lin`` scale, bounds
    (open bounds as -inf/inf, a log10 parameter's lower bound 0 as 0; an estimated parameter with an open
    bound gets an initialization prior over symode's multi-start box, or, with ``finite_bounds``, finite
    bounds), estimate flag, nominal value (the spec's, after ``--params``).
``problem.yaml``
    The PEtab problem (format version 1).

All numbers are written exactly (shortest round-trip decimal text); formulas are built from the
symbolic model by whitelist printers, never from spec text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import libsbml
import numpy as np
import sympy as sp
import yaml

from symode.errors import DataError, SpecError, SymodeError
from symode.io import atomic_directory
from symode.petab.export_math import (
    SbmlMath,
    and_node,
    difference_node,
    name_node,
    petab_formula,
    petab_number,
    piecewise_node,
    product_node,
    real_node,
    relation_node,
    sum_node,
    time_node,
)
from symode.petab.export_sbml import SbmlModel, sbml_text
from symode.spec.data import Dataset, input_matrix
from symode.spec.schema import NeuralTerm, Spec
from symode.symbolic.rhs import SymbolicModel, build_symbolic

NOISE_MODES = ("model", "data")
#: Half-width of symode's multi-start box on an open side (natural-log units on log scale), see
#: :func:`symode.optim.sampling.latin_hypercube`.
MULTISTART_HALFWIDTH = 2.0
MARKER = "# PEtab problem written by symode petab export"
FILES = {"sbml": "model.xml", "conditions": "conditions.tsv", "observables": "observables.tsv",
         "measurements": "measurements.tsv", "parameters": "parameters.tsv", "problem": "problem.yaml"}
_ACTIVATIONS = {
    "tanh": sp.tanh,
    "softplus": lambda z: sp.log(1 + sp.exp(z)),
    "sigmoid": lambda z: 1 / (1 + sp.exp(-z)),
    "relu": lambda z: sp.Max(z, 0),
    "linear": lambda z: z,
}


@dataclass
class PetabExport:
    """What :func:`export_petab` wrote."""

    directory: Path
    problem: Path
    conditions: list[str]
    observables: dict[str, str]          # spec observable -> PEtab observableId
    n_measurements: int
    estimated: list[str]                 # estimated PEtab parameter ids
    files: dict[str, str] = field(default_factory=dict)   # file name -> text


class _Ids:
    """Fresh SBML/PEtab identifiers that clash with no spec name and no other fresh id."""

    def __init__(self, taken: set[str]) -> None:
        self.taken = set(taken)

    def new(self, base: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_]", "_", base) or "x"
        if not re.match(r"[A-Za-z]", base):
            base = "x" + base
        sid, k = base, 1
        while sid in self.taken:
            k += 1
            sid = f"{base}_{k}"
        self.taken.add(sid)
        return sid


# ----------------------------------------------------------------------------------------------------
# Inputs: piecewise functions of time
# ----------------------------------------------------------------------------------------------------

def _lt(t: float) -> libsbml.ASTNode:
    return relation_node(libsbml.AST_RELATIONAL_LT, time_node(), real_node(t))


def _between(t0: float, t1: float) -> libsbml.ASTNode:
    """t0 <= time < t1."""
    return and_node(relation_node(libsbml.AST_RELATIONAL_GEQ, time_node(), real_node(t0)), _lt(t1))


def input_profile(times: np.ndarray, values: np.ndarray, interpolation: str,
                  default: float | None = None) -> libsbml.ASTNode:
    """u(t) as a libsbml AST: ``constant``: u = values[i] on [times[i], times[i+1]) (the last value is not
    used; consecutive equal values are merged); ``linear``: u = values[i] + s_i (t - times[i]) on
    [times[i], times[i+1]) with s_i = (values[i+1] - values[i]) / (times[i+1] - times[i]), values[-1] from
    the last time on. Before times[0] the first piece holds."""
    times = np.asarray(times, dtype=float)
    values = np.asarray(values, dtype=float)
    n = len(times)
    if interpolation == "linear" and n > 1 and np.any(values != values[0]):
        slopes = np.diff(values) / np.diff(times)
        pieces = []
        for i in range(n - 1):
            line = sum_node(real_node(values[i]), product_node(
                real_node(slopes[i]), difference_node(time_node(), real_node(times[i]))))
            pieces.append((line, _lt(times[1]) if i == 0 else _between(times[i], times[i + 1])))
        return piecewise_node(pieces, real_node(values[-1]))
    v = values[:-1] if n > 1 else values
    if not np.isfinite(v[0]):      # a single row: the value is never used by an ODE solver
        v = np.array([default if default is not None else 0.0])
    starts = [0] + [i for i in range(1, len(v)) if v[i] != v[i - 1]]
    if len(starts) == 1:
        return real_node(v[0])
    pieces = []
    for j, i in enumerate(starts[:-1]):
        end = times[starts[j + 1]]
        pieces.append((real_node(v[i]), _lt(end) if j == 0 else _between(times[i], end)))
    return piecewise_node(pieces, real_node(v[starts[-1]]))


# ----------------------------------------------------------------------------------------------------
# Neural terms: assignment rules per hidden unit and output
# ----------------------------------------------------------------------------------------------------

def _neural_rules(term: NeuralTerm, sym: SymbolicModel, ids: _Ids
                  ) -> tuple[list[tuple[str, sp.Expr]], dict[str, str]]:
    """(assignment rules [(id, expr)], output reference ``<id>.<output>`` -> SBML id)."""
    symbols = {s.name: s for s in [*sym.x, *sym.u, *sym.p]}
    h = [symbols[n] / sp.Float(term.input_scale.get(n, 1.0)) if n in term.input_scale else symbols[n]
         for n in term.inputs]
    layers = term.layers()
    rules: list[tuple[str, sp.Expr]] = []
    outputs: dict[str, str] = {}
    for k, (W, b) in enumerate(layers):
        last = k == len(layers) - 1
        act = _ACTIVATIONS[term.output_activation if last else term.activation]
        new = []
        for i, (row, bias) in enumerate(zip(W, b, strict=True)):
            z = sp.Add(*[symbols[w] * hj for w, hj in zip(row, h, strict=True)], symbols[bias])
            value = act(z)
            if last:
                name = term.outputs[i]
                scale = term.output_scale.get(name, 1.0)
                sid = ids.new(f"{term.id}__{name}")
                rules.append((sid, value * sp.Float(scale) if scale != 1.0 else value))
                outputs[term.ref(name)] = sid
            else:
                sid = ids.new(f"{term.id}__h{k + 1}_{i}")
                rules.append((sid, value))
                new.append(sp.Symbol(sid, real=True))
        h = new
    return rules, outputs


# ----------------------------------------------------------------------------------------------------
# The problem
# ----------------------------------------------------------------------------------------------------

def _state_log_scale(spec: Spec, name: str) -> bool:
    st = spec.states[name]
    return st.x0 > 0 and st.lower is not None and st.lower >= 0


def _bound(x: float | None, default: float, log: bool) -> str:
    if x is None or (log and x <= 0):
        x = default
    return "inf" if x == math.inf else "-inf" if x == -math.inf else petab_number(x)


def _tsv(header: list[str], rows: list[list[str]]) -> str:
    for row in rows:
        for cell in row:
            if "\t" in cell or "\n" in cell:
                raise SpecError(f"cannot write a PEtab table cell containing a tab or newline: {cell[:40]!r}")
    return "\n".join("\t".join(r) for r in [header, *rows]) + "\n"


def petab_files(spec: Spec, datasets: Sequence[Dataset], *, noise: str = "model",
                finite_bounds: float | None = None) -> PetabExport:
    """The PEtab problem of ``spec`` and ``datasets`` (one condition per data set) as file texts, not
    written anywhere (``directory`` and ``problem`` are relative paths). ``noise``: see the module
    docstring; ``finite_bounds``: close the open bounds of estimated parameters (see ``_parameter_row``)."""
    if noise not in NOISE_MODES:
        raise SymodeError(f"unknown noise mode {noise!r} ({', '.join(NOISE_MODES)})", field="noise")
    if finite_bounds is not None and not (math.isfinite(finite_bounds) and finite_bounds > 1):
        raise SymodeError(f"finite bounds factor must be a number > 1, got {finite_bounds}", field="finite_bounds")
    if not datasets:
        raise SymodeError("give at least one data file")
    if not spec.observables:
        raise SpecError("the spec has no observables: nothing to put in a PEtab measurement table",
                        file=spec.source, field="observables")
    sym = build_symbolic(spec)
    ids = _Ids({*spec.states, *spec.parameters, *spec.inputs, *spec.observables, "time"})
    names: dict[sp.Symbol, str] = {s: s.name for s in [*sym.x, *sym.p, *sym.u]}

    # conditions, their time shifts and input values
    cond_ids = [ids.new("c_" + Path(d.file).stem) for d in datasets]
    t0s = [float(d.times[0]) for d in datasets]
    shifted = [d.times - t0 if t0 != 0 else d.times for d, t0 in zip(datasets, t0s, strict=True)]
    inputs = [input_matrix(spec, d, d.times) for d in datasets]

    uses_time = any(sym.t in e.free_symbols for e in [*sym.f, *sym.h])
    time_offset = ids.new("time_offset") if uses_time and any(t0 != 0 for t0 in t0s) else None

    assignments: list[tuple[str, libsbml.ASTNode]] = []
    constants: dict[str, float] = {p: float(spec.parameters[p].value) for p in spec.parameters}
    indicators: dict[str, str] = {}         # condition id -> indicator parameter id
    for name, inp in spec.inputs.items():
        profiles = [input_profile(tt, vals[name], inp.interpolation, inp.default)
                    for tt, vals in zip(shifted, inputs, strict=True)]
        texts = {_mathml(p) for p in profiles}
        if len(texts) == 1:
            assignments.append((name, profiles[0]))
            continue
        terms = []
        for cid, prof in zip(cond_ids, profiles, strict=True):
            if cid not in indicators:
                indicators[cid] = ids.new(f"is_{cid}")
                constants[indicators[cid]] = 0.0
            pid = ids.new(f"{name}__{cid}")
            assignments.append((pid, prof))
            terms.append(product_node(name_node(indicators[cid]), name_node(pid)))
        assignments.append((name, sum_node(*terms)))
    if time_offset:
        constants[time_offset] = 0.0

    neural_rules: list[tuple[str, sp.Expr]] = []
    neural_ids: dict[str, str] = {}
    for term in spec.neural:
        rules, outs = _neural_rules(term, sym, ids)
        neural_rules += rules
        neural_ids.update(outs)
    names.update({sp.Symbol(sid, real=True): sid for sid, _ in neural_rules})
    names.update({s: neural_ids[ref] for ref, s in sym.neural.items()})
    sbml_math = SbmlMath(names, time=sym.t, time_offset=time_offset)
    assignments += [(sid, sbml_math(expr)) for sid, expr in neural_rules]

    compartment = ids.new("reactor")
    model_id = ids.new(re.sub(r"[^A-Za-z0-9_]", "_", spec.name) or "model")
    sbml = SbmlModel(id=model_id, name=spec.name, compartment=compartment,
                     species={s: float(spec.states[s].x0) for s in spec.states}, parameters=constants,
                     assignments=assignments, rates={s.name: sbml_math(e) for s, e in zip(sym.x, sym.f, strict=True)})
    files = {FILES["sbml"]: sbml_text(sbml)}

    # initial states: numbers, or estimated per-condition parameters
    multi = len(datasets) > 1
    init_ids: dict[tuple[str, str], str] = {}
    for cid in cond_ids:
        for s, st in spec.states.items():
            if st.estimate:
                init_ids[(cid, s)] = ids.new(f"init_{s}_{cid}" if multi else f"init_{s}")
    header = ["conditionId", "conditionName", *spec.states, *indicators.values()]
    if time_offset:
        header.append(time_offset)
    rows = []
    for k, (cid, d) in enumerate(zip(cond_ids, datasets, strict=True)):
        row = [cid, Path(d.file).name.replace("\t", " ")]
        row += [init_ids.get((cid, s), petab_number(spec.states[s].x0)) for s in spec.states]
        row += ["1" if c == cid else "0" for c in indicators]
        if time_offset:
            row.append(petab_number(t0s[k]))
        rows.append(row)
    files[FILES["conditions"]] = _tsv(header, rows)

    # observables and measurements
    obs_ids = {o: ids.new(f"obs_{o}") for o in spec.observables}
    rows = []
    for (o, obs), h in zip(spec.observables.items(), sym.h, strict=True):
        formula = petab_formula(h, names)
        a, r = float(obs.noise.absolute), float(obs.noise.relative)
        if noise == "data":
            sigma = f"noiseParameter1_{obs_ids[o]}"
        elif r == 0:
            sigma = petab_number(a)
        else:
            sigma = f"sqrt({petab_number(a)} ^ 2 + ({petab_number(r)} * ({formula})) ^ 2)"
        rows.append([obs_ids[o], o, formula, "lin", sigma, "normal"])
    files[FILES["observables"]] = _tsv(["observableId", "observableName", "observableFormula",
                                        "observableTransformation", "noiseFormula", "noiseDistribution"], rows)
    header = ["observableId", "simulationConditionId", "measurement", "time"]
    if noise == "data":
        header.append("noiseParameters")
    rows = []
    for cid, d, tt in zip(cond_ids, datasets, shifted, strict=True):
        for o, obs in spec.observables.items():
            if o not in d.columns:
                continue
            col = d.columns[o]
            sig = np.sqrt(obs.noise.absolute ** 2 + (obs.noise.relative * np.nan_to_num(col)) ** 2)
            for i in np.flatnonzero(np.isfinite(col)):
                row = [obs_ids[o], cid, petab_number(col[i]), petab_number(tt[i])]
                if noise == "data":
                    if not sig[i] > 0:
                        raise DataError("noise standard deviation 0 at this value (the observable has no "
                                        "absolute noise)", file=d.file, line=d.line_of(int(i)), field=o)
                    row.append(petab_number(sig[i]))
                rows.append(row)
    if not rows:
        raise DataError("no observable values in the data: the measurement table would be empty",
                        file=datasets[0].file)
    files[FILES["measurements"]] = _tsv(header, rows)
    n_measurements = len(rows)

    # parameters
    table = []
    for name, par in spec.parameters.items():
        log = par.scale == "log" and par.value > 0
        table.append((name, log, par.lower, par.upper, float(par.value), par.estimate))
    for (_, s), pid in init_ids.items():
        st = spec.states[s]
        table.append((pid, _state_log_scale(spec, s), st.lower, st.upper, float(st.x0), True))
    rows = [_parameter_row(*entry, finite_bounds=finite_bounds) for entry in table]
    header = ["parameterId", "parameterScale", "lowerBound", "upperBound", "nominalValue", "estimate"]
    if any(r[6] for r in rows):
        header += ["initializationPriorType", "initializationPriorParameters"]
    files[FILES["parameters"]] = _tsv(header, [r[:len(header)] for r in rows])
    estimated = [entry[0] for entry in table if entry[5]]

    problem = {"format_version": 1, "parameter_file": FILES["parameters"],
               "problems": [{"sbml_files": [FILES["sbml"]], "condition_files": [FILES["conditions"]],
                             "measurement_files": [FILES["measurements"]],
                             "observable_files": [FILES["observables"]]}]}
    files[FILES["problem"]] = MARKER + "\n" + yaml.safe_dump(problem, sort_keys=False)
    return PetabExport(directory=Path("."), problem=Path(FILES["problem"]), conditions=cond_ids,
                       observables=obs_ids, n_measurements=n_measurements, estimated=estimated, files=files)


def _parameter_row(pid: str, log: bool, lower: float | None, upper: float | None, value: float,
                   estimate: bool, finite_bounds: float | None = None) -> list[str]:
    """A parameter table row, then the initialization prior of an estimated parameter with an open bound:
    uniform on the parameter scale over symode's own multi-start box (an open side at the nominal value
    -+ 2 natural-log units on log scale, -+ 2 on linear scale). With ``finite_bounds`` F an estimated
    parameter's open side is closed instead: value / F and value * F on log scale, value -+ F max(1, |value|)
    on linear scale."""
    lo = lower if lower is not None and not (log and lower <= 0) else None
    hi = upper
    if estimate and finite_bounds is not None:
        width = finite_bounds * max(1.0, abs(value))
        lo = lo if lo is not None else value / finite_bounds if log else value - width
        hi = hi if hi is not None else value * finite_bounds if log else value + width
    row = [pid, "log10" if log else "lin", _bound(lo, 0.0 if log else -math.inf, log),
           _bound(hi, math.inf, log), petab_number(value), "1" if estimate else "0", "", ""]
    if estimate and (lo is None or hi is None):
        if log:
            c, w = math.log10(value), MULTISTART_HALFWIDTH / math.log(10)
            z_lo = math.log10(lo) if lo is not None else c - w
            z_hi = math.log10(hi) if hi is not None else c + w
        else:
            w = MULTISTART_HALFWIDTH
            z_lo = lo if lo is not None else value - w
            z_hi = hi if hi is not None else value + w
        row[6:] = ["parameterScaleUniform", f"{petab_number(z_lo)};{petab_number(z_hi)}"]
    return row


def _mathml(node: libsbml.ASTNode) -> str:
    return libsbml.writeMathMLToString(node)


def export_petab(spec: Spec, datasets: Sequence[Dataset], out_dir: str | Path, *,
                 noise: str = "model", finite_bounds: float | None = None) -> PetabExport:
    """Write the PEtab problem of ``spec`` and ``datasets`` into ``out_dir`` atomically. An existing
    ``out_dir`` is replaced only when it is empty or holds a previous export (its problem.yaml)."""
    result = petab_files(spec, datasets, noise=noise, finite_bounds=finite_bounds)
    out = Path(out_dir).absolute()
    with atomic_directory(out, is_previous=_is_export,
                          previous="'symode petab export' (problem.yaml)") as tmp:
        for name, text in result.files.items():
            (tmp / name).write_text(text, encoding="utf-8")
    result.directory = out
    result.problem = out / FILES["problem"]
    return result


def _is_export(directory: Path) -> bool:
    try:
        with open(directory / FILES["problem"], encoding="utf-8") as fh:
            return fh.readline().rstrip("\n") == MARKER
    except OSError:
        return False
