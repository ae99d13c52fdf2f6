"""The community graph (networkx): build from a spec, edit, prune, round-trip back; the n x m template."""
