"""YAML output: plain data -> YAML text that reads back to equal data (floats exactly, key order kept)."""

from __future__ import annotations

import math
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    pass


def _represent_float(dumper: yaml.SafeDumper, value: float) -> yaml.Node:
    if math.isinf(value):
        text = ".inf" if value > 0 else "-.inf"
    elif math.isnan(value):
        text = ".nan"
    else:
        text = repr(float(value))
        if "e" in text and "." not in text.split("e")[0]:
            mant, exp = text.split("e")
            text = f"{mant}.0e{exp}"  # YAML 1.1 floats need a dot to be read back as floats
    return dumper.represent_scalar("tag:yaml.org,2002:float", text)


def _represent_list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.Node:
    flow = all(isinstance(v, (int, float, str)) or v is None for v in value) and len(value) <= 8
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


def _represent_dict(dumper: yaml.SafeDumper, value: dict[Any, Any]) -> yaml.Node:
    simple = all(isinstance(v, (int, float, str)) or v is None
                 or (isinstance(v, list) and all(not isinstance(i, (list, dict)) for i in v))
                 for v in value.values())
    flow = simple and len(str(value)) < 150 and bool(value)
    return dumper.represent_mapping("tag:yaml.org,2002:map", value, flow_style=flow)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    # YAML line-break characters (NEL, LS, PS) inside single-quoted or plain scalars are folded on
    # reading; double quotes with escapes keep every character.
    style = '"' if any(c in value for c in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(float, _represent_float)
_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(dict, _represent_dict)


def dump_yaml(data: Any) -> str:
    """YAML text for plain data, keeping key order, with floats that read back exactly."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=110,
                     allow_unicode=True)
