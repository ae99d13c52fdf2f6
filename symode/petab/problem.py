"""A PEtab (v1) problem read into symode: the imported SBML model as a spec, and the tables as index maps.

Parameters. theta holds every row of the parameter table (``parameterId``), on the linear scale; the
optimisation variables are the estimated ones on their ``parameterScale`` (lin, log, log10). For each
condition the model's parameter vector p (the spec's parameters, in spec order) is, entry by entry, a
condition-table value (a number or a parameterId), else theta of the parameter of the same id, else the
SBML value; so p = P theta + c with a 0/1 selection matrix P. Condition-table columns that name a state
(species, or a parameter/compartment with a rate rule) override its initial value (NaN keeps it).

Observables. Each observable's formula and noise formula become sympy expressions in the time t, the
states x, the model parameters p and a per-measurement vector phi = [observableParameter1..n,
noiseParameter1..m, other parameter-table ids used in the formulas]; each measurement row maps phi to
numbers or theta entries (its ``observableParameters`` / ``noiseParameters``, ';'-separated).
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from symode.errors import SymodeError
from symode.petab.mapping import Mapping
from symode.petab.math import parse_petab_math
from symode.petab.periods import Experiment, StateExpressions, check_experiments
from symode.petab.priors import Prior, Priors, parse_v1_prior
from symode.petab.sbml import ImportedModel, import_sbml
from symode.petab.sbml_math import UnsupportedSBML
from symode.spec import Spec

SCALES = ("lin", "log", "log10")
TRANSFORMATIONS = ("lin", "log", "log10")
DISTRIBUTIONS = ("normal", "laplace")
_PLACEHOLDER = re.compile(r"^(observable|noise)Parameter(\d+)_(.+)$")


class PetabError(SymodeError):
    """A PEtab problem is malformed or uses something symode does not support."""


@dataclass
class Condition:
    """One row of the condition table: model parameters and initial-state overrides."""

    id: str
    p: Mapping                       # (np,)
    x_states: np.ndarray             # int indices of overridden states
    x: Mapping                       # their values
    x_expr: StateExpressions | None = None   # states set to expressions (PEtab v2)


@dataclass
class Observable:
    """One observable: y(t, x, p, phi) and sigma(t, x, p, phi), transformation and noise distribution."""

    id: str
    y: sp.Expr
    sigma: sp.Expr
    phi: list[sp.Symbol]
    n_observable_parameters: int
    n_noise_parameters: int
    extra: list[str]                 # parameter-table ids in phi after the placeholders
    transformation: str = "lin"
    distribution: str = "normal"


@dataclass
class PetabProblem:
    """A PEtab problem ready for evaluation (see :mod:`symode.petab.objective`)."""

    path: Path
    petab: Any                                   # petab.v1.Problem (the tables)
    sbml: ImportedModel
    spec: Spec
    parameter_ids: list[str]
    scales: list[str]
    lower: np.ndarray                            # linear scale
    upper: np.ndarray
    nominal: np.ndarray
    estimated: np.ndarray                        # bool
    conditions: dict[str, Condition]
    experiments: list[Experiment]
    observables: dict[str, Observable]
    measurements: Any                            # the measurement DataFrame
    row_observable: np.ndarray                   # int: observable index per row
    row_phi: list[Mapping]                       # per row
    measured: np.ndarray                         # float per row
    warnings: list[str] = field(default_factory=list)
    priors: Any = None                           # symode.petab.priors.Priors (v2; v1 objective priors) or None

    @property
    def n_theta(self) -> int:
        return len(self.parameter_ids)

    @property
    def estimated_ids(self) -> list[str]:
        return [p for p, e in zip(self.parameter_ids, self.estimated, strict=True) if e]

    def theta(self, values: dict[str, float] | None = None) -> np.ndarray:
        """theta on the linear scale: nominal values, overridden by ``values`` (by parameterId)."""
        theta = self.nominal.copy()
        for k, v in (values or {}).items():
            if k not in self.parameter_ids:
                raise PetabError(f"unknown parameterId {k!r}", field="parameterId")
            theta[self.parameter_ids.index(k)] = float(v)
        return theta

    def to_scaled(self, theta: np.ndarray) -> np.ndarray:
        """The estimated entries of theta on their parameter scales."""
        out = []
        for i in np.nonzero(self.estimated)[0]:
            out.append(_scale(theta[i], self.scales[i]))
        return np.array(out, dtype=float)

    def from_scaled(self, z: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
        """theta with the estimated entries set from their scaled values ``z``."""
        theta = (self.nominal if base is None else base).copy()
        for k, i in enumerate(np.nonzero(self.estimated)[0]):
            theta[i] = _unscale(z[k], self.scales[i])
        return theta

    def to_scaled_value(self, index: int, value: float) -> float:
        """theta[index] = value on that parameter's scale."""
        return _scale(value, self.scales[index])

    def scaled_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        idx = np.nonzero(self.estimated)[0]
        return (np.array([_scale(self.lower[i], self.scales[i]) for i in idx]),
                np.array([_scale(self.upper[i], self.scales[i]) for i in idx]))


def _scale(v: float, scale: str) -> float:
    if scale == "lin":
        return float(v)
    if v <= 0:
        return -math.inf
    return math.log(v) if scale == "log" else math.log10(v)


def _unscale(v: float, scale: str) -> float:
    return float(v) if scale == "lin" else (math.exp(v) if scale == "log" else 10.0 ** v)


# ----------------------------------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------------------------------

def load_petab(path: str | Path, *, validate: bool = True) -> PetabProblem:
    """Read a PEtab problem (its YAML file; v2 through its v1 form, :mod:`symode.petab.v2`): tables through
    the ``petab`` library, the SBML model through libsbml (:func:`symode.petab.sbml.import_sbml`).
    ``validate`` also runs PEtab's linter."""
    return _Loader(Path(path), validate).load()


class _Loader:
    def __init__(self, path: Path, validate: bool) -> None:
        self.path = path
        self.validate = validate
        self.files: dict[str, Path | None] = {}

    def err(self, table: str, row: int | None, column: str | None, msg: str) -> PetabError:
        """An error located at a table's file and line (row = 0-based data row)."""
        f = self.files.get(table)
        return PetabError(msg, file=str(f) if f else str(self.path),
                          line=row + 2 if (row is not None and f is not None) else None, field=column)

    def load(self) -> PetabProblem:
        import petab.v1 as petab

        if not self.path.exists():
            raise PetabError("no such file", file=str(self.path))
        try:
            import yaml

            config = yaml.safe_load(self.path.read_text())
        except Exception as exc:
            raise PetabError(f"not a readable YAML file ({exc})", file=str(self.path)) from None
        version = str(config.get("format_version", "")) if isinstance(config, dict) else ""
        if version.startswith("2"):
            from symode.petab.v2 import load_v2

            return load_v2(self.path, config, self.validate)
        if not isinstance(config, dict) or "problems" not in config:
            raise PetabError("not a PEtab problem file (no 'problems')", file=str(self.path))
        if not version.startswith("1"):
            raise PetabError(f"PEtab format_version {version!r} is not supported (symode reads v1)",
                             file=str(self.path), field="format_version")
        if len(config["problems"]) != 1:
            raise PetabError("only problems with one model are supported", file=str(self.path), field="problems")
        sub = config["problems"][0]
        base = self.path.parent

        def one(key: str) -> Path | None:
            files = sub.get(key) or []
            return base / files[0] if len(files) == 1 else None

        self.files = {"measurement": one("measurement_files"), "condition": one("condition_files"),
                      "observable": one("observable_files"),
                      "parameter": base / config["parameter_file"] if isinstance(config.get("parameter_file"), str)
                      else None, "sbml": one("sbml_files")}
        for key, f in self.files.items():
            if f is not None and not f.exists():
                raise PetabError(f"the {key} file {f.name!r} does not exist", file=str(self.path))
        try:
            with warnings.catch_warnings():  # the library's deprecation notices (pandas) are not the user's
                warnings.simplefilter("ignore")
                problem = petab.Problem.from_yaml(str(self.path))
        except Exception as exc:
            raise PetabError(f"cannot read the problem: {exc}", file=str(self.path)) from None
        built = self.build(problem)   # symode's own checks first: their messages name file, line and column
        if self.validate:
            self.lint(problem)
        return built

    def lint(self, problem: Any) -> None:
        import petab.v1 as petab

        messages: list[str] = []

        class Collect(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.levelno >= logging.ERROR:
                    messages.append(record.getMessage())

        handler = Collect()
        logger = logging.getLogger("petab")
        level = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.ERROR)  # the linter's warnings and progress lines are not ours to print
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                failed = petab.lint_problem(problem)
        except Exception as exc:
            failed, messages = True, [*messages, str(exc)]
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
        if failed:
            first = (messages[0] if messages else "invalid problem").strip().splitlines()[0]
            raise PetabError(f"PEtab linter: {first}", file=str(self.path))

    # -- the tables ----------------------------------------------------------------------------------
    def build(self, problem: Any) -> PetabProblem:
        pdf = problem.parameter_df
        cdf = problem.condition_df
        mdf = problem.measurement_df.reset_index(drop=True)
        odf = problem.observable_df
        if pdf is None or mdf is None or odf is None:
            raise PetabError("the problem needs parameter, measurement and observable tables", file=str(self.path))
        if problem.model is None:
            raise PetabError("the problem has no SBML model", file=str(self.path))
        warnings: list[str] = []

        # parameter table
        ids = [str(i) for i in pdf.index]
        scales, lower, upper, nominal, estimated = [], [], [], [], []
        v1_priors: list[Prior] = []
        for row, pid in enumerate(ids):
            r = pdf.loc[pid]
            scale = str(r.get("parameterScale", "lin"))
            if scale not in SCALES:
                raise self.err("parameter", row, "parameterScale", f"{pid}: scale {scale!r} (choose {SCALES})")
            est = _number(r.get("estimate", 1))
            if est not in (0.0, 1.0):
                raise self.err("parameter", row, "estimate", f"{pid}: estimate must be 0 or 1")
            lo, hi, nom = (_number(r.get(k, math.nan)) for k in ("lowerBound", "upperBound", "nominalValue"))
            if math.isnan(nom):
                if est == 0 or not (math.isfinite(lo) and math.isfinite(hi)):
                    raise self.err("parameter", row, "nominalValue", f"{pid}: a fixed parameter or one with an "
                                                                     "infinite bound needs a nominal value")
                nom = math.sqrt(lo * hi) if scale != "lin" and lo > 0 else 0.5 * (lo + hi)
            if est == 1:   # infinite bounds: evaluations only (fits refuse them, symode.petab.fit)
                if not (lo <= hi):
                    raise self.err("parameter", row, "lowerBound", f"{pid}: estimated parameters need bounds "
                                                                   "lowerBound <= upperBound")
                if scale != "lin" and lo <= 0:
                    raise self.err("parameter", row, "lowerBound", f"{pid}: {scale} scale needs a positive lower bound")
            prior = r.get("objectivePriorType") if "objectivePriorType" in pdf.columns else None
            if isinstance(prior, str) and prior.strip() and est == 1:   # v1 objective priors: MAP fits
                text = r.get("objectivePriorParameters")
                try:
                    v1_priors.append(parse_v1_prior(pid, row, prior, text if isinstance(text, str) else "",
                                                    scale, lo, hi))
                except ValueError as exc:
                    raise self.err("parameter", row, "objectivePriorParameters", str(exc)) from None
            scales.append(scale)
            lower.append(lo)
            upper.append(hi)
            nominal.append(nom)
            estimated.append(est == 1)
        theta_index = {pid: i for i, pid in enumerate(ids)}

        # the SBML model; parameters named in the tables stay free even with initial assignments
        cond_columns = [c for c in (cdf.columns if cdf is not None else []) if c != "conditionName"]
        try:
            sbml = import_sbml(problem.model.sbml_model, keep=set(ids) | set(cond_columns), events=True)
        except UnsupportedSBML as exc:
            raise PetabError(exc.message, file=str(self.files.get("sbml") or self.path)) from None
        state_ids = list(sbml.states)
        param_ids = list(sbml.parameters)
        spec_params: dict[str, dict[str, Any]] = {}
        for i, pid in enumerate(ids):
            if pid in sbml.parameters:
                d: dict[str, Any] = {"value": nominal[i], "estimate": bool(estimated[i]),
                                     "scale": "lin" if scales[i] == "lin" else "log"}
                if estimated[i] and lower[i] <= nominal[i] <= upper[i]:
                    d["bounds"] = [lower[i], upper[i]]
                if d["scale"] == "log" and (nominal[i] <= 0 or ("bounds" in d and lower[i] <= 0)):
                    d["scale"] = "lin"
                spec_params[pid] = d
        spec = sbml.to_spec(spec_params)

        # conditions
        conditions: dict[str, Condition] = {}
        if cdf is not None:
            for row, cid in enumerate(cdf.index):
                conditions[str(cid)] = self.condition(str(cid), row, cdf.loc[cid], cond_columns, sbml,
                                                      theta_index, param_ids, state_ids, nominal)

        def base_condition(cid: str) -> Condition:
            if cid not in conditions:
                conditions[cid] = self.condition(cid, None, {}, [], sbml, theta_index, param_ids, state_ids, nominal)
            return conditions[cid]

        # observables
        observables: dict[str, Observable] = {}
        for row, oid in enumerate(odf.index):
            observables[str(oid)] = self.observable(str(oid), row, odf.loc[oid], sbml, theta_index)
        obs_ids = list(observables)

        # measurements
        exp_key: dict[tuple[str, str], list[int]] = {}
        row_obs = np.zeros(len(mdf), dtype=int)
        row_phi: list[Mapping] = []
        measured = np.zeros(len(mdf))
        times = np.zeros(len(mdf))
        for row in range(len(mdf)):
            r = mdf.iloc[row]
            oid = str(r["observableId"])
            if oid not in observables:
                raise self.err("measurement", row, "observableId", f"unknown observable {oid!r}")
            obs = observables[oid]
            sim = str(r["simulationConditionId"])
            pre = r.get("preequilibrationConditionId", "")
            pre = "" if pre is None or (isinstance(pre, float) and math.isnan(pre)) else str(pre)
            for col, cid in (("simulationConditionId", sim), ("preequilibrationConditionId", pre)):
                if cid and cid not in conditions:
                    if cdf is not None and len(cdf.columns) > 0 and cid not in cdf.index:
                        raise self.err("measurement", row, col, f"unknown condition {cid!r}")
                    base_condition(cid)
            t = _number(r["time"])
            if math.isnan(t) or t < 0:
                raise self.err("measurement", row, "time", f"time must be a number >= 0 or inf, got {r['time']!r}")
            m = _number(r["measurement"])
            if not math.isfinite(m):
                raise self.err("measurement", row, "measurement", f"measurement {r['measurement']!r} is not a number")
            if obs.transformation != "lin" and m <= 0:
                raise self.err("measurement", row, "measurement",
                               f"measurement {m} <= 0 for the {obs.transformation}-transformed observable {oid!r}")
            row_obs[row] = obs_ids.index(oid)
            measured[row] = m
            times[row] = t
            row_phi.append(self.row_mapping(row, r, obs, theta_index))
            exp_key.setdefault((pre, sim), []).append(row)

        experiments = []
        for (pre, sim), rows in exp_key.items():
            rows_arr = np.array(rows, dtype=int)
            t_rows = times[rows_arr]
            finite = np.unique(t_rows[np.isfinite(t_rows)])
            tindex = np.array([int(np.searchsorted(finite, t)) if math.isfinite(t) else -1 for t in t_rows])
            experiments.append(Experiment.of(conditions[sim], conditions[pre] if pre else None, finite, rows_arr,
                                             tindex))
        out = PetabProblem(
            path=self.path, petab=problem, sbml=sbml, spec=spec, parameter_ids=ids, scales=scales,
            lower=np.array(lower, dtype=float), upper=np.array(upper, dtype=float),
            nominal=np.array(nominal, dtype=float), estimated=np.array(estimated, dtype=bool),
            conditions=conditions, experiments=experiments, observables=observables, measurements=mdf,
            row_observable=row_obs, row_phi=row_phi, measured=measured, warnings=warnings,
            priors=Priors(v1_priors) if v1_priors else None)
        check_experiments(out)
        return out

    def condition(self, cid: str, row: int | None, values: Any, columns: list[str], sbml: ImportedModel,
                  theta_index: dict[str, int], param_ids: list[str], state_ids: list[str],
                  nominal: list[float]) -> Condition:
        p_index = np.full(len(param_ids), -1, dtype=int)
        p_value = np.array([sbml.parameters[p] for p in param_ids], dtype=float)
        for q, pid in enumerate(param_ids):
            if pid in theta_index:
                p_index[q] = theta_index[pid]
                p_value[q] = nominal[theta_index[pid]]
        xs, x_index, x_value = [], [], []
        for col in columns:
            raw = values[col] if col in values else math.nan
            if _missing(raw):
                continue
            target_index, target_value = self.value_ref(raw, theta_index, sbml, ("condition", row, col))
            if col in sbml.parameters:
                q = param_ids.index(col)
                p_index[q], p_value[q] = target_index, target_value
            elif col in sbml.states:
                xs.append(state_ids.index(col))
                x_index.append(target_index)
                x_value.append(target_value)
            else:
                what = "an assignment-rule target" if col in sbml.assignments else "not a parameter, species or " \
                                                                                   "compartment of the model"
                raise self.err("condition", row, col, f"column {col!r} is {what}")
        return Condition(id=cid, p=Mapping(p_index, p_value), x_states=np.array(xs, dtype=int),
                         x=Mapping(np.array(x_index, dtype=int), np.array(x_value, dtype=float)))

    def value_ref(self, raw: Any, theta_index: dict[str, int], sbml: ImportedModel | None,
                  where: tuple[str, int | None, str]) -> tuple[int, float]:
        """(theta index, -1) for a parameterId, (-1, value) for a number (or a fixed SBML parameter)."""
        if isinstance(raw, str):
            text = raw.strip()
            try:
                return -1, _finite(float(text))
            except ValueError:
                pass
            if text in theta_index:
                return theta_index[text], 0.0
            if sbml is not None and text in sbml.parameters:
                return -1, float(sbml.parameters[text])
            raise self.err(*where, f"{text!r} is neither a number nor a parameterId of the parameter table")
        value = _number(raw)
        if not math.isfinite(value):
            raise self.err(*where, f"{raw!r} is not a finite number")
        return -1, value

    def observable(self, oid: str, row: int, r: Any, sbml: ImportedModel, theta_index: dict[str, int]) -> Observable:
        transformation = _text(r.get("observableTransformation"), "lin")
        distribution = _text(r.get("noiseDistribution"), "normal")
        if transformation not in TRANSFORMATIONS:
            raise self.err("observable", row, "observableTransformation",
                           f"{oid}: transformation {transformation!r} (choose {TRANSFORMATIONS})")
        if distribution not in DISTRIBUTIONS:
            raise self.err("observable", row, "noiseDistribution",
                           f"{oid}: noise distribution {distribution!r} (choose {DISTRIBUTIONS})")
        placeholders: dict[tuple[str, int], sp.Symbol] = {}
        extra: dict[str, sp.Symbol] = {}

        def resolver(kind: str) -> Any:
            def resolve(name: str) -> sp.Expr:
                m = _PLACEHOLDER.match(name)
                if m and m.group(3) == oid:
                    if m.group(1) == "noise" and kind == "observable":
                        raise PetabError(f"noise placeholder {name!r} in the observable formula")
                    key = (m.group(1), int(m.group(2)))
                    if key not in placeholders:
                        placeholders[key] = sp.Symbol(f"__{m.group(1)}{m.group(2)}", real=True)
                    return placeholders[key]
                return resolve_model_name(sbml, name, theta_index, extra)
            return resolve

        exprs = {}
        for col, kind in (("observableFormula", "observable"), ("noiseFormula", "noise")):
            text = r.get(col)
            if text is None or (isinstance(text, float) and math.isnan(text)):
                raise self.err("observable", row, col, f"{oid}: missing {col}")
            try:
                exprs[kind] = parse_petab_math(text if isinstance(text, str) else float(text), resolver(kind))
            except SymodeError as exc:
                raise self.err("observable", row, col, f"{oid}: {exc.message}") from None
        n_obs = max([k[1] for k in placeholders if k[0] == "observable"], default=0)
        n_noise = max([k[1] for k in placeholders if k[0] == "noise"], default=0)
        phi = [placeholders.get(("observable", i), sp.Symbol(f"__observable{i}", real=True))
               for i in range(1, n_obs + 1)]
        phi += [placeholders.get(("noise", i), sp.Symbol(f"__noise{i}", real=True))
                for i in range(1, n_noise + 1)]
        phi += list(extra.values())
        return Observable(id=oid, y=exprs["observable"], sigma=exprs["noise"], phi=phi,
                          n_observable_parameters=n_obs, n_noise_parameters=n_noise, extra=list(extra),
                          transformation=transformation, distribution=distribution)

    def row_mapping(self, row: int, r: Any, obs: Observable, theta_index: dict[str, int]) -> Mapping:
        index, value = [], []
        for col, n in (("observableParameters", obs.n_observable_parameters),
                       ("noiseParameters", obs.n_noise_parameters)):
            raw = r.get(col, math.nan)
            if _missing(raw):
                parts: list[Any] = []
            elif isinstance(raw, str):
                parts = [s.strip() for s in raw.split(";")]
            else:
                parts = [raw]
            if len(parts) != n:
                raise self.err("measurement", row, col, f"{obs.id} needs {n} {col}, got {len(parts)}")
            for part in parts:
                i, v = self.value_ref(part, theta_index, None, ("measurement", row, col))
                index.append(i)
                value.append(v)
        for name in obs.extra:
            index.append(theta_index[name])
            value.append(0.0)
        return Mapping(np.array(index, dtype=int), np.array(value, dtype=float))


def resolve_model_name(sbml: ImportedModel, name: str, theta_index: dict[str, int],
                       extra: dict[str, sp.Symbol]) -> sp.Expr:
    """A name in a PEtab formula: ``time``, the model's ids (states, parameters, assignment-rule variables),
    else a parameter-table entry (its symbol ``__theta_<id>``, collected in ``extra``)."""
    if name == "time":
        return sbml.t
    expr = sbml.expression(name)
    if expr is not None:
        return expr
    if name in theta_index:
        if name not in extra:
            extra[name] = sp.Symbol(f"__theta_{name}", real=True)
        return extra[name]
    raise PetabError(f"unknown symbol {name!r}")


def _number(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _finite(v: float) -> float:
    if not math.isfinite(v):
        raise ValueError
    return v


def _missing(v: Any) -> bool:
    """An empty table cell: None, NaN or blank."""
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


def _text(v: Any, default: str) -> str:
    if _missing(v):
        return default
    return str(v).strip()


def read_parameter_values(path: str | Path, problem: PetabProblem) -> dict[str, float]:
    """``parameterId -> nominalValue`` (linear scale) from a PEtab parameter table, checked against the
    problem's parameter table (errors name the file, line and column)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise PetabError("no such file", file=str(path))
    try:
        df = pd.read_csv(path, sep="\t", dtype={"parameterId": str})
    except Exception as exc:
        raise PetabError(f"not a readable TSV table ({exc})", file=str(path)) from None
    for col in ("parameterId", "nominalValue"):
        if col not in df.columns:
            raise PetabError(f"missing column {col!r}", file=str(path), line=1)
    out: dict[str, float] = {}
    for row, (pid, value) in enumerate(zip(df["parameterId"], df["nominalValue"], strict=True)):
        line = row + 2
        if _missing(pid) or str(pid) not in problem.parameter_ids:
            raise PetabError(f"unknown parameterId {pid!r} (not in the problem's parameter table)", file=str(path),
                             line=line, field="parameterId")
        v = _number(value)
        if not math.isfinite(v):
            raise PetabError(f"nominalValue {value!r} is not a finite number", file=str(path), line=line,
                             field="nominalValue")
        out[str(pid)] = v
    return out
