"""The limits on untrusted YAML/JSON input (symode.spec.yamlio, jsonio, textio): every hostile document
is refused with one located error; ordinary documents (aliases, merge keys, JSON) still load."""

from __future__ import annotations

import json

import pytest
import yaml

from symode.errors import DataError, SpecError
from symode.spec import load_spec, loads_spec
from symode.spec.jsonio import load_data_file, load_json_file, loads_json
from symode.spec.limits import (
    MAX_ALIAS_NODES,
    MAX_DOCUMENT_BYTES,
    MAX_NESTING_DEPTH,
    MAX_NEURAL_WEIGHTS,
    MAX_YAML_NODES,
)
from symode.spec.yamlio import load_yaml, load_yaml_file

from .conftest import SPECS

FILE = "h.yaml"


def laughs(levels: int = 10, fan: int = 10, merge: bool = False) -> str:
    """The "billion laughs" document: each level holds ``fan`` aliases of the level below."""
    lines = ["l0: &l0 {" + ", ".join(f"k{i}: {i}" for i in range(fan)) + "}" if merge else "l0: &l0 [lol]"]
    for k in range(1, levels):
        refs = ", ".join([f"*l{k - 1}"] * fan)
        lines.append(f"l{k}: &l{k} {{<<: [{refs}]}}" if merge else f"l{k}: &l{k} [{refs}]")
    return "\n".join(lines) + "\n"


HOSTILE = {
    "recursive anchor": ("x: &a [*a]\n", 1, "recursive"),
    "recursive mapping": ("a: 1\nx: &a\n  y: *a\n", 3, "recursive"),
    "alias fan-out": (laughs(), None, "aliases expand"),
    "merge-key bomb": (laughs(merge=True), None, "aliases expand"),
    "deep flow nesting": ("x: " + "[" * 10000 + "]" * 10000 + "\n", 1, "nested deeper"),
    "deep block nesting": ("".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v: 1\n",
                           MAX_NESTING_DEPTH + 1, "nested deeper"),
    "NUL": ("states: {X: 1}\nname: a\x00b\n", 2, "NUL"),
    "terminal escape": ("name: \x1b]0;pwned\x07\n", 1, "control character"),
    "huge integer": ("states: {X: " + "9" * 5000 + "}\n", 1, "cannot read value"),
    "impossible date": ("name: 2001-13-45\n", 1, "cannot read value"),
    "python tag": ("name: !!python/name:os.system ''\n", 1, "YAML"),
    "undefined alias": ("x: *nope\n", 1, "undefined alias"),
}


def _one_line(err: Exception, file: str = FILE) -> str:
    msg = str(err)
    assert "\n" not in msg and msg.startswith(f"{file}:"), msg
    return msg


@pytest.mark.parametrize("loader", [yaml.SafeLoader, getattr(yaml, "CSafeLoader", yaml.SafeLoader)],
                         ids=["python", "libyaml"])
@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_yaml_is_refused_with_a_located_error(case: str, loader, monkeypatch) -> None:
    monkeypatch.setattr("symode.spec.yamlio.YAML_LOADER", loader)
    text, line, words = HOSTILE[case]
    with pytest.raises(SpecError, match=words) as info:
        loads_spec(text, FILE)
    _one_line(info.value)
    if line is not None:
        assert info.value.line == line, str(info.value)


def test_alias_budget_names_the_alias_and_field() -> None:
    with pytest.raises(SpecError) as info:
        load_yaml(laughs(), FILE)
    err = info.value
    assert err.field is not None and err.field.startswith("l") and str(MAX_ALIAS_NODES) in err.message


def test_aliases_and_merge_keys_within_the_budget_still_work() -> None:
    text = ("noise: &n {absolute: 0.01, relative: 0.02}\n"
            "base: &b {x0: 1.0, role: main}\n")
    located = load_yaml(text + "s: {<<: *b, bounds: [0, null]}\nt: [*n, *n]\n")
    assert located.data["s"] == {"x0": 1.0, "role": "main", "bounds": [0, None]}
    assert located.data["t"] == [located.data["noise"]] * 2 and located.data["t"][0] is not located.data["t"][1]
    assert located.line(("s", "bounds")) == 3 and located.line(("s", "role")) == 2


def test_a_fan_out_just_under_the_budget_loads() -> None:
    fan = int(MAX_ALIAS_NODES ** 0.5) - 2          # two levels of fan x fan values
    text = "a: &a [" + ", ".join(["1"] * fan) + "]\nb: [" + ", ".join(["*a"] * fan) + "]\n"
    assert len(load_yaml(text).data["b"]) == fan


def test_document_node_limit(monkeypatch) -> None:
    assert MAX_YAML_NODES >= 10 * len(load_yaml((SPECS / "community-2x3.yaml").read_text()).lines)
    monkeypatch.setattr("symode.spec.yamlio.MAX_YAML_NODES", 1000)   # the same code path, cheaper
    n = 500                                       # a flow list of n items: n + 1 nodes per list, 2 lists
    text = "a: [" + ",".join(["1"] * n) + "]\nb: [" + ",".join(["1"] * n) + "]\n"
    with pytest.raises(SpecError, match="more than 1000 values in one document") as info:
        load_yaml(text, FILE)
    assert info.value.line == 2


def test_oversize_and_non_utf8_files(tmp_path) -> None:
    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:
        fh.write(b"name: x\n")
        fh.truncate(MAX_DOCUMENT_BYTES + 1)
    with pytest.raises(SpecError, match="larger than the limit") as info:
        load_spec(big)
    _one_line(info.value, str(big))
    utf16 = tmp_path / "utf16.yaml"
    utf16.write_text("name: x\n", encoding="utf-16")
    with pytest.raises(SpecError, match="UTF-16") as info:
        load_yaml_file(utf16)
    assert info.value.line == 1
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    with pytest.raises(SpecError, match="directory"):
        load_spec(folder)


def test_shipped_specs_load_with_both_parsers(monkeypatch) -> None:
    for path in sorted(SPECS.glob("*.yaml")):
        fast = load_yaml_file(path)
        monkeypatch.setattr("symode.spec.yamlio.YAML_LOADER", yaml.SafeLoader)
        slow = load_yaml_file(path)
        monkeypatch.undo()
        assert fast.data == slow.data and fast.lines == slow.lines, path


def test_neural_weight_limit() -> None:
    text = (SPECS / "chemostat-neural.yaml").read_text()
    assert "hidden:" in text
    import re

    wide = re.sub(r"hidden: \[[^\]]*\]", f"hidden: [{MAX_NEURAL_WEIGHTS}, 2]", text, count=1)
    with pytest.raises(SpecError, match="weights") as info:
        loads_spec(wide, FILE)
    assert info.value.field is not None and info.value.field.endswith("hidden")


# -- JSON ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, words, line", [
    ('{"a": NaN}', "not a JSON number", None),
    ('{"a": 1,\n "b": }', "invalid JSON", 2),
    ("[" * 5000 + "]" * 5000, "nested deeper", None),
    ("[" * (MAX_NESTING_DEPTH + 1) + "]" * (MAX_NESTING_DEPTH + 1), "nested deeper", None),
    ('{"a": ' + "1" * 5000 + "}", "invalid JSON", None),
])
def test_hostile_json(text: str, words: str, line: int | None) -> None:
    with pytest.raises(DataError, match=words) as info:
        loads_json(text, "f.json")
    _one_line(info.value, "f.json")
    assert info.value.line == line


def test_json_files(tmp_path) -> None:
    p = tmp_path / "fit.json"
    p.write_text(json.dumps({"parameters": {"a": 1.0}, "x0": [{"S": 1.0}]}))
    assert load_json_file(p) == {"parameters": {"a": 1.0}, "x0": [{"S": 1.0}]}
    assert load_data_file(p) == load_json_file(p)
    y = tmp_path / "params.yaml"
    y.write_text("parameters:\n  a: 1.0\n")
    assert load_data_file(y) == {"parameters": {"a": 1.0}}
    y.write_bytes(b"parameters:\n  a: \x00\n")
    with pytest.raises(DataError, match="NUL") as info:
        load_data_file(y)
    assert info.value.line == 2
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(laughs())
    with pytest.raises(DataError, match="aliases expand"):
        load_data_file(bomb)
