"""Optimisers and sampling that depend on numpy/scipy only."""
