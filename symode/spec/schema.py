"""Model spec files: YAML -> validated :class:`Spec` objects, and back.

The format is documented in ``docs/spec-format.md``. Loading validates every field and raises
:class:`~symode.errors.SpecError` naming the file, the line and the field. ``Spec.to_dict`` /
:func:`dump_spec` write a spec that loads back to an equal object (lossless round trip).
"""

from __future__ import annotations

import copy
import keyword
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from symode.errors import ExpressionError, SpecError
from symode.spec.expr import parse_expression
from symode.spec.yamlio import Located, load_yaml, load_yaml_file

FORMAT_VERSION = 1
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
RESERVED = {"t", "time", "time_h"} | {"exp", "log", "sqrt", "abs", "tanh", "sin", "cos", "min", "max", "pow"}

STATE_ROLES = ("substrate", "main", "satellite", "metabolite", "other")
SPECIES_ROLES = ("main", "satellite")

#: Kinetic-law library: (kind, law) -> (required roles, alternatives: at least/exactly one of each group).
#: A role's value is a parameter name or a number.
LAWS: dict[tuple[str, str], dict[str, Any]] = {
    ("uptake", "monod"): {"required": ["mu", "yield"], "one_of": [["K", "a"]]},
    ("uptake", "shared_monod"): {"required": ["mu", "yield"], "one_of": [["K", "a"]]},
    ("uptake", "haldane"): {"required": ["mu", "yield", "K", "Ki"], "one_of": []},
    ("inhibition", "noncompetitive"): {"required": [], "one_of": [["I", "kappa"]]},
    ("inhibition", "competitive"): {"required": ["Ki"], "one_of": []},
    ("production", "non_growth"): {"required": ["v"], "one_of": []},
    ("production", "growth_associated"): {"required": ["alpha"], "one_of": []},
    ("production", "luedeking_piret"): {"required": ["alpha", "v"], "one_of": []},
    ("glv", "linear"): {"required": ["a"], "one_of": []},
    ("mass_action", "mass_action"): {"required": ["k"], "one_of": []},
    ("custom", "custom"): {"required": [], "one_of": []},
    # neural terms (section "neural" of docs/spec-format.md): the rate is an MLP output `<id>.<output>`
    ("uptake", "neural"): {"required": ["yield"], "one_of": []},
    ("production", "neural"): {"required": [], "one_of": []},
}
DEFAULT_LAW = {"uptake": "monod", "inhibition": "noncompetitive", "production": "non_growth",
               "glv": "linear", "mass_action": "mass_action", "custom": "custom"}
#: The role whose value 0 removes an edge (None: the edge has no such strength).
STRENGTH_ROLE = {("uptake", "monod"): "a", ("uptake", "shared_monod"): "a", ("uptake", "haldane"): "mu",
                 ("inhibition", "noncompetitive"): "kappa", ("inhibition", "competitive"): None,
                 ("production", "non_growth"): "v", ("production", "growth_associated"): "alpha",
                 ("production", "luedeking_piret"): None, ("glv", "linear"): "a",
                 ("mass_action", "mass_action"): "k", ("custom", "custom"): None,
                 ("uptake", "neural"): None, ("production", "neural"): None}
ID_PREFIX = {"uptake": "uptake", "production": "prod", "inhibition": "inhib", "glv": "glv"}
APPLIES_TO = ("growth", "growth_and_uptake")
#: Neural terms: hidden-layer activations and output activations.
NEURAL_ACTIVATIONS = ("tanh", "softplus", "sigmoid", "relu")
NEURAL_OUTPUT_ACTIVATIONS = ("linear", "softplus", "sigmoid")
NEURAL_REF_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)\.([A-Za-z][A-Za-z0-9_]*)$")


@dataclass
class Parameter:
    """A model parameter (estimated or fixed constant)."""

    name: str
    value: float
    lower: float | None = None
    upper: float | None = None
    scale: str = "log"
    estimate: bool = True
    unit: str = ""
    description: str = ""


@dataclass
class State:
    """A state variable with its initial condition."""

    name: str
    role: str = "other"
    x0: float = 0.0
    estimate: bool = False
    lower: float | None = None
    upper: float | None = None
    unit: str = ""
    description: str = ""


@dataclass
class Input:
    """A known time-varying input, e.g. the dilution rate D(t), supplied from a data column."""

    name: str
    interpolation: str = "constant"  # "constant" (piecewise constant, value at interval start) or "linear"
    default: float | None = None
    unit: str = ""
    description: str = ""


@dataclass
class Noise:
    """Gaussian measurement noise: sigma^2 = absolute^2 + (relative * y)^2."""

    absolute: float = 0.0
    relative: float = 0.0


@dataclass
class Observable:
    name: str
    expr: str
    noise: Noise = field(default_factory=Noise)
    unit: str = ""
    description: str = ""


@dataclass
class Interaction:
    """One edge of the community graph: a kinetic law with its parameters (role -> name or number)."""

    id: str
    kind: str
    law: str
    source: str | None = None
    target: str | None = None
    params: dict[str, str | float] = field(default_factory=dict)
    applies_to: str | None = None      # inhibition: "growth" or "growth_and_uptake"
    uptake: str | None = None          # competitive inhibition: restrict to this uptake edge id
    reactants: dict[str, float] = field(default_factory=dict)     # mass action
    products: dict[str, float] = field(default_factory=dict)      # mass action
    rate: str | None = None            # custom
    stoichiometry: dict[str, float] = field(default_factory=dict)  # custom
    prunable: bool = False
    description: str = ""

    @property
    def strength_role(self) -> str | None:
        role = STRENGTH_ROLE.get((self.kind, self.law))
        if role == "a" and self.kind == "uptake" and "a" not in self.params:
            return None
        if role == "kappa" and "kappa" not in self.params:
            return None
        return role

    @property
    def strength(self) -> str | float | None:
        """The parameter (or number) whose value 0 means the edge is absent."""
        role = self.strength_role
        return self.params.get(role) if role else None

    def nodes(self) -> list[str]:
        """States this interaction touches."""
        names = [n for n in (self.source, self.target) if n]
        names += [n for n in (*self.reactants, *self.products, *self.stoichiometry) if n not in names]
        return names


@dataclass
class Reactor:
    mode: str = "chemostat"  # "chemostat" or "batch"
    dilution: str | None = None
    feed: dict[str, str | float] = field(default_factory=dict)


@dataclass
class NeuralTerm:
    """A small MLP inside f: ``outputs = act_out(W_L ... act(W_1 (inputs / input_scale) + b_1) ... + b_L)
    * output_scale``. Its outputs are referenced as ``<id>.<output>`` (uptake/production law ``neural``,
    custom rates). Weights are ordinary spec parameters named by :meth:`weight_names`."""

    id: str
    inputs: list[str]
    outputs: list[str]
    hidden: list[int] = field(default_factory=list)
    activation: str = "tanh"
    output_activation: str = "linear"
    input_scale: dict[str, float] = field(default_factory=dict)
    output_scale: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    l2: float = 0.0
    description: str = ""

    @property
    def sizes(self) -> list[int]:
        """Layer widths [n_inputs, *hidden, n_outputs]."""
        return [len(self.inputs), *self.hidden, len(self.outputs)]

    def layers(self) -> list[tuple[list[list[str]], list[str]]]:
        """Per layer l = 1..L: (weight names W[i][j] (out i, in j), bias names b[i])."""
        out = []
        sizes = self.sizes
        for layer in range(1, len(sizes)):
            n_in, n_out = sizes[layer - 1], sizes[layer]
            W = [[f"{self.id}__W{layer}_{i}_{j}" for j in range(n_in)] for i in range(n_out)]
            b = [f"{self.id}__b{layer}_{i}" for i in range(n_out)]
            out.append((W, b))
        return out

    def weight_names(self) -> list[str]:
        """All weight and bias parameter names, layer by layer (W row-major, then b)."""
        names: list[str] = []
        for W, b in self.layers():
            names += [n for row in W for n in row] + b
        return names

    def initial_weights(self) -> dict[str, float]:
        """Glorot-uniform weights from ``seed`` (biases 0)."""
        import numpy as np

        rng = np.random.default_rng(self.seed)
        out: dict[str, float] = {}
        for W, b in self.layers():
            n_out, n_in = len(W), len(W[0]) if W else 0
            a = math.sqrt(6.0 / (n_in + n_out)) if n_in + n_out else 0.0
            vals = rng.uniform(-a, a, size=(n_out, n_in))
            for i, row in enumerate(W):
                for j, name in enumerate(row):
                    out[name] = float(vals[i, j])
            out.update({name: 0.0 for name in b})
        return out

    def ref(self, output: str) -> str:
        return f"{self.id}.{output}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "inputs": list(self.inputs), "outputs": list(self.outputs),
                             "hidden": list(self.hidden), "activation": self.activation,
                             "output_activation": self.output_activation}
        if self.input_scale:
            d["input_scale"] = dict(self.input_scale)
        if self.output_scale:
            d["output_scale"] = dict(self.output_scale)
        d["seed"] = self.seed
        d["l2"] = self.l2
        if self.description:
            d["description"] = self.description
        return d


def rewrite_neural_refs(text: str, neural: list[NeuralTerm]) -> str:
    """Expression text with every neural reference ``<id>.<output>`` replaced by ``<id>__<output>``
    (the expression parser accepts plain names only)."""
    for term in neural:
        for o in term.outputs:
            text = re.sub(rf"(?<![A-Za-z0-9_.]){re.escape(term.id)}\.{re.escape(o)}(?![A-Za-z0-9_])",
                          f"{term.id}__{o}", text)
    return text


@dataclass
class Spec:
    """A validated model spec."""

    name: str
    reactor: Reactor
    states: dict[str, State]
    parameters: dict[str, Parameter]
    inputs: dict[str, Input]
    interactions: list[Interaction]
    observables: dict[str, Observable]
    description: str = ""
    source: str | None = field(default=None, compare=False, repr=False)
    neural: list[NeuralTerm] = field(default_factory=list)

    # -- lookups -------------------------------------------------------------------------------------
    @property
    def state_names(self) -> list[str]:
        return list(self.states)

    @property
    def parameter_names(self) -> list[str]:
        return list(self.parameters)

    @property
    def input_names(self) -> list[str]:
        return list(self.inputs)

    @property
    def estimated_parameters(self) -> list[str]:
        return [p.name for p in self.parameters.values() if p.estimate]

    def neural_term(self, term_id: str) -> NeuralTerm:
        for n in self.neural:
            if n.id == term_id:
                return n
        raise KeyError(term_id)

    @property
    def neural_weights(self) -> list[str]:
        """Names of all neural-network weight parameters (in spec order of the terms)."""
        return [w for n in self.neural for w in n.weight_names()]

    def interaction(self, edge_id: str) -> Interaction:
        for e in self.interactions:
            if e.id == edge_id:
                return e
        raise KeyError(edge_id)

    # -- editing -------------------------------------------------------------------------------------
    def copy(self) -> Spec:
        return copy.deepcopy(self)

    def with_values(self, parameters: Mapping[str, float] | None = None,
                    x0: Mapping[str, float] | None = None) -> Spec:
        """A copy with parameter values and/or initial states replaced (names must exist)."""
        new = self.copy()
        for name, value in (parameters or {}).items():
            if name not in new.parameters:
                raise SpecError(f"unknown parameter {name!r}")
            new.parameters[name].value = float(value)
        for name, value in (x0 or {}).items():
            if name not in new.states:
                raise SpecError(f"unknown state {name!r}")
            new.states[name].x0 = float(value)
        return new

    # -- serialisation -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data that :func:`spec_from_dict` turns back into an equal Spec."""
        out: dict[str, Any] = {"symode": FORMAT_VERSION, "name": self.name}
        if self.description:
            out["description"] = self.description
        reactor: dict[str, Any] = {"mode": self.reactor.mode}
        if self.reactor.dilution:
            reactor["dilution"] = self.reactor.dilution
        if self.reactor.feed:
            reactor["feed"] = dict(self.reactor.feed)
        out["reactor"] = reactor
        out["states"] = {s.name: _drop_defaults({
            "role": s.role, "x0": s.x0, "estimate": s.estimate, "bounds": _bounds(s.lower, s.upper),
            "unit": s.unit, "description": s.description}, {"estimate": False})
            for s in self.states.values()}
        if self.inputs:
            out["inputs"] = {i.name: _drop_defaults({
                "interpolation": i.interpolation, "default": i.default, "unit": i.unit,
                "description": i.description}, {"interpolation": "constant"}) for i in self.inputs.values()}
        if self.neural:
            out["neural"] = [n.to_dict() for n in self.neural]
        out["parameters"] = {p.name: _drop_defaults({
            "value": p.value, "bounds": _bounds(p.lower, p.upper), "scale": p.scale, "estimate": p.estimate,
            "unit": p.unit, "description": p.description}, {"estimate": True})
            for p in self.parameters.values()}
        out["interactions"] = [_interaction_to_dict(e) for e in self.interactions]
        out["observables"] = {o.name: _drop_defaults({
            "expr": o.expr, "noise": _drop_defaults({"absolute": o.noise.absolute,
                                                    "relative": o.noise.relative}, {}),
            "unit": o.unit, "description": o.description}, {}) for o in self.observables.values()}
        return out

    def to_yaml(self) -> str:
        return dump_yaml(self.to_dict())


def _bounds(lo: float | None, hi: float | None) -> list[float | None] | None:
    return None if lo is None and hi is None else [lo, hi]


def _drop_defaults(d: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items()
            if v is not None and v != "" and v != {} and not (k in defaults and defaults[k] == v)}


def _interaction_to_dict(e: Interaction) -> dict[str, Any]:
    d: dict[str, Any] = {"id": e.id, "type": e.kind, "law": e.law}
    if e.source:
        d["from"] = e.source
    if e.target:
        d["to"] = e.target
    d.update(e.params)
    if e.applies_to:
        d["applies_to"] = e.applies_to
    if e.uptake:
        d["uptake"] = e.uptake
    if e.reactants:
        d["reactants"] = dict(e.reactants)
    if e.products:
        d["products"] = dict(e.products)
    if e.rate is not None:
        d["rate"] = e.rate
    if e.stoichiometry:
        d["stoichiometry"] = dict(e.stoichiometry)
    if e.prunable:
        d["prunable"] = True
    if e.description:
        d["description"] = e.description
    return d


class _Dumper(yaml.SafeDumper):
    pass


def _represent_float(dumper: yaml.SafeDumper, value: float) -> yaml.Node:
    if math.isinf(value):
        text = ".inf" if value > 0 else "-.inf"
    elif math.isnan(value):
        text = ".nan"
    else:
        text = repr(float(value))
        if "e" in text and "." not in text.split("e")[0]:
            mant, exp = text.split("e")
            text = f"{mant}.0e{exp}"  # YAML 1.1 floats need a dot to be read back as floats
    return dumper.represent_scalar("tag:yaml.org,2002:float", text)


def _represent_list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.Node:
    flow = all(isinstance(v, (int, float, str)) or v is None for v in value) and len(value) <= 8
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


def _represent_dict(dumper: yaml.SafeDumper, value: dict[Any, Any]) -> yaml.Node:
    simple = all(isinstance(v, (int, float, str)) or v is None
                 or (isinstance(v, list) and all(not isinstance(i, (list, dict)) for i in v))
                 for v in value.values())
    flow = simple and len(str(value)) < 150 and bool(value)
    return dumper.represent_mapping("tag:yaml.org,2002:map", value, flow_style=flow)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    # YAML line-break characters (NEL, LS, PS) inside single-quoted or plain scalars are folded on
    # reading; double quotes with escapes keep every character.
    style = '"' if any(c in value for c in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(float, _represent_float)
_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(dict, _represent_dict)


def dump_yaml(data: Any) -> str:
    """YAML text for plain data, keeping key order, with floats that read back exactly."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=110,
                     allow_unicode=True)


# ----------------------------------------------------------------------------------------------------
# Loading and validation
# ----------------------------------------------------------------------------------------------------

def load_spec(path: str | Path) -> Spec:
    """Load and validate a spec file; raises :class:`SpecError` with file, line and field."""
    located = load_yaml_file(path)
    spec = _Validator(located).spec()
    spec.source = str(path)
    return spec


def loads_spec(text: str, file: str = "<string>") -> Spec:
    """Load and validate a spec from YAML text."""
    return _Validator(load_yaml(text, file)).spec()


def spec_from_dict(data: Mapping[str, Any], file: str = "<dict>") -> Spec:
    """Validate plain data (as produced by :meth:`Spec.to_dict`)."""
    return _Validator(Located(copy.deepcopy(dict(data)), {}, file)).spec()


def dump_spec(spec: Spec, path: str | Path) -> None:
    """Write a spec atomically as YAML."""
    from symode.io import atomic_write_text

    atomic_write_text(path, spec.to_yaml())


class _Validator:
    """Turns located YAML data into a Spec, raising located SpecErrors."""

    def __init__(self, located: Located) -> None:
        self.loc = located

    def err(self, path: tuple[Any, ...], msg: str) -> SpecError:
        return self.loc.error(path, msg)

    # -- primitive checks ----------------------------------------------------------------------------
    def mapping(self, value: Any, path: tuple[Any, ...], what: str = "a mapping") -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.err(path, f"expected {what}, got {_kind(value)}")
        return value

    def keys(self, d: dict[str, Any], path: tuple[Any, ...], allowed: set[str]) -> None:
        for k in d:
            if k not in allowed:
                close = ", ".join(sorted(allowed))
                raise self.err((*path, k), f"unknown field {k!r} (allowed: {close})")

    def number(self, value: Any, path: tuple[Any, ...], *, allow_none: bool = False,
               allow_inf: bool = False) -> float | None:
        if value is None and allow_none:
            return None
        if isinstance(value, bool) or value is None:
            raise self.err(path, f"expected a number, got {_kind(value)}")
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise self.err(path, f"expected a number, got {value!r}") from None
        if not isinstance(value, (int, float)):
            raise self.err(path, f"expected a number, got {_kind(value)}")
        value = float(value)
        if math.isnan(value) or (math.isinf(value) and not allow_inf):
            raise self.err(path, f"expected a finite number, got {value}")
        return value

    def string(self, value: Any, path: tuple[Any, ...], *, choices: tuple[str, ...] | None = None) -> str:
        if not isinstance(value, str):
            raise self.err(path, f"expected a string, got {_kind(value)}")
        if choices is not None and value not in choices:
            raise self.err(path, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def boolean(self, value: Any, path: tuple[Any, ...]) -> bool:
        if not isinstance(value, bool):
            raise self.err(path, f"expected true or false, got {_kind(value)}")
        return value

    def name(self, value: Any, path: tuple[Any, ...]) -> str:
        if not isinstance(value, str) or not NAME_RE.match(value):
            raise self.err(path, f"{value!r} is not a valid name (letters, digits, _; starting with a letter)")
        if value in RESERVED or keyword.iskeyword(value):
            raise self.err(path, f"{value!r} is a reserved name")
        return value

    def bounds(self, value: Any, path: tuple[Any, ...]) -> tuple[float | None, float | None]:
        if value is None:
            return None, None
        if not isinstance(value, list) or len(value) != 2:
            raise self.err(path, "bounds must be a list [lower, upper] (null for an open side)")
        lo = self.number(value[0], (*path, 0), allow_none=True, allow_inf=True)
        hi = self.number(value[1], (*path, 1), allow_none=True, allow_inf=True)
        lo = None if lo is not None and lo == -math.inf else lo
        hi = None if hi is not None and hi == math.inf else hi
        if lo is not None and hi is not None and lo >= hi:
            raise self.err(path, f"lower bound {lo} is not below upper bound {hi}")
        return lo, hi

    # -- sections ------------------------------------------------------------------------------------
    def spec(self) -> Spec:
        data = self.loc.data
        if data is None:
            raise self.err((), "the spec is empty")
        root = self.mapping(data, (), "a mapping at the top level")
        self.keys(root, (), {"symode", "name", "description", "reactor", "states", "inputs", "parameters",
                             "interactions", "observables", "neural"})
        version = root.get("symode", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise self.err(("symode",), f"unsupported spec format version {version!r} (this symode reads "
                                        f"{FORMAT_VERSION})")
        name = self.string(root.get("name", "model"), ("name",))
        description = self.string(root.get("description", ""), ("description",))
        for section in ("states", "parameters"):
            if section not in root:
                raise self.err((), f"missing section {section!r}")
        states = self.states(self.mapping(root["states"], ("states",)))
        inputs = self.inputs(self.mapping(root.get("inputs"), ("inputs",)))
        parameters = self.parameters(self.mapping(root["parameters"], ("parameters",)))
        self.unique_names(states, inputs, parameters)
        self._neural: list[NeuralTerm] = []
        if "neural" in root:
            self._neural = self.neural(root["neural"], root, states, inputs, parameters)
        reactor = self.reactor(self.mapping(root.get("reactor"), ("reactor",)), states, inputs, parameters)
        interactions = self.interactions(root.get("interactions"), states, inputs, parameters)
        observables = self.observables(self.mapping(root.get("observables"), ("observables",)),
                                       states, inputs, parameters)
        spec = Spec(name=name, description=description, reactor=reactor, states=states, parameters=parameters,
                    inputs=inputs, interactions=interactions, observables=observables)
        if self._neural:
            spec.neural = self._neural
        return spec

    def unique_names(self, *groups: dict[str, Any]) -> None:
        seen: dict[str, str] = {}
        sections = ("states", "inputs", "parameters")
        for section, group in zip(sections, groups, strict=True):
            for n in group:
                if n in seen:
                    raise self.err((section, n), f"name {n!r} is already used in {seen[n]}")
                seen[n] = section

    def states(self, raw: dict[str, Any]) -> dict[str, State]:
        if not raw:
            raise self.err(("states",), "at least one state is required")
        out: dict[str, State] = {}
        for key, val in raw.items():
            path = ("states", key)
            name = self.name(key, path)
            if isinstance(val, (int, float, str)) and not isinstance(val, bool):
                val = {"x0": val}
            d = self.mapping(val, path)
            self.keys(d, path, {"role", "x0", "estimate", "bounds", "unit", "description"})
            lo, hi = self.bounds(d.get("bounds"), (*path, "bounds"))
            x0 = self.number(d.get("x0", 0.0), (*path, "x0"))
            assert x0 is not None
            if (lo is not None and x0 < lo) or (hi is not None and x0 > hi):
                raise self.err((*path, "x0"), f"initial value {x0} is outside bounds [{lo}, {hi}]")
            out[name] = State(name=name, role=self.string(d.get("role", "other"), (*path, "role"),
                                                          choices=STATE_ROLES),
                              x0=x0, estimate=self.boolean(d.get("estimate", False), (*path, "estimate")),
                              lower=lo, upper=hi, unit=str(d.get("unit", "")),
                              description=str(d.get("description", "")))
        return out

    def inputs(self, raw: dict[str, Any]) -> dict[str, Input]:
        out: dict[str, Input] = {}
        for key, val in raw.items():
            path = ("inputs", key)
            name = self.name(key, path)
            d = self.mapping(val, path)
            self.keys(d, path, {"interpolation", "default", "unit", "description"})
            out[name] = Input(name=name,
                              interpolation=self.string(d.get("interpolation", "constant"),
                                                        (*path, "interpolation"), choices=("constant", "linear")),
                              default=self.number(d.get("default"), (*path, "default"), allow_none=True),
                              unit=str(d.get("unit", "")), description=str(d.get("description", "")))
        return out

    def parameters(self, raw: dict[str, Any]) -> dict[str, Parameter]:
        out: dict[str, Parameter] = {}
        for key, val in raw.items():
            path = ("parameters", key)
            name = self.name(key, path)
            if isinstance(val, (int, float, str)) and not isinstance(val, bool):
                val = {"value": val}
            d = self.mapping(val, path)
            self.keys(d, path, {"value", "bounds", "scale", "estimate", "unit", "description"})
            if "value" not in d:
                raise self.err(path, "missing field 'value'")
            value = self.number(d["value"], (*path, "value"))
            assert value is not None
            lo, hi = self.bounds(d.get("bounds"), (*path, "bounds"))
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise self.err((*path, "value"), f"value {value} is outside bounds [{lo}, {hi}]")
            default_scale = "log" if value > 0 and (lo is None or lo > 0) else "lin"
            scale = self.string(d.get("scale", default_scale), (*path, "scale"), choices=("lin", "log"))
            if scale == "log" and (value <= 0 or (lo is not None and lo <= 0)):
                raise self.err((*path, "scale"), "log scale needs a positive value and a positive lower bound")
            out[name] = Parameter(name=name, value=value, lower=lo, upper=hi, scale=scale,
                                  estimate=self.boolean(d.get("estimate", True), (*path, "estimate")),
                                  unit=str(d.get("unit", "")), description=str(d.get("description", "")))
        return out

    def ref(self, value: Any, path: tuple[Any, ...], parameters: dict[str, Parameter]) -> str | float:
        """A role value: a parameter name or a number."""
        if isinstance(value, str):
            if value in parameters:
                return value
            try:
                float(value)
            except ValueError:
                raise self.err(path, f"unknown parameter {value!r}") from None
        num = self.number(value, path)
        assert num is not None
        return num

    def reactor(self, d: dict[str, Any], states: dict[str, State], inputs: dict[str, Input],
                parameters: dict[str, Parameter]) -> Reactor:
        path = ("reactor",)
        self.keys(d, path, {"mode", "dilution", "feed"})
        mode = self.string(d.get("mode", "batch" if not d else "chemostat"), (*path, "mode"),
                           choices=("chemostat", "batch"))
        dilution = d.get("dilution")
        if mode == "chemostat":
            if dilution is None:
                raise self.err(path, "a chemostat needs 'dilution: <input or parameter name>'")
            if not isinstance(dilution, str) or (dilution not in inputs and dilution not in parameters):
                raise self.err((*path, "dilution"), f"dilution {dilution!r} is not a declared input or parameter")
        elif dilution is not None:
            raise self.err((*path, "dilution"), "a batch reactor has no dilution")
        feed: dict[str, str | float] = {}
        for k, v in self.mapping(d.get("feed"), (*path, "feed")).items():
            if k not in states:
                raise self.err((*path, "feed", k), f"unknown state {k!r}")
            feed[k] = self.ref(v, (*path, "feed", k), parameters)
        if feed and mode != "chemostat":
            raise self.err((*path, "feed"), "feed concentrations need mode: chemostat")
        return Reactor(mode=mode, dilution=dilution, feed=feed)

    def interactions(self, raw: Any, states: dict[str, State], inputs: dict[str, Input],
                     parameters: dict[str, Parameter]) -> list[Interaction]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise self.err(("interactions",), f"expected a list of interactions, got {_kind(raw)}")
        out: list[Interaction] = []
        ids: set[str] = set()
        for i, val in enumerate(raw):
            e = self.interaction(self.mapping(val, ("interactions", i)), ("interactions", i), states, inputs,
                                 parameters)
            if e.id in ids:
                raise self.err(("interactions", i, "id"), f"duplicate interaction id {e.id!r}")
            ids.add(e.id)
            out.append(e)
        for i, e in enumerate(out):
            if e.uptake is not None:
                target = next((u for u in out if u.id == e.uptake), None)
                if target is None or target.kind != "uptake" or target.target != e.target:
                    raise self.err(("interactions", i, "uptake"),
                                   f"{e.uptake!r} is not an uptake edge of {e.target!r}")
        return out

    def interaction(self, d: dict[str, Any], path: tuple[Any, ...], states: dict[str, State],
                    inputs: dict[str, Input], parameters: dict[str, Parameter]) -> Interaction:
        kind = self.string(d.get("type"), (*path, "type"), choices=tuple(DEFAULT_LAW))
        law = self.string(d.get("law", DEFAULT_LAW[kind]), (*path, "law"),
                          choices=tuple(lw for (k, lw) in LAWS if k == kind))
        rule = LAWS[(kind, law)]
        roles = set(rule["required"]) | {r for group in rule["one_of"] for r in group}
        structural = {"id", "type", "law", "description", "prunable"}
        if kind in ("uptake", "production", "inhibition", "glv"):
            structural |= {"from", "to"}
        if kind == "inhibition":
            structural |= {"applies_to"} | ({"uptake"} if law == "competitive" else set())
        if kind == "mass_action":
            structural |= {"reactants", "products"}
        if kind == "custom":
            structural |= {"rate", "stoichiometry"}
        if law == "neural":
            structural |= {"rate"}
        self.keys(d, path, structural | roles)

        def state_ref(key: str, roles_ok: tuple[str, ...] | None) -> str:
            if key not in d:
                raise self.err(path, f"missing field {key!r}")
            v = d[key]
            if not isinstance(v, str) or v not in states:
                raise self.err((*path, key), f"undefined state {v!r}")
            if roles_ok is not None and states[v].role not in roles_ok:
                raise self.err((*path, key), f"{v!r} has role {states[v].role!r}; {kind} needs "
                                             f"{' or '.join(roles_ok)}")
            return v

        source = target = None
        if kind == "uptake":
            source = state_ref("from", None)
            target = state_ref("to", SPECIES_ROLES)
        elif kind == "production":
            source = state_ref("from", SPECIES_ROLES)
            target = state_ref("to", None)
        elif kind == "inhibition":
            source = state_ref("from", None)
            target = state_ref("to", SPECIES_ROLES)
        elif kind == "glv":
            source = state_ref("from", None)
            target = state_ref("to", None)

        params: dict[str, str | float] = {}
        for role in rule["required"]:
            if role not in d:
                raise self.err(path, f"{kind} law {law!r} needs parameter role {role!r}")
        for group in rule["one_of"]:
            present = [r for r in group if r in d]
            if len(present) != 1:
                raise self.err(path, f"{kind} law {law!r} needs exactly one of {', '.join(group)}")
        for role in sorted(roles & set(d), key=list(d).index):
            params[role] = self.ref(d[role], (*path, role), parameters)

        e = Interaction(id="", kind=kind, law=law, source=source, target=target, params=params,
                        prunable=self.boolean(d.get("prunable", False), (*path, "prunable")),
                        description=str(d.get("description", "")))
        if kind == "inhibition":
            e.applies_to = self.string(d.get("applies_to", "growth_and_uptake"), (*path, "applies_to"),
                                       choices=APPLIES_TO)
            if "uptake" in d:
                e.uptake = self.string(d["uptake"], (*path, "uptake"))
        if law == "neural":
            e.rate = self.neural_ref(d.get("rate"), (*path, "rate"), path)
        if kind == "mass_action":
            e.reactants = self.stoich(d.get("reactants"), (*path, "reactants"), states, positive=True)
            e.products = self.stoich(d.get("products"), (*path, "products"), states, positive=True,
                                     allow_empty=True)
            if not e.reactants:
                raise self.err((*path, "reactants"), "mass action needs at least one reactant")
        if kind == "custom":
            if "rate" not in d:
                raise self.err(path, "custom interaction needs 'rate: <expression>'")
            e.rate = self.string(d["rate"], (*path, "rate")) if not isinstance(d["rate"], (int, float)) \
                else repr(float(d["rate"]))
            symbols = [*states, *inputs, *parameters, "t"]
            neural = getattr(self, "_neural", [])
            symbols += [f"{n.id}__{o}" for n in neural for o in n.outputs]
            try:
                parse_expression(rewrite_neural_refs(e.rate, neural), symbols)
            except ExpressionError as exc:
                raise self.err((*path, "rate"), exc.message) from None
            e.stoichiometry = self.stoich(d.get("stoichiometry"), (*path, "stoichiometry"), states,
                                          positive=False)
            if not e.stoichiometry:
                raise self.err((*path, "stoichiometry"), "custom interaction needs a stoichiometry "
                                                         "{state: coefficient}")
        if "id" in d:
            e.id = self.string(d["id"], (*path, "id"))
        elif kind in ID_PREFIX:
            arrow = "-|" if kind == "inhibition" else "->"
            e.id = f"{ID_PREFIX[kind]}:{source}{arrow}{target}"
        elif kind == "mass_action":
            e.id = f"mass_action:{'+'.join(e.reactants)}->{'+'.join(e.products)}"
        else:
            raise self.err(path, "custom interactions need an 'id'")
        return e

    def neural_ref(self, value: Any, path: tuple[Any, ...], parent: tuple[Any, ...]) -> str:
        """A neural output reference ``<id>.<output>``."""
        if value is None:
            raise self.err(parent, "a neural law needs 'rate: <neural id>.<output>'")
        if not isinstance(value, str) or not NEURAL_REF_RE.match(value):
            raise self.err(path, f"expected a neural output '<id>.<output>', got {_kind(value)}")
        term_id, out = value.split(".")
        term = next((n for n in getattr(self, "_neural", []) if n.id == term_id), None)
        if term is None:
            raise self.err(path, f"unknown neural term {term_id!r}")
        if out not in term.outputs:
            raise self.err(path, f"neural term {term_id!r} has no output {out!r} (outputs: "
                                 f"{', '.join(term.outputs)})")
        return value

    def neural(self, raw: Any, root: dict[str, Any], states: dict[str, State], inputs: dict[str, Input],
               parameters: dict[str, Parameter]) -> list[NeuralTerm]:
        """The ``neural:`` list; adds missing weight parameters (Glorot init from the seed) to
        ``parameters`` and makes given weights without an explicit scale linear."""
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise self.err(("neural",), f"expected a list of neural terms, got {_kind(raw)}")
        out: list[NeuralTerm] = []
        taken = set(states) | set(inputs)
        raw_params = root.get("parameters") if isinstance(root.get("parameters"), dict) else {}
        for k, val in enumerate(raw):
            path: tuple[Any, ...] = ("neural", k)
            d = self.mapping(val, path)
            self.keys(d, path, {"id", "inputs", "outputs", "hidden", "activation", "output_activation",
                                "input_scale", "output_scale", "seed", "l2", "description"})
            if "id" not in d:
                raise self.err(path, "missing field 'id'")
            term_id = self.name(d["id"], (*path, "id"))
            if "__" in term_id:
                raise self.err((*path, "id"), "a neural id must not contain '__'")
            if term_id in taken or term_id in parameters or any(n.id == term_id for n in out):
                raise self.err((*path, "id"), f"name {term_id!r} is already used")
            names_in = self.name_list(d.get("inputs"), (*path, "inputs"), "inputs")
            for j, n in enumerate(names_in):
                if n not in states and n not in inputs:
                    raise self.err((*path, "inputs", j), f"{n!r} is not a state or input")
            names_out = self.name_list(d.get("outputs"), (*path, "outputs"), "outputs")
            for j, n in enumerate(names_out):
                if re.match(r"^[Wb]\d", n):
                    raise self.err((*path, "outputs", j), f"output name {n!r} looks like a weight name")
                if f"{term_id}__{n}" in parameters or f"{term_id}__{n}" in taken:
                    raise self.err((*path, "outputs", j), f"{term_id}__{n} clashes with a declared name")
            hidden_raw = d.get("hidden", [])
            if not isinstance(hidden_raw, list):
                raise self.err((*path, "hidden"), f"expected a list of layer widths, got {_kind(hidden_raw)}")
            hidden = []
            for j, h in enumerate(hidden_raw):
                if isinstance(h, bool) or not isinstance(h, int) or h < 1:
                    raise self.err((*path, "hidden", j), f"expected a positive integer, got {_kind(h)}")
                hidden.append(int(h))
            seed = d.get("seed", 0)
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                raise self.err((*path, "seed"), f"expected a non-negative integer, got {_kind(seed)}")
            l2 = self.number(d.get("l2", 0.0), (*path, "l2"))
            assert l2 is not None
            if l2 < 0:
                raise self.err((*path, "l2"), "l2 must be non-negative")
            scales: list[dict[str, float]] = []
            for key, allowed in (("input_scale", names_in), ("output_scale", names_out)):
                sd = self.mapping(d.get(key), (*path, key), "a mapping {name: scale}")
                got: dict[str, float] = {}
                for n, v in sd.items():
                    if n not in allowed:
                        raise self.err((*path, key, n), f"{n!r} is not one of the {key.split('_')[0]}s")
                    num = self.number(v, (*path, key, n))
                    assert num is not None
                    if num <= 0:
                        raise self.err((*path, key, n), "scales must be positive")
                    got[n] = num
                scales.append(got)
            term = NeuralTerm(id=term_id, inputs=names_in, outputs=names_out, hidden=hidden,
                              activation=self.string(d.get("activation", "tanh"), (*path, "activation"),
                                                     choices=NEURAL_ACTIVATIONS),
                              output_activation=self.string(d.get("output_activation", "linear"),
                                                            (*path, "output_activation"),
                                                            choices=NEURAL_OUTPUT_ACTIVATIONS),
                              input_scale=scales[0], output_scale=scales[1], seed=seed, l2=l2,
                              description=str(d.get("description", "")))
            init = term.initial_weights()
            for w in term.weight_names():
                if w in parameters:
                    rp = raw_params.get(w)
                    if not (isinstance(rp, dict) and "scale" in rp):
                        parameters[w].scale = "lin"
                else:
                    parameters[w] = Parameter(name=w, value=init[w], scale="lin")
            out.append(term)
        return out

    def name_list(self, raw: Any, path: tuple[Any, ...], what: str) -> list[str]:
        if not isinstance(raw, list) or not raw:
            raise self.err(path, f"expected a non-empty list of {what}, got {_kind(raw)}")
        names = [self.name(v, (*path, j)) for j, v in enumerate(raw)]
        for j, n in enumerate(names):
            if n in names[:j]:
                raise self.err((*path, j), f"duplicate name {n!r}")
        return names

    def stoich(self, raw: Any, path: tuple[Any, ...], states: dict[str, State], *, positive: bool,
               allow_empty: bool = False) -> dict[str, float]:
        d = self.mapping(raw, path, "a mapping {state: coefficient}")
        out: dict[str, float] = {}
        for k, v in d.items():
            if k not in states:
                raise self.err((*path, k), f"undefined state {k!r}")
            c = self.number(v, (*path, k))
            assert c is not None
            if positive and c <= 0:
                raise self.err((*path, k), "coefficients must be positive")
            out[k] = c
        return out

    def observables(self, raw: dict[str, Any], states: dict[str, State], inputs: dict[str, Input],
                    parameters: dict[str, Parameter]) -> dict[str, Observable]:
        out: dict[str, Observable] = {}
        symbols = [*states, *inputs, *parameters]
        for key, val in raw.items():
            path = ("observables", key)
            if not isinstance(key, str) or not NAME_RE.match(key):
                raise self.err(path, f"{key!r} is not a valid observable name")
            if key in parameters or key in inputs:
                raise self.err(path, f"observable {key!r} clashes with a parameter or input name")
            d = self.mapping(val, path)
            self.keys(d, path, {"expr", "noise", "unit", "description"})
            expr = d.get("expr", key)
            if isinstance(expr, (int, float)) and not isinstance(expr, bool):
                expr = repr(float(expr))
            expr = self.string(expr, (*path, "expr"))
            if key in states and expr != key:
                raise self.err((*path, "expr"), f"observable {key!r} has a state's name but another formula")
            try:
                parsed = parse_expression(expr, symbols)
            except ExpressionError as exc:
                raise self.err((*path, "expr"), exc.message) from None
            if not {s.name for s in parsed.free_symbols} & set(states):
                raise self.err((*path, "expr"), "an observable must depend on at least one state")
            nd = self.mapping(d.get("noise"), (*path, "noise"))
            self.keys(nd, (*path, "noise"), {"absolute", "relative"})
            noise = Noise(absolute=self.number(nd.get("absolute", 0.0), (*path, "noise", "absolute")) or 0.0,
                          relative=self.number(nd.get("relative", 0.0), (*path, "noise", "relative")) or 0.0)
            if noise.absolute < 0 or noise.relative < 0:
                raise self.err((*path, "noise"), "noise levels must be non-negative")
            if noise.absolute == 0 and noise.relative == 0:
                raise self.err((*path, "noise"), "give an absolute and/or relative noise level (> 0)")
            out[key] = Observable(name=key, expr=expr, noise=noise, unit=str(d.get("unit", "")),
                                  description=str(d.get("description", "")))
        return out


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: f"the string {value!r}", bool: f"{value}"}.get(
        type(value), type(value).__name__)
