"""Running the compiled model: backends, Model, simulation, loss gradients (sensitivity methods)."""
