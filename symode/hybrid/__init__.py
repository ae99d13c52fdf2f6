"""Hybrid mechanistic/neural models: training, warm starts, hybrid fit, symbolic replacement."""
