"""What generated code depends on: the sizes and names of a model (:class:`Layout`), the structural part
of its spec (:func:`structure`, the cache key's input) and how its neural terms are generated.

Interval inputs. Every call of the generated code takes, per sample interval, a vector
``U = [u_1..u_nu, s_1..s_nl, t_start]``: the input values at the interval's start, then (only when some
inputs are linearly interpolated) their slopes and the interval's start time, so that
``u_k(t) = u_k + s_k (t - t_start)`` inside the interval.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from symode.codegen.escape import identifier
from symode.spec import Spec

#: Neural models with more weights than this are generated with CasADi MX (matrix operations stay loops
#: in the C, whose size no longer grows with the width; see
#: :func:`symode.codegen.functions.neural_casadi_functions_mx`); smaller ones are scalar-expanded in SX
#: (loss gradients 1.3-2.8x faster at 114-1000 weights, but the C and its compile time grow with the
#: number of weights: 5-10 s at 114, 36 s at 477, 58-132 s at 1k, > 27 min at 10k, against 3-7 s for MX
#: at any of these sizes; 2-core machine under load; bench/README.md "neural").
NEURAL_MX_MIN_WEIGHTS = 500
#: Version of the MX code generation of neural models (part of their cache key only).
NEURAL_MX_VERSION = "1"


@dataclass
class Layout:
    """Sizes and names of a generated model."""

    states: list[str]
    parameters: list[str]
    inputs: list[str]
    linear_inputs: list[str]
    observables: list[str]
    nonautonomous: bool

    @property
    def nu_interval(self) -> int:
        """Length of the per-interval input vector U."""
        return len(self.inputs) + (len(self.linear_inputs) + 1 if self.linear_inputs else 0)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def layout_of(spec: Spec) -> Layout:
    """The layout of a spec's generated code (names in spec order; every name checked to be an
    identifier, since names are written into the generated code)."""
    for name in [*spec.states, *spec.parameters, *spec.inputs, *spec.observables]:
        identifier(name)
    linear = [n for n, i in spec.inputs.items() if i.interpolation == "linear"]
    uses_t = any(e.kind == "custom" and "t" in _names_in(e.rate or "") for e in spec.interactions)
    return Layout(states=list(spec.states), parameters=list(spec.parameters), inputs=list(spec.inputs),
                  linear_inputs=linear, observables=list(spec.observables),
                  nonautonomous=bool(linear) or uses_t)


def _names_in(text: str) -> set[str]:
    try:
        return {n.id for n in ast.walk(ast.parse(text, mode="eval")) if isinstance(n, ast.Name)}
    except SyntaxError:
        return set()


def neural_codegen(spec: Spec) -> str | None:
    """How the neural terms of a spec are generated: None (no neural terms), "sx" (scalar-expanded, up to
    :data:`NEURAL_MX_MIN_WEIGHTS` weights) or "mx" (matrix operations, wider networks)."""
    if not spec.neural:
        return None
    return "mx" if len(spec.neural_weights) > NEURAL_MX_MIN_WEIGHTS else "sx"


def structure(spec: Spec) -> dict[str, Any]:
    """The parts of a spec the generated code depends on (names, roles, laws, formulas; no values, no
    free text: the model's name, descriptions and units are not written into the model library)."""
    d = spec.to_dict()
    return {
        "states": list(spec.states),
        "parameters": list(spec.parameters),
        # ordered lists, not dicts: the key is dumped with sort_keys, and the order is part of the layout
        "inputs": [[n, i.interpolation] for n, i in spec.inputs.items()],
        "reactor": d["reactor"],
        "interactions": [{k: v for k, v in e.items() if k != "description"} for e in d["interactions"]],
        "observables": [[n, o.expr] for n, o in spec.observables.items()],
        "roles": {n: s.role for n, s in spec.states.items()},
        # neural terms (absent for other models, so their keys are unchanged)
        **({"neural": [{k: v for k, v in n.to_dict().items() if k not in ("description", "seed", "l2")}
                       for n in spec.neural]} if spec.neural else {}),
        # MX code generation of wide networks (absent for SX-generated ones, so their keys are unchanged)
        **({"neural_codegen": f"mx{NEURAL_MX_VERSION}"} if neural_codegen(spec) == "mx" else {}),
    }
