"""The fixed vocabulary of the spec format: version, name rules, state roles, the kinetic-law library
(which parameter roles each law needs) and the neural-term activations (``docs/spec-format.md``)."""

from __future__ import annotations

import re
from typing import Any

FORMAT_VERSION = 1
NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
RESERVED = {"t", "time", "time_h"} | {"exp", "log", "sqrt", "abs", "tanh", "sin", "cos", "min", "max", "pow"}

STATE_ROLES = ("substrate", "main", "satellite", "metabolite", "other")
SPECIES_ROLES = ("main", "satellite")

#: Kinetic-law library: (kind, law) -> (required roles, alternatives: at least/exactly one of each group).
#: A role's value is a parameter name or a number.
LAWS: dict[tuple[str, str], dict[str, Any]] = {
    ("uptake", "monod"): {"required": ["mu", "yield"], "one_of": [["K", "a"]]},
    ("uptake", "shared_monod"): {"required": ["mu", "yield"], "one_of": [["K", "a"]]},
    ("uptake", "haldane"): {"required": ["mu", "yield", "K", "Ki"], "one_of": []},
    ("inhibition", "noncompetitive"): {"required": [], "one_of": [["I", "kappa"]]},
    ("inhibition", "competitive"): {"required": ["Ki"], "one_of": []},
    ("production", "non_growth"): {"required": ["v"], "one_of": []},
    ("production", "growth_associated"): {"required": ["alpha"], "one_of": []},
    ("production", "luedeking_piret"): {"required": ["alpha", "v"], "one_of": []},
    ("glv", "linear"): {"required": ["a"], "one_of": []},
    ("mass_action", "mass_action"): {"required": ["k"], "one_of": []},
    ("custom", "custom"): {"required": [], "one_of": []},
    ("growth", "linear"): {"required": ["r"], "one_of": []},
    # neural terms (section "neural" of docs/spec-format.md): the rate is an MLP output `<id>.<output>`
    ("uptake", "neural"): {"required": ["yield"], "one_of": []},
    ("production", "neural"): {"required": [], "one_of": []},
}
DEFAULT_LAW = {"uptake": "monod", "inhibition": "noncompetitive", "production": "non_growth",
               "glv": "linear", "mass_action": "mass_action", "custom": "custom", "growth": "linear"}
#: The role whose value 0 removes an edge (None: the edge has no such strength).
STRENGTH_ROLE = {("uptake", "monod"): "a", ("uptake", "shared_monod"): "a", ("uptake", "haldane"): "mu",
                 ("inhibition", "noncompetitive"): "kappa", ("inhibition", "competitive"): None,
                 ("production", "non_growth"): "v", ("production", "growth_associated"): "alpha",
                 ("production", "luedeking_piret"): None, ("glv", "linear"): "a",
                 ("mass_action", "mass_action"): "k", ("custom", "custom"): None, ("growth", "linear"): "r",
                 ("uptake", "neural"): None, ("production", "neural"): None}
ID_PREFIX = {"uptake": "uptake", "production": "prod", "inhibition": "inhib", "glv": "glv", "growth": "growth"}
#: Observable transforms (applied to the model value and to the data alike).
OBSERVABLE_TRANSFORMS = ("none", "log10")
APPLIES_TO = ("growth", "growth_and_uptake")
#: Neural terms: hidden-layer activations and output activations.
NEURAL_ACTIVATIONS = ("tanh", "softplus", "sigmoid", "relu")
NEURAL_OUTPUT_ACTIVATIONS = ("linear", "softplus", "sigmoid")
NEURAL_REF_RE = re.compile(r"([A-Za-z][A-Za-z0-9_]*)\.([A-Za-z][A-Za-z0-9_]*)\Z")
