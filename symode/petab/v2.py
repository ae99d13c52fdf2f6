"""PEtab v2 problems as PEtab v1 problems, for the part of v2 that v1 can express.

:func:`downgrade` reads a v2 problem's tables (pandas, as text: nothing is evaluated) and writes the
equivalent v1 tables and problem file into a directory; :func:`symode.petab.problem.load_petab` reads
v2 problems this way. What is translated:

- **experiments** with one period starting at t = 0 (a simulation condition), optionally preceded by one
  at t = -inf (pre-equilibration); several conditions of the same period are merged into one v1 condition;
  an empty ``experimentId`` is a simulation without changes. Experiments with several periods, or one
  starting at another time, get one v1 condition per period (parameters changed earlier carried along)
  and their periods are returned alongside (:mod:`symode.petab.periods`);
- **conditions** (long format ``conditionId, targetId, targetValue``) -> the wide v1 table;
- **observables**: ``observablePlaceholders`` / ``noisePlaceholders`` renamed to v1's
  ``observableParameter<n>_<id>`` / ``noiseParameter<n>_<id>`` (whole identifiers only), and the noise
  distributions ``normal``, ``laplace``, ``log-normal``, ``log-laplace`` as v1's transformation plus
  distribution;
- **parameters**: on the linear scale (v2 has no parameterScale), ``estimate`` true/false; prior
  distributions (``priorDistribution``, ``priorParameters``) read alongside (:func:`read_priors`,
  :mod:`symode.petab.priors`): the objective reports the log-prior and the unnormalised log-posterior.

- **mapping tables** that only name entities (``modelEntityId`` empty or the same id);
- an observable's own id in its noise formula (its value).

Condition values that are expressions (``A + 5``) are left out of the v1 table and returned alongside:
they may set states (:class:`symode.petab.periods.StateExpressions`) or parameters. Refused with a message naming the
file and the construct: experiments without a period at t >= 0, mapping tables that map ids, several
models, noise distributions other than the four above, and expressions that set parameters nonlinearly
(:func:`symode.petab.periods.set_linear`).
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from symode.petab.periods import add_periods, check_experiments
from symode.petab.priors import Priors, parse_prior
from symode.petab.problem import PetabError, PetabProblem, load_petab

DISTRIBUTIONS = {"normal": ("lin", "normal"), "laplace": ("lin", "laplace"), "log-normal": ("log", "normal"),
                 "log-laplace": ("log", "laplace")}
DEFAULT_CONDITION = "__symode_no_change"


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() in ("", "nan", "NaN")


def _rename(formula: str, names: dict[str, str]) -> str:
    if not names:
        return formula
    pattern = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(map(re.escape, names)) + r")(?![A-Za-z0-9_])")
    return pattern.sub(lambda m: names[m.group(1)], formula)


def _state_ids(sbml: Path) -> set[str]:
    """Ids whose values are states (condition changes re-initialise them once): species and the targets of
    rate rules and events."""
    import libsbml

    model = libsbml.readSBML(str(sbml)).getModel()
    if model is None:
        return set()
    rates = {r.getVariable() for r in model.getListOfRules() if r.isRate()}
    events = {ea.getVariable() for ev in model.getListOfEvents() for ea in ev.getListOfEventAssignments()}
    return {s.getId() for s in model.getListOfSpecies()} | rates | events


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _is_expression(value: Any) -> bool:
    """A condition value that is neither a number nor an identifier (v1 tables hold only those)."""
    text = str(value).strip()
    if not text or _IDENTIFIER.match(text):
        return False
    try:
        float(text)
    except ValueError:
        return True
    return False


def _files(config: dict, key: str, base: Path, path: Path) -> list[Path]:
    files = config.get(key) or []
    if isinstance(files, str):
        files = [files]
    out = [base / f for f in files]
    for f in out:
        if not f.exists():
            raise PetabError(f"the file {f.name!r} ({key}) does not exist", file=str(path))
    return out


def _table(files: list[Path]) -> pd.DataFrame | None:
    return pd.concat([_read(f) for f in files], ignore_index=True) if files else None


def downgrade(path: Path, out: Path, config: dict) -> tuple[Path, dict[str, list[tuple[float, str]]],
                                                          dict[str, dict[str, str]]]:
    """Write the v1 form of the v2 problem ``path`` (its parsed YAML ``config``) into ``out``; returns the
    v1 problem file, the periods (start, v1 condition id) of the experiments that have more than one or
    start at another time than 0 (by the v1 id of their first period's condition), and the condition
    values that are expressions (by v1 condition id and target; left empty in the v1 table)."""
    base = path.parent
    models = config.get("model_files") or {}
    if len(models) != 1:
        raise PetabError(f"PEtab v2: only problems with one model are supported (got {len(models)})", file=str(path))
    model = next(iter(models.values()))
    if str(model.get("language", "sbml")).lower() != "sbml":
        raise PetabError(f"PEtab v2: model language {model.get('language')!r} is not supported (SBML only)",
                         file=str(path))
    mapping_table = _table(_files(config, "mapping_files", base, path))
    for _, r in (mapping_table if mapping_table is not None else pd.DataFrame()).iterrows():
        model_id = str(r.get("modelEntityId", "")).strip()
        if model_id and model_id != str(r["petabEntityId"]).strip():   # names only are fine
            raise PetabError(f"PEtab v2: the mapping of {r['petabEntityId']!r} to {model_id!r} is not supported "
                             "(mapping tables may only name entities)", file=str(path))
    sbml = base / model["location"]
    if not sbml.exists():
        raise PetabError(f"the model file {sbml.name!r} does not exist", file=str(path))
    shutil.copyfile(sbml, out / "model.xml")

    par = _table(_files(config, "parameter_files", base, path))
    obs = _table(_files(config, "observable_files", base, path))
    mes = _table(_files(config, "measurement_files", base, path))
    if par is None or obs is None or mes is None:
        raise PetabError("the problem needs parameter, measurement and observable tables", file=str(path))
    cond = _table(_files(config, "condition_files", base, path))
    exp = _table(_files(config, "experiment_files", base, path))

    # parameters
    p1 = pd.DataFrame({"parameterId": par["parameterId"], "parameterScale": "lin",
                       "lowerBound": par.get("lowerBound", ""), "upperBound": par.get("upperBound", ""),
                       "nominalValue": par.get("nominalValue", ""),
                       "estimate": [1 if str(v).strip().lower() in ("true", "1") else 0 for v in par["estimate"]]})

    # observables
    rows = []
    for _, r in obs.iterrows():
        oid = r["observableId"]
        dist = str(r.get("noiseDistribution", "") or "normal").strip() or "normal"
        if dist not in DISTRIBUTIONS:
            raise PetabError(f"PEtab v2: noise distribution {dist!r} of observable {oid!r} is not supported "
                             f"({', '.join(DISTRIBUTIONS)})", file=str(path), field="noiseDistribution")
        names = {}
        for col, prefix in (("observablePlaceholders", "observableParameter"), ("noisePlaceholders", "noiseParameter")):
            ph = [s.strip() for s in str(r.get(col, "") or "").split(";") if s.strip()]
            names.update({p: f"{prefix}{k + 1}_{oid}" for k, p in enumerate(ph)})
        transformation, distribution = DISTRIBUTIONS[dist]
        formula = _rename(str(r["observableFormula"]), names)
        # the observable's own id in its noise formula is its value (v2)
        noise = _rename(_rename(str(r["noiseFormula"]), {oid: f"({formula})"}), names)
        rows.append({"observableId": oid, "observableFormula": formula, "noiseFormula": noise,
                     "observableTransformation": transformation, "noiseDistribution": distribution})
    o1 = pd.DataFrame(rows)

    # conditions: the changes of each condition, by target
    changes: dict[str, dict[str, str]] = {}
    for _, r in (cond if cond is not None else pd.DataFrame(columns=["conditionId"])).iterrows():
        changes.setdefault(r["conditionId"], {})[r["targetId"]] = r["targetValue"]

    # experiments -> (preequilibration condition, simulation condition)
    periods: dict[str, dict[float, list[str]]] = {}
    for _, r in (exp if exp is not None else pd.DataFrame(columns=["experimentId"])).iterrows():
        t = float(r["time"])
        cids = [c for c in [str(r.get("conditionId", "")).strip()] if c and c != "nan"]
        periods.setdefault(r["experimentId"], {}).setdefault(t, []).extend(cids)
    merged: dict[str, dict[str, str]] = {DEFAULT_CONDITION: {}}

    def merge(eid: str, t: float, cids: list[str]) -> str:
        if not cids:
            return DEFAULT_CONDITION
        for c in cids:
            if c not in changes:
                raise PetabError(f"PEtab v2: experiment {eid!r} names unknown condition {c!r}", file=str(path))
        if len(cids) == 1:
            merged[cids[0]] = changes[cids[0]]
            return cids[0]
        when = "preeq" if t < 0 else "t0" if t == 0 else "at" + re.sub(r"[^0-9]", "_", f"{t:g}")
        name = f"{eid}__{when}"
        values: dict[str, str] = {}
        for c in cids:
            for target, v in changes[c].items():
                if target in values and values[target] != v:
                    raise PetabError(f"PEtab v2: experiment {eid!r} changes {target!r} twice at t = {t}",
                                     file=str(path))
                values[target] = v
        merged[name] = values
        return name

    states = _state_ids(sbml)
    mapping: dict[str, tuple[str, str]] = {"": ("", DEFAULT_CONDITION)}
    schedule: dict[str, list[tuple[float, str]]] = {}   # v1 simulation condition -> its periods
    for eid, by_time in periods.items():
        starts = sorted(t for t in by_time if t > -math.inf)
        if not starts:
            raise PetabError(f"PEtab v2: experiment {eid!r} has no period starting at t = 0 or later",
                             file=str(path))
        pre = merge(eid, -math.inf, by_time[-math.inf]) if -math.inf in by_time else ""
        if starts == [0.0]:
            sim = merge(eid, 0.0, by_time[0.0])
            carried = {t: v for t, v in merged[pre].items() if t not in states and t not in merged[sim]} if pre else {}
            if carried:  # v2: a parameter changed for pre-equilibration keeps that value (v1: per condition)
                name = f"{eid}__t0_after_preeq"
                merged[name] = {**carried, **merged[sim]}
                sim = name
            mapping[eid] = (pre, sim)
            continue
        # several periods, or one starting later: one v1 condition per period, named after the experiment,
        # with the parameters of the earlier periods carried (they keep their values until changed)
        carried = {t: v for t, v in merged[pre].items() if t not in states} if pre else {}
        names = []
        for k, t in enumerate(starts):
            values = merged[merge(eid, t, by_time[t])]
            name = f"{eid}__period{k}" if k or eid in merged or eid in changes else eid
            merged[name] = {**carried, **values}
            carried.update({target: v for target, v in values.items() if target not in states})
            names.append(name)
        schedule[names[0]] = list(zip(starts, names, strict=True))
        mapping[eid] = (pre, names[0])
    expressions = {cid: {t: v for t, v in values.items() if _is_expression(v)} for cid, values in merged.items()}
    expressions = {cid: e for cid, e in expressions.items() if e}
    targets = sorted({t for v in merged.values() for t in v})
    c1 = pd.DataFrame([{"conditionId": cid, **{t: "" if _is_expression(v.get(t, "")) else v.get(t, "")
                                               for t in targets}} for cid, v in merged.items()])

    # measurements
    m1 = mes.copy()
    eids = [str(e).strip() if not _blank(e) else "" for e in m1.get("experimentId", [""] * len(m1))]
    for e in eids:
        if e not in mapping:
            raise PetabError(f"PEtab v2: measurement of unknown experiment {e!r}", file=str(path))
    m1.insert(1, "simulationConditionId", [mapping[e][1] for e in eids])
    m1.insert(1, "preequilibrationConditionId", [mapping[e][0] for e in eids])
    m1 = m1.drop(columns=[c for c in ("experimentId", "modelId") if c in m1.columns])

    for name, df in (("parameters", p1), ("observables", o1), ("conditions", c1), ("measurements", m1)):
        df.to_csv(out / f"{name}.tsv", sep="\t", index=False)
    problem = out / "problem.yaml"
    problem.write_text("format_version: 1\nparameter_file: parameters.tsv\nproblems:\n"
                       "- condition_files: [conditions.tsv]\n  measurement_files: [measurements.tsv]\n"
                       "  observable_files: [observables.tsv]\n  sbml_files: [model.xml]\n")
    return problem, schedule, expressions


def load_v2(path: Path, config: dict, validate: bool) -> PetabProblem:
    """A PEtab v2 problem (its parsed YAML ``config``), read through its v1 form, with the periods and
    expression-valued condition changes that v1 cannot express put back."""
    with tempfile.TemporaryDirectory(prefix="symode-petab-v2-") as tmp:
        v1, schedule, expressions = downgrade(path, Path(tmp), config)
        try:
            problem = load_petab(v1, validate=validate)
        except PetabError as exc:   # located in the converted tables: say so (the model by its own name)
            text = str(exc)
            model = str(Path(tmp) / "model.xml")
            if text.startswith(model + ":"):
                location = next(iter((config.get("model_files") or {}).values()))["location"]
                raise PetabError(text[len(model) + 1:].strip(), file=str(path.parent / location)) from None
            raise PetabError(f"in its PEtab v1 form: {text}", file=str(path)) from None
    problem.path = path
    problem.priors = read_priors(path, config, problem)
    add_periods(problem, schedule, expressions)
    check_experiments(problem)
    return problem


def read_priors(path: Path, config: dict, problem: PetabProblem) -> Priors:
    """The prior distributions of the parameter table (:mod:`symode.petab.priors`): none unless the table
    declares one; then every estimated parameter has its prior (a blank one: uniform on its bounds)."""
    par = _table(_files(config, "parameter_files", path.parent, path))
    if par is None or "priorDistribution" not in par.columns or all(_blank(v) for v in par["priorDistribution"]):
        return Priors([])
    rows = {str(r["parameterId"]): r for _, r in par.iterrows()}
    out = []
    for k, pid in enumerate(problem.parameter_ids):
        if not problem.estimated[k]:
            continue
        r = rows[pid]
        dist = "" if _blank(r.get("priorDistribution")) else str(r["priorDistribution"])
        text = "" if _blank(r.get("priorParameters")) else str(r["priorParameters"])
        try:
            out.append(parse_prior(pid, k, dist, text, float(problem.lower[k]), float(problem.upper[k])))
        except ValueError as exc:
            raise PetabError(f"PEtab v2: {exc}", file=str(path), field="priorParameters") from None
    return Priors(out)
