"""Validation of the ``neural`` section: MLP terms (inputs, outputs, layers, scales) and their weight
parameters (added with Glorot initial values from the term's seed when the spec does not give them)."""

from __future__ import annotations

import itertools
import re
from typing import Any

from symode.spec.checks import FieldChecker, FieldPath, describe
from symode.spec.limits import MAX_NEURAL_WEIGHTS
from symode.spec.schema import Input, NeuralTerm, Parameter, State
from symode.spec.vocabulary import NEURAL_ACTIVATIONS, NEURAL_OUTPUT_ACTIVATIONS


def validate_neural(chk: FieldChecker, raw: Any, root: dict[str, Any], states: dict[str, State],
                    inputs: dict[str, Input], parameters: dict[str, Parameter]) -> list[NeuralTerm]:
    """The ``neural:`` list; adds missing weight parameters (Glorot init from the seed) to
    ``parameters`` and makes given weights without an explicit scale linear."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise chk.err(("neural",), f"expected a list of neural terms, got {describe(raw)}")
    out: list[NeuralTerm] = []
    n_weights = 0
    taken = set(states) | set(inputs)
    raw_params = root.get("parameters") if isinstance(root.get("parameters"), dict) else {}
    for k, val in enumerate(raw):
        path: FieldPath = ("neural", k)
        d = chk.mapping(val, path)
        chk.keys(d, path, {"id", "inputs", "outputs", "hidden", "activation", "output_activation",
                           "input_scale", "output_scale", "seed", "l2", "description"})
        if "id" not in d:
            raise chk.err(path, "missing field 'id'")
        term_id = chk.name(d["id"], (*path, "id"))
        if "__" in term_id:
            raise chk.err((*path, "id"), "a neural id must not contain '__'")
        if term_id in taken or term_id in parameters or any(n.id == term_id for n in out):
            raise chk.err((*path, "id"), f"name {term_id!r} is already used")
        names_in = chk.name_list(d.get("inputs"), (*path, "inputs"), "inputs")
        for j, n in enumerate(names_in):
            if n not in states and n not in inputs:
                raise chk.err((*path, "inputs", j), f"{n!r} is not a state or input")
        names_out = chk.name_list(d.get("outputs"), (*path, "outputs"), "outputs")
        for j, n in enumerate(names_out):
            if re.match(r"^[Wb]\d", n):
                raise chk.err((*path, "outputs", j), f"output name {n!r} looks like a weight name")
            if f"{term_id}__{n}" in parameters or f"{term_id}__{n}" in taken:
                raise chk.err((*path, "outputs", j), f"{term_id}__{n} clashes with a declared name")
        hidden_raw = d.get("hidden", [])
        if not isinstance(hidden_raw, list):
            raise chk.err((*path, "hidden"), f"expected a list of layer widths, got {describe(hidden_raw)}")
        hidden = []
        for j, h in enumerate(hidden_raw):
            if isinstance(h, bool) or not isinstance(h, int) or h < 1:
                raise chk.err((*path, "hidden", j), f"expected a positive integer, got {describe(h)}")
            hidden.append(int(h))
        sizes = [len(names_in), *hidden, len(names_out)]
        n_weights += sum((a + 1) * b for a, b in itertools.pairwise(sizes))
        if n_weights > MAX_NEURAL_WEIGHTS:
            raise chk.err((*path, "hidden"), f"the neural terms have more than {MAX_NEURAL_WEIGHTS} weights")
        seed = d.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise chk.err((*path, "seed"), f"expected a non-negative integer, got {describe(seed)}")
        l2 = chk.number(d.get("l2", 0.0), (*path, "l2"))
        assert l2 is not None
        if l2 < 0:
            raise chk.err((*path, "l2"), "l2 must be non-negative")
        scales: list[dict[str, float]] = []
        for key, allowed in (("input_scale", names_in), ("output_scale", names_out)):
            sd = chk.mapping(d.get(key), (*path, key), "a mapping {name: scale}")
            got: dict[str, float] = {}
            for n, v in sd.items():
                if n not in allowed:
                    raise chk.err((*path, key, n), f"{n!r} is not one of the {key.split('_')[0]}s")
                num = chk.number(v, (*path, key, n))
                assert num is not None
                if num <= 0:
                    raise chk.err((*path, key, n), "scales must be positive")
                got[n] = num
            scales.append(got)
        term = NeuralTerm(id=term_id, inputs=names_in, outputs=names_out, hidden=hidden,
                          activation=chk.string(d.get("activation", "tanh"), (*path, "activation"),
                                                choices=NEURAL_ACTIVATIONS),
                          output_activation=chk.string(d.get("output_activation", "linear"),
                                                       (*path, "output_activation"),
                                                       choices=NEURAL_OUTPUT_ACTIVATIONS),
                          input_scale=scales[0], output_scale=scales[1], seed=seed, l2=l2,
                          description=str(d.get("description", "")))
        init = term.initial_weights()
        for w in term.weight_names():
            if w in parameters:
                rp = raw_params.get(w)
                if not (isinstance(rp, dict) and "scale" in rp):
                    parameters[w].scale = "lin"
            else:
                parameters[w] = Parameter(name=w, value=init[w], scale="lin")
        out.append(term)
    return out
