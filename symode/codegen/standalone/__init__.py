"""Standalone solver code: ``symode codegen``.

:func:`generate_standalone` writes a self-contained directory that needs neither sympy, CasADi nor
symode — only a C99 compiler (and numpy for the optional Python loader):

``model.h``, ``model.c``
    The documented public API, whose names start with the prefix (default ``model_`` / ``MODEL_``):
    dimensions, name tables, baked-in default values, options/stats structs and functions. No global
    mutable state: every function is re-entrant.
``model_wrapper.c``, ``model_casadi.c``/``.h``, ``symode_*.c``/``.h``
    Separate translation units: symode's model wrapper (:mod:`symode.codegen.wrapper`), the
    CasADi-generated right-hand side, Jacobians and observables (the same code symode itself compiles),
    and symode's integrator (Dormand-Prince 5(4) with automatic switching to Rodas4) and gradient code
    (loss, forward sensitivities, interpolating continuous adjoint, discrete adjoint), copied as they
    are. Compiled with ``-fvisibility=hidden``: ``libmodel.so`` exports the prefixed API only.
``example.c``, ``Makefile``
    ``make`` builds ``libmodel.so`` and ``<prefix>_example`` (reads a CSV of inputs, writes the
    trajectory as CSV) with ``-O2 -Wall -Wextra -Werror``.
``model.py``
    A static loader using only ctypes and numpy: builds (``cc``) or loads ``libmodel.so`` beside it and
    offers ``simulate`` and ``loss_and_gradient``. It reads the model's names, sizes and default values
    from ``manifest.json``.
``README.md``, ``spec.yaml``, ``manifest.json``
    Documentation, the spec the code was generated from (values included), and the manifest.
"""

from symode.codegen.standalone.writer import generate_standalone, run_make

__all__ = ["generate_standalone", "run_make"]
