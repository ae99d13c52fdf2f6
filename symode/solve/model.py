"""A built model: spec + (lazy) symbolic model + compiled backend.

>>> model = build_model("specs/chemostat.yaml")        # doctest: +SKIP
>>> model.backend.kind                                   # 'compiled' (or 'casadi-vm' without a compiler)

The first build derives f and its Jacobians with sympy, generates C through CasADi and compiles it
(cached in ``generated/``); later builds of the same model structure load the cached library without
touching sympy.
"""

from __future__ import annotations

import json
import warnings
from functools import cached_property
from pathlib import Path

import numpy as np

from symode.codegen.build import build_library, find_compiler
from symode.codegen.functions import casadi_functions
from symode.codegen.layout import Layout, layout_of
from symode.solve.backend import CompiledBackend, VMBackend
from symode.spec import Spec, load_spec
from symode.symbolic.rhs import SymbolicModel, build_symbolic


class Model:
    """A spec compiled into callable code. Parameter values and x0 are taken from the spec by default."""

    def __init__(self, spec: Spec, backend: CompiledBackend | VMBackend, layout: Layout,
                 directory: Path | None = None, built_now: bool = False) -> None:
        self.spec = spec
        self.backend = backend
        self.layout = layout
        self.directory = directory
        self.built_now = built_now

    @cached_property
    def symbolic(self) -> SymbolicModel:
        """The sympy model (built on first access)."""
        return build_symbolic(self.spec)

    @property
    def states(self) -> list[str]:
        return self.layout.states

    @property
    def parameters(self) -> list[str]:
        return self.layout.parameters

    @property
    def inputs(self) -> list[str]:
        return self.layout.inputs

    @property
    def observables(self) -> list[str]:
        return self.layout.observables

    def parameter_vector(self, values: dict[str, float] | None = None) -> np.ndarray:
        """p in layout order: the spec's values, overridden by ``values``."""
        p = np.array([self.spec.parameters[n].value for n in self.parameters], dtype=np.float64)
        for name, v in (values or {}).items():
            p[self.parameters.index(name)] = float(v)
        return p

    def x0_vector(self, values: dict[str, float] | None = None) -> np.ndarray:
        x0 = np.array([self.spec.states[n].x0 for n in self.states], dtype=np.float64)
        for name, v in (values or {}).items():
            x0[self.states.index(name)] = float(v)
        return x0

    def with_spec(self, spec: Spec) -> Model:
        """Same compiled code, another spec with the same structure (e.g. other values)."""
        if layout_of(spec) != self.layout:
            raise ValueError("spec structure differs; build a new model")
        return Model(spec, self.backend, self.layout, self.directory)


def build_model(spec: Spec | str | Path, *, backend: str = "auto", cache_dir: Path | None = None,
                force: bool = False) -> Model:
    """Build (or load from the cache) the compiled model of a spec.

    backend: "auto" (compiled C if a compiler exists, else the CasADi VM), "compiled" or "vm".
    """
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    layout = layout_of(spec)
    if backend not in ("auto", "compiled", "vm"):
        raise ValueError(f"unknown backend {backend!r}")
    if backend == "vm" or (backend == "auto" and find_compiler() is None):
        if backend == "auto":
            warnings.warn("no C compiler found: using CasADi's virtual machine (much slower)", stacklevel=2)
        sym = build_symbolic(spec)
        model = Model(spec, VMBackend(casadi_functions(sym, layout), layout), layout)
        model.__dict__["symbolic"] = sym
        return model
    holder: dict[str, SymbolicModel] = {}

    def factory() -> SymbolicModel:
        holder["sym"] = build_symbolic(spec)
        return holder["sym"]

    directory, layout, built = build_library(spec, factory, cache_dir=cache_dir, force=force)
    cached_layout = Layout(**json.loads((directory / "layout.json").read_text()))
    if cached_layout != layout:
        raise RuntimeError(f"cached layout in {directory} does not match the spec; delete that directory")
    model = Model(spec, CompiledBackend(directory / "libmodel.so", layout), layout, directory, built)
    if "sym" in holder:
        model.__dict__["symbolic"] = holder["sym"]
    return model
