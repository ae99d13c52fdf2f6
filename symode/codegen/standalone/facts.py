"""The model facts a standalone solver is generated from (names, sizes, baked-in default values, the
noise model) and the JSON sidecar (``manifest.json``) that carries them to the generated Python loader.

Names are validated identifiers; every other text of the spec (its name, descriptions, units) reaches
the generated files only through :mod:`symode.codegen.escape` or ``json.dump``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from symode.codegen.escape import identifier
from symode.codegen.layout import Layout
from symode.errors import SymodeError
from symode.spec import Spec

STANDALONE_VERSION = "2"
MANIFEST = "manifest.json"
LIBRARY = "libmodel.so"
#: Flags of the Makefile (the warnings are errors: the generated code must compile cleanly).
MAKE_CFLAGS = "-O2 -std=c99 -fno-math-errno -Wall -Wextra -Werror"
#: Flags the Python loader uses (no -Werror: a newer compiler's new warning must not break loading).
LOADER_CFLAGS = ["-O2", "-std=c99", "-fno-math-errno", "-Wall"]
#: The C files of the solver: the API, symode's wrapper, CasADi's model functions, symode's runtime.
C_FILES = ("model.c", "model_wrapper.c", "model_casadi.c", "symode_integrator.c", "symode_steppers.c", "symode_tape.c",
           "symode_tape_record.c", "symode_tape_forward.c", "symode_tape_forward_dense.c", "symode_gradient.c")
H_FILES = ("model.h", "model_casadi.h", "symode_methods.h", "symode_integrator.h", "symode_solver.h", "symode_tape.h",
           "symode_tape_impl.h", "symode_forward.h", "symode_gradient.h", "symode_model.h")
#: Gradient methods of the generated API (``<prefix>_loss_<method>``).
GRADIENT_METHODS = ("forward", "adjoint", "discrete")
#: Prefixes that would collide with the names of the internal C code (symode_*, CasADi's sym_* and
#: casadi_*, the API's own API_* macros), compared case-insensitively.
RESERVED_PREFIXES = frozenset({"symode", "sym", "casadi", "api"})


@dataclass
class ModelFacts:
    """What the generated files say about one model, in layout order."""

    name: str
    prefix: str
    states: list[str]
    parameters: list[str]
    inputs: list[str]
    linear: list[str]
    observables: list[str]
    nu_interval: int
    x0_default: list[float]
    p_default: list[float]
    u_default: list[float | None]
    noise_abs: list[float]
    noise_rel: list[float]
    obs_expr: list[str]
    #: kind -> name -> (unit, description): free text, for the README only
    notes: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)

    @property
    def P(self) -> str:
        return self.prefix.upper()

    @property
    def sizes(self) -> dict[str, int]:
        return {"NX": len(self.states), "NP": len(self.parameters), "NU": len(self.inputs),
                "NUI": self.nu_interval, "NY": len(self.observables)}


def check_prefix(prefix: str) -> str:
    """The C API prefix, validated: an identifier of at most 31 characters that does not collide with
    the solver's internal names."""
    if not isinstance(prefix, str) or len(prefix) > 31 or prefix.lower() in RESERVED_PREFIXES:
        raise SymodeError(f"invalid prefix {prefix!r} (a C identifier of at most 31 characters, not one of "
                          f"{', '.join(sorted(RESERVED_PREFIXES))})", field="prefix")
    try:
        return identifier(prefix, "prefix")
    except SymodeError as exc:
        raise SymodeError(f"invalid prefix {prefix!r} (a C identifier of at most 31 characters: letters, "
                          "digits and _, starting with a letter)", field="prefix") from exc


def model_facts(spec: Spec, layout: Layout, prefix: str) -> ModelFacts:
    """The facts of ``spec`` (names checked to be identifiers)."""
    for name in [*layout.states, *layout.parameters, *layout.inputs, *layout.observables]:
        identifier(name)
    notes = {kind: {n: (str(getattr(obj, "unit", "") or ""), str(getattr(obj, "description", "") or ""))
                    for n, obj in getattr(spec, kind).items()}
             for kind in ("states", "parameters", "inputs", "observables")}
    return ModelFacts(
        name=spec.name, prefix=check_prefix(prefix), states=list(layout.states),
        parameters=list(layout.parameters), inputs=list(layout.inputs), linear=list(layout.linear_inputs),
        observables=list(layout.observables), nu_interval=layout.nu_interval,
        x0_default=[float(spec.states[n].x0) for n in layout.states],
        p_default=[float(spec.parameters[n].value) for n in layout.parameters],
        u_default=[None if spec.inputs[n].default is None else float(spec.inputs[n].default)
                   for n in layout.inputs],
        noise_abs=[float(spec.observables[n].noise.absolute) for n in layout.observables],
        noise_rel=[float(spec.observables[n].noise.relative) for n in layout.observables],
        obs_expr=[str(spec.observables[n].expr) for n in layout.observables], notes=notes)


def manifest(facts: ModelFacts, files: list[str]) -> dict[str, Any]:
    """The JSON sidecar: the ownership mark of a codegen output directory, and everything the generated
    ``model.py`` needs to know about the model (it holds no model text itself)."""
    return {
        "generator": "symode codegen", "version": STANDALONE_VERSION, "model": facts.name, "prefix": facts.prefix,
        "states": facts.states, "parameters": facts.parameters, "inputs": facts.inputs,
        "linear_inputs": facts.linear, "observables": facts.observables, "nu_interval": facts.nu_interval,
        "default_x0": dict(zip(facts.states, facts.x0_default, strict=True)),
        "default_parameters": dict(zip(facts.parameters, facts.p_default, strict=True)),
        "default_inputs": dict(zip(facts.inputs, facts.u_default, strict=True)),
        "noise": {o: [a, r] for o, a, r in zip(facts.observables, facts.noise_abs, facts.noise_rel, strict=True)},
        "gradient_methods": list(GRADIENT_METHODS), "library": LIBRARY, "sources": [*C_FILES, *H_FILES],
        "cflags": LOADER_CFLAGS, "files": sorted([*files, MANIFEST]),
    }
