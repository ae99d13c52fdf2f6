"""Code generation: sympy -> CasADi -> C, compilation and the content-hash cache; standalone solvers."""
