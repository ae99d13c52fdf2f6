"""Structure discovery: pruning and model selection over the community graph."""
