"""Symbolic model: the kinetic-law library, f / df/dx / df/dp in sympy, MLP algebra, scaling symmetries."""
