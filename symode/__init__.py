"""symode: build, fit and simplify ODE models of microbial communities.

Public API (each CLI command is a thin layer over these):

- :func:`load_spec`, :func:`loads_spec`, :class:`Spec` — read and validate model specs;
- :func:`apply_params` — apply a params file's values;
- :func:`build_model` / :class:`Model` — sympy -> CasADi -> compiled C, cached;
- :func:`simulate` / :class:`Trajectory` — integrate over sample times with known inputs;
- :func:`read_csv` / :class:`Dataset` — time-series data;
- :func:`template_spec` — the generalized n x m community template;
- :func:`build_graph`, :func:`graph_to_spec`, :func:`draw_graph` — the community graph;
- :func:`spec_path`, :func:`write_example` — the shipped example specs and example data sets.

Names are imported on first use, so ``import symode`` (and ``symode --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from symode.errors import DataError, ExpressionError, SolverError, SpecError, SymodeError

__version__ = "0.1.0"

#: public name -> module that defines it
_LAZY: dict[str, str] = {
    "Model": "symode.solve.model", "build_model": "symode.solve.model",
    "Trajectory": "symode.solve.simulation", "simulate": "symode.solve.simulation",
    "Dataset": "symode.spec.data", "read_csv": "symode.spec.data",
    "apply_params": "symode.spec.params", "load_params": "symode.spec.params",
    "Spec": "symode.spec", "dump_spec": "symode.spec", "load_spec": "symode.spec", "loads_spec": "symode.spec",
    "template_spec": "symode.graph.template",
    "build_graph": "symode.graph.community", "graph_to_spec": "symode.graph.community",
    "draw_graph": "symode.viz.graph",
    "spec_path": "symode.examples", "write_example": "symode.examples.datasets",
}

__all__ = ["DataError", "__version__", "ExpressionError", "SolverError", "SpecError", "SymodeError", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'symode' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
