"""symode: build, fit and simplify ODE models of microbial communities.

Public API (each CLI command is a thin layer over these):

- :func:`load_spec`, :func:`loads_spec`, :class:`Spec` — read and validate model specs;
- :func:`apply_params` — apply a params file's values;
- :func:`build_model` / :class:`Model` — sympy -> CasADi -> compiled C, cached;
- :func:`simulate` / :class:`Trajectory` — integrate over sample times with known inputs;
- :func:`read_csv` / :class:`Dataset` — time-series data;
- :func:`template_spec` — the generalized n x m community template;
- :func:`build_graph`, :func:`graph_to_spec`, :func:`draw_graph` — the community graph.
"""

from symode.errors import DataError, ExpressionError, SolverError, SpecError, SymodeError
from symode.solve.model import Model, build_model
from symode.solve.simulation import Trajectory, simulate
from symode.spec import Spec, dump_spec, load_spec, loads_spec
from symode.spec.data import Dataset, read_csv
from symode.spec.params import apply_params, load_params

__all__ = [
    "DataError", "Dataset", "ExpressionError", "Model", "SolverError", "Spec", "SpecError", "SymodeError",
    "Trajectory", "apply_params", "build_graph", "build_model", "draw_graph", "dump_spec", "graph_to_spec",
    "load_params", "load_spec", "loads_spec", "read_csv", "simulate", "template_spec",
]


def __getattr__(name: str):  # lazy: networkx/matplotlib are only imported when used
    if name in ("build_graph", "graph_to_spec", "draw_graph"):
        if name == "draw_graph":
            from symode.viz.graph import draw_graph

            return draw_graph
        from symode.graph import community

        return getattr(community, name)
    if name == "template_spec":
        from symode.graph.template import template_spec

        return template_spec
    raise AttributeError(name)
