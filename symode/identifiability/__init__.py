"""Fisher information, profile likelihoods and their rendering."""
