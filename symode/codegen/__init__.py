"""Code generation: sympy -> CasADi -> C, compiled into a model library kept in a verified cache; and
standalone solvers.

- :mod:`~symode.codegen.layout`: sizes and names of a model, the structure its code depends on.
- :mod:`~symode.codegen.translate`: sympy expressions -> CasADi SX (with common-subexpression elimination).
- :mod:`~symode.codegen.functions`: the CasADi Functions of a model (f, Jacobians, observables, products
  for gradients; neural networks in SX or MX).
- :mod:`~symode.codegen.wrapper`: the C sources of a model library (CasADi's code, the wrapper rendered
  from ``templates/model.c``, symode's C runtime in ``csrc/``).
- :mod:`~symode.codegen.build`: compiler, compilation, the content-addressed cache of libraries.
- :mod:`~symode.codegen.cache`: where the cache is, who may write it, manifests verified before loading.
- :mod:`~symode.codegen.escape` and :mod:`~symode.codegen.render`: the only ways text gets into generated
  files (validated identifiers, escaped free text, ``string.Template`` files).
- :mod:`~symode.codegen.standalone`: ``symode codegen``, a self-contained C solver with a Python loader.
"""
