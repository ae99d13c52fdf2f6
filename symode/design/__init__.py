"""Optimal experiment design."""
