"""The spec as Python objects: :class:`Spec` and its parts (states, inputs, parameters, interactions,
observables with their noise model, neural terms), with the lossless ``to_dict``/``to_yaml`` inverse of
loading (:mod:`symode.spec.loading`)."""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from symode.errors import SpecError
from symode.spec.vocabulary import FORMAT_VERSION, STRENGTH_ROLE
from symode.spec.yamldump import dump_yaml


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
    lower: float | None = None       # bounds on the values a data file may give
    upper: float | None = None


@dataclass
class Noise:
    """Gaussian measurement noise: sigma^2 = absolute^2 + (relative * y)^2."""

    absolute: float = 0.0
    relative: float = 0.0


@dataclass
class Observable:
    """What a data column measures. ``transform: log10`` compares log10(y + offset) of the model value
    y with log10(d + offset) of the data value d (values with d + offset <= 0 count as missing); the
    noise levels are then on the log10 scale."""

    name: str
    expr: str
    noise: Noise = field(default_factory=Noise)
    unit: str = ""
    description: str = ""
    transform: str = "none"
    offset: float = 0.0

    def transform_data(self, values: Any) -> Any:
        """Data values on the scale the observable is compared on (a float array; NaN = missing)."""
        import numpy as np

        v = np.asarray(values, dtype=float)
        if self.transform != "log10":
            return v
        with np.errstate(divide="ignore", invalid="ignore"):
            shifted = v + self.offset
            return np.where(shifted > 0, np.log10(np.where(shifted > 0, shifted, 1.0)), np.nan)


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
    input: str | None = None           # growth: the rate is r * input * x_to
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
class Penalty:
    """A regularisation term on estimated parameters, added to the objective: ``ridge`` (a Gaussian
    prior) 1/2 sum ((theta_k - center) / scale_k)^2, or ``l1`` (a Laplace prior, smoothed at 0)
    sum |theta_k - center| / scale_k; or ``stability`` on the gLV interaction matrix A (A[i, j] = the
    strength of the ``glv`` edge j -> i) scaled by typical abundances, B = A diag(c):
    weight/2 max(0, lambda_max((B + B^T)/2) + margin)^2."""

    name: str
    kind: str                                  # "ridge", "l1" or "stability"
    scales: dict[str, float]                   # parameter -> scale (> 0); empty for stability
    center: float = 0.0
    # stability only: the matrix's states (rows = columns), parameter -> its (row, column) positions,
    # constant entries (row, column, value) of glv edges with a numeric strength
    states: list[str] = field(default_factory=list)
    positions: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    constants: list[tuple[int, int, float]] = field(default_factory=list)
    margin: float = 0.0
    weight: float = 1.0
    abundances: dict[str, float] = field(default_factory=dict)   # state -> typical abundance c (default 1)

    @property
    def parameters(self) -> list[str]:
        """The parameters this term depends on."""
        return list(self.positions) if self.kind == "stability" else list(self.scales)

    def restricted(self, names: Any) -> Penalty | None:
        """This term on the parameters among ``names`` only (a stability term's other entries become 0;
        its constants stay); None when nothing is left."""
        new = copy.deepcopy(self)
        new.scales = {n: s for n, s in self.scales.items() if n in names}
        new.positions = {n: list(p) for n, p in self.positions.items() if n in names}
        return new if (new.positions if self.kind == "stability" else new.scales) else None

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "stability":
            d = {"name": self.name, "type": self.kind, "parameters": list(self.positions),
                 "margin": self.margin, "weight": self.weight}
            return d | ({"abundances": dict(self.abundances)} if self.abundances else {})
        d: dict[str, Any] = {"name": self.name, "type": self.kind, "parameters": dict(self.scales)}
        if self.center:
            d["center"] = self.center
        return d


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
    penalties: list[Penalty] = field(default_factory=list)

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

    def input_bounds(self, name: str) -> tuple[float | None, float | None]:
        """The bounds of input ``name``: its ``bounds``, else [0, open) for the reactor's dilution rate
        (a flow over a volume cannot be negative), else open."""
        inp = self.inputs[name]
        if inp.lower is None and inp.upper is None and name == self.reactor.dilution:
            return 0.0, None
        return inp.lower, inp.upper

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
                "interpolation": i.interpolation, "default": i.default, "bounds": _bounds(i.lower, i.upper),
                "unit": i.unit, "description": i.description}, {"interpolation": "constant"})
                for i in self.inputs.values()}
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
            "transform": o.transform, "offset": o.offset, "unit": o.unit, "description": o.description},
            {"transform": "none", "offset": 0.0}) for o in self.observables.values()}
        if self.penalties:
            out["penalties"] = [pen.to_dict() for pen in self.penalties]
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
    if e.input:
        d["input"] = e.input
    if e.rate is not None:
        d["rate"] = e.rate
    if e.stoichiometry:
        d["stoichiometry"] = dict(e.stoichiometry)
    if e.prunable:
        d["prunable"] = True
    if e.description:
        d["description"] = e.description
    return d
