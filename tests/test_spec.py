"""Tests of spec loading, validation errors (file, line, field) and the lossless round trip."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symode.errors import ExpressionError, SpecError
from symode.spec import dump_spec, load_spec, loads_spec, spec_from_dict

ROOT = Path(__file__).resolve().parents[1]
CHEMOSTAT = ROOT / "specs" / "chemostat.yaml"
DOC = ROOT / "docs" / "spec-format.md"
FILE = "bad.yaml"

# A block-style spec so that every field sits on its own line.
BASE = """\
symode: 1
name: test
reactor:
  mode: chemostat
  dilution: D
  feed:
    S: S0
states:
  S:
    role: substrate
    x0: 5.0
  X:
    role: main
    x0: 1.0
  Y:
    role: satellite
    x0: 0.5
  A:
    role: metabolite
    x0: 0.1
inputs:
  D:
    default: 0.25
parameters:
  S0:
    value: 100.0
    estimate: false
  mu0:
    value: 0.3
  KS:
    value: 1.0
  vA:
    value: 0.01
    bounds: [0.0, 1.0]
  muA:
    value: 0.2
    bounds: [1.0e-4, 10.0]
  aA:
    value: 2.0
  gA:
    value: 1.0
  IA:
    value: 10.0
  k:
    value: 0.1
interactions:
  - type: uptake
    law: monod
    from: S
    to: X
    mu: mu0
    K: KS
    yield: 1.0
  - type: production
    from: X
    to: A
    v: vA
  - type: uptake
    law: shared_monod
    from: A
    to: Y
    mu: muA
    a: aA
    yield: gA
  - type: inhibition
    from: A
    to: X
    I: IA
  - id: decay
    type: custom
    rate: k * Y
    stoichiometry:
      Y: -1
observables:
  X:
    noise:
      relative: 0.02
      absolute: 0.01
  OD:
    expr: 0.4 * X + 0.3 * Y
    noise:
      relative: 0.03
"""


def line_of(text: str, needle: str, after: str | None = None) -> int:
    """1-based number of the first line containing ``needle`` (after the first line containing ``after``)."""
    lines = text.splitlines()
    start = 0
    if after is not None:
        start = next(i for i, ln in enumerate(lines) if after in ln) + 1
    return next(i for i in range(start, len(lines)) if needle in lines[i]) + 1


def expect_error(text: str, line: int, field: str | None, *words: str, cls: type = SpecError) -> SpecError:
    with pytest.raises(cls) as info:
        loads_spec(text, FILE)
    err = info.value
    msg = str(err)
    assert msg.startswith(f"{FILE}:{line}: "), msg
    assert err.file == FILE and err.line == line, msg
    if field is not None:
        assert err.field == field, msg
        assert f": {field}: " in msg, msg
    for w in words:
        assert w in msg, msg
    return err


# -- loading and round trip ---------------------------------------------------------------------------
def test_base_spec_loads() -> None:
    spec = loads_spec(BASE)
    assert spec.state_names == ["S", "X", "Y", "A"]
    assert [e.id for e in spec.interactions] == ["uptake:S->X", "prod:X->A", "uptake:A->Y", "inhib:A-|X", "decay"]
    assert spec.interaction("uptake:A->Y").strength == "aA"
    assert spec.interaction("uptake:S->X").strength is None  # K-form: no strength
    assert spec.interaction("prod:X->A").strength == "vA"
    assert spec.parameters["vA"].scale == "lin"  # lower bound 0 -> linear scale by default
    assert spec.parameters["muA"].scale == "log"


def test_chemostat_loads() -> None:
    spec = load_spec(CHEMOSTAT)
    assert spec.source == str(CHEMOSTAT)
    assert spec.name == "chemostat"
    assert spec.state_names == ["S", "X", "Y", "A", "B"]
    assert spec.input_names == ["D"]
    assert set(spec.estimated_parameters) == {"gA", "gB", "vA", "vB", "muA", "muB", "KA", "IA", "KB", "IB"}
    assert {p for p, v in spec.parameters.items() if not v.estimate} == {"S0", "gamma", "mu0", "KS"}
    assert spec.reactor.mode == "chemostat" and spec.reactor.dilution == "D" and spec.reactor.feed == {"S": "S0"}
    assert [e.id for e in spec.interactions] == ["uptake:S->X", "inhib:A-|X", "inhib:B-|X", "prod:X->A",
                                                  "prod:X->B", "uptake:A->Y", "uptake:B->Y"]
    assert all(e.applies_to == "growth_and_uptake" for e in spec.interactions if e.kind == "inhibition")
    assert list(spec.observables) == ["X", "S"]
    assert spec.observables["X"].noise.relative == 0.02 and spec.observables["X"].noise.absolute == 0.01
    assert spec.parameters["gA"].lower == 1e-3 and spec.parameters["gA"].upper == 1e3
    assert spec.inputs["D"].default == 0.25 and spec.inputs["D"].interpolation == "constant"


@pytest.mark.parametrize("source", ["chemostat", "base"])
def test_round_trip(source: str, tmp_path) -> None:
    spec = load_spec(CHEMOSTAT) if source == "chemostat" else loads_spec(BASE)
    assert loads_spec(spec.to_yaml()) == spec
    assert spec_from_dict(spec.to_dict()) == spec
    again = loads_spec(spec.to_yaml())
    assert again.to_yaml() == spec.to_yaml()  # the dump is a fixed point
    path = tmp_path / "out.yaml"
    dump_spec(spec, path)
    assert load_spec(path) == spec


def test_to_dict_does_not_alias_spec() -> None:
    spec = load_spec(CHEMOSTAT)
    d = spec.to_dict()
    d["reactor"]["feed"]["S"] = "gamma"
    assert spec.reactor.feed == {"S": "S0"}


def test_with_values() -> None:
    spec = load_spec(CHEMOSTAT)
    new = spec.with_values({"gA": 0.3}, {"X": 2.0})
    assert new.parameters["gA"].value == 0.3 and new.states["X"].x0 == 2.0
    assert spec.parameters["gA"].value == 1.0 and spec.states["X"].x0 == 20.0
    with pytest.raises(SpecError):
        spec.with_values({"nope": 1.0})
    with pytest.raises(SpecError):
        spec.with_values(x0={"nope": 1.0})


finite = st.floats(allow_nan=False, allow_infinity=False)
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@st.composite
def parameter_entries(draw):
    value = draw(finite)
    lo = draw(st.one_of(st.none(), st.floats(max_value=value, allow_nan=False, allow_infinity=False)))
    hi = draw(st.one_of(st.none(), st.floats(min_value=value, allow_nan=False, allow_infinity=False)))
    if lo is not None and hi is not None and not lo < hi:
        hi = None
    entry: dict = {"value": value}
    if lo is not None or hi is not None:
        entry["bounds"] = [lo, hi]
    if not (value > 0 and (lo is None or lo > 0)):
        entry["scale"] = "lin"
    elif draw(st.booleans()):
        entry["scale"] = draw(st.sampled_from(["lin", "log"]))
    entry["estimate"] = draw(st.booleans())
    if draw(st.booleans()):
        entry["unit"] = draw(texts)
        entry["description"] = draw(texts)
    return entry


@settings(max_examples=150, deadline=None)
@given(st.lists(parameter_entries(), min_size=1, max_size=5), st.lists(finite, min_size=1, max_size=3))
def test_random_parameters_round_trip_exactly(entries, x0s) -> None:
    data = {
        "name": "random",
        "states": {f"x{i}": {"x0": v} for i, v in enumerate(x0s)},
        "parameters": {f"p{i}": e for i, e in enumerate(entries)},
        "observables": {"x0": {"noise": {"absolute": 0.1}}},
    }
    spec = spec_from_dict(data)
    back = loads_spec(spec.to_yaml())
    assert back == spec
    assert spec_from_dict(spec.to_dict()) == spec
    for i, e in enumerate(entries):
        p = back.parameters[f"p{i}"]
        assert p.value == e["value"] and math.copysign(1, p.value) == math.copysign(1, e["value"])
        lo, hi = e.get("bounds", [None, None])
        assert p.lower == lo and p.upper == hi
    for i, v in enumerate(x0s):
        assert back.states[f"x{i}"].x0 == v


def test_infinite_bounds_mean_open() -> None:
    text = "states: {X: 1}\nparameters:\n  k: {value: 1.0, bounds: [-.inf, .inf]}\n"
    spec = loads_spec(text)
    assert spec.parameters["k"].lower is None and spec.parameters["k"].upper is None


def test_numeric_strings_and_shorthands() -> None:
    spec = loads_spec("states: {X: 1}\nparameters:\n  k: 1e-3\n  j: {value: '2.5'}\n")
    assert spec.parameters["k"].value == 1e-3 and spec.parameters["j"].value == 2.5
    assert spec.states["X"].x0 == 1.0 and spec.states["X"].role == "other"
    assert spec.reactor.mode == "batch"


# -- errors with file, line and field -----------------------------------------------------------------
def test_yaml_syntax_error() -> None:
    text = BASE.replace("name: test", "name: test: oops")
    expect_error(text, 2, None, "YAML syntax error")


def test_yaml_unclosed_bracket() -> None:
    text = BASE.replace("    bounds: [0.0, 1.0]", "    bounds: [0.0, 1.0")
    with pytest.raises(SpecError) as info:
        loads_spec(text, FILE)
    assert info.value.file == FILE and "YAML syntax error" in str(info.value)
    # the parser notices the problem on the unclosed line or the next one
    assert info.value.line in (line_of(text, "bounds: [0.0, 1.0"), line_of(text, "bounds: [0.0, 1.0") + 1)


def test_duplicate_key() -> None:
    text = BASE.replace("  KS:\n    value: 1.0\n", "  KS:\n    value: 1.0\n  mu0:\n    value: 0.5\n")
    expect_error(text, line_of(text, "  mu0:", after="  KS:"), "parameters.mu0", "duplicate key 'mu0'")


def test_duplicate_nested_key() -> None:
    text = BASE.replace("    role: main\n", "    role: main\n    role: satellite\n")
    expect_error(text, line_of(text, "role: satellite", after="  X:"), "states.X.role", "duplicate key")


def test_unknown_field() -> None:
    text = BASE.replace("  KS:\n    value: 1.0\n", "  KS:\n    valeu: 1.0\n")
    expect_error(text, line_of(text, "valeu"), "parameters.KS.valeu", "unknown field 'valeu'", "value")


def test_unknown_top_level_field() -> None:
    text = BASE + "observable:\n  X: {}\n"
    expect_error(text, line_of(text, "observable:"), "observable", "unknown field")


def test_unknown_field_in_interaction() -> None:
    text = BASE.replace("    v: vA\n", "    v: vA\n    Km: 3\n")
    expect_error(text, line_of(text, "Km: 3"), "interactions.1.Km", "unknown field 'Km'")


def test_unknown_symbol_in_custom_rate() -> None:
    text = BASE.replace("rate: k * Y", "rate: k * Y * Zeta")
    err = expect_error(text, line_of(text, "rate:"), "interactions.4.rate", "'Zeta'", "unknown symbol")
    assert isinstance(err, SpecError)


def test_custom_rate_injection_runs_nothing(tmp_path) -> None:
    marker = tmp_path / "x"
    text = BASE.replace("rate: k * Y", f"rate: \"__import__('os').system('touch {marker}')\"")
    expect_error(text, line_of(text, "rate:"), "interactions.4.rate", "not allowed")
    assert not marker.exists()


def test_custom_rate_injection_tmp_x() -> None:
    existed = Path("/tmp/x").exists()
    text = BASE.replace("rate: k * Y", "rate: \"__import__('os').system('touch /tmp/x')\"")
    expect_error(text, line_of(text, "rate:"), "interactions.4.rate")
    if not existed:
        assert not Path("/tmp/x").exists()


def test_custom_rate_may_use_t_and_inputs() -> None:
    text = BASE.replace("rate: k * Y", "rate: k * Y * (1 + sin(t)) * D")
    assert loads_spec(text).interaction("decay").rate == "k * Y * (1 + sin(t)) * D"


def test_undefined_species_in_edge() -> None:
    text = BASE.replace("    from: X\n    to: A\n", "    from: Q\n    to: A\n")
    expect_error(text, line_of(text, "from: Q"), "interactions.1.from", "undefined state 'Q'")


def test_wrong_role_uptake_into_metabolite() -> None:
    text = BASE.replace("    from: S\n    to: X\n", "    from: S\n    to: A\n")
    expect_error(text, line_of(text, "to: A", after="law: monod"), "interactions.0.to", "'A'", "metabolite",
                 "main or satellite")


def test_wrong_role_production_from_metabolite() -> None:
    text = BASE.replace("    from: X\n    to: A\n    v: vA", "    from: S\n    to: A\n    v: vA")
    expect_error(text, line_of(text, "from: S", after="type: production"), "interactions.1.from", "substrate")


def test_bounds_exclude_value() -> None:
    text = BASE.replace("  muA:\n    value: 0.2\n", "  muA:\n    value: 20.0\n")
    expect_error(text, line_of(text, "value: 20.0"), "parameters.muA.value", "outside bounds")


def test_state_x0_outside_bounds() -> None:
    text = BASE.replace("    role: main\n    x0: 1.0\n", "    role: main\n    x0: -1.0\n    bounds: [0, null]\n")
    expect_error(text, line_of(text, "x0: -1.0"), "states.X.x0", "outside bounds")


def test_lower_bound_not_below_upper() -> None:
    text = BASE.replace("bounds: [1.0e-4, 10.0]", "bounds: [10.0, 1.0e-4]")
    expect_error(text, line_of(text, "bounds: [10.0"), "parameters.muA.bounds", "not below")


@pytest.mark.parametrize("value", ["0.0", "-1.0"])
def test_log_scale_with_nonpositive_value(value: str) -> None:
    text = BASE.replace("  KS:\n    value: 1.0\n", f"  KS:\n    value: {value}\n    scale: log\n")
    expect_error(text, line_of(text, "scale: log"), "parameters.KS.scale", "log scale")


def test_log_scale_with_nonpositive_lower_bound() -> None:
    text = BASE.replace("    bounds: [0.0, 1.0]\n", "    bounds: [0.0, 1.0]\n    scale: log\n")
    expect_error(text, line_of(text, "scale: log"), "parameters.vA.scale", "positive lower bound")


def test_missing_required_law_role() -> None:
    text = BASE.replace("    K: KS\n    yield: 1.0\n", "    K: KS\n")
    expect_error(text, line_of(text, "- type: uptake"), "interactions.0", "needs parameter role 'yield'")


def test_missing_one_of_roles() -> None:
    text = BASE.replace("    I: IA\n", "")
    expect_error(text, line_of(text, "- type: inhibition"), "interactions.3", "exactly one of I, kappa")


def test_both_of_one_of_roles() -> None:
    text = BASE.replace("    a: aA\n", "    a: aA\n    K: KS\n")
    expect_error(text, line_of(text, "law: shared_monod") - 1, "interactions.2", "exactly one of K, a")


def test_duplicate_interaction_id() -> None:
    text = BASE.replace("  - type: inhibition\n", "  - id: uptake:S->X\n    type: inhibition\n")
    expect_error(text, line_of(text, "id: uptake:S->X"), "interactions.3.id", "duplicate interaction id")


def test_duplicate_generated_id() -> None:
    text = BASE.replace("observables:", "  - type: production\n    from: X\n    to: A\n    v: 0.5\nobservables:")
    expect_error(text, line_of(text, "- type: production", after="stoichiometry"), "interactions.5.id",
                 "'prod:X->A'")


def test_unknown_parameter_referenced_by_edge() -> None:
    text = BASE.replace("    v: vA\n", "    v: vZ\n")
    expect_error(text, line_of(text, "v: vZ"), "interactions.1.v", "unknown parameter 'vZ'")


@pytest.mark.parametrize("bad", ["nan", ".nan", ".inf", "inf", "-inf"])
def test_non_finite_role_value_rejected(bad: str) -> None:
    text = BASE.replace("    v: vA\n", f"    v: {bad}\n")
    expect_error(text, line_of(text, f"v: {bad}"), "interactions.1.v")


def test_parameter_named_like_a_float_is_referenced() -> None:
    text = BASE.replace("  k:\n    value: 0.1\n", "  k:\n    value: 0.1\n  inf:\n    value: 3.0\n")
    text = text.replace("    v: vA\n", "    v: inf\n")
    assert loads_spec(text).interaction("prod:X->A").params["v"] == "inf"


def test_numeric_role_value_accepted() -> None:
    text = BASE.replace("    v: vA\n", "    v: '0.5'\n")
    assert loads_spec(text).interaction("prod:X->A").params["v"] == 0.5


def test_observable_with_unknown_symbol() -> None:
    text = BASE.replace("expr: 0.4 * X + 0.3 * Y", "expr: 0.4 * X + 0.3 * W")
    err = expect_error(text, line_of(text, "expr:"), "observables.OD.expr", "unknown symbol 'W'")
    assert not isinstance(err, ExpressionError) or err.field == "observables.OD.expr"


def test_observable_may_not_use_t() -> None:
    text = BASE.replace("expr: 0.4 * X + 0.3 * Y", "expr: X * t")
    expect_error(text, line_of(text, "expr:"), "observables.OD.expr", "'t'")


def test_observable_needs_a_state() -> None:
    text = BASE.replace("expr: 0.4 * X + 0.3 * Y", "expr: 2 * mu0")
    expect_error(text, line_of(text, "expr:"), "observables.OD.expr", "at least one state")


def test_observable_needs_noise() -> None:
    text = BASE.replace("      relative: 0.03\n", "      relative: 0.0\n")
    expect_error(text, line_of(text, "noise:", after="OD:"), "observables.OD.noise", "noise level")


def test_undefined_dilution() -> None:
    text = BASE.replace("dilution: D", "dilution: Dx")
    expect_error(text, line_of(text, "dilution:"), "reactor.dilution", "'Dx'")


def test_reserved_and_keyword_names() -> None:
    for bad in ("t", "exp", "lambda", "None"):
        text = BASE.replace("  k:\n    value: 0.1\n", f"  k:\n    value: 0.1\n  {bad}:\n    value: 1.0\n")
        expect_error(text, line_of(text, f"  {bad}:"), f"parameters.{bad}", "reserved")


def test_name_used_twice_across_sections() -> None:
    text = BASE.replace("  k:\n    value: 0.1\n", "  k:\n    value: 0.1\n  X:\n    value: 1.0\n")
    expect_error(text, line_of(text, "  X:", after="parameters:"), "parameters.X", "already used")


def test_missing_sections_and_empty() -> None:
    with pytest.raises(SpecError, match="missing section 'parameters'"):
        loads_spec("states: {X: 1}\n", FILE)
    with pytest.raises(SpecError, match="empty"):
        loads_spec("", FILE)
    with pytest.raises(SpecError, match="version"):
        loads_spec("symode: 2\nstates: {X: 1}\nparameters: {}\n", FILE)


def test_python_tags_not_constructed() -> None:
    with pytest.raises(SpecError):
        loads_spec("states: !!python/object/apply:os.system ['echo hi']\nparameters: {}\n", FILE)


def test_load_spec_file_errors_name_the_file(tmp_path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SpecError) as info:
        load_spec(missing)
    assert str(missing) in str(info.value)
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.replace("    v: vA\n", "    v: vZ\n"))
    with pytest.raises(SpecError) as info:
        load_spec(bad)
    assert str(info.value).startswith(f"{bad}:{line_of(bad.read_text(), 'v: vZ')}: interactions.1.v: ")


# -- the documentation's examples load ------------------------------------------------------------------
def _doc_yaml_blocks() -> list[str]:
    if not DOC.exists():
        return []
    return [b for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
            if re.search(r"^states:", b, re.M)]


def test_doc_has_full_spec_examples() -> None:
    assert len(_doc_yaml_blocks()) >= 1


@pytest.mark.parametrize("block", _doc_yaml_blocks())
def test_doc_yaml_examples_load(block: str) -> None:
    from symode.symbolic.rhs import build_symbolic

    spec = loads_spec(block, "docs/spec-format.md")
    assert loads_spec(spec.to_yaml()) == spec
    build_symbolic(spec)


def test_doc_chemostat_example_matches_specs_file() -> None:
    blocks = [b for b in _doc_yaml_blocks() if "name: chemostat" in b]
    assert blocks
    doc_spec = loads_spec(blocks[0])
    spec = load_spec(CHEMOSTAT)
    assert doc_spec.interactions == spec.interactions
    assert doc_spec.reactor == spec.reactor
    assert {n: p.value for n, p in doc_spec.parameters.items()} == {n: p.value for n, p in spec.parameters.items()}
    assert {n: s.x0 for n, s in doc_spec.states.items()} == {n: s.x0 for n, s in spec.states.items()}


@pytest.mark.parametrize("text", ["\x85", "a\u2028b", "x\u2029y", "tab\there", "multi\nline"])
def test_descriptions_with_yaml_line_breaks_round_trip(text) -> None:
    """NEL/LS/PS are line breaks to a YAML reader: they must be written escaped (found by hypothesis)."""
    spec = spec_from_dict({"name": "n", "states": {"x": {"x0": 1.0, "description": text}},
                           "parameters": {"k": {"value": 1.0, "description": text}}})
    assert loads_spec(spec.to_yaml()) == spec
