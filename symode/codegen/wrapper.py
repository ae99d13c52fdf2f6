"""The C sources of a model library: CasADi's code for the model functions, symode's wrapper around it
(rendered from ``templates/model.c``) and symode's hand-written C runtime (``csrc/``).

The wrapper exposes the model functions with plain ``double*`` arguments (``csrc/symode_model.h``) and
drives the C integrator over the sample intervals without returning to Python. Nothing from the spec
but validated names and sizes is written into it: the sources are a function of the model's structure
(:func:`symode.codegen.layout.structure`) and of symode's own files.
"""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path
from typing import Any

from symode.codegen.escape import identifier
from symode.codegen.functions import casadi_functions
from symode.codegen.layout import Layout, neural_codegen
from symode.codegen.render import TEMPLATES, render

#: Version of the generated model library (part of its cache key).
CODEGEN_VERSION = "7"
#: symode's hand-written C, compiled into every model library (beside the generated model.c and
#: model_casadi.c).
CSRC = Path(__file__).resolve().parent / "csrc"
C_SOURCES = ("symode_methods.h", "symode_integrator.h", "symode_solver.h", "symode_integrator.c",
             "symode_steppers.c", "symode_tape.h", "symode_tape_impl.h", "symode_tape.c", "symode_tape_record.c",
             "symode_forward.h", "symode_tape_forward.c", "symode_tape_forward_dense.c", "symode_gradient.h",
             "symode_gradient.c", "symode_model.h")
#: The wrapper template and the two variants of its work arrays (stack; heap for wide MX networks).
WRAPPER_TEMPLATES = ("model.c", "work_stack.h", "work_heap.h")


def render_wrapper(layout: Layout, *, heap_work: bool = False, exported: bool = True) -> str:
    """The wrapper ``model.c`` for ``layout``.

    heap_work: CasADi work arrays beyond 16k doubles on the heap (wide neural networks in MX).
    exported: the symode_* entry points are the library's exported symbols (False: hidden, for the
    standalone solver, whose own prefixed API is exported instead)."""
    for name in [*layout.states, *layout.parameters, *layout.inputs, *layout.observables]:
        identifier(name)
    work = render(TEMPLATES / ("work_heap.h" if heap_work else "work_stack.h"))
    return render(
        TEMPLATES / "model.c", version=CODEGEN_VERSION, nx=len(layout.states), np=len(layout.parameters),
        nu=len(layout.inputs), nU=layout.nu_interval, ny=len(layout.observables),
        states=" ".join(layout.states), params="\n *   ".join(textwrap.wrap(" ".join(layout.parameters), 90)) or "-",
        inputs=" ".join(layout.inputs) or "-", obs=" ".join(layout.observables) or "-",
        nonautonomous=int(layout.nonautonomous), work_arrays=work,
        api_visibility="" if exported else "#define SYMODE_API /* hidden: the standalone API is exported instead */\n")


def generate_casadi(sym: Any, layout: Layout, directory: Path) -> None:
    """Write ``model_casadi.c`` and ``model_casadi.h`` (CasADi's C for the model functions) into
    ``directory``."""
    import casadi as ca

    cg = ca.CodeGenerator("model_casadi.c", {"with_header": True, "with_export": False})
    for fn in casadi_functions(sym, layout):
        cg.add(fn)
    cg.generate(str(directory) + os.sep)


def generate_sources(sym: Any, layout: Layout, directory: Path) -> None:
    """Write model_casadi.c/.h, the wrapper model.c and symode's C sources into ``directory``."""
    generate_casadi(sym, layout, directory)
    (directory / "model.c").write_text(render_wrapper(layout, heap_work=neural_codegen(sym.spec) == "mx"))
    for n in C_SOURCES:
        shutil.copy(CSRC / n, directory / n)
