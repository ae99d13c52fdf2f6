"""Validation of a whole spec: the top level, then the sections in dependency order (names first, then
neural terms, reactor, interactions, observables and penalties, which refer to them)."""

from __future__ import annotations

from symode.spec.checks import FieldChecker
from symode.spec.schema import Spec
from symode.spec.validate_interactions import validate_interactions, validate_reactor
from symode.spec.validate_neural import validate_neural
from symode.spec.validate_observables import validate_observables
from symode.spec.validate_penalties import validate_penalties
from symode.spec.validate_quantities import (
    check_unique_names,
    validate_inputs,
    validate_parameters,
    validate_states,
)
from symode.spec.vocabulary import FORMAT_VERSION
from symode.spec.yamlio import Located

TOP_LEVEL_KEYS = {"symode", "name", "description", "reactor", "states", "inputs", "parameters", "interactions",
                  "observables", "neural", "penalties"}


def validate_spec(located: Located) -> Spec:
    """The :class:`Spec` of located YAML data; raises a located :class:`~symode.errors.SpecError`."""
    chk = FieldChecker(located)
    data = located.data
    if data is None:
        raise chk.err((), "the spec is empty")
    root = chk.mapping(data, (), "a mapping at the top level")
    chk.keys(root, (), TOP_LEVEL_KEYS)
    version = root.get("symode", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise chk.err(("symode",), f"unsupported spec format version {version!r} (this symode reads "
                                   f"{FORMAT_VERSION})")
    name = chk.string(root.get("name", "model"), ("name",))
    description = chk.string(root.get("description", ""), ("description",))
    for section in ("states", "parameters"):
        if section not in root:
            raise chk.err((), f"missing section {section!r}")
    states = validate_states(chk, chk.mapping(root["states"], ("states",)))
    inputs = validate_inputs(chk, chk.mapping(root.get("inputs"), ("inputs",)))
    parameters = validate_parameters(chk, chk.mapping(root["parameters"], ("parameters",)))
    check_unique_names(chk, states, inputs, parameters)
    neural = validate_neural(chk, root["neural"], root, states, inputs, parameters) if "neural" in root else []
    reactor = validate_reactor(chk, chk.mapping(root.get("reactor"), ("reactor",)), states, inputs, parameters)
    interactions = validate_interactions(chk, root.get("interactions"), states, inputs, parameters, neural)
    observables = validate_observables(chk, chk.mapping(root.get("observables"), ("observables",)),
                                       states, inputs, parameters)
    penalties = validate_penalties(chk, root.get("penalties"), parameters, interactions)
    return Spec(name=name, description=description, reactor=reactor, states=states, parameters=parameters,
                inputs=inputs, interactions=interactions, observables=observables, neural=neural,
                penalties=penalties)
